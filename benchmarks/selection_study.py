"""Decide a training default by inner cross-validation only (never a test speaker).

For the first N selection groups of a corpus (as `emotionnas run` plans them), train a fixed set
of candidates under each variant of the training config and report their inner-CV out-of-fold UA
(every search speaker validated once, epoch chosen as in a run). Test speakers of the groups'
folds are never read.

    .venv/bin/python benchmarks/selection_study.py emodb ../shared/data/emodb --cache /work/cache \
        --groups 2 --variant base: --variant mask:time_mask=0.1,freq_mask=0.1 --variant e30:epochs=30
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import yaml

from emotionnas.config import RunConfig, TrainConfig
from emotionnas.data.folds import make_folds
from emotionnas.metrics import unweighted_accuracy
from emotionnas.models.build import Dims
from emotionnas.rundir import RunDir
from emotionnas.space.pipeline import baselines, layer_windows
from emotionnas.training import selection as sel
from emotionnas.training.cell_search import layer_probe, stage_seed
from emotionnas.training.crossval import Run, plan_searches
from emotionnas.training.executor import make_executor
from emotionnas.training.tasks import DataRef, TrainTask, run_task


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("root")
    p.add_argument("--cache", default="cache")
    p.add_argument("--protocol", default="loso")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--groups", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variant", action="append", required=True, help="name:key=value,... (TrainConfig fields)")
    p.add_argument("--models", default="GRU,LSTM,linear probe", help="baseline names to train")
    a = p.parse_args(argv)
    cfg = RunConfig(corpus=a.corpus, root=a.root, protocol=a.protocol, k=a.k)
    cfg.features.cache_dir = a.cache
    data = DataRef.from_config(cfg)
    fs = data.load(fresh=True)
    folds = make_folds(fs.table, cfg.protocol, n_val=cfg.n_val, k=cfg.k, seed=cfg.seed)
    r = Run(cfg, RunDir("/tmp/selection-study"), False, print)
    r.fs, r.folds = fs, folds
    r.data = data
    r.dims = Dims(fs.n_classes, fs.deep_dim, fs.deep_layers, cfg.cnn.C, cfg.cnn.layers)
    plans = plan_searches(folds, cfg, sorted(set(fs.speakers)))[: a.groups]
    ex = make_executor("local", a.workers)
    rows = []
    for spec in a.variant:
        name, _, kv = spec.partition(":")
        over = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in kv.split(",") if x)}
        tcfg = TrainConfig(**{**cfg.train.to_dict(), **over}).to_dict()
        t0 = time.perf_counter()
        jobs, meta = [], []
        for sf, _members in plans:
            idx = np.sort(np.flatnonzero(np.isin(fs.speakers, list(sf.train) + list(sf.val))))
            inner = sel.inner_folds(fs.speakers[idx], cfg.selection.inner_folds,
                                    stage_seed(cfg.seed, "inner", sf.name), fs.labels[idx])
            probe = layer_probe(fs, idx, RunDir(f"/tmp/selection-study/{a.corpus}").layer_probe(sf.name), 0, print)
            cands = baselines(layer_windows(probe["scores"], cfg.space.layer_widths, 1)[0])
            for bname in a.models.split(","):
                c = cands[bname]
                for k, pos in enumerate(inner):
                    val = idx[pos]
                    task = TrainTask("evaluate", r.data, c.to_dict(), tuple(np.setdiff1d(idx, val).tolist()),
                                     tuple(val.tolist()), stage_seed(cfg.seed, "inner", sf.name, c.key, k), tcfg, r.dims)
                    jobs.append(ex.submit(run_task, task))
                    meta.append((sf.name, bname, k, idx, pos))
        res = [j.result() for j in jobs]
        by = {}
        for (gname, bname, k, idx, pos), out in zip(meta, res):
            by.setdefault((gname, bname), {})[k] = (out["val_probs"], idx, pos)
        uas = []
        for (gname, bname), d in sorted(by.items()):
            ks = sorted(d)
            probs = [d[k][0] for k in ks]
            idx = d[ks[0]][1]
            ys = [fs.labels[idx[d[k][2]]] for k in ks]
            e, _ = sel.choose_epoch(probs, ys, fs.n_classes, cfg.selection.smooth_epochs)
            oof = sel.oof_probs(probs, [d[k][2] for k in ks], len(idx), e)
            ua = unweighted_accuracy(fs.labels[idx], oof.argmax(1), fs.n_classes)
            uas.append(ua)
            rows.append((name, gname, bname, e, ua))
        print(f"{name}: mean inner-CV UA {np.mean(uas):.2f} over {len(uas)} (group, model) pairs "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    ex.shutdown()
    for row in rows:
        print("%-8s %-22s %-14s epoch %2d  UA %.2f" % row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
