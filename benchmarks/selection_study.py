"""Decide a training default by inner cross-validation only (never a test speaker).

For the first N selection groups of a corpus (as `emotionnas run` plans them), train a fixed set
of baselines under each variant of the training config and report their inner-CV out-of-fold UA
(every search speaker validated once, epoch chosen as in a run). Each variant is a run of its own
(`Run.start` into OUT/CORPUS-VARIANT; records are reused on a second call), driven through the
run's stages: groups (layer probe, pool) and the inner cross-validation of `Run.evaluate`. Test
speakers of the groups' folds are never read.

    .venv/bin/python benchmarks/selection_study.py emodb ../shared/data/emodb --cache /work/cache \
        --groups 2 --variant base: --variant mask:time_mask=0.1,freq_mask=0.1 --variant e30:epochs=30
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from emotionnas.config import RunConfig, TrainConfig
from emotionnas.metrics import unweighted_accuracy
from emotionnas.training.run import Run


def study(cfg: RunConfig, out_dir, n_groups: int, models: list[str]) -> list[tuple]:
    """[(group, model, epoch, inner-CV UA)] of one training config."""
    rows = []
    with Run.start(cfg, out_dir, progress=False) as run:
        groups = run.groups(limit=n_groups)
        for g in groups:  # a baseline outside the pool (the fixed-schedule fine-tuning) is scored here too
            g.pool.update({g.baselines[m].key: g.baselines[m] for m in models})
        wanted = [(g, g.baselines[m].key, k) for g in groups for m in models for k in range(len(g.inner))]
        run.evaluator.evaluate(wanted)
        for g in groups:
            for m in models:
                o = run.evaluator.out_of_fold(g, g.baselines[m].key)
                epoch, probs = o.epoch, o.probs
                ua = unweighted_accuracy(run.fs.labels[g.idx], probs.argmax(1), run.fs.n_classes)
                rows.append((g.name, m, epoch, ua))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("root")
    p.add_argument("--cache", default="cache")
    p.add_argument("--out", default="/tmp/selection-study", help="one run folder per variant in here")
    p.add_argument("--protocol", default="loso")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--groups", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variant", action="append", required=True, help="name:key=value,... (TrainConfig fields)")
    p.add_argument("--models", default="GRU,LSTM,linear probe", help="baseline names to train")
    a = p.parse_args(argv)
    cfg = RunConfig(corpus=a.corpus, root=a.root, protocol=a.protocol, k=a.k, workers=a.workers)
    cfg.features.cache_dir = a.cache
    models = a.models.split(",")
    rows = []
    for spec in a.variant:
        name, _, kv = spec.partition(":")
        over = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in kv.split(",") if x)}
        variant = dataclasses.replace(cfg, train=TrainConfig(**{**cfg.train.to_dict(), **over}))
        t0 = time.perf_counter()
        found = study(variant, Path(a.out) / f"{a.corpus}-{name}", a.groups, models)
        rows += [(name, *row) for row in found]
        print(f"{name}: mean inner-CV UA {np.mean([r[-1] for r in found]):.2f} over {len(found)} (group, model) "
              f"pairs [{time.perf_counter() - t0:.0f} s]", flush=True)
    for row in rows:
        print("%-8s %-22s %-14s epoch %2d  UA %.2f" % row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
