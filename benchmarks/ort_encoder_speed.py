"""The next idea for feature speed (issue 19 item 2): the whole Whisper encoder (every hidden
state, as the cache stores them) in ONNX Runtime's dynamic int8 instead of torch's.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ort_encoder_speed.py emodb ../shared/data/emodb \
        [--encoder whisper-base] [--threads 2] [--rounds 2]

Both encoders see the same decoded waves (decoding is not timed); timed is log-mel + encoder
for every utterance, in alternating rounds (this VM's speed drifts by ~25 % within minutes):
torch int8 via `WhisperEncoder.encode_many` (length-sorted batches, as `emotionnas features`
runs it) and ONNX Runtime int8 via the shipped `whisper-base@ort-int8` encoder
(features/encoders/ort_whisper.py: its cached graph, each utterance alone, `--threads` of them at
once; the graph is built before timing). Reported: seconds, x real time of the encoder alone, and how far the ORT states are from
torch's int8 states (norm of the difference / norm of torch's, per layer, on 20 utterances).
Nothing is decided here: ORT's numbers differ from torch's, so adopting it would need an
inner-CV decision with the full pipeline (benchmarks/default_study.py), as int8 had.
"""
from __future__ import annotations

import argparse
import json
import time

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
    from emotionnas.data.audio import load_audio
    from emotionnas.data.corpora import read_corpus
    from emotionnas.features.encoders import create_encoder
    torch.set_num_threads(a.threads)
    waves = [load_audio(u.path) for u in read_corpus(a.corpus, a.root).utterances]
    seconds = sum(len(w) for w in waves) / 16000
    tq = create_encoder(f"{a.encoder}@int8")
    ort_enc = create_encoder(f"{a.encoder}@ort-int8")
    ort_enc.encode(waves[0])  # builds (or reads from the model cache) the graph before timing
    times = {"torch-int8": [], "ort-int8": []}
    for _ in range(a.rounds):
        for name, enc in (("torch-int8", tq), ("ort-int8", ort_enc)):
            t0 = time.perf_counter()
            enc.encode_many(waves)
            times[name].append(time.perf_counter() - t0)
    rel = []
    for w in waves[:20]:
        want, got = tq.encode(w), ort_enc.encode(w)
        rel.append([float(np.linalg.norm(got[i] - want[i]) / np.linalg.norm(want[i])) for i in range(len(want))])
    out = {"audio_s": round(seconds, 1), "threads": a.threads,
           **{k: {"seconds": [round(t, 2) for t in v], "x_realtime": [round(seconds / t, 1) for t in v]}
              for k, v in times.items()},
           "ort_vs_torch_relative_diff_per_layer": [round(x, 4) for x in np.mean(rel, axis=0)]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
