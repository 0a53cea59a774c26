"""Ensemble builders: which of the finalists a selection group's ensemble holds.

The third piece of selection, beside the strategy (what to score) and the evaluator (how): a
builder gets the finalists ranked by their out-of-fold inner-CV UA, their out-of-fold
probabilities, the labels and the speaker of every row, and returns the members with their
weights (equal for top_k; counts of greedy selection with replacement for caruana) and the
scores it chose by.

    choice = builder.build(ranking, oof, labels, n_classes, speakers, seed)   # -> EnsembleChoice

How the members' probabilities are then combined (averaged or stacked) is the combiner's
business (training/selection.py `choose_combiner`), not the builder's.

Add a builder: one class with `name` and `build`, and one `register(...)` line;
`selection.ensemble: NAME` then chooses it. tests/test_strategies.py registers a toy one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionnas.metrics import unweighted_accuracy
from emotionnas.training.selection import choose_ensemble
from emotionnas.utils.registry import Registry


@dataclass(frozen=True)
class EnsembleChoice:
    members: tuple[str, ...]        # distinct candidate keys, the heaviest first
    scores: tuple[float, ...]       # the out-of-fold UAs the builder chose by (for the report)
    weights: tuple[float, ...] = () # one per member (empty: equal weights)

    @property
    def equal(self) -> bool:
        return len(set(self.weights)) <= 1


class TopK:
    """The top k of the ranking, k = 1..max_ensemble (x seeds) chosen by the out-of-fold UA of
    their average (the smallest k with the best UA)."""
    name = "top_k"

    def __init__(self, cfg):
        self.max_k = cfg.max_ensemble * cfg.seeds

    def build(self, ranking: list[str], oof: dict[str, np.ndarray], labels: np.ndarray, n_classes: int,
              speakers: np.ndarray | None = None, seed: int = 0) -> EnsembleChoice:
        k, uas = choose_ensemble([oof[key] for key in ranking], labels, n_classes, self.max_k)
        return EnsembleChoice(tuple(ranking[:k]), tuple(uas))


def greedy_selection(probs: np.ndarray, labels: np.ndarray, n_classes: int, steps: int) -> np.ndarray:
    """Ensemble selection (Caruana et al. 2004) with replacement on (K, n, C) out-of-fold
    probabilities: start empty, add at each step the candidate whose addition gives the best UA of
    the running average (ties: the earlier candidate, i.e. the better ranked), `steps` times; keep
    the counts of the best step (the earliest among equals). Returns (K,) counts."""
    K = len(probs)
    total = np.zeros(probs.shape[1:], np.float64)
    counts, best_counts, best_ua = np.zeros(K, int), None, -1.0
    for _ in range(steps):
        trial = [unweighted_accuracy(labels, (total + probs[k]).argmax(1), n_classes) for k in range(K)]
        k = int(np.argmax(trial))  # the first best: ranking order breaks ties
        total += probs[k]
        counts[k] += 1
        if trial[k] > best_ua + 1e-9:
            best_ua, best_counts = trial[k], counts.copy()
    return best_counts


class Caruana:
    """Greedy forward selection with replacement on the finalists' out-of-fold probabilities,
    bagged: `bags` bootstrap draws of the search speakers (rows of a drawn speaker as often as it is
    drawn), a selection of `steps` steps on each, the weights (counts / steps chosen) averaged over
    the draws. Bagging keeps one lucky speaker from deciding the weights (small validation sets
    over-fit greedy selection: Caruana et al. 2006). As AutoGluon's weighted ensemble and
    auto-sklearn's ensemble selection do, on out-of-fold predictions only."""
    name = "caruana"
    STEPS = 25   # AutoGluon's default ensemble size
    BAGS = 10

    def __init__(self, cfg):
        pass

    def build(self, ranking: list[str], oof: dict[str, np.ndarray], labels: np.ndarray, n_classes: int,
              speakers: np.ndarray | None = None, seed: int = 0) -> EnsembleChoice:
        probs = np.stack([oof[key] for key in ranking]).astype(np.float64)
        speakers = np.zeros(len(labels)) if speakers is None else np.asarray(speakers)
        names = np.unique(speakers)
        rng = np.random.default_rng(seed)
        weights = np.zeros(len(ranking))
        for _ in range(self.BAGS):
            drawn = rng.choice(names, len(names), replace=True)
            rows = np.concatenate([np.flatnonzero(speakers == s) for s in drawn])
            counts = greedy_selection(probs[:, rows], labels[rows], n_classes, self.STEPS)
            weights += counts / counts.sum()
        keep = [i for i in sorted(range(len(ranking)), key=lambda i: (-weights[i], i)) if weights[i] > 0]
        w = weights[keep] / weights[keep].sum()
        ua = unweighted_accuracy(labels, np.tensordot(w, probs[keep], axes=1).argmax(1), n_classes)
        return EnsembleChoice(tuple(ranking[i] for i in keep), (ua,), tuple(round(float(x), 6) for x in w))


ENSEMBLE_BUILDERS = Registry("selection.ensemble", "ensemble builder")
register = ENSEMBLE_BUILDERS.register
builder_class = ENSEMBLE_BUILDERS.lookup  # ConfigError naming the known builders

register(TopK)
register(Caruana)


def make_builder(name: str, cfg):
    return builder_class(name)(cfg)
