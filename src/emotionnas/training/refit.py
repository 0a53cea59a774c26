"""Refitting: a chosen candidate trained on all of some speakers for its chosen epochs.

One step serves both users: stage D of a run (`refit_folds`: per fold, the group's ensemble and
with `baselines` each baseline, refit on the fold's training speakers and tested once on its test
speakers) and the final model (training/final.py: the final group's members refit on every
speaker). Each result is written as it arrives — the weights (`.pt`, ensemble members only), then
the JSON record (its presence means complete) holding the identity it was made under and the
weights' sha256 — so a killed run resumes here. The one rule for reusing a record
(training/records.py `cached_json`): another identity is refused, naming what differs; an
unreadable record or mismatching weights are recomputed and the log says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionnas.space.pipeline import Candidate
from emotionnas.training.records import cached_json
from emotionnas.training.run_helpers import speaker_indices, stage_seed, train_indices
from emotionnas.training.tasks import run_task
from emotionnas.utils.io import (
    atomic_torch_save,
    atomic_write_json,
    load_checkpoint,
)


@dataclass(frozen=True)
class Refit:
    """One refit to make or reuse."""
    tag: object               # what the caller knows it by
    candidate: Candidate
    group: object             # the selection group (its cell search's genotype/recipe)
    train: np.ndarray         # utterances trained on
    predict: np.ndarray       # utterances predicted afterwards (the fold's test speakers)
    seed: int
    epoch: int
    identity: dict            # what the record must have been made under to be reused
    record: Path
    weights: Path | None      # None: no weights kept (a baseline only needs its test probabilities)


def refit_step(run, refits: list[Refit], desc: str, test_probs: bool) -> dict:
    """{tag: record} for every refit: reused when its record (and weights) are sound, else trained
    as parallel tasks. `test_probs`: keep the predictions of `predict` in the record."""
    jobs, done = [], {}
    for r in refits:
        rec = cached_json(r.record, r.identity, run.log, within="identity")  # the one cached-result rule
        if rec is not None and (r.weights is None or load_checkpoint(r.weights, run.log, rec.get("weights_sha256"),
                                                                      verify=True) is not None):
            done[r.tag] = rec
            continue
        task = run.task("refit", r.candidate, r.group, r.train, r.predict, r.seed, r.epoch)
        jobs.append((r, run_task, task))
    for r, res in run.map(jobs, desc):
        sha = atomic_torch_save(r.weights, res["state"]) if r.weights is not None else None
        rec = {"identity": r.identity,
               **({"test_probs": np.round(res["test_probs"], 6).tolist()} if test_probs else {}),
               "seconds": res["seconds"], "spec_stats": res["spec_stats"], "n_params": res["n_params"],
               **({"weights_sha256": sha} if sha else {})}
        atomic_write_json(r.record, rec)  # last: its presence means complete
        done[r.tag] = rec
    return done


def refit_folds(run, groups) -> dict:
    """Stage D: {(fold index, candidate key): record} for every member (and baseline) of every fold."""
    refits = []
    for g in groups:
        wanted = {m.key: (m.epoch, True) for m in g.result.members}
        for b in g.result.baselines:  # the baselines the selection was asked to compare with
            wanted.setdefault(b.key, (b.epoch, False))
        for i in g.members:
            fold = run.folds[i]
            train = train_indices(run.fs.speakers, fold)
            test = speaker_indices(run.fs.speakers, fold.test)
            for key, (epoch, keep_weights) in wanted.items():
                seed = stage_seed(run.cfg.seed, "refit", fold.name, key)
                identity = {"fold": fold.to_dict(), "key": key, "epoch": epoch, "seed": seed, "run": run.identity}
                refits.append(Refit((i, key), g.result.candidate(key), g, train, test, seed, epoch, identity,
                                    run.dir.refit_json(i, key), run.dir.refit_weights(i, key) if keep_weights else None))
    return refit_step(run, refits, "refit and test", test_probs=True)
