"""Selection strategies: which candidate to score on which inner folds, and when to stop.

A strategy sees one selection group's `History` (its pool, how many inner folds it has, the
scores asked for so far) and answers two questions, as NNI's strategies do:

    trials = strategy.propose(history)   # [Trial(candidate, folds)]; [] = done
    strategy.finalists(history)          # keys scored on every inner fold that may join the ensemble

It never trains anything itself: the evaluator (training/evaluator.py) scores what it proposes,
and the ensemble builder (training/ensembles.py) combines the finalists. Its own per-candidate
fields go into a sub-block of the candidate's selection row (`notes`), so the saved schema stays
strategy-neutral ("score at a budget of b folds").

Add a strategy: one class here (or in its own module) with `name`, `propose`, `finalists`,
`notes`, and one `register(...)` line; `selection.strategy: NAME` then chooses it.
tests/test_strategies.py registers a toy strategy inside the test and runs a real selection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from emotionnas.space.pipeline import Candidate
from emotionnas.training.run_helpers import stage_seed
from emotionnas.training.selection import survivors
from emotionnas.utils.registry import Registry


@dataclass(frozen=True)
class Trial:
    """Score `candidate` on these inner folds (its budget: len(folds))."""
    candidate: Candidate
    folds: tuple[int, ...]


@dataclass
class History:
    """What a strategy knows of one group: the pool, the number of inner folds, and the scores
    it asked for (`score`/`inner_ua` read the evaluator's records; budget scores are logged for the
    saved rows). `state` is the strategy's own memory between calls."""
    group: object
    evaluator: object
    pool: dict                                   # key -> Candidate (a strategy may add candidates)
    n_folds: int
    budget_scores: dict = field(default_factory=dict)  # key -> {budget: smoothed UA}
    state: dict = field(default_factory=dict)

    @property
    def all_folds(self) -> tuple[int, ...]:
        return tuple(range(self.n_folds))

    def score(self, key: str, folds) -> float:
        """The candidate's smoothed UA on `folds` (they must have been proposed and scored)."""
        ua = self.evaluator.score(self.group, key, folds).ua
        self.budget_scores.setdefault(key, {})[len(folds)] = ua
        return ua

    def inner_ua(self, key: str) -> float:
        return self.evaluator.inner_ua(self.group, key)


class SuccessiveHalving:
    """Every original candidate on the first `first_rung_folds` inner folds; the best 1/eta on
    every fold; with `seeds` > 1, replicas (other seeds) of the top `max_ensemble` survivors too."""
    name = "halving"

    def __init__(self, cfg, seed: int):
        self.cfg = cfg

    def propose(self, h: History) -> list[Trial]:
        st, cfg = h.state, self.cfg
        first = tuple(range(min(cfg.first_rung_folds, h.n_folds)))
        base = [k for k, c in h.pool.items() if not c.replica]
        if "asked" not in st:
            st["asked"] = True
            return [Trial(h.pool[k], first) for k in base]
        if "keep" not in st:
            st["rung0"] = {k: h.score(k, first) for k in base}
            st["keep"] = survivors(st["rung0"], cfg.eta)
            return [Trial(h.pool[k], h.all_folds) for k in st["keep"]]
        if cfg.seeds > 1 and "replicas" not in st:
            top = sorted(st["keep"], key=lambda k: (-h.inner_ua(k), k))[: cfg.max_ensemble]
            st["replicas"] = [h.pool[k].with_replica(r) for k in top for r in range(1, cfg.seeds)]
            return [Trial(c, h.all_folds) for c in st["replicas"]]
        return []

    def finalists(self, h: History) -> list[str]:
        return list(h.state["keep"]) + [c.key for c in h.state.get("replicas", [])]

    def planned_trials(self, n: int, n_folds: int) -> int:
        """(candidate, inner fold) trials over a pool of `n`: what the run's time estimate counts."""
        cfg, first = self.cfg, min(self.cfg.first_rung_folds, n_folds)
        keep = max(1, math.ceil(n / cfg.eta)) if n else 0
        return n * first + keep * (n_folds - first) + (cfg.seeds - 1) * min(cfg.max_ensemble, keep) * n_folds

    def notes(self, key: str, h: History) -> dict:
        rung0 = h.state.get("rung0", {})
        return {"rung0_ua": round(rung0[key], 3) if key in rung0 else None,
                "survived": key in self.finalists(h)}


class RandomSearch:
    """A fixed budget: a seeded random sample of ceil(budget / eta) candidates of the pool (about
    what halving scores on every fold), each scored on every inner fold; no early cut."""
    name = "random"

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed

    def propose(self, h: History) -> list[Trial]:
        if "chosen" in h.state:
            return []
        base = [k for k, c in h.pool.items() if not c.replica]
        n = min(len(base), max(1, math.ceil(self.cfg.budget / self.cfg.eta)))
        rng = np.random.default_rng(stage_seed(self.seed, "random-search", h.group.name))
        h.state["chosen"] = [base[i] for i in sorted(rng.choice(len(base), n, replace=False))]
        return [Trial(h.pool[k], h.all_folds) for k in h.state["chosen"]]

    def finalists(self, h: History) -> list[str]:
        return list(h.state["chosen"])

    def planned_trials(self, n: int, n_folds: int) -> int:
        return min(n, max(1, math.ceil(self.cfg.budget / self.cfg.eta))) * n_folds

    def notes(self, key: str, h: History) -> dict:
        return {"sampled": key in h.state.get("chosen", [])}


STRATEGIES = Registry("selection.strategy", "strategy")
register = STRATEGIES.register
strategy_class = STRATEGIES.lookup  # ConfigError naming the known strategies

register(SuccessiveHalving)
register(RandomSearch)


def make_strategy(name: str, cfg, seed: int):
    return strategy_class(name)(cfg, seed)
