"""The evaluator: trains a candidate on a group's inner folds and scores it.

One of the three pieces of selection (as NNI separates them): the *strategy*
(training/strategies.py) proposes which candidate to score on which inner folds, the
*evaluator* (here) scores it, the *ensemble builder* (training/ensembles.py) combines what was
scored. The evaluator knows nothing of how candidates are chosen.

    ev = Evaluator(run)
    ev.evaluate([(group, key, k), ...])   # train what is not cached yet, as tasks on the run's executor
    ev.score(group, key, folds)           # Score at a budget: chosen epoch + smoothed UA on those folds
    ev.out_of_fold(group, key)            # OutOfFold: epoch, smoothed UA, probabilities over every inner fold

Every trained (candidate, inner fold) is a record on disk (training/records.py: cached,
resumable, refused when made under another run identity) and in memory here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionnas.metrics import scores
from emotionnas.training import selection as sel
from emotionnas.training.records import load_inner_record, save_inner_record
from emotionnas.training.run_helpers import speaker_indices, stage_seed
from emotionnas.training.tasks import run_task


@dataclass(frozen=True)
class Score:
    """A candidate scored on some inner folds (its budget): the epoch chosen on those folds and
    the smoothed inner UA there."""
    epoch: int
    ua: float


@dataclass(frozen=True)
class OutOfFold:
    """A candidate scored on every inner fold: the chosen epoch, the smoothed curve's UA there,
    and its out-of-fold probabilities (n, C) over the group's search utterances at that epoch."""
    epoch: int
    smoothed_ua: float
    probs: np.ndarray


class Evaluator:
    """Scores candidates of a run's selection groups on their inner folds."""

    def __init__(self, run):
        self.run = run
        self.records: dict[tuple[str, str, int], np.ndarray] = {}  # (group, key, k) -> val probs (E, n, C)
        self.outside: dict[tuple[str, str, int], np.ndarray] = {}  # (group, key, k) -> probs (E, n_out, C)
        self._outside_rows: dict[str, np.ndarray] = {}             # group -> its held-out utterances

    def has(self, g, key: str, k: int) -> bool:
        return (g.name, key, k) in self.records

    def outside_rows(self, g) -> np.ndarray:
        """The utterances of the group's held-out speakers (its folds' test speakers; none for the
        final model's group). Every inner-fold model predicts them after every epoch, recorded
        apart: the selection never reads them; they are the bagged fold models' test predictions."""
        if g.name not in self._outside_rows:  # asked per record, per save and per bagged fold: found once
            self._outside_rows[g.name] = (speaker_indices(self.run.fs.speakers, g.fold.test) if g.fold.test
                                          else np.zeros(0, np.int64))
        return self._outside_rows[g.name]

    def evaluate(self, wanted) -> None:
        """Make sure a record exists for every (group, candidate key, inner fold) in `wanted`:
        read from disk when cached, else trained (all missing ones as parallel tasks)."""
        run, jobs, groups = self.run, [], {}
        for g, key, k in wanted:
            groups[g.name] = g
            if self.has(g, key, k):
                continue
            val, outside = g.idx[g.inner[k]], self.outside_rows(g)
            cached = load_inner_record(run.dir.selection_record(g.name, key, k), val, run.identity, run.log, outside)
            if cached is not None:
                self.records[g.name, key, k], self.outside[g.name, key, k] = cached
                continue
            seed = stage_seed(run.cfg.seed, "inner", g.name, key, k)
            task = run.task("evaluate", g.pool[key], g, np.setdiff1d(g.idx, val), val, seed,
                            outside=tuple(int(i) for i in outside))
            jobs.append(((g.name, key, k), run_task, task))
        for (name, key, k), res in run.map(jobs, "inner cross-validation"):
            g = groups[name]
            save_inner_record(run.dir.selection_record(name, key, k), res, g.idx[g.inner[k]], run.identity,
                              self.outside_rows(g))
            self.records[name, key, k], self.outside[name, key, k] = res["val_probs"], res.get("outside_probs")

    def bagged(self, g, key: str, epoch: int, rows: np.ndarray) -> np.ndarray:
        """The bag of the candidate's inner-fold models (every inner fold, at `epoch`): the mean of
        their probabilities for the utterances `rows` (indices into the corpus, all held out by `g`)."""
        outside = self.outside_rows(g)
        where = np.searchsorted(outside, rows)
        if not np.array_equal(outside[np.minimum(where, len(outside) - 1)], rows):
            raise ValueError(f"{g.name}: bagged predictions asked for utterances it did not hold out")
        return np.mean([self.outside[g.name, key, k][epoch - 1][where] for k in range(len(g.inner))], axis=0)

    def score(self, g, key: str, folds) -> Score:
        """The candidate at a budget of inner `folds`: the argmax epoch of its smoothed curve there."""
        labels = self.run.fs.labels
        probs = [self.records[g.name, key, k] for k in folds]
        ys = [labels[g.idx[g.inner[k]]] for k in folds]
        return Score(*sel.choose_epoch(probs, ys, self.run.fs.n_classes, self.run.cfg.selection.smooth_epochs))

    def out_of_fold(self, g, key: str) -> OutOfFold:
        """The candidate on every inner fold (every partition): chosen epoch, smoothed UA, and the
        out-of-fold probabilities at that epoch."""
        every = range(len(g.inner))
        s = self.score(g, key, every)
        probs = sel.oof_probs([self.records[g.name, key, k] for k in every], g.inner, len(g.idx), s.epoch,
                              g.partitions)
        return OutOfFold(s.epoch, s.ua, probs)

    def inner_ua(self, g, key: str) -> float:
        """Out-of-fold inner-CV UA of candidate `key` (rounded as its selection row records it)."""
        probs = self.out_of_fold(g, key).probs
        return round(scores(self.run.fs.labels[g.idx], probs.argmax(1), self.run.fs.n_classes)["ua"], 3)
