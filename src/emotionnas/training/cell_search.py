"""The weight-sharing stage of a selection group: encoder-layer probe and cell searches.

For one group's search speakers (never a test speaker of the group's folds):
  * a per-layer linear probe (leave-one-speaker-out over those speakers) scores every
    encoder layer; its best windows are the layer choices of the candidate pool;
  * DARTS searches the spectrogram cells (when the space holds `darts` / `emodarts`) and the
    NAS-Bench-NLP recipe search the recurrent cell (when it holds `cell`), on the group's
    train / α split of speakers.
Each writes its result atomically and is read back on resume only when it was made from
exactly the same speakers.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from emotionnas.config import CNNConfig, RNNConfig, RunConfig
from emotionnas.data.folds import Fold
from emotionnas.errors import ConfigError, LeakageError
from emotionnas.features.inputs import (
    deep_inputs,
    spectrogram_inputs,
    spectrogram_stats,
)
from emotionnas.models.build import needs_genotype, needs_recipe
from emotionnas.rundir import check_search_speakers
from emotionnas.space.families import family
from emotionnas.space.pipeline import layer_windows
from emotionnas.training.records import cached_json
from emotionnas.training.run_helpers import speaker_indices, stage_seed
from emotionnas.training.tasks import DataRef
from emotionnas.utils.io import atomic_write_json
from emotionnas.utils.seed import seed_everything


@dataclass(frozen=True)
class SearchSettings:
    """What a group's cell searches read of the run's config (not the whole config)."""
    seed: int
    cnn: CNNConfig          # cells, channels and the DARTS / emoDARTS search settings
    rnn: RNNConfig          # the recipe search settings, or a user-supplied recipe
    frame_pool: int         # deep frames pooled for the recipe search (the space's first frame_pool)

    @classmethod
    def from_config(cls, cfg: RunConfig) -> "SearchSettings":
        return cls(seed=cfg.seed, cnn=cfg.cnn, rnn=cfg.rnn, frame_pool=cfg.space.frame_pool[0])


@dataclass(frozen=True, kw_only=True)
class SearchTask:
    """Cell searches of one group: picklable, run by `run_search_task` in any process."""
    data: DataRef
    fold: Fold                          # the group's search fold (train / val / excluded speakers)
    settings: SearchSettings
    out_dir: str | None  # checkpoints (resume a killed search); None: a scratch folder (remote workers)
    cnn_kind: Literal["darts", "emodarts"] | None
    rnn: bool
    layers: tuple[int, ...]
    threads: int = 1        # torch threads: 1 beside other workers; a lone search may use every core


def search_speakers(speakers: np.ndarray, fold: Fold) -> dict:
    tr, va = speaker_indices(speakers, fold.train), speaker_indices(speakers, fold.val)
    return {"train": sorted(set(speakers[tr].tolist())), "val": sorted(set(speakers[va].tolist())),
            "excluded": sorted(fold.test)}


def run_search_task(task: SearchTask) -> dict:
    old = torch.get_num_threads()
    torch.set_num_threads(task.threads)
    try:
        with torch.jit.optimized_execution(False):
            return _search(task)
    finally:
        torch.set_num_threads(old)


def _search(task: SearchTask) -> dict:
    if task.out_dir is None:  # a remote worker: checkpoints in a scratch folder, never the run folder
        with tempfile.TemporaryDirectory(prefix="emotionnas-search-") as scratch:
            return _search_into(task, Path(scratch))
    return _search_into(task, Path(task.out_dir))


def _search_into(task: SearchTask, out_dir: Path) -> dict:
    from emotionnas.search.cnn.search import SearchJob, search_cnn
    from emotionnas.search.rnn.search import search_rnn
    from emotionnas.space.recipe import load_recipe

    cfg = task.settings
    fs = task.data.load()
    fold = task.fold
    speakers = search_speakers(fs.speakers, fold)
    if set(speakers["train"] + speakers["val"]) & set(fold.test):
        raise LeakageError(f"search {fold.name}: test speakers reached its training data")
    tr, va = speaker_indices(fs.speakers, fold.train), speaker_indices(fs.speakers, fold.val)
    genotype = recipe = None
    if task.cnn_kind:
        stats = spectrogram_stats(fs.spectrograms[tr])
        seed = stage_seed(cfg.seed, "search-cnn", fold.name)
        seed_everything(seed)
        job = SearchJob(cfg.cnn.search, cfg.cnn.C, cfg.cnn.layers, "gap" if task.cnn_kind == "darts" else "lstm",
                        seed, task.threads)
        g = search_cnn(spectrogram_inputs(fs.spectrograms[tr], stats), torch.as_tensor(fs.labels[tr]),
                       spectrogram_inputs(fs.spectrograms[va], stats), torch.as_tensor(fs.labels[va]),
                       job, out_dir / "cnn", progress=False)
        genotype = json.loads(g.to_json())
    if task.rnn and cfg.rnn.recipe_path:
        recipe = load_recipe(cfg.rnn.recipe_path)
    elif task.rnn:
        seed = stage_seed(cfg.seed, "search-rnn", fold.name)
        seed_everything(seed)
        pool = cfg.frame_pool
        x_tr, l_tr = deep_inputs([fs.deep[i] for i in tr], list(task.layers), pool)
        x_va, l_va = deep_inputs([fs.deep[i] for i in va], list(task.layers), pool)
        recipe = search_rnn(x_tr, l_tr, torch.as_tensor(fs.labels[tr]), x_va, l_va, torch.as_tensor(fs.labels[va]),
                            cfg.rnn.search, out_dir / "rnn", seed=seed, progress=False)
    return {"genotype": genotype, "recipe": recipe, "layers": list(task.layers), "speakers": speakers}


def cached_search(done: Path, speakers: dict, log, identity: dict | None = None) -> dict | None:
    """The finished search recorded in `done`, if it used exactly `speakers` and was made under
    the run `identity` (seed + config digest); the one cached-result rule (training/records.py)."""
    return cached_json(done, {"speakers": speakers, **({"run": identity} if identity is not None else {})}, log)


def layer_probe(fs, indices, path: Path, seed: int, log, identity: dict | None = None) -> dict:
    """Per-layer probe scores on the group's speakers (cached in `path`, by the same rule)."""
    from emotionnas.search.layers import select_layers
    want = {"speakers": sorted(set(fs.speakers[indices].tolist())),
            **({"run": identity} if identity is not None else {})}
    choice = cached_json(path, want, log)
    if choice is None:
        choice = {**select_layers(fs, indices, 1, seed), **want}
        atomic_write_json(path, choice)
    return choice


# ---------------------------------------------------------------- the stage, for a run's groups
def search_task(run, g) -> SearchTask | None:
    """The one cell search a group's pool needs (DARTS or emoDARTS, and/or the recipe), or None."""
    kinds = {family(c.spectrogram).search for c in g.pool.values() if needs_genotype(c)}
    rnn = any(needs_recipe(c) for c in g.pool.values())
    if len(kinds) > 1:
        raise ConfigError("space.spectrogram: choose 'darts' or 'emodarts', not both (one cell search per group)")
    if not kinds and not rnn:
        return None
    layers = tuple(layer_windows(g.probe["scores"], [2], 1)[0])
    remote = getattr(run.executor, "remote", False)  # remote workers write nothing into the run folder
    return SearchTask(data=run.data, fold=g.fold, settings=SearchSettings.from_config(run.cfg),
                      out_dir=None if remote else str(run.dir.search_dir(g.name)),
                      cnn_kind=next(iter(kinds), None), rnn=rnn, layers=layers)


def run_searches(run, groups) -> None:
    """Every group's cell search: cached ones reused (same speakers, same run identity), the rest
    run as parallel tasks; then every fold's test speakers are checked against its group's search."""
    jobs = []
    for g in groups:
        task = search_task(run, g)
        if task is None:
            continue
        record = cached_search(run.dir.search_record(g.name), search_speakers(run.fs.speakers, g.fold), run.log,
                               run.identity)
        if record is None:
            jobs.append((g.name, run_search_task, task))
        else:
            g.arch = record
    by_name = {g.name: g for g in groups}
    for name, record in run.map(jobs, "cell searches"):
        record = {**record, "run": run.identity}
        atomic_write_json(run.dir.search_record(name), record)
        by_name[name].arch = record
    for g in groups:
        for i in g.members:
            if g.arch:
                check_search_speakers(g.arch, run.folds[i], g.name)
