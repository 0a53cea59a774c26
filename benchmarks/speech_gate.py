"""Measure the speech gate (data/speech_gate.py) on real speech and on non-speech.

    .venv/bin/python benchmarks/speech_gate.py [--data ../shared/data] [--out benchmarks/results/speech_gate.json]

Real speech: every utterance of EmoDB and URDU, whole and as 3 s windows (hop 1 s, as the
service's timeline). Non-speech: digital silence with one LSB, 1e-4 dither, a 0.1 s tone, white
and pink noise at -40/-20/-6 dBFS, steady tones, all 2 s at 16 kHz. Prints, per set, how many
pass the gate and the quantiles of the two measured quantities; writes them as JSON.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from emotionnas.data.audio import load_audio  # noqa: E402
from emotionnas.data.speech_gate import DEFAULT_GATE  # noqa: E402

SR = 16000


def non_speech(rng) -> dict[str, np.ndarray]:
    n = 2 * SR
    t = np.arange(n) / SR
    out = {"one LSB in 2 s of zeros": np.where(np.arange(n) == n // 2, 1 / 32768, 0.0),
           "1e-4 dither": 1e-4 * rng.standard_normal(n)}
    blip = np.zeros(n)
    blip[SR: SR + SR // 10] = 0.5 * np.sin(2 * np.pi * 440 * t[: SR // 10])
    out["0.1 s tone"] = blip
    for db in (-40, -20, -6):
        g = 10 ** (db / 20)
        white = rng.standard_normal(n)
        pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(n // 2 + 1), 1)), n)
        out[f"white noise {db} dBFS"] = g * white / white.std()
        out[f"pink noise {db} dBFS"] = g * pink / pink.std()
        out[f"tone 220 Hz {db} dBFS"] = g * np.sqrt(2) * np.sin(2 * np.pi * 220 * t)
    return {k: v.astype(np.float32) for k, v in out.items()}


def quantiles(values):
    v = np.asarray([x for x in values if x is not None], float)
    return {q: round(float(np.quantile(v, p)), 2) for q, p in (("min", 0), ("p1", .01), ("p50", .5))} if len(v) else {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="benchmarks/results/speech_gate.json")
    args = ap.parse_args()
    report = {"gate": DEFAULT_GATE.__dict__, "sets": {}}
    for corpus in ("emodb", "urdu"):
        files = sorted(Path(args.data, corpus).rglob("*.wav"))
        whole, wins = [], []
        for f in files:
            w = load_audio(f)
            whole.append(DEFAULT_GATE.measure(w) | {"speech": DEFAULT_GATE.is_speech(w)})
            for s in range(0, max(1, len(w) - 3 * SR + 1), SR):
                piece = w[s: s + 3 * SR]
                wins.append(DEFAULT_GATE.measure(piece) | {"speech": DEFAULT_GATE.is_speech(piece)})
        for label, rows in ((f"{corpus} utterances", whole), (f"{corpus} 3 s windows", wins)):
            report["sets"][label] = {"n": len(rows), "passed": sum(r["speech"] for r in rows),
                                     "active_seconds": quantiles(r["active_seconds"] for r in rows),
                                     "modulation_db": quantiles(r["modulation_db"] for r in rows)}
    for name, w in non_speech(np.random.default_rng(0)).items():
        m = DEFAULT_GATE.measure(w)
        report["sets"][name] = {"n": 1, "passed": int(DEFAULT_GATE.is_speech(w)), **m}
    for name, r in report["sets"].items():
        print(f"{name:32s} {r['passed']}/{r['n']} pass  active_s {r['active_seconds']}  mod_db {r['modulation_db']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
