"""Where a long run is: stage k of n, and the time left estimated from the tasks' measured cost.

A run's stages (cell searches, selection, refits, final model) differ by ten times in size, so
counting stages or tasks says little about the wait. Every training task's size is known before it
runs: its training utterances times its epochs (*utterance-epochs*). The run measures the wall
seconds its finished tasks took per utterance-epoch (both workers together; cell searches, which
have no such size, are left out) and multiplies by the utterance-epochs still planned:

    selection   per group: the strategy's planned trials (candidate x inner fold) x the inner
                training utterances x epochs, plus the baselines on every inner fold
    refits      per fold: (the ensemble's members, at most `max_ensemble` before they are known,
                + the baselines) x the fold's training utterances x epochs
    final       a selection over every speaker + its members refit on every utterance

Families differ in cost per utterance-epoch (a CNN or fine-tuning costs more than a head), so
the estimate is the measured average of this run's mix, said with how many tasks it rests on;
it is printed at each stage start ("stage 3 of 4: refits; time left ~ 9 min") and each bar is
labelled with its stage ("[3/4] refits").
"""
from __future__ import annotations

import json
import time
from pathlib import Path

SPEED_FILE = "measured_speed.json"  # in the feature cache: the last run's rate, for the next run's first estimate

def work_units(task) -> float:
    """A training task's size in utterance-epochs (0 for tasks without one: cell searches)."""
    train = getattr(task, "train", None)
    if train is None:
        return 0.0
    epochs = task.epochs if getattr(task, "epochs", None) else task.train_cfg.epochs
    return float(len(train) * epochs)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class RunProgress:
    """The run's stages, the current one, and the measured cost of its training tasks."""

    def __init__(self, stages: list[str], log=print, t_start: float | None = None, earlier: float | None = None):
        """`earlier`: seconds per utterance-epoch an earlier run measured on this machine (the first
        estimate, before this run has measured its own)."""
        self.stages, self.log, self.earlier = list(stages), log, earlier
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.index = 0           # 1-based once a stage has begun
        self.seconds = 0.0       # wall seconds of the task batches that had a size
        self.units = 0.0         # their utterance-epochs
        self.tasks = 0
        self.remaining = 0.0     # planned utterance-epochs not yet done (this stage and the later ones)
        self.last_line = self.t_start

    def label(self) -> str:
        """The current stage as a bar prefix: "[2/4] "."""
        return f"[{self.index}/{len(self.stages)}] " if self.index else ""

    def measured(self, units: float, seconds: float, tasks: int) -> None:
        """A finished batch of training tasks: `units` utterance-epochs in `seconds` of wall time."""
        if units > 0:
            self.units, self.seconds, self.tasks = self.units + units, self.seconds + seconds, self.tasks + tasks
            self.remaining = max(0.0, self.remaining - units)
        if self.remaining and time.perf_counter() - self.last_line > 60:  # a long stage: say it again
            self._say(f"stage {self.index} of {len(self.stages)}: {self.stages[self.index - 1]} continues",
                      self.remaining)

    def seconds_per_unit(self) -> float | None:
        return self.seconds / self.units if self.units else None

    def begin(self, stage: str, planned_units: float | None = None) -> str:
        """Start `stage` (one of the planned names) and log where the run is; `planned_units`: the
        utterance-epochs of this stage and the later ones, when they can be counted."""
        self.index = self.stages.index(stage) + 1 if stage in self.stages else self.index + 1
        self.remaining = float(planned_units or 0.0)
        return self._say(f"stage {self.index} of {len(self.stages)}: {stage}", self.remaining)

    def _say(self, head: str, planned_units: float) -> str:
        now = time.perf_counter()
        line, rate = f"{head} (elapsed {_minutes(now - self.t_start)}", self.seconds_per_unit()
        if rate is not None and planned_units:
            line += (f"; time left ~ {_minutes(rate * planned_units)}, from {rate * 1000:.2f} ms per "
                     f"utterance-epoch measured on {self.tasks} task(s)")
        elif self.earlier and planned_units:
            line += (f"; time left ~ {_minutes(self.earlier * planned_units)}, from {self.earlier * 1000:.2f} ms "
                     "per utterance-epoch measured by an earlier run on this machine")
        elif planned_units:
            line += "; time left: estimated once the first training tasks have finished"
        self.last_line = now
        self.log(line + ")")
        return line + ")"


def load_speed(cache_dir, workers: int) -> float | None:
    """The rate an earlier run with as many workers measured (None when there is none or it is not
    a small JSON object holding a positive number)."""
    path = Path(cache_dir) / SPEED_FILE
    try:
        if path.stat().st_size > 4096:
            return None
        rate = json.loads(path.read_text()).get(str(workers))
    except (OSError, ValueError, AttributeError):
        return None
    return float(rate) if isinstance(rate, (int, float)) and 0 < rate < 1e3 else None


def save_speed(cache_dir, workers: int, progress: RunProgress) -> None:
    """Remember this run's measured rate (from 10 tasks on) for the next run's first estimate."""
    from emotionnas.utils.io import atomic_write_json
    rate, path = progress.seconds_per_unit(), Path(cache_dir) / SPEED_FILE
    if rate is None or progress.tasks < 10 or not path.parent.is_dir():
        return
    try:
        old = json.loads(path.read_text()) if path.is_file() and path.stat().st_size <= 4096 else {}
    except (OSError, ValueError):
        old = {}
    atomic_write_json(path, {**(old if isinstance(old, dict) else {}), str(workers): round(rate, 6)})


def _trials(strategy, n: int, n_folds: int) -> int:
    """The strategy's planned (candidate, inner fold) trials; every candidate on every fold (an upper
    bound) for a strategy that cannot say."""
    plan = getattr(strategy, "planned_trials", None)
    return plan(n, n_folds) if plan is not None else n * n_folds


def selection_units(run, groups, strategy, baselines: bool) -> float:
    """Planned utterance-epochs of the selection of `groups`."""
    total = 0.0
    for g in groups:
        n_folds = len(g.inner)
        rows = len(g.idx) * (n_folds - 1) / max(n_folds, 1)  # one inner fold held out
        trials = _trials(strategy, sum(1 for c in g.pool.values() if not c.replica), n_folds)
        trials += len(g.baselines) * n_folds if baselines else 0
        total += trials * rows * run.cfg.train.epochs
    return total


def refit_units(run, groups, baselines: bool) -> float:
    """Planned utterance-epochs of the refits: per fold, the ensemble's members (`max_ensemble`
    while the selection is not done) and the baselines, on the fold's training utterances."""
    from emotionnas.training.run_helpers import train_indices
    total = 0.0
    for g in groups:
        members = len(g.result.members) if g.result is not None else run.cfg.selection.max_ensemble
        extra = len(g.baselines) if baselines else 0
        for i in g.members:
            total += (members + extra) * len(train_indices(run.fs.speakers, run.folds[i])) * run.cfg.train.epochs
    return total


def final_units(run, groups, strategy) -> float:
    """Planned utterance-epochs of the final model (a selection over every utterance, with a pool
    the size of the groups' pools, + `max_ensemble` members refit on every utterance); 0 when off."""
    if not run.cfg.final_model or not groups:
        return 0.0
    n, n_folds = len(run.fs.labels), run.cfg.selection.inner_folds
    pool = round(sum(len(g.pool) for g in groups) / len(groups))
    trials = _trials(strategy, pool, n_folds)
    return (trials * n * (n_folds - 1) / n_folds + run.cfg.selection.max_ensemble * n) * run.cfg.train.epochs


__all__ = ["RunProgress", "final_units", "load_speed", "save_speed", "refit_units", "selection_units", "work_units"]
