"""The deployable model: selected and refit on every speaker of the corpus.

The cross-validated folds measure how well the *procedure* does on unseen speakers; the model
to ship is that procedure applied once more to all the data: a selection group whose search
speakers are every speaker (the same probe, pool, cell searches and inner cross-validation as
any group), whose ensemble is then refit on every utterance for its chosen epochs. No speaker
is held out, so there is no test score here; the run's cross-validated UA/WA is the expected
accuracy (the model card says so).

Calibration: a temperature fit on the ensemble's out-of-fold inner-CV probabilities over every
speaker (each utterance predicted by members that never trained on its speaker; with a stacked
combiner, combined by a stacker fitted on the other inner folds), stored in the record and in
model.json; the stacker itself (`combiner`) is fitted on every out-of-fold probability. The calibration error is recorded before scaling and after a
cross-fitted scaling (each inner fold scaled by a temperature fit on the other folds), so the
"after" figure is not measured on the data the temperature was fit on. Caveat: these are the
inner-CV members (trained on ~(k-1)/k of the speakers) and the same predictions chose the
members, so the figures describe the selection's models, not exactly the refit.

Resumable like every stage: the group's records live under searches/final/, each member's refit
under final/ (JSON last: its presence means complete), the summary in final/final.json.
"""
from __future__ import annotations

import numpy as np

from emotionnas.data.folds import final_search_fold
from emotionnas.metrics import (
    expected_calibration_error,
    fit_temperature,
    temperature_scale,
)
from emotionnas.training.refit import Refit, refit_step
from emotionnas.training.run_helpers import stage_seed
from emotionnas.training.selection import cross_fit_stack
from emotionnas.utils.io import (
    atomic_write_json,
)


def final_group(run):
    """The final model's selection group, selected: every speaker searched on, no test speaker
    (also what the benchmarks that decide defaults by inner CV study)."""
    speakers = sorted(set(run.fs.speakers.tolist()))
    g = run.prepare_group(final_search_fold(speakers, n_val=run.cfg.n_val, seed=run.cfg.seed), [])
    run.searches([g])
    run.selection([g], baselines=False)  # the final model needs no baseline
    return g


def final_model(run) -> dict:
    """Select on every speaker, refit the ensemble on every utterance, calibrate; -> final.json."""
    fs = run.fs
    speakers = sorted(set(fs.speakers.tolist()))
    g = final_group(run)
    refits = _refit(run, g, g.idx, speakers)  # every search speaker: here every speaker
    y = fs.labels[g.idx]
    oof = _combined_oof(run, g, y)
    temperature = fit_temperature(oof, y)
    crossed = _cross_fitted(oof, y, g.result.first_partition)
    record = {"speakers": speakers, "group": g.name, "n_utterances": int(len(g.idx)),
              "members": [{**m.to_dict(), "spec_stats": refits[m.key]["spec_stats"]} for m in g.result.members],
              "combiner": g.result.to_dict()["combiner"], "temperature": round(temperature, 4),
              "ece_before": round(expected_calibration_error(oof, y), 2),
              "ece_after": round(expected_calibration_error(crossed, y), 2),
              "note": "selected and refit on every speaker; no test speaker exists for this model: its expected "
                      "accuracy is the run's cross-validated score. Calibration from out-of-fold inner-CV "
                      "probabilities."}
    atomic_write_json(run.dir.final_record, record)
    run.log(f"final model: {len(record['members'])} member(s) refit on all {len(speakers)} speakers "
            f"({len(g.idx)} utterances); temperature {record['temperature']} (ECE {record['ece_before']} -> "
            f"{record['ece_after']} %, out of fold) -> {run.dir.final_record}")
    return record


def _combined_oof(run, g, y: np.ndarray) -> np.ndarray:
    """The ensemble's out-of-fold probabilities as its combiner makes them: averaged, or for a
    stacker cross-fitted (each inner fold combined by a stacker fitted on the other folds)."""
    members = [run.evaluator.out_of_fold(g, m.key).probs for m in g.result.members]
    if g.result.combiner.kind != "stack":  # an average, equal or weighted
        return g.result.combiner.apply(members)
    return cross_fit_stack(np.stack(members), y, g.result.first_partition, run.fs.n_classes)


def _cross_fitted(oof: np.ndarray, y: np.ndarray, inner: list) -> np.ndarray:
    """Each inner fold's probabilities scaled by a temperature fit on the other folds: the
    calibration error after scaling, measured on speakers the temperature was not fit on."""
    out = np.empty_like(oof)
    for pos in inner:
        rest = np.setdiff1d(np.arange(len(y)), pos)
        out[pos] = temperature_scale(oof[pos], fit_temperature(oof[rest], y[rest]))
    return out


def _refit(run, g, train: np.ndarray, speakers: list[str]) -> dict:
    """{key: record} of each member refit on every utterance (training/refit.py's one step)."""
    refits = []
    for m in g.result.members:
        seed = stage_seed(run.cfg.seed, "final", m.key)
        identity = {"speakers": speakers, "key": m.key, "epoch": m.epoch, "seed": seed, "run": run.identity}
        # `predict` is not used by the final model (no test speakers); one utterance keeps the task shape
        refits.append(Refit(m.key, m.candidate, g, train, train[:1], seed, m.epoch, identity,
                            run.dir.final_refit_json(m.key), run.dir.final_weights(m.key)))
    return refit_step(run, refits, "final model", test_probs=False)
