"""Do the torch and ONNX backends of one model folder give the same answers on real audio?

    .venv/bin/python benchmarks/backend_agreement.py MODEL_DIR ../shared/data/emodb/wav [--limit N]

For a float32 encoder both compute the same numbers (export checks 1e-4); for an int8 encoder
torch and onnxruntime quantise activations each their own way, so this measures what that
costs: label agreement and the largest / mean absolute probability difference over the files.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from emotionnas.recognizer import load


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("folder", help="a folder of audio files (*.wav)")
    p.add_argument("--limit", type=int, default=0, help="only the first N files (sorted)")
    a = p.parse_args(argv)
    files = sorted(Path(a.folder).glob("*.wav"))[: a.limit or None]
    t, o = load(a.model), load(a.model, backend="onnx")
    same, diffs = 0, []
    for f in files:
        wave = t.load_wave(f)
        pt, po = t.predict_proba(wave), o.predict_proba(wave)
        same += int(pt.argmax() == po.argmax())
        diffs.append(float(np.abs(pt - po).max()))
    out = {"model": a.model, "encoder": t.spec.encoder, "files": len(files),
           "label_agreement_pct": round(100 * same / max(len(files), 1), 2),
           "max_abs_prob_diff": round(max(diffs), 4), "mean_max_abs_prob_diff": round(float(np.mean(diffs)), 4)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
