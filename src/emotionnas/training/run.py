"""The run: one object, built in one place (`Run.start`), whose methods are the stages.

    with Run.start(cfg, out_dir) as run:       # folder bound, features, folds, fingerprint, executor
        groups = run.groups()                  # A: selection groups: layer probe, candidate pool
        run.searches(groups)                   #    cell searches (DARTS, recipe)
        run.selection(groups)                  # B, C: inner cross-validation, halving, ensemble
        refits = run.refit(groups)             # D: refit on each fold's training speakers, test
    results = run.summary(groups, refits)      # results.json, timing.json

training/crossval.py reads so; benchmarks use the same methods. Independent work runs as tasks
on the run's executor; each task's result is written atomically as it arrives, so a killed run
resumes where it stopped.
"""
from __future__ import annotations

import functools
import time
from concurrent.futures import as_completed

import torch

from emotionnas.config import RunConfig
from emotionnas.data.folds import Fold, make_folds, save_folds
from emotionnas.models.build import Dims
from emotionnas.rundir import RunDir, run_identity
from emotionnas.space.pipeline import Candidate, check_space
from emotionnas.training.cell_search import run_searches
from emotionnas.training.evaluator import Evaluator
from emotionnas.training.executor import make_executor
from emotionnas.training.group import Group, prepare_group
from emotionnas.training.prior import bind_prior, record_audio_hashes
from emotionnas.training.progress import RunProgress, load_speed, save_speed, work_units
from emotionnas.training.run_helpers import fingerprint_of, plan_searches
from emotionnas.training.select import check_selection, select_groups
from emotionnas.training.summary import summarize
from emotionnas.training.tasks import DataRef, TrainTask
from emotionnas.utils.io import atomic_write_json, atomic_write_text, remove_stale_temps
from emotionnas.utils.provenance import cpu_seconds, environment, peak_rss_mb


def _timed(name: str):
    """Add the method's wall time to `self.timing[name]` (timing.json, never results.json)."""
    def wrap(method):
        @functools.wraps(method)
        def timed(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                self.timing[name] = self.timing.get(name, 0.0) + time.perf_counter() - t0
        return timed
    return wrap


class Run:
    """One cross-validated run in progress: its config, folder, features, folds and executor
    (made by `start`), and the stages as methods. A context manager: leaving it shuts the
    executor down."""

    def __init__(self, cfg: RunConfig, rundir: RunDir, data: DataRef, fs, folds: list[Fold], executor, *,
                 progress: bool = True, log=print, t_start: float | None = None):
        self.cfg, self.dir, self.data, self.fs, self.folds = cfg, rundir, data, fs, folds
        self.executor, self.progress, self.log = executor, progress, log
        self.dims = Dims(fs.n_classes, fs.deep_dim, fs.deep_layers, cfg.cnn.C, cfg.cnn.layers, cfg.features.encoder)
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.timing, self.prior = {}, None  # prior: selection.prior's usable sources (bound by start)
        self.identity = run_identity(cfg)   # seed + config digest: every record is made under it
        self.evaluator = Evaluator(self)    # scores candidates on inner folds (training/evaluator.py)
        self.lock = None                    # the run folder's writer lock (taken by start)
        self.overall = RunProgress(["cell searches", "selection", "refits"] + (["final model"] if cfg.final_model
                                                                               else []), log, self.t_start,
                                   earlier=load_speed(cfg))

    @classmethod
    def start(cls, cfg: RunConfig, out_dir, progress: bool = True, log=print, restart: bool = False) -> "Run":
        """Bind `out_dir` to the config (resume a run of the same config, or refuse; `restart`:
        delete the previous run first), load the features, make the folds, check the corpus
        fingerprint, create the executor."""
        t_start = time.perf_counter()
        rundir = RunDir(out_dir)
        check_space(cfg.space, cfg.features.speaker_norm)  # family names, before any work
        check_selection(cfg.selection)                      # strategy and ensemble builder names
        lock = rundir.lock(log)  # one writer per folder: before anything is written, --restart included
        try:
            run = cls._bind(cfg, rundir, progress, log, restart, t_start)
        except BaseException:
            lock.release()
            raise
        run.lock = lock
        return run

    @classmethod
    def _bind(cls, cfg: RunConfig, rundir: RunDir, progress: bool, log, restart: bool, t_start: float) -> "Run":
        if restart:
            rundir.clear()
        if n := remove_stale_temps(rundir.root):
            log(f"removed {n} temporary file(s) of an interrupted write in {rundir.root}")
        rundir.claim(cfg)
        torch.set_num_threads(cfg.threads)
        data = DataRef.from_config(cfg)
        fs = data.load(progress, fresh=True)  # serial tasks reuse it
        folds = make_folds(fs.table, cfg.protocol, n_val=cfg.n_val, k=cfg.k, seed=cfg.seed)
        if cfg.max_folds:
            folds = folds[: cfg.max_folds]
        rundir.check_fingerprint(fingerprint := fingerprint_of(fs, folds, cfg))  # before anything is reused
        atomic_write_json(rundir.environment, environment(cfg.seed))
        record_audio_hashes(rundir.root, fs.content_hashes, fingerprint)  # for priors built from this run
        if fs.table.errors:
            atomic_write_text(rundir.skipped, "\n".join(fs.table.errors) + "\n")
            log(f"skipped {len(fs.table.errors)} bad file(s), listed in {rundir.skipped}")
        save_folds(folds, rundir.folds)
        run = cls(cfg, rundir, data, fs, folds, make_executor(cfg.executor, cfg.workers),
                  progress=progress, log=log, t_start=t_start)
        run.prior = bind_prior(cfg, rundir.root, fs.content_hashes, fingerprint)  # drops this corpus's own
        return run

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:  # interrupted (Ctrl-C, SIGTERM, an error): no waiting for running tasks, workers exit with us
            self.executor.shutdown(wait=exc_type is None)
        finally:
            if self.lock is not None:
                self.lock.release()

    # ------------------------------------------------------------ where the run is
    def begin(self, stage: str, groups: list[Group]) -> None:
        """Log stage k of n with the time left: this stage's and the later ones' planned
        utterance-epochs x the measured seconds per utterance-epoch (training/progress.py)."""
        from emotionnas.training import progress as p
        from emotionnas.training.strategies import make_strategy
        strategy = make_strategy(self.cfg.selection.strategy, self.cfg.selection, self.cfg.seed)
        later = {"cell searches": 0, "selection": 0, "refits": 1, "final model": 2}[stage]
        units = [p.selection_units(self, groups, strategy, self.cfg.baselines),
                 p.refit_units(self, groups, self.cfg.baselines), p.final_units(self, groups, strategy)][later:]
        self.overall.begin(stage, sum(units))

    # ------------------------------------------------------------ tasks
    def map(self, jobs, desc: str):
        """Run (key, fn, arg) jobs on the executor; yield (key, result) as they finish."""
        if not jobs:
            return
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=self.overall.label() + desc, disable=not self.progress, unit="task")
        t0 = time.perf_counter()
        futures = {self.executor.submit(fn, arg): (key, work_units(arg)) for key, fn, arg in jobs}
        units, done_units = sum(size for _, size in futures.values()), 0.0
        for n, f in enumerate(as_completed(futures), 1):
            bar.update(1)
            key, size = futures[f]
            yield key, f.result()
            done_units += size
            self.overall.partial(done_units, time.perf_counter() - t0, n)  # a long batch: the time left so far
        bar.close()
        self.overall.measured(units, time.perf_counter() - t0, len(jobs))  # the time-left estimates' rate

    def task(self, kind, cand: Candidate, group: Group, train, predict, seed, epochs=None, outside=()) -> TrainTask:
        return TrainTask(kind=kind, data=self.data, candidate=cand, train=tuple(int(i) for i in train),
                         predict=tuple(int(i) for i in predict), seed=seed, train_cfg=self.cfg.train,
                         dims=self.dims, genotype=group.arch.get("genotype"), recipe=group.arch.get("recipe"),
                         epochs=epochs, outside=tuple(outside))

    # ------------------------------------------------------------ stage A: probe, pool, cell searches
    @_timed("search_seconds")
    def groups(self, limit: int | None = None) -> list[Group]:
        """The selection groups (the first `limit`), each with its layer probe and candidate pool."""
        plans = plan_searches(self.folds, self.cfg, sorted(set(self.fs.speakers)))[:limit]
        groups = [self.prepare_group(sf, members) for sf, members in plans]
        for g in groups:
            self.log(f"{g.name}: {len(set(self.fs.speakers[g.idx]))} search speakers ({len(g.idx)} utterances), "
                     f"held out {list(g.fold.test)}; {len(g.pool)} candidates")
        return groups

    def prepare_group(self, search_fold: Fold, members: list[int]) -> Group:
        """A selection group: its inner folds, layer probe, baselines and candidate pool (training/group.py)."""
        return prepare_group(self, search_fold, members)

    @_timed("search_seconds")
    def searches(self, groups: list[Group]) -> None:
        """The groups' cell searches (DARTS, recipe), cached and checked (training/cell_search.py)."""
        run_searches(self, groups)

    @_timed("selection_seconds")
    def selection(self, groups: list[Group], baselines: bool | None = None) -> None:
        """Stages B, C: each group's strategy, evaluator and ensemble builder (training/select.py) ->
        `g.result`. `baselines`: also score every baseline on every inner fold (default: cfg.baselines)."""
        select_groups(self, groups, self.cfg.baselines if baselines is None else baselines)

    # ------------------------------------------------------------ stage D: refit and test
    @_timed("refit_seconds")
    def refit(self, groups: list[Group]) -> dict:
        """Stage D: each fold's ensemble (and baselines) refit on its training speakers, tested once."""
        from emotionnas.training.refit import refit_folds
        return refit_folds(self, groups)

    @_timed("final_seconds")
    def final(self) -> dict:
        """The deployable model: selected and refit on every speaker (training/final.py)."""
        from emotionnas.training.final import final_model
        return final_model(self)

    # ------------------------------------------------------------ results
    def write_timing(self) -> None:
        """timing.json: the stages' wall times so far, peak memory, CPU time, how it ran."""
        timing = {**self.timing, "total_seconds": time.perf_counter() - self.t_start,
                  "peak_rss_mb": peak_rss_mb(), "cpu_seconds": cpu_seconds()}
        atomic_write_json(self.dir.timing, {**timing, "workers": self.cfg.workers, "executor": self.cfg.executor})

    def summary(self, groups: list[Group], refits: dict) -> dict:
        """results.json (identical after an interrupted, resumed run) and timing.json."""
        from emotionnas.training.bagging import bagged_probs
        results = summarize(self.cfg, self.fs, self.folds, groups, refits, self.dir, bagged_probs(self, groups))
        self.write_timing()
        atomic_write_json(self.dir.results, results)
        save_speed(self.cfg, self.overall, self.log)  # best effort, after the results are safe
        line = (f"UA {results['ua']:.1f} ± {results['ua_std']:.1f}  WA {results['wa']:.1f}  "
                f"macro-F1 {results['macro_f1']:.1f}")
        for name, b in results.get("baselines", {}).items():
            line += f" | {name} {b['ua']:.1f}"
        self.log(f"{line}  ({len(self.folds)} folds) -> {self.dir.results}")
        return results
