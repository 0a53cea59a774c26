"""What limits feature speed (issue 19 item 2): the encoder's work per second of audio against
this machine's int8 matrix-multiply throughput.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/int8_ceiling.py [--encoder whisper-base] [--threads 2]

1. Work: multiply-accumulates (MACs) of the encoder per second of audio, counted from the
   network's own shapes (conv front end at 100 / 50 Hz, then per 50 Hz frame and block: the four
   attention projections, the two MLP matrices and the attention itself over an utterance of
   `--seconds`).
2. Throughput: the same torch dynamic int8 linear layers the `@int8` encoder uses (per-channel
   weights), timed alone on the block's own shapes (frames x 512 -> 2048 and back), no Python
   around them: the best any int8 torch encoder of this network can do here.
3. The ceiling: throughput / work, in x real time; compared with the measured encoder
   (`WhisperEncoder.encode` on random audio of `--seconds`, warm).
Nothing is decided here; it says how far the encoder is from what the machine can give.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--encoder", default="whisper-base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from emotionnas.features.encoders import create_encoder
    enc = create_encoder(f"{a.encoder}@int8")
    d, n_layers, n_mels = enc.net.dim, enc.net.n_layers, enc.net.n_mels
    frames = int(50 * a.seconds)
    per_frame = n_layers * (4 * d * d + 2 * d * 4 * d + 2 * frames * d)  # projections, MLP, attention
    front = 100 * n_mels * d * 3 + 50 * d * d * 3                           # conv1 (100 Hz), conv2 (50 Hz)
    macs_per_s = 50 * per_frame + front
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)).eval()
    qmlp = torch.ao.quantization.quantize_dynamic(mlp, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    x = torch.randn(frames, d)
    with torch.inference_mode():
        t = best_of(lambda: qmlp(x), a.repeats)
    gmacs = frames * 2 * d * 4 * d / t / 1e9
    wave = np.random.default_rng(0).uniform(-0.3, 0.3, int(16000 * a.seconds)).astype(np.float32)
    t_enc = best_of(lambda: enc.encode(wave), max(3, a.repeats // 4))
    out = {"encoder": enc.name, "threads": a.threads, "utterance_s": a.seconds,
           "gmac_per_audio_second": round(macs_per_s / 1e9, 3),
           "int8_linear_gmac_per_s": round(gmacs, 1),
           "ceiling_x_realtime": round(gmacs * 1e9 / macs_per_s, 1),
           "encoder_x_realtime": round(a.seconds / t_enc, 1),
           "encoder_share_of_ceiling": round(a.seconds / t_enc / (gmacs * 1e9 / macs_per_s), 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
