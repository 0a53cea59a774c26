"""The next idea for feature speed (issue 19 item 2): the whole Whisper encoder (every hidden
state, as the cache stores them) in ONNX Runtime's dynamic int8 instead of torch's.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ort_encoder_speed.py emodb ../shared/data/emodb \
        [--encoder whisper-base] [--threads 2] [--rounds 2]

Both encoders see the same decoded waves (decoding is not timed); timed is log-mel + encoder
for every utterance, in alternating rounds (this VM's speed drifts by ~25 % within minutes):
torch int8 via `WhisperEncoder.encode_many` (length-sorted batches, as `emotionnas features`
runs it) and ONNX Runtime int8 (the float32 graph exported as `export --onnx` does, quantised by
onnxruntime.quantization.quantize_dynamic: MatMul weights int8 per channel) one utterance at a
time. Reported: seconds, x real time of the encoder alone, and how far the ORT states are from
torch's int8 states (norm of the difference / norm of torch's, per layer, on 20 utterances).
Nothing is decided here: ORT's numbers differ from torch's, so adopting it would need an
inner-CV decision with the full pipeline (benchmarks/default_study.py), as int8 had.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("root")
    p.add_argument("--encoder", default="whisper-base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from emotionnas.data.audio import load_audio
    from emotionnas.data.corpora import read_corpus
    from emotionnas.features import numpy_frontend as fe
    from emotionnas.features.encoders import create_encoder
    torch.set_num_threads(a.threads)
    waves = [load_audio(u.path) for u in read_corpus(a.corpus, a.root).utterances]
    seconds = sum(len(w) for w in waves) / 16000
    tq = create_encoder(f"{a.encoder}@int8")
    net = create_encoder(a.encoder).net.float().eval()
    tmp = Path(tempfile.mkdtemp())

    class Graph(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, mel):
            return self.net(mel, None, None)

    torch.onnx.export(Graph(net), (torch.randn(1, net.n_mels, 300),), str(tmp / "f.onnx"), input_names=["mel"],
                      output_names=["states"], dynamic_axes={"mel": {2: "frames"}, "states": {2: "T"}},
                      opset_version=17, dynamo=False)
    quantize_dynamic(str(tmp / "f.onnx"), str(tmp / "q.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], per_channel=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = a.threads, 1, 3
    sess = ort.InferenceSession(str(tmp / "q.onnx"), opts, providers=["CPUExecutionProvider"])

    def run_ort(w):
        mel = fe.log_mel(w, net.n_mels)
        parts = [sess.run(None, {"mel": mel[:, s:s + fe.CHUNK_FRAMES][None]})[0][:, 0]
                 for s in range(0, mel.shape[1], fe.CHUNK_FRAMES)]
        return np.concatenate(parts, axis=1)

    times = {"torch-int8": [], "ort-int8": []}
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        tq.encode_many(waves)
        times["torch-int8"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for w in waves:
            run_ort(w)
        times["ort-int8"].append(time.perf_counter() - t0)
    rel = []
    for w in waves[:20]:
        want, got = tq.encode(w), run_ort(w)
        rel.append([float(np.linalg.norm(got[i] - want[i]) / np.linalg.norm(want[i])) for i in range(len(want))])
    out = {"audio_s": round(seconds, 1), "threads": a.threads,
           **{k: {"seconds": [round(t, 2) for t in v], "x_realtime": [round(seconds / t, 1) for t in v]}
              for k, v in times.items()},
           "ort_vs_torch_relative_diff_per_layer": [round(x, 4) for x in np.mean(rel, axis=0)]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
