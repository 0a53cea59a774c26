"""Decide a default with the full pipeline, by inner cross-validation only.

For each variant of the run config (`--variant NAME:key=value;key=value`, keys as `--set`
takes them), the whole selection of the final model runs as `emotionnas run` would run it
(training/final.py: one selection group whose search speakers are every speaker — layer probe,
candidate pool, cell searches, inner CV with successive halving, ensemble). No speaker is held
out of that group and no test score exists, so nothing here reads a test speaker. Reported per
variant: the ensemble's and the best single candidate's out-of-fold inner-CV UA with the
standard error over inner folds, and the wall time of `Run.start` (feature extraction when the
variant's cache is cold).

    .venv/bin/python benchmarks/default_study.py emodb ../shared/data/emodb --out /work/study \
        --variant float32: --variant "int8:features.encoder=whisper-base@int8" [--protocol kfold --k 5]

Each variant gets its own run folder and feature cache under OUT (a second call resumes).
The first variant is the reference of the Δ column.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from emotionnas.config import RunConfig, apply_overrides
from emotionnas.metrics import unweighted_accuracy
from emotionnas.training import selection as sel
from emotionnas.training.final import final_group
from emotionnas.training.run import Run

REPO = Path(__file__).resolve().parents[1]


def fold_stats(y, probs, inner, n_classes) -> tuple[float, float, list[float]]:
    """(out-of-fold UA, standard error of the inner-fold UAs, the inner-fold UAs)."""
    uas = [unweighted_accuracy(y[p], probs[p].argmax(1), n_classes) for p in inner]
    return unweighted_accuracy(y, probs.argmax(1), n_classes), float(np.std(uas) / np.sqrt(len(uas))), uas


def study(cfg: RunConfig, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    with Run.start(cfg, out_dir, progress=False) as run:
        features_s = time.perf_counter() - t0
        fs = run.fs
        g = final_group(run)  # the final model's selection: every speaker, no test speaker
        y = fs.labels[g.idx]
        result = g.result
        members = result.members
        member_probs = np.stack([run.evaluator.out_of_fold(g, m.key).probs for m in members])
        combiner = result.combiner.kind
        ens = (sel.cross_fit_stack(member_probs, y, result.first_partition, fs.n_classes) if combiner == "stack"
               else result.combiner.apply(member_probs))  # a stacker is scored cross-fitted, as selection scores it
        best = run.evaluator.out_of_fold(g, result.ranking[0]).probs
        e_ua, e_se, e_folds = fold_stats(y, ens, g.inner, fs.n_classes)
        b_ua, b_se, _ = fold_stats(y, best, g.inner, fs.n_classes)
        return {"start_s": round(features_s, 1),
                "probe_scores": [round(v, 1) for v in result.layer_scores], "ensemble": [m.name for m in members], "combiner": combiner,
                "ensemble_ua": round(e_ua, 2), "ensemble_se": round(e_se, 2),
                "ensemble_fold_uas": [round(u, 2) for u in e_folds],
                "best": members[0].name, "best_ua": round(b_ua, 2), "best_se": round(b_se, 2),
                "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("root")
    p.add_argument("--out", required=True, help="one run folder (and feature cache) per variant in here")
    p.add_argument("--variant", action="append", required=True, help="NAME:key=value;key=value (as --set)")
    p.add_argument("--shared-cache", help="one feature cache for every variant (when features do not change)")
    p.add_argument("--protocol", default="loso")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    rows = []
    for spec in a.variant:
        name, _, sets = spec.partition(":")
        cfg = apply_overrides(RunConfig(corpus=a.corpus, root=a.root, protocol=a.protocol, k=a.k, workers=a.workers),
                              [x for x in sets.split(";") if x])
        cfg.features.cache_dir = a.shared_cache or str(Path(a.out) / f"cache-{name}")
        rows.append({"variant": name, "sets": sets, **study(cfg, Path(a.out) / f"{a.corpus}-{name}")})
        print(json.dumps(rows[-1]), flush=True)
    ref = rows[0]
    lines = ["| variant | settings | Run.start (s) | probe UA per layer | ensemble (inner CV) | inner-CV UA ± SE | "
             "best single ± SE | Δ ensemble vs " + ref["variant"] + " |", "|---|---|---:|---|---|---:|---:|---:|"]
    for r in rows:
        delta = ""
        if r is not ref:
            d = np.subtract(r["ensemble_fold_uas"], ref["ensemble_fold_uas"])  # same inner folds: paired
            delta = f"{r['ensemble_ua'] - ref['ensemble_ua']:+.2f} (per fold {d.mean():+.2f} ± {d.std() / np.sqrt(len(d)):.2f})"
        lines.append(f"| {r['variant']} | `{r['sets'] or 'defaults'}` | {r['start_s']} | "
                     f"{', '.join(f'{v:.0f}' for v in r['probe_scores'])} | {'; '.join(r['ensemble'])}{' (stacked)' if r.get('combiner') == 'stack' else ''} | "
                     f"{r['ensemble_ua']:.2f} ± {r['ensemble_se']:.2f} | {r['best_ua']:.2f} ± {r['best_se']:.2f} | "
                     f"{delta} |")
    table = "\n".join(lines)
    print(table)
    if a.write:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from tables import write
        variants = " ".join(f"--variant '{v}'" for v in a.variant)
        write(f"Defaults by inner CV, full pipeline ({a.corpus}: {', '.join(r['variant'] for r in rows)})",
              f"Command: `.venv/bin/python benchmarks/default_study.py {a.corpus} {a.root} --out OUT {variants}"
              f" --protocol {a.protocol} --k {a.k}` — the final model's selection (every speaker in one group, "
              f"inner CV, no test speaker), {a.workers} workers; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"1-min load {os.getloadavg()[0]:.1f}.\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
