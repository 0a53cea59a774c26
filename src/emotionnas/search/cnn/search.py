"""Run a resumable DARTS / emoDARTS cell search on spectrogram tensors (EmotionNAS Sec. 2.2).

``search_cnn`` takes tensors, never speakers: the caller builds the weight split and the
α split from a fold's *training-side* speakers (ARCHITECTURE.md, "Search functions").
Each epoch it writes ``genotype.json`` (derived), ``search_log.json`` and an atomic
``search_state.pt``; a rerun on the same ``out_dir`` resumes after the last finished epoch.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from emotionnas.config import CNNSearchConfig
from emotionnas.errors import ConfigError
from emotionnas.search.cnn.architect import Architect, only_grad_for
from emotionnas.space.genotype import Genotype
from emotionnas.space.cnn_ops import PARAMETER_FREE, PRIMITIVES
from emotionnas.search.cnn.supernet import SuperNet
from emotionnas.utils.io import atomic_torch_save, atomic_write_json, load_checkpoint
from emotionnas.utils.seed import seed_everything

STATE, LOG, GENOTYPE = "search_state.pt", "search_log.json", "genotype.json"


@dataclass(frozen=True)
class SearchJob:
    """One search: the `cnn.search` config section plus what the caller fixes (the network's
    C and layers from `cnn`, the head of the branch kind, the task's seed and threads).
    Reading an attribute the job does not hold reads it from the section."""
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

    def __getattr__(self, name):
        return getattr(self.search, name)

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(self.search.ops or PRIMITIVES)

    def to_dict(self) -> dict:
        return {**asdict(self.search), "ops": list(self.ops), "C": self.C, "layers": self.layers,
                "head": self.head, "seed": self.seed, "threads": self.threads}


# Fields that may change between a run and its resumption without changing the result.
_RESUME_FREE = {"threads"}


def build_supernet(cfg: SearchJob, n_classes: int, in_channels: int = 1) -> SuperNet:
    return SuperNet(cfg.C, cfg.layers, n_classes, cfg.ops, cfg.nodes, cfg.partial_channels,
                    in_channels, head=cfg.head, lstm_hidden=cfg.lstm_hidden, freq_bins=cfg.freq_bins)


def _prepare(x: torch.Tensor, cfg: SearchJob) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) float -> (N, 1, p, p) on the proxy resolution."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"search_cnn: spectrograms must be (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if cfg.proxy_size and cfg.proxy_size != x.shape[-1]:
        x = F.adaptive_avg_pool2d(x, cfg.proxy_size)
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x.contiguous()


def _lr(cfg: SearchJob, epoch: int) -> float:
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs))


def _beta_lambda(cfg: SearchJob, epoch: int) -> float:
    arch_epochs = cfg.epochs - cfg.warmup_epochs
    if cfg.beta_decay <= 0 or arch_epochs <= 0:
        return 0.0
    return cfg.beta_decay * (epoch - cfg.warmup_epochs + 1) / arch_epochs


def _batches(n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Shuffled batches from a generator seeded per epoch (so a resumed run repeats them)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) > 1]  # BatchNorm needs 2 samples


@torch.no_grad()
def _evaluate(model, x, y, batch_size) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        loss += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def weight_step(model, w_opt, xb, yb, grad_clip: float):
    """One SGD step of the network weights on a training batch; α is frozen (no gradient)."""
    weights = model.weight_parameters()
    w_opt.zero_grad(set_to_none=True)
    with only_grad_for(weights, model.parameters()):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(weights, grad_clip)
    w_opt.step()
    return logits.detach(), loss.item()


def _epoch(model, architect, w_opt, cfg, epoch, x_tr, y_tr, x_val, y_val) -> dict:
    lr = _lr(cfg, epoch)
    for g in w_opt.param_groups:
        g["lr"] = lr
    search_alpha = epoch >= cfg.warmup_epochs
    reg = _beta_lambda(cfg, epoch)
    val_batches = _batches(len(x_val), cfg.batch_size, cfg.seed * 7919 + 2 * epoch + 1)
    tr_loss, tr_correct, tr_n, arch_losses = 0.0, 0, 0, []
    for step, idx in enumerate(_batches(len(x_tr), cfg.batch_size, cfg.seed * 7919 + 2 * epoch)):
        xb, yb = x_tr[idx], y_tr[idx]
        if search_alpha:  # α on the held-out split only (bi-level, DARTS Eq. 3-4)
            vidx = val_batches[step % len(val_batches)]
            arch_losses.append(architect.step(x_val[vidx], y_val[vidx], xb, yb, lr, cfg.weight_decay, reg))
        logits, loss = weight_step(model, w_opt, xb, yb, cfg.grad_clip)
        tr_loss += loss * len(idx)
        tr_correct += (logits.argmax(1) == yb).sum().item()
        tr_n += len(idx)
    val_loss, val_acc = _evaluate(model, x_val, y_val, 2 * cfg.batch_size)
    return {"lr": lr, "alpha_step": search_alpha, "beta_decay_lambda": reg,
            "train_loss": tr_loss / tr_n, "train_acc": tr_correct / tr_n,
            "arch_val_loss": float(np.mean(arch_losses)) if arch_losses else None,
            "val_loss": val_loss, "val_acc": val_acc}


def _arch_record(model, cfg) -> dict:
    w = model.op_weights()
    guarded, unguarded = model.genotype(cfg.max_skip), model.genotype(None)
    return {"ops": list(model.primitives),
            "weights_normal": np.round(w["normal"].numpy(), 5).tolist(),
            "weights_reduce": np.round(w["reduce"].numpy(), 5).tolist(),
            "genotype": json.loads(guarded.to_json()),
            "param_free_ops": guarded.count_ops(PARAMETER_FREE),
            "param_free_ops_unguarded": unguarded.count_ops(PARAMETER_FREE)}


def _check_resume(state: dict, cfg: SearchJob, path: Path) -> None:
    saved = json.loads(state["config"])
    now = json.loads(json.dumps(cfg.to_dict()))
    diff = [k for k in now if k not in _RESUME_FREE and saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise ConfigError(f"{path}: written with {k}={saved.get(k)!r}, now {now[k]!r}; "
                          "use a new out_dir to search with a different config")


def _warn(msg: str) -> None:
    import sys
    print(msg, file=sys.stderr)


def search_cnn(x_tr, y_tr, x_val, y_val, cfg: SearchJob, out_dir, progress: bool = True,
               on_epoch_end: Callable[[int, dict], None] | None = None) -> Genotype:
    """Search a cell; returns the genotype derived after the last epoch.

    x_tr ``(N, H, W)`` or ``(N, 1, H, W)`` float32, y_tr ``(N,)`` int64 train weights;
    x_val / y_val (held-out *training-side* speakers) train α. ``on_epoch_end(epoch, record)``
    runs after each epoch's checkpoint (used to report progress or simulate an interrupt).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y_tr, y_val = torch.as_tensor(y_tr, dtype=torch.long), torch.as_tensor(y_val, dtype=torch.long)
    if len(x_tr) != len(y_tr) or len(x_val) != len(y_val) or len(x_tr) < 2 or len(x_val) < 2:
        raise ValueError("search_cnn: need >= 2 samples per split and as many labels as samples")
    n_classes = int(max(y_tr.max(), y_val.max())) + 1
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        x_tr, x_val = _prepare(x_tr, cfg), _prepare(x_val, cfg)
        seed_everything(cfg.seed)
        model = build_supernet(cfg, n_classes, x_tr.shape[1])
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
        architect = Architect(model, cfg.arch_lr, cfg.arch_weight_decay, cfg.unrolled)
        log, start = [], 0
        state = load_checkpoint(out_dir / STATE, log=_warn)
        if state is not None:
            _check_resume(state, cfg, out_dir / STATE)
            model.load_state_dict(state["model"])
            w_opt.load_state_dict(state["w_opt"])
            architect.optimizer.load_state_dict(state["a_opt"])
            log, start = json.loads(state["log"]), int(state["epoch"])
        epochs = range(start, cfg.epochs)
        if progress:
            from tqdm.auto import tqdm
            epochs = tqdm(epochs, desc=f"search {cfg.head} C{cfg.C}L{cfg.layers}", initial=start,
                          total=cfg.epochs)
        for epoch in epochs:
            t0 = time.perf_counter()
            record = {"epoch": epoch, **_epoch(model, architect, w_opt, cfg, epoch, x_tr, y_tr, x_val, y_val)}
            record["time_s"] = round(time.perf_counter() - t0, 3)
            record.update(_arch_record(model, cfg))
            log.append(record)
            model.genotype(cfg.max_skip).save(out_dir / GENOTYPE)
            atomic_write_json(out_dir / LOG, {"config": cfg.to_dict(), "n_train": len(x_tr),
                                              "n_val": len(x_val), "epochs": log})
            atomic_torch_save(out_dir / STATE, {
                "epoch": epoch + 1, "model": model.state_dict(), "w_opt": w_opt.state_dict(),
                "a_opt": architect.optimizer.state_dict(), "log": json.dumps(log),
                "config": json.dumps(cfg.to_dict())})
            if progress:
                epochs.set_postfix(val_acc=f"{record['val_acc']:.3f}", free=record["param_free_ops"])
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
        genotype = model.genotype(cfg.max_skip)
        genotype.save(out_dir / GENOTYPE)
    finally:
        torch.set_num_threads(old_threads)
    return genotype
