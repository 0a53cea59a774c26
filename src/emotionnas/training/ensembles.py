"""Ensemble builders: which of the finalists a selection group's ensemble holds.

The third piece of selection, beside the strategy (what to score) and the evaluator (how): a
builder gets the finalists ranked by their out-of-fold inner-CV UA and their out-of-fold
probabilities, and returns the members (a key may repeat: a repeated member counts twice in
the average, as greedy selection with replacement makes it) with the scores it chose by.

    choice = builder.build(ranking, oof, labels, n_classes)   # -> EnsembleChoice

How the members' probabilities are then combined (averaged or stacked) is the combiner's
business (training/selection.py `choose_combiner`), not the builder's.

Add a builder: one class with `name` and `build`, and one `register(...)` line;
`selection.ensemble: NAME` then chooses it. tests/test_strategies.py registers a toy one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionnas.errors import ConfigError
from emotionnas.training.selection import choose_ensemble


@dataclass(frozen=True)
class EnsembleChoice:
    members: tuple[str, ...]        # candidate keys, best first; a key may repeat
    scores: tuple[float, ...]       # the out-of-fold UAs the builder chose by (for the report)


class TopK:
    """The top k of the ranking, k = 1..max_ensemble (x seeds) chosen by the out-of-fold UA of
    their average (the smallest k with the best UA)."""
    name = "top_k"

    def __init__(self, cfg):
        self.max_k = cfg.max_ensemble * cfg.seeds

    def build(self, ranking: list[str], oof: dict[str, np.ndarray], labels: np.ndarray,
              n_classes: int) -> EnsembleChoice:
        k, uas = choose_ensemble([oof[key] for key in ranking], labels, n_classes, self.max_k)
        return EnsembleChoice(tuple(ranking[:k]), tuple(uas))


ENSEMBLE_BUILDERS: dict[str, type] = {}


def register(cls: type) -> type:
    ENSEMBLE_BUILDERS[cls.name] = cls
    return cls


register(TopK)


def make_builder(name: str, cfg):
    if name not in ENSEMBLE_BUILDERS:
        raise ConfigError(f"selection.ensemble: unknown ensemble builder {name!r}; known: {sorted(ENSEMBLE_BUILDERS)}")
    return ENSEMBLE_BUILDERS[name](cfg)
