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
it is printed at each stage start ("stage 3 of 4: refits; training left ~ 9 min at most") and
each bar is labelled with its stage ("[3/4] refits"). It is an upper estimate of the training
only: cell searches and the layer probe are not counted, work a resumed run finds on disk is
counted as if still to do, and refits are counted at the whole schedule though they stop at their
chosen epoch. Before this run has measured anything, the rate an earlier run with the same
encoder, executor and workers saved in the feature cache stands in (a rough figure).
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
        if units > 0 and self.remaining and time.perf_counter() - self.last_line > 60:  # a long stage: say it again
            self._say(f"stage {self.index} of {len(self.stages)}: {self.stages[self.index - 1]} continues",
                      self.remaining)

    def seconds_per_unit(self) -> float | None:
        return self.seconds / self.units if self.units else None

    def partial(self, units: float, seconds: float, tasks: int) -> None:
        """Part of a long batch is done (`units` in `seconds`, `tasks` tasks): say the time left
        from the rate so far, at most once a minute and from 5 finished tasks on (the first tasks
        to finish are the quick ones: an early figure errs short)."""
        if units <= 0 or tasks < 5 or time.perf_counter() - self.last_line <= 60:
            return
        rate = (self.seconds + seconds) / (self.units + units)
        left = max(0.0, self.remaining - units)
        self.last_line = time.perf_counter()
        self.log(f"stage {self.index} of {len(self.stages)}: {self.stages[self.index - 1]} continues (elapsed "
                 f"{_minutes(self.last_line - self.t_start)}; training left ~ {_minutes(rate * left)}, from "
                 f"{rate * 1000:.2f} ms per utterance-epoch so far, {self.tasks + tasks} task(s))")

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
            line += (f"; training left ~ {_minutes(rate * planned_units)} at most, from {rate * 1000:.2f} ms per "
                     f"utterance-epoch measured on {self.tasks} task(s)")
        elif self.earlier and planned_units:
            line += (f"; training left ~ {_minutes(self.earlier * planned_units)} at most, from "
                     f"{self.earlier * 1000:.2f} ms per utterance-epoch, a rough rate from an earlier run")
        elif planned_units:
            line += "; training time left: estimated once the first training tasks have finished"
        self.last_line = now
        self.log(line + ")")
        return line + ")"


def _speed_key(cfg) -> str:
    return f"{cfg.features.encoder}|{cfg.executor}|{cfg.workers}"


def _read_speeds(path: Path) -> dict:
    """The speed file as a dict; {} when it is missing, not a regular file, larger than 4 KiB or
    not a JSON object (a shared cache is not trusted)."""
    from emotionnas.data.file_kind import file_problem
    if file_problem(path) is not None:
        return {}
    try:
        with open(path, "rb") as f:
            data = f.read(4097)
        out = json.loads(data) if len(data) <= 4096 else {}
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def load_speed(cfg) -> float | None:
    """The rate an earlier run with the same encoder, executor and workers measured (None when
    there is none or it is not a positive number below 1000 s)."""
    rate = _read_speeds(Path(cfg.features.cache_dir) / SPEED_FILE).get(_speed_key(cfg))
    return float(rate) if isinstance(rate, (int, float)) and 0 < rate < 1e3 else None


def save_speed(cfg, progress: RunProgress, log=print) -> None:
    """Remember this run's measured rate (from 10 tasks on) for the next run's first estimate;
    best effort: a read-only or full cache costs the next run its first estimate, nothing more."""
    from emotionnas.utils.io import atomic_write_json
    rate, path = progress.seconds_per_unit(), Path(cfg.features.cache_dir) / SPEED_FILE
    if rate is None or progress.tasks < 10 or not path.parent.is_dir():
        return
    try:
        atomic_write_json(path, {**_read_speeds(path), _speed_key(cfg): round(rate, 6)})
    except Exception as e:  # noqa: BLE001 - OSError, DiskError: never fail a finished run for an estimate
        log(f"note: {path}: not written ({type(e).__name__}); the next run's first estimate waits for its tasks")


def _trials(strategy, n: int, n_folds: int) -> int:
    """The strategy's planned (candidate, inner fold) trials; for a strategy that cannot say, every
    candidate of the pool on every fold."""
    plan = getattr(strategy, "planned_trials", None)
    return plan(n, n_folds) if plan is not None else n * n_folds


def selection_units(run, groups, strategy, baselines: bool) -> float:
    """Planned utterance-epochs of the selection of `groups`: the strategy's trials over the
    original candidates, plus the baselines in the pool on every inner fold (when asked)."""
    total = 0.0
    for g in groups:
        n_folds = len(g.inner)
        k = max(n_folds // max(g.partitions, 1), 1)
        rows = len(g.idx) * (k - 1) / k  # one inner fold of a partition held out
        trials = _trials(strategy, sum(1 for c in g.pool.values() if not c.replica), n_folds)
        trials += sum(1 for c in g.baselines.values() if c.key in g.pool) * n_folds if baselines else 0
        total += trials * rows * run.cfg.train.epochs
    return total


def refit_units(run, groups, baselines: bool) -> float:
    """Planned utterance-epochs of the refits: per fold, the ensemble's members (`max_ensemble`
    while the selection is not done) and the baselines, on the fold's training utterances, at
    the whole schedule (an upper bound: a refit stops at its chosen epoch)."""
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
    the size of the groups' original pools, + `max_ensemble` members refit on every utterance);
    0 when it is off."""
    if not run.cfg.final_model or not groups:
        return 0.0
    sel = run.cfg.selection
    n, k = len(run.fs.labels), sel.inner_folds
    pool = round(sum(sum(1 for c in g.pool.values() if not c.replica) for g in groups) / len(groups))
    trials = _trials(strategy, pool, k * sel.partitions)
    return (trials * n * (k - 1) / k + sel.max_ensemble * n) * run.cfg.train.epochs


__all__ = ["RunProgress", "final_units", "load_speed", "save_speed", "refit_units", "selection_units", "work_units"]
