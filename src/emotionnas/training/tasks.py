"""The units of work of a run, as plain picklable data, and the function that does one.

A task names its data (`DataRef`: corpus + feature cache), a candidate, the utterance
indices it trains on and those it predicts, its seed and its schedule. `run_task` is the
same function whether it runs in this process, in a local worker process or on a Dask
worker: it uses one torch thread and seeds itself, so results do not depend on where or
in which order tasks run. Features are loaded once per process and memoised.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import astuple, dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from emotionnas.config import FeatureConfig, TrainConfig
from emotionnas.features.inputs import (
    InputSpec,
    deep_inputs,
    spectrogram_inputs,
    spectrogram_stats,
)
from emotionnas.features.speaker_norm import speaker_normalised
from emotionnas.models.build import Dims, build_model, input_spec
from emotionnas.space.pipeline import Candidate
from emotionnas.training.loop import ArraySplit, predict_proba, train_model
from emotionnas.utils.seed import seed_everything


@dataclass(frozen=True)
class DataRef:
    """Where a task's features come from (they must already be in the cache): the corpus and
    the run's feature settings (a copy of its `FeatureConfig`, declared once in config.py).
    Hashable (the key of the per-process memo) and picklable (sent to worker processes)."""
    corpus: str
    root: str
    features: FeatureConfig = field(default_factory=FeatureConfig)
    options: tuple = ()     # the corpus options, as sorted (name, value) pairs

    def __hash__(self) -> int:  # FeatureConfig is a mutable config section: hash its values
        values = tuple(tuple(v) if isinstance(v, list) else v for v in astuple(self.features))
        return hash((self.corpus, self.root, values, self.options))

    @classmethod
    def from_config(cls, cfg) -> "DataRef":
        return cls(corpus=cfg.corpus, root=str(cfg.root), features=replace(cfg.features),
                   options=tuple(sorted(cfg.corpus_options.items())))

    def spectrogram_config(self):
        from emotionnas.features.spectrogram import SpectrogramConfig
        size = self.features.spectrogram_size
        return SpectrogramConfig(out_freq=size, out_time=size, mel_bins=self.features.spectrogram_mel)

    def load(self, progress: bool = False, fresh: bool = False):
        """The FeatureSet, extracted into the cache if needed; loaded once per process, so the
        run's own process and its serial tasks share it. `fresh`: read the corpus again (a run
        starts so: the corpus may have changed since) and drop what was derived from the old."""
        from emotionnas.features.dataset import load_features
        if fresh:
            _FEATURES.pop(self, None)
            for key in [k for k in _DEEP if k[0] == self]:
                del _DEEP[key]
        if self not in _FEATURES:
            f = self.features
            fs = load_features(self.corpus, self.root, f.cache_dir, encoder=f.encoder,
                               deep_pool=f.deep_pool, progress=progress,
                               spec_cfg=self.spectrogram_config(), augment=f.augment, **dict(self.options))
            if f.speaker_norm and fs.deep is not None:  # the speaker-adaptive mode (labelled in results)
                fs.deep = speaker_normalised(fs.deep, fs.speakers)
                for c in fs.copies.values():
                    c["deep"] = speaker_normalised(c["deep"], fs.speakers)
            _FEATURES[self] = fs
        return _FEATURES[self]


_FEATURES: dict = {}
_DEEP: OrderedDict = OrderedDict()  # (DataRef, layers, frame_pool, copy) -> (x, lengths); a few entries


def _deep(data: DataRef, fs, layers, frame_pool: int, copy: str | None = None):
    key = (data, layers, frame_pool, copy)
    if key not in _DEEP:
        _DEEP[key] = deep_inputs(fs.deep if copy is None else fs.copies[copy]["deep"], layers, frame_pool)
        while len(_DEEP) > 3 * (1 + len(fs.copies)):
            _DEEP.popitem(last=False)
    _DEEP.move_to_end(key)
    return _DEEP[key]


def split_inputs(data: DataRef, fs, spec: InputSpec, idx, copy: str | None = None) -> tuple:
    """The model inputs of utterances `idx` (same order as `model_inputs`), from the memo;
    `copy`: those of an augmented copy of them (features/augment.py)."""
    idx = np.asarray(idx, dtype=np.int64)
    out: list = []
    if "spectrogram" in spec.streams:
        spectrograms = fs.spectrograms if copy is None else fs.copies[copy]["spectrograms"]
        out.append(spectrogram_inputs(spectrograms[idx], spec.spec_stats))
    if "deep" in spec.streams:
        x, lengths = _deep(data, fs, spec.layers, spec.frame_pool, copy)
        t = torch.from_numpy(idx)
        out.extend([x[t], lengths[t]])
    return tuple(out)


def training_inputs(data: DataRef, fs, spec: InputSpec, idx) -> tuple[tuple, np.ndarray]:
    """(inputs, labels) a model trains on: utterances `idx` and every augmented copy of them
    (copies are of training utterances only; what is validated or tested is never a copy).
    Padded deep sequences of the parts are padded again to their common length."""
    parts = [split_inputs(data, fs, spec, idx)] + [split_inputs(data, fs, spec, idx, c) for c in fs.copies]
    labels = np.tile(fs.labels[np.asarray(idx, dtype=np.int64)], len(parts))
    if len(parts) == 1:
        return parts[0], labels
    out = []
    for xs in zip(*parts):
        if xs[0].dim() == 4 and len({x.shape[2] for x in xs}) > 1:  # deep (B, L', T, D): frames differ
            t = max(x.shape[2] for x in xs)
            xs = [torch.nn.functional.pad(x, (0, 0, 0, t - x.shape[2])) for x in xs]
        out.append(torch.cat(list(xs)))
    return tuple(out), labels


@dataclass(frozen=True, kw_only=True)
class TrainTask:
    """Train `candidate` on utterances `train`; `kind` "evaluate": record the probabilities of
    `predict` after every epoch (inner cross-validation); "refit": stop after `epochs` and
    return the probabilities of `predict` (the test speakers) and the weights."""
    kind: Literal["evaluate", "refit"]
    data: DataRef
    candidate: Candidate
    train: tuple[int, ...]              # utterance indices into the FeatureSet
    predict: tuple[int, ...]
    seed: int
    train_cfg: TrainConfig
    dims: Dims
    genotype: dict | None = None        # the group's searched CNN cells (a search record's JSON)
    recipe: dict | None = None          # the group's searched recurrent cell
    epochs: int | None = None           # refit: stop after this epoch
    outside: tuple[int, ...] = ()       # evaluate: also record these utterances' probabilities each epoch
                                        # (test speakers of the group's folds: the bagged fold models)


def schedule(cand: Candidate, cfg: TrainConfig) -> tuple[int, float]:
    """(schedule length, learning rate): spectrogram CNNs have their own (trained from scratch,
    they cost ~100x per epoch); a deep family keeps the deep schedule, however costly (a
    fine-tuned encoder: its pretrained weights learn at a fraction of lr, models/tune.py)."""
    return (cfg.cnn_epochs, cfg.cnn_lr) if cand.spectrogram != "none" else (cfg.epochs, cfg.lr)


def run_task(task: TrainTask) -> dict:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.jit.optimized_execution(False):  # bit-identical recipe cells across processes
            return _run(task)
    finally:
        torch.set_num_threads(old)


def _run(task: TrainTask) -> dict:
    fs = task.data.load()
    cand, cfg = task.candidate, task.train_cfg
    train_idx = np.asarray(task.train, dtype=np.int64)
    stats = spectrogram_stats(fs.spectrograms[train_idx]) if cand.spectrogram != "none" else (0.0, 1.0)
    spec = input_spec(cand, stats)
    train = ArraySplit(*training_inputs(task.data, fs, spec, train_idx))
    other = ArraySplit(split_inputs(task.data, fs, spec, task.predict), fs.labels[np.asarray(task.predict)])
    seed_everything(task.seed)
    model = build_model(cand, task.dims, task.genotype, task.recipe)
    epochs, lr = schedule(cand, cfg)
    t0 = time.perf_counter()
    if task.kind == "evaluate":
        outside = (ArraySplit(split_inputs(task.data, fs, spec, task.outside), fs.labels[np.asarray(task.outside)])
                   if task.outside else None)
        res = train_model(model, train, cfg, task.dims.n_classes, seed=task.seed, schedule_epochs=epochs, lr=lr,
                          val=other, outside=outside)
        return {"val_probs": np.stack(res.val_probs), "seconds": time.perf_counter() - t0,
                **({"outside_probs": np.stack(res.outside_probs)} if outside is not None else {})}
    res = train_model(model, train, cfg, task.dims.n_classes, seed=task.seed, schedule_epochs=epochs, lr=lr,
                      stop_after=task.epochs)
    return {"test_probs": predict_proba(model, other), "seconds": time.perf_counter() - t0,
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "spec_stats": list(stats), "n_params": sum(p.numel() for p in model.parameters())}
