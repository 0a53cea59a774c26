"""`predict` latency on a 3 s utterance, warm, features included, torch vs ONNX backends.

    .venv/bin/python benchmarks/latency.py MODEL_DIR WAV [--threads 1,2] [--repeat 30] [--write]

MODEL_DIR must have been exported with `--onnx` for the onnx rows. Each row runs in its own
subprocess (its thread setting is its own); the first 3 calls warm up and are not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(model: str, wav: str, backend: str, repeat: int) -> dict:
    import numpy as np

    if backend == "torch":
        import torch
        torch.set_num_threads(int(os.environ["THREADS"]))
    from emotionnas.recognizer import Recognizer
    rec = Recognizer.load(model, backend=backend)
    wave = rec.load_wave(wav)[: 3 * 16000]
    for _ in range(3):
        rec.predict_proba(wave)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rec.predict_proba(wave)
        times.append(1000 * (time.perf_counter() - t0))
    out = {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
           "members": len(rec.spec.members)}
    if backend == "torch":  # where the time goes: front ends, encoder, each member
        out["parts"] = breakdown(rec, wave, repeat)
    return out


def breakdown(rec, wave, repeat: int) -> dict:
    import numpy as np
    import torch

    from emotionnas.features.cache import deep_features
    from emotionnas.features.inputs import model_inputs
    from emotionnas.features.spectrogram import compute_spectrograms

    def median_ms(fn) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t0))
        return float(np.median(times))
    parts = {"spectrogram": median_ms(lambda: compute_spectrograms([wave], rec.spec_cfg))}
    if rec.uses_deep():
        parts[f"encoder to layer {rec.max_layer()}"] = median_ms(
            lambda: deep_features(rec.encoder, wave, rec.spec.deep_pool, rec.max_layer()))
    spec, deep = rec.features(wave)
    with torch.no_grad():
        for m, net, s in zip(rec.spec.members, rec.model.nets, rec.model.specs):
            inputs = model_inputs(s, spec, deep)
            parts[m.name] = median_ms(lambda: net(*inputs))
    return parts


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("wav")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--backends", default="torch,onnx")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.model, a.wav, a.child, a.repeat)))
        return 0
    rows = []
    for backend in a.backends.split(","):
        for threads in a.threads.split(","):
            env = {**os.environ, "THREADS": threads, "OMP_NUM_THREADS": threads}
            out = subprocess.run([sys.executable, __file__, a.model, a.wav, "--child", backend,
                                  "--repeat", str(a.repeat)], capture_output=True, text=True, check=True, env=env)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            parts = "; ".join(f"{k} {v:.1f}" for k, v in r.get("parts", {}).items())
            rows.append(f"| {backend} | {threads} | {r['members']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                        f"{parts or '–'} |")
            print(rows[-1], file=sys.stderr)
    table = "\n".join(["| backend | threads | members | median (ms) | p90 (ms) | where it goes, torch (median ms) |",
                       "|---|---:|---:|---:|---:|---|"] + rows)
    print(table)
    if a.write:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from tables import write
        write("Predict latency (3 s utterance, features included)",
              f"Command: `.venv/bin/python benchmarks/latency.py {a.model} {a.wav} --threads {a.threads} --write` — "
              f"{a.repeat} warm calls per row (after 3 warm-up calls), one subprocess per row; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1-min load {os.getloadavg()[0]:.1f}.\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
