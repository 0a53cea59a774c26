"""Run a resumable DARTS / emoDARTS cell search on spectrogram tensors (EmotionNAS Sec. 2.2).

``search_cnn`` takes tensors, never speakers: the caller builds the weight split and the
α split from a fold's *training-side* speakers (ARCHITECTURE.md, "Search functions").
This module gives the shared loop (search/loop.py: epochs, α / weight steps, record,
``search_log.json`` and ``search_state.pt``, resume, the last-epoch rule) what is the CNN
search's own: the supernet with its SGD and cosine lr, the β-decay schedule, the
spectrogram batches and the derived genotype (``genotype.json``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from emotionnas.config import CNNSearchConfig
from emotionnas.errors import ConfigError
from emotionnas.search.architect import Architect
from emotionnas.search.cnn.supernet import SuperNet, beta_decay
from emotionnas.search.loop import Plan, Supernet, run_search
from emotionnas.space.cnn_ops import PARAMETER_FREE, PRIMITIVES
from emotionnas.space.genotype import Genotype
from emotionnas.utils.seed import seed_everything

GENOTYPE = "genotype.json"


@dataclass(frozen=True)
class SearchJob:
    """One search: the `cnn.search` config section plus what the caller fixes (the network's
    C and layers from `cnn`, the head of the branch kind, the task's seed and threads)."""
    search: CNNSearchConfig = field(default_factory=CNNSearchConfig)
    C: int = 6
    layers: int = 3
    head: str = "gap"             # "gap" = EmotionNAS CNN branch, "lstm" = emoDARTS
    seed: int = 0
    threads: int = 1

    def __post_init__(self):
        if self.head not in ("gap", "lstm"):
            raise ConfigError(f"cnn search: head must be 'gap' or 'lstm', got {self.head!r}")
        if self.C % max(1, self.search.partial_channels):
            raise ConfigError(f"cnn search: C={self.C} not divisible by partial_channels")

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(self.search.ops or PRIMITIVES)

    def to_dict(self) -> dict:
        return {**asdict(self.search), "ops": list(self.ops), "C": self.C, "layers": self.layers,
                "head": self.head, "seed": self.seed, "threads": self.threads}


# Fields that may change between a run and its resumption without changing the result
# (not `epochs`: the cosine lr schedule depends on it).
_RESUME_FREE = frozenset({"threads"})


def build_supernet(job: SearchJob, n_classes: int, in_channels: int = 1) -> SuperNet:
    s = job.search
    return SuperNet(job.C, job.layers, n_classes, job.ops, s.nodes, s.partial_channels,
                    in_channels, head=job.head, lstm_hidden=s.lstm_hidden, freq_bins=s.freq_bins)


def _prepare(x: torch.Tensor, s: CNNSearchConfig) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) float -> (N, 1, p, p) on the proxy resolution."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"search_cnn: spectrograms must be (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if s.proxy_size and s.proxy_size != x.shape[-1]:
        x = F.adaptive_avg_pool2d(x, s.proxy_size)
    return x.contiguous(memory_format=torch.channels_last) if s.channels_last else x.contiguous()


def _lr(s: CNNSearchConfig, epoch: int) -> float:
    return s.lr_min + 0.5 * (s.lr - s.lr_min) * (1 + math.cos(math.pi * epoch / s.epochs))


def _beta_lambda(s: CNNSearchConfig, epoch: int) -> float:
    arch_epochs = s.epochs - s.warmup_epochs
    if s.beta_decay <= 0 or arch_epochs <= 0:
        return 0.0
    return s.beta_decay * (epoch - s.warmup_epochs + 1) / arch_epochs


def _arch_weights(model: SuperNet, max_skip) -> dict:
    w = model.op_weights()
    return {"ops": list(model.primitives),
            "weights_normal": np.round(w["normal"].numpy(), 5).tolist(),
            "weights_reduce": np.round(w["reduce"].numpy(), 5).tolist(),
            "param_free_ops": model.genotype(max_skip).count_ops(PARAMETER_FREE),
            "param_free_ops_unguarded": model.genotype(None).count_ops(PARAMETER_FREE)}


def _supernet(job: SearchJob, x_tr, y_tr, x_val, y_val) -> Supernet:
    s = job.search
    n_classes = int(max(y_tr.max(), y_val.max())) + 1
    model = build_supernet(job, n_classes, x_tr.shape[1])
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=s.lr, momentum=s.momentum,
                            weight_decay=s.weight_decay)
    architect = Architect(model, s.arch_lr, s.arch_weight_decay, s.unrolled, regulariser=beta_decay)
    splits = {"train": (x_tr, y_tr), "val": (x_val, y_val)}

    def batch(split, idx):
        x, y = splits[split]
        return (x[idx],), y[idx]

    return Supernet(model, w_opt, architect, batch, len(x_tr), len(x_val), n_classes,
                    derive=lambda: json.loads(model.genotype(s.max_skip).to_json()),
                    arch_weights=lambda: _arch_weights(model, s.max_skip),
                    schedule=lambda epoch: (_lr(s, epoch), _beta_lambda(s, epoch)), grad_clip=s.grad_clip)


def search_cnn(x_tr, y_tr, x_val, y_val, job: SearchJob, out_dir, progress: bool = True,
               on_epoch_end: Callable[[int, dict], None] | None = None) -> Genotype:
    """Search a cell; returns the genotype derived after the last epoch (search/loop.py).

    x_tr ``(N, H, W)`` or ``(N, 1, H, W)`` float32, y_tr ``(N,)`` int64 train weights;
    x_val / y_val (held-out *training-side* speakers) train α. ``on_epoch_end(done, record)``
    runs after each epoch's checkpoint (used to report progress or simulate an interrupt).
    """
    s = job.search
    y_tr, y_val = torch.as_tensor(y_tr, dtype=torch.long), torch.as_tensor(y_val, dtype=torch.long)
    if len(x_tr) != len(y_tr) or len(x_val) != len(y_val) or len(x_tr) < 2 or len(x_val) < 2:
        raise ValueError("search_cnn: need >= 2 samples per split and as many labels as samples")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        x_tr, x_val = _prepare(x_tr, s), _prepare(x_val, s)
        seed_everything(job.seed)
        net = _supernet(job, x_tr, y_tr, x_val, y_val)
        plan = Plan(s.epochs, s.warmup_epochs, s.batch_size, job.seed, job.to_dict(), _RESUME_FREE,
                    name=f"search {job.head} C{job.C}L{job.layers}")
        cell = run_search(net, plan, out_dir, progress, on_epoch_end)
    finally:
        torch.set_num_threads(old_threads)
    genotype = Genotype.from_dict(cell, "derived genotype")
    genotype.save(Path(out_dir) / GENOTYPE)
    return genotype
