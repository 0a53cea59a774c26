"""Feature extraction speed and accuracy cost per encoder compute dtype (float32, bfloat16, int8).

    .venv/bin/python benchmarks/encoder_dtypes.py emodb ../shared/data/emodb --cache /tmp/dtype-cache \
        [--dtypes float32,bfloat16,int8] [--encoder whisper-base] [--write]

For each dtype, in its own subprocess and a cold cache folder: the deep stream of every
utterance through `emotionnas features` code (audio loading, batched encoding, pooling,
float16 storage) -> wall time, x real time, peak RSS. Then the accuracy cost: a per-layer
linear probe (leave-one-speaker-out UA, search/layers.py) on the cached features of each dtype,
and the largest feature difference from float32. The dtype is decided on one corpus and
confirmed on the other (run it for both); the probe reads all speakers, so it must not be used
to choose a model, only to compare dtypes.
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


def extract(corpus: str, root: str, cache: str, encoder: str) -> dict:
    import resource

    import numpy as np
    import torch

    from emotionnas.data.corpora import read_corpus
    from emotionnas.features.cache import FeatureCache, deep_stream
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    table = read_corpus(corpus, root)
    t0 = time.perf_counter()
    stream = deep_stream(encoder, 2)
    setup = time.perf_counter() - t0
    arrays, rep = FeatureCache(cache).extract(table.utterances, stream, progress=False)
    probe = probe_ua(table, arrays)
    return {"wall": rep.wall_seconds, "setup": setup, "audio": rep.audio_seconds, "computed": rep.computed,
            "rtf": rep.realtime_factor, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "probe": probe, "paths": [u.path for u in table.utterances],
            "layers": int(np.asarray(next(iter(arrays.values()))).shape[0])}


def probe_ua(table, arrays) -> list[float]:
    import numpy as np

    from emotionnas.search.layers import probe_scores
    utts = [u for u in table.utterances if u.path in arrays]
    x = np.stack([np.asarray(arrays[u.path], np.float32).mean(axis=1) for u in utts])
    names = sorted({u.label for u in utts})
    y = np.array([names.index(u.label) for u in utts])
    return [round(float(v), 2) for v in probe_scores(x, y, np.array([u.speaker for u in utts]), len(names))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("root")
    p.add_argument("--cache", required=True)
    p.add_argument("--encoder", default="whisper-base")
    p.add_argument("--dtypes", default="float32,bfloat16,int8")
    p.add_argument("--threads", default="2")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(extract(a.corpus, a.root, a.cache, a.child)))
        return 0
    rows = {}
    for dtype in a.dtypes.split(","):
        name = a.encoder if dtype == "float32" else f"{a.encoder}@{dtype}"
        out = subprocess.run([sys.executable, __file__, a.corpus, a.root, "--cache", f"{a.cache}/{dtype}",
                              "--child", name], capture_output=True, text=True, check=True,
                             env={**os.environ, "THREADS": a.threads, "OMP_NUM_THREADS": a.threads})
        rows[dtype] = json.loads(out.stdout.strip().splitlines()[-1])
        print(dtype, {k: v for k, v in rows[dtype].items() if k != "paths"}, file=sys.stderr)
    base = rows.get("float32")
    lines = ["| dtype | files computed | audio (min) | wall (s) | x real time | peak RSS (MB) | "
             "probe UA per layer (LOSO) | best layer UA | Δ best vs float32 |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for dtype, r in rows.items():
        best = max(r["probe"])
        delta = "" if base is None or dtype == "float32" else f"{best - max(base['probe']):+.1f}"
        lines.append(f"| {dtype} | {r['computed']} | {r['audio'] / 60:.1f} | {r['wall']:.1f} | {r['rtf']:.0f} | "
                     f"{r['rss_mb']:.0f} | {', '.join(f'{v:.0f}' for v in r['probe'])} | {best:.1f} | {delta} |")
    table = "\n".join(lines)
    print(table)
    if a.write:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from tables import write
        load = os.getloadavg()[0]
        write(f"Encoder dtypes ({a.corpus}, {a.encoder})",
              f"Command: `.venv/bin/python benchmarks/encoder_dtypes.py {a.corpus} {a.root} --cache CACHE "
              f"--threads {a.threads} --write` — cold cache per dtype, {a.threads} torch threads, one process; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1-min load {load:.1f} after the run.\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
