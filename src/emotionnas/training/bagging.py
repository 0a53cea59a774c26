"""Bagged fold models: what the inner-fold models themselves score on the test speakers, no refit.

AutoGluon's default: the k models trained in k-fold bagging predict new data as their average;
nothing is refit on all the data. Here every inner-fold model of a selection group predicts the
group's held-out speakers after every epoch (training/evaluator.py, recorded apart from the
validation rows; the selection never reads them). For fold i of group g, member m's bagged
prediction is the mean over g's inner-fold models of m at m's chosen epoch; the group's combiner
combines the members as it combines the refits. results.json reports it beside the refit
ensemble (fold-paired), with the baselines bagged the same way, so the two can be compared on
the same folds (issue 29 item 4): the refit trains on every training speaker of the fold, the bag
on the search speakers only (k-1 of k inner folds each) and needs no training of its own. Its cost
is the inner-fold models' forward pass over the held-out utterances after every epoch (about a
fifth of the corpus with the default 5 selection groups; a forward pass is a small part of an
epoch's training). A run resumed from records of an earlier release has no held-out predictions:
its results.json then has no `bagged` block, and the log says so.
"""
from __future__ import annotations

import numpy as np

from emotionnas.training.run_helpers import speaker_indices


def bagged_probs(run, groups) -> dict[tuple[int, str], np.ndarray]:
    """{(fold index, candidate key): bagged test probabilities} for every member and every baseline
    scored on every inner fold (a baseline outside the pool has no fold models: left out)."""
    ev, out, missing = run.evaluator, {}, 0
    for g in groups:
        wanted = [(m.key, m.epoch) for m in g.result.members]
        wanted += [(b.key, b.epoch) for b in g.result.baselines if not b.fixed_schedule]
        for i in g.members:
            test = speaker_indices(run.fs.speakers, run.folds[i].test)
            for key, epoch in wanted:
                if all(ev.outside.get((g.name, key, k)) is not None for k in range(len(g.inner))):
                    out[i, key] = ev.bagged(g, key, epoch, test)
                else:
                    missing += 1
    if missing:
        run.log(f"note: {missing} (fold, model) pair(s) have inner-fold records without held-out predictions "
                "(made by an earlier release): no bagged score for them")
    return out


__all__ = ["bagged_probs"]
