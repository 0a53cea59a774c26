"""Stages B and C of a run: each selection group's inner cross-validation, by its three pieces.

    strategy  (training/strategies.py)   proposes trials (candidate, inner folds) until done
    evaluator (training/evaluator.py)    scores them (cached records, tasks on the run's executor)
    builder   (training/ensembles.py)    chooses the ensemble from the finalists' out-of-fold probabilities

then the combiner (mean or stacked, training/selection.py) and one frozen SelectionResult per
group (training/selection_result.py), written as selection.json. The groups advance together,
one round of trials at a time, so every round's training runs as one batch of parallel tasks.
"""
from __future__ import annotations

import numpy as np

from emotionnas.metrics import scores
from emotionnas.space.combiner import Combiner
from emotionnas.training import selection as sel
from emotionnas.training.ensembles import builder_class, make_builder
from emotionnas.training.run_helpers import stage_seed
from emotionnas.training.selection_result import BaselineRef, Member, SelectionResult
from emotionnas.training.strategies import History, make_strategy, strategy_class
from emotionnas.utils.io import atomic_write_json


def check_selection(cfg) -> None:
    """selection.strategy and selection.ensemble name registered pieces (before any work)."""
    strategy_class(cfg.strategy)
    builder_class(cfg.ensemble)


def select_groups(run, groups, baselines: bool) -> None:
    """Run the strategy to its end on every group, score the baselines when asked, build each
    group's ensemble and combiner: `g.result`, and searches/<group>/selection.json."""
    cfg, ev = run.cfg.selection, run.evaluator
    strategy = make_strategy(cfg.strategy, cfg, run.cfg.seed)
    histories = {g.name: History(g, ev, g.pool, len(g.inner)) for g in groups}
    while True:
        trials = [(g, strategy.propose(histories[g.name])) for g in groups]
        if not any(t for _, t in trials):
            break
        for g, ts in trials:
            g.pool.update({t.candidate.key: t.candidate for t in ts})  # a strategy may add candidates (replicas)
        ev.evaluate([(g, t.candidate.key, k) for g, ts in trials for t in ts for k in t.folds])
    extra = {g.name: [c.key for c in g.baselines.values() if c.key in g.pool] if baselines else [] for g in groups}
    # every baseline in the pool scored on every inner fold, whatever the strategy kept
    ev.evaluate([(g, key, k) for g in groups for key in extra[g.name] for k in range(len(g.inner))])
    for g in groups:
        g.result = _result(run, g, strategy, histories[g.name], make_builder(cfg.ensemble, cfg), extra[g.name],
                           baselines)
        atomic_write_json(run.dir.selection_summary(g.name), g.result.to_dict())


def _result(run, g, strategy, h: History, builder, extra: list[str], baselines: bool) -> SelectionResult:
    cfg, fs = run.cfg.selection, run.fs
    labels, speakers = fs.labels[g.idx], fs.speakers[g.idx]
    scored = set(strategy.finalists(h)) | set(extra)  # what was asked on every inner fold
    rows, oof = {}, {}
    for key, cand in g.pool.items():
        rows[key] = _row(key, cand, g, strategy, h)
        if key in scored:
            rows[key].update(_full_scores(run, g, key, labels, speakers, oof))
    ranking = sorted(strategy.finalists(h), key=lambda k: (-rows[k]["inner_ua"], k))
    choice = builder.build(ranking, oof, labels, fs.n_classes, speakers, stage_seed(run.cfg.seed, "ensemble", g.name))
    combiner, record = sel.choose_combiner(np.stack([oof[k] for k in choice.members]), labels, g.first_partition,
                                           fs.n_classes, cfg.combiner)
    if combiner.kind == "mean" and not choice.equal:  # the builder's weights, not an equal average
        combiner = Combiner.weighted(list(choice.weights), len(choice.members))
        record = {**record, "choice": "weighted"}
    member_oof = np.stack([oof[k] for k in choice.members])
    inner_ua = (record["stack_ua"] if combiner.kind == "stack" else  # a stacker: scored cross-fitted
                scores(labels, combiner.apply(member_oof).argmax(1), fs.n_classes)["ua"])
    members = tuple(Member(k, rows[k]["name"], g.pool[k], rows[k]["epoch"]) for k in choice.members)
    refs = tuple(BaselineRef(b, c.key, c, rows[c.key].get("epoch")) if c.key in rows else
                 BaselineRef(b, c.key, c, run.cfg.train.epochs, fixed_schedule=True)  # outside the pool: whole schedule
                 for b, c in g.baselines.items()) if baselines else ()  # what refit and results.json compare with
    about = {"speakers": sorted(set(speakers.tolist())), "excluded": list(g.fold.test),
             "inner_folds": [sorted(set(speakers[p].tolist())) for p in g.inner], "layer_probe": g.probe,
             "prior": g.prior, "partitions": g.partitions,
             "cells": {"genotype": g.arch.get("genotype"), "recipe": g.arch.get("recipe")}}  # what members may use
    return SelectionResult(g.name, strategy.name, builder.name, members, combiner, record, tuple(ranking),
                           choice.scores, round(float(inner_ua), 3), tuple(rows.values()), refs,
                           tuple(g.first_partition), about)


def _row(key: str, cand, g, strategy, h: History) -> dict:
    """A candidate's row: what it is, its scores at each budget it was scored at, the strategy's notes."""
    row = {"key": key, "name": cand.name, "candidate": cand.to_dict(),
           "baseline": next((b for b, c in g.baselines.items() if c.key == key), None),
           "budget_scores": [{"folds": b, "ua": round(u, 3)} for b, u in sorted(h.budget_scores.get(key, {}).items())],
           "strategy": strategy.notes(key, h)}
    if cand.replica:
        row["replica_of"] = cand.with_replica(0).key
    return row


def _full_scores(run, g, key: str, labels, speakers, oof: dict) -> dict:
    """The fields of a candidate scored on every inner fold; its out-of-fold probabilities into `oof`."""
    n = run.fs.n_classes
    o = run.evaluator.out_of_fold(g, key)
    oof[key] = o.probs
    spk = sel.speaker_scores(o.probs, labels, speakers, n)
    fold_uas = [scores(labels[p], o.probs[p].argmax(1), n)["ua"] for p in g.first_partition]
    return {"epoch": o.epoch, "inner_ua": round(scores(labels, o.probs.argmax(1), n)["ua"], 3),
            "smoothed_curve_ua": round(o.smoothed_ua, 3), "inner_fold_uas": [round(u, 2) for u in fold_uas],
            "speaker_ua_std": round(float(np.std(list(spk.values()))), 3),
            "inner_fold_se": round(float(np.std(fold_uas) / np.sqrt(len(fold_uas))), 3)}
