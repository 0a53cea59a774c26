"""Does a second speaker partition at the last rung choose better models? (issue 18 item 4)

Judged by inner cross-validation only, on the final model's selection group (every speaker is a
search speaker; no test speaker exists): the group's survivors are scored on three partitions of
the speakers into inner folds (`selection.partitions=3`). For each partition J in turn as the
judge, the ensemble is chosen as the run would choose it (each candidate's epoch, ranking and the
ensemble size k on out-of-fold predictions) from one other partition, or from the other two
(the mean of their out-of-fold probabilities — what `selection.partitions=2` does), and that
choice is scored on J's out-of-fold predictions, which neither choice read. A third arm takes the
top `selection.max_ensemble` candidates of one partition without choosing k (is choosing k on
out-of-fold predictions better than not choosing it?). Also reported: how
often two partitions order a pair of candidates the same way (the split-half reliability of the
inner-CV ranking).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/partition_study.py emodb ../shared/data/emodb \
        --out /work/study/emodb-partitions3 --cache /work/cache [--protocol kfold --k 5]
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from emotionnas.config import RunConfig, apply_overrides
from emotionnas.metrics import unweighted_accuracy
from emotionnas.training import selection as sel
from emotionnas.training.final import final_group
from emotionnas.training.run import Run

PARTITIONS = 3


class Partitions:
    """The group's records, read per partition."""

    def __init__(self, run: Run, g):
        self.run, self.g = run, g
        self.k = len(g.inner) // PARTITIONS
        self.y = run.fs.labels[g.idx]
        self.n_classes = run.fs.n_classes
        self.keys = [c["key"] for c in g.result.rows if "inner_ua" in c]

    def folds(self, parts) -> list[int]:
        return [p * self.k + j for p in parts for j in range(self.k)]

    def oof(self, key: str, parts, epoch: int) -> np.ndarray:
        folds = self.folds(parts)
        return sel.oof_probs([self.run.evaluator.records[self.g.name, key, f] for f in folds],
                             [self.g.inner[f] for f in folds],
                             len(self.g.idx), epoch, len(parts))

    def ua(self, probs) -> float:
        return unweighted_accuracy(self.y, probs.argmax(1), self.n_classes)

    def choose(self, parts, fixed_k: int | None = None) -> list[tuple[str, int]]:
        """The ensemble (key, epoch) the run would pick from `parts`' records alone (`fixed_k`: the
        top fixed_k by out-of-fold UA, k not chosen)."""
        rows = []
        for key in self.keys:
            epoch = self.run.evaluator.score(self.g, key, self.folds(parts)).epoch
            probs = self.oof(key, parts, epoch)
            rows.append((-self.ua(probs), key, epoch, probs))
        rows.sort(key=lambda r: (r[0], r[1]))
        k, _ = sel.choose_ensemble([r[3] for r in rows], self.y, self.n_classes, self.run.cfg.selection.max_ensemble)
        k = fixed_k or k
        return [(r[1], r[2]) for r in rows[:k]]

    def judge(self, members, part: int) -> float:
        return self.ua(np.mean([self.oof(key, [part], epoch) for key, epoch in members], axis=0))

    def agreement(self, a: int, b: int) -> float:
        """Share of candidate pairs that partitions a and b order the same way (each at its own epoch)."""
        score = {p: {key: self.ua(self.oof(key, [p], self.run.evaluator.score(self.g, key, self.folds([p])).epoch))
                     for key in self.keys} for p in (a, b)}
        same = total = 0
        for x, z in itertools.combinations(self.keys, 2):
            da, db = score[a][x] - score[a][z], score[b][x] - score[b][z]
            if abs(da) > 1e-9 and abs(db) > 1e-9:
                total += 1
                same += (da > 0) == (db > 0)
        return same / total if total else float("nan")


def study(cfg: RunConfig, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    with Run.start(cfg, out_dir, progress=False) as run:
        g = final_group(run)  # the final model's selection: every speaker, no test speaker
        p = Partitions(run, g)
        rows = []
        for judge in range(PARTITIONS):
            a, b = [q for q in range(PARTITIONS) if q != judge]
            one = [p.judge(p.choose([q]), judge) for q in (a, b)]
            two = p.judge(p.choose([a, b]), judge)
            fixed = [p.judge(p.choose([q], cfg.selection.max_ensemble), judge) for q in (a, b)]
            rows.append({"judge": judge, "one_partition": [round(u, 2) for u in one], "two_partitions": round(two, 2),
                         "delta": round(two - float(np.mean(one)), 2), "fixed_k": [round(u, 2) for u in fixed],
                         "delta_fixed_k": round(float(np.mean(fixed) - np.mean(one)), 2)})
        out = {"corpus": cfg.corpus, "candidates_scored": len(p.keys), "inner_folds": p.k, "rows": rows}
        for name in ("delta", "delta_fixed_k"):  # mean and standard error over the judges
            d = [r[name] for r in rows]
            out[f"mean_{name}"], out[f"{name}_se"] = round(float(np.mean(d)), 2), round(float(np.std(d, ddof=1) / np.sqrt(len(d))), 2)
        return {**out,
                "pair_agreement": {f"{a}-{b}": round(p.agreement(a, b), 3)
                                   for a, b in itertools.combinations(range(PARTITIONS), 2)},
                "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("root")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--protocol", default="loso")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    cfg = apply_overrides(RunConfig(corpus=args.corpus, root=args.root, protocol=args.protocol, k=args.k,
                                    workers=args.workers), [f"selection.partitions={PARTITIONS}", *args.set])
    cfg.features.cache_dir = args.cache
    print(json.dumps(study(cfg, args.out)))


if __name__ == "__main__":
    main()
