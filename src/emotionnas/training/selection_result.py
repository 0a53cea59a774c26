"""What a selection group's selection decided, as one frozen value.

Refit (training/refit.py), the final model (training/final.py), results.json
(training/summary.py), the report and the benchmarks read this and nothing else of a group's
selection; `to_dict()` is `searches/<group>/selection.json`, whose per-candidate rows are
strategy-neutral (scores at a budget of b inner folds; a strategy's own fields in `strategy`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emotionnas.space.combiner import Combiner
from emotionnas.space.pipeline import Candidate


@dataclass(frozen=True)
class Member:
    """One member of the ensemble: the candidate and the epoch its inner CV chose."""
    key: str
    name: str
    candidate: Candidate
    epoch: int

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "epoch": self.epoch}


@dataclass(frozen=True)
class BaselineRef:
    """A hand-designed baseline as the run refits it: its epoch from inner CV when it was scored
    on every inner fold, its whole schedule otherwise (`fixed_schedule`)."""
    name: str
    key: str
    candidate: Candidate
    epoch: int | None
    fixed_schedule: bool = False

    def to_dict(self) -> dict:
        return {"key": self.key, "epoch": self.epoch, **({"fixed_schedule": True} if self.fixed_schedule else {})}


@dataclass(frozen=True)
class SelectionResult:
    group: str
    strategy: str
    ensemble_builder: str
    members: tuple[Member, ...]
    combiner: Combiner                      # fitted on the members' out-of-fold probabilities
    combiner_record: dict                   # mode, the inner UAs it chose by, choice
    ranking: tuple[str, ...]                # the finalists, best out-of-fold inner UA first
    ensemble_scores: tuple[float, ...]      # what the ensemble builder chose by
    inner_ua: float                         # the ensemble's out-of-fold inner-CV UA, as its combiner combines
    rows: tuple[dict, ...]                  # one per candidate of the pool (selection.json "candidates")
    baselines: tuple[BaselineRef, ...]     # the baselines this run compares with (none unless asked)
    first_partition: tuple[np.ndarray, ...] = field(repr=False)  # inner folds covering each search speaker once
    about: dict = field(default_factory=dict)  # speakers, excluded, inner folds, probe, prior, partitions, cells

    @property
    def layer_scores(self):
        return (self.about.get("layer_probe") or {}).get("scores")

    @property
    def cells(self) -> dict:
        """The group's searched cells: {"genotype": DARTS cell or None, "recipe": recurrent cell or None}."""
        return self.about.get("cells") or {"genotype": None, "recipe": None}

    def baseline(self, name: str) -> BaselineRef:
        return next(b for b in self.baselines if b.name == name)

    def candidate(self, key: str) -> Candidate:
        """The candidate of a member or a baseline."""
        for m in (*self.members, *self.baselines):
            if m.key == key:
                return m.candidate
        raise KeyError(key)

    def to_dict(self) -> dict:
        a = self.about
        return {"group": self.group, "speakers": a["speakers"], "excluded": a["excluded"],
                "inner_folds": a["inner_folds"], "layer_probe": a["layer_probe"],
                "strategy": self.strategy, "ensemble_builder": self.ensemble_builder,
                "candidates": list(self.rows), "ranking": list(self.ranking),
                **({"prior": a["prior"]} if a.get("prior") else {}),
                **({"partitions": a["partitions"]} if a.get("partitions", 1) > 1 else {}),
                "ensemble_uas": [round(u, 3) for u in self.ensemble_scores], "ensemble_k": len(self.members),
                "ensemble_inner_ua": self.inner_ua,
                "combiner": {**self.combiner_record, "fitted": self.combiner.to_dict()},
                "members": [m.to_dict() for m in self.members],
                "baselines": {b.name: b.to_dict() for b in self.baselines}}
