"""`predict` latency on a 3 s utterance, warm, features included, torch vs ONNX backends.

    .venv/bin/python benchmarks/latency.py MODEL_DIR WAV [--threads 1,2] [--repeat 30] [--write]

MODEL_DIR must have been exported with `--onnx` for the onnx rows. Each row runs in its own
subprocess (its thread setting is its own); the first 3 calls warm up and are not counted.
The last rows time a bare CTranslate2 Whisper-base int8 encode of the same 3 s (all 6 blocks,
from the same log-mel, same threads; `pip install -e .[bench]`) and give each backend's
predict time as a ratio to it (`--no-ct2` leaves them out).
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
    from emotionnas.recognizer import load
    rec = load(model, backend=backend, threads=int(os.environ["THREADS"]))
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


def ct2_child(wav: str, repeat: int) -> dict:
    """The reference: a bare CTranslate2 Whisper-base int8 encode (all 6 blocks) of the same 3 s,
    from the same log-mel, with the same threads (`pip install ctranslate2`)."""
    import ctranslate2
    import numpy as np

    from emotionnas.data.audio import load_audio
    from emotionnas.features.encoders import assets
    from emotionnas.features.encoders.mel import log_mel
    model = ctranslate2.models.Whisper(str(assets.whisper_base_dir()), device="cpu", compute_type="int8",
                                       intra_threads=int(os.environ["THREADS"]))
    mel = log_mel(load_audio(wav)[: 3 * 16000], 80).numpy()[None]
    for _ in range(3):
        model.encode(ctranslate2.StorageView.from_array(mel))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model.encode(ctranslate2.StorageView.from_array(mel))
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "members": 0,
            "version": ctranslate2.__version__}


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
    parts = {}
    if rec.uses_spectrogram():  # predict computes it only when a member reads it
        parts["spectrogram"] = median_ms(lambda: compute_spectrograms([wave], rec.spec_cfg))
    if rec.uses_deep():
        parts[f"encoder to layer {rec.max_layer()}"] = median_ms(
            lambda: deep_features(rec.encoder, wave, rec.spec.deep_pool, rec.max_layer()))
    spec, deep = rec.features(wave)
    with torch.no_grad():
        for m, net, s in zip(rec.spec.members, rec.model.nets, rec.model.specs):
            inputs = model_inputs(s, spec, deep)
            parts[m.name] = median_ms(lambda: net(*inputs))
    return parts


def top_members(model: str, n: int, out: Path) -> str:
    """A copy of the model folder with only its first `n` members (the top of the inner-CV
    ranking) — model.json, weights and ONNX graphs — to time an n-member ensemble."""
    import shutil

    from safetensors.numpy import load_file, save_file
    spec = json.loads((Path(model) / "model.json").read_text())
    if len(spec["members"]) <= n:
        return model
    shutil.copytree(model, out, dirs_exist_ok=True)
    keep = spec["members"][:n]
    spec["members"] = keep
    (out / "model.json").write_text(json.dumps(spec))
    prefixes = tuple(m["weights_prefix"] for m in keep)
    weights = load_file(str(out / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if k.startswith(prefixes)}, str(out / "model.safetensors"))
    if (out / "onnx.json").exists():
        info = json.loads((out / "onnx.json").read_text())
        info["members"] = info["members"][:n]
        (out / "onnx.json").write_text(json.dumps(info))
    return str(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("wav")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--backends", default="torch,onnx")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--members", type=int, help="time only the first N members (a copy of the folder in /tmp)")
    p.add_argument("--ct2", action=argparse.BooleanOptionalAction, default=True,
                   help="also time a bare CTranslate2 int8 encode of the same audio (the reference)")
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    if a.child:
        out = ct2_child(a.wav, a.repeat) if a.child == "ct2" else child(a.model, a.wav, a.child, a.repeat)
        print(json.dumps(out))
        return 0
    if a.members and not a.child:
        import tempfile
        a.model = top_members(a.model, a.members, Path(tempfile.mkdtemp(prefix="latency-")) / "model")
    rows, ours = [], {}
    for backend in a.backends.split(","):
        for threads in a.threads.split(","):
            env = {**os.environ, "THREADS": threads, "OMP_NUM_THREADS": threads}
            out = subprocess.run([sys.executable, __file__, a.model, a.wav, "--child", backend,
                                  "--repeat", str(a.repeat)], capture_output=True, text=True, check=True, env=env)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ours[(backend, threads)] = r["median_ms"]
            parts = "; ".join(f"{k} {v:.1f}" for k, v in r.get("parts", {}).items())
            rows.append(f"| {backend} | {threads} | {r['members']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                        f"{parts or '–'} |")
            print(rows[-1], file=sys.stderr)
    for threads in a.threads.split(",") if a.ct2 else []:
        env = {**os.environ, "THREADS": threads, "OMP_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, __file__, a.model, a.wav, "--child", "ct2", "--repeat", str(a.repeat)],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            rows.append(f"| ctranslate2 | {threads} | – | not run: {out.stderr.strip().splitlines()[-1][:80]} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = "; ".join(f"{b} predict / this = {ours[(b, threads)] / r['median_ms']:.2f}"
                          for b in a.backends.split(",") if (b, threads) in ours)
        rows.append(f"| ctranslate2 {r['version']} whisper-base int8, encode only (6 blocks) | {threads} | – | "
                    f"{r['median_ms']:.1f} | {r['p90_ms']:.1f} | {ratio} |")
        print(rows[-1], file=sys.stderr)
    table = "\n".join(["| backend | threads | members | median (ms) | p90 (ms) | where it goes, torch (median ms) |",
                       "|---|---:|---:|---:|---:|---|"] + rows)
    print(table)
    if a.write:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from tables import write
        write("Predict latency (3 s utterance, features included)",
              f"Command: `.venv/bin/python benchmarks/latency.py MODEL {a.wav} --threads {a.threads}"
              f"{f' --members {a.members}' if a.members else ''} --write` — "
              f"{a.repeat} warm calls per row (after 3 warm-up calls), one subprocess per row; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1-min load {os.getloadavg()[0]:.1f}.\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
