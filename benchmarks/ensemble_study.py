"""Which ensemble builder, judged by nested inner cross-validation (no test speaker).

The final model's selection runs as `emotionnas run` runs it (training/final.py: one group whose
search speakers are every speaker of the corpus; layer probe, pool, cell searches, inner CV with
the default strategy). Then, for each inner fold j of the first speaker partition, every builder
(training/ensembles.py) ranks the finalists and builds its ensemble from the out-of-fold rows of
the *other* inner folds only, and is scored (UA) on fold j's rows: speakers it never chose on.
The epochs were chosen on every inner fold (the records hold one curve per fold), a leak every
builder shares. Reported per builder: the mean held-out UA with its SE over the folds, and the
paired difference to the first builder.

    .venv/bin/python benchmarks/ensemble_study.py emodb ../shared/data/emodb --out /work/study
    .venv/bin/python benchmarks/ensemble_study.py manifest ../shared/data/turev/manifest.csv \
        --name turev --out /work/study
    .venv/bin/python benchmarks/ensemble_study.py urdu ../shared/data/urdu --protocol kfold --out /work/study

The decision rule is in docs/defaults.md (`selection.ensemble`), written before the first run.
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
from emotionnas.space.combiner import Combiner
from emotionnas.training.ensembles import ENSEMBLE_BUILDERS
from emotionnas.training.final import final_group
from emotionnas.training.run import Run
from emotionnas.training.run_helpers import stage_seed

REPO = Path(__file__).resolve().parents[1]


def held_out_uas(builder, finalists, oof, y, speakers, inner, n_classes, seed) -> list[float]:
    """UA on each inner fold of an ensemble built on the other folds' rows."""
    out = []
    for j, held in enumerate(inner):
        rest = np.setdiff1d(np.arange(len(y)), held)
        ua_rest = {k: unweighted_accuracy(y[rest], oof[k][rest].argmax(1), n_classes) for k in finalists}
        ranking = sorted(finalists, key=lambda k: (-ua_rest[k], k))
        choice = builder.build(ranking, {k: oof[k][rest] for k in ranking}, y[rest], n_classes, speakers[rest],
                               seed + j)
        weights = choice.weights or (1.0,) * len(choice.members)
        combined = Combiner.weighted(list(weights), len(weights)).apply([oof[k][held] for k in choice.members])
        out.append(unweighted_accuracy(y[held], combined.argmax(1), n_classes))
    return out


def study(cfg: RunConfig, out_dir: Path, builders: list[str]) -> dict:
    t0 = time.perf_counter()
    with Run.start(cfg, out_dir, progress=False) as run:
        g = final_group(run)  # the final model's selection: every speaker, no test speaker
        y, speakers = run.fs.labels[g.idx], run.fs.speakers[g.idx]
        finalists = list(g.result.ranking)
        oof = {k: run.evaluator.out_of_fold(g, k).probs for k in finalists}
        seed = stage_seed(cfg.seed, "ensemble-study", g.name)
        rows = {name: held_out_uas(ENSEMBLE_BUILDERS[name](cfg.selection), finalists, oof, y, speakers,
                                   list(g.result.first_partition), run.fs.n_classes, seed) for name in builders}
        chosen = {name: ENSEMBLE_BUILDERS[name](cfg.selection).build(finalists, oof, y, run.fs.n_classes, speakers,
                                                                     seed) for name in builders}
        name_of = {r["key"]: r["name"] for r in g.result.rows}
    return {"finalists": [name_of[k] for k in finalists], "held_out": rows,
            "on_all_folds": {n: {"members": [name_of[k] for k in c.members], "weights": list(c.weights)}
                             for n, c in chosen.items()},
            "wall_s": round(time.perf_counter() - t0, 1)}


def table(corpus: str, res: dict) -> str:
    names = list(res["held_out"])
    ref = np.asarray(res["held_out"][names[0]])
    lines = [f"| corpus | builder | held-out UA per inner fold | mean ± SE | Δ vs {names[0]} (paired) | ensemble on all folds |",
             "|---|---|---|---:|---:|---|"]
    for n in names:
        u = np.asarray(res["held_out"][n])
        d = u - ref
        delta = "" if n == names[0] else f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0:.2f}"
        ens = res["on_all_folds"][n]
        members = ", ".join(f"{m}" + (f" ({w:.2f})" if ens["weights"] else "") for m, w in
                            zip(ens["members"], ens["weights"] or [0] * len(ens["members"])))
        lines.append(f"| {corpus} | {n} | {', '.join(f'{x:.1f}' for x in u)} | {u.mean():.2f} ± "
                     f"{u.std(ddof=1) / np.sqrt(len(u)) if len(u) > 1 else 0:.2f} | {delta} | {members} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("root")
    p.add_argument("--name", help="the corpus's name in the table (default: the reader's)")
    p.add_argument("--out", required=True)
    p.add_argument("--protocol", default="loso")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--builders", default="top_k,caruana")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config variant (its run folder is named after the settings)")
    p.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    a = p.parse_args(argv)
    name = a.name or a.corpus
    cfg = apply_overrides(RunConfig(corpus=a.corpus, root=a.root, protocol=a.protocol, k=a.k, workers=a.workers),
                          a.set)
    cfg.features.cache_dir = str(Path(a.out) / "cache")
    variant = "".join(f"-{x.replace('=', '_')}" for x in a.set)
    res = study(cfg, Path(a.out) / f"{name}{variant}-ensemble", a.builders.split(","))
    res["settings"] = a.set
    print(json.dumps(res), flush=True)
    text = table(name, res)
    print(text)
    if a.write:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from tables import write
        write(f"Ensemble builders by nested inner CV ({name})",
              f"Command: `.venv/bin/python benchmarks/ensemble_study.py {a.corpus} {a.root} --out OUT "
              f"{' '.join('--set ' + x for x in a.set)} "
              f"--protocol {a.protocol} --k {a.k}` — the final model's selection (every speaker in one group, "
              f"defaults), {a.workers} workers, {res['wall_s']} s; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"1-min load {os.getloadavg()[0]:.1f}.\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
