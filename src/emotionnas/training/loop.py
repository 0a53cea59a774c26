"""One training loop for every model: early stopping on validation UA.

A *split* is any object with ``labels`` (int64 numpy array), ``__len__`` and
``batch(indices) -> tuple of model inputs``; the model is called as
``model(*split.batch(idx))`` and returns logits (B, n_classes).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from emotionnas.config import TrainConfig
from emotionnas.metrics import unweighted_accuracy, weighted_accuracy


class ArraySplit:
    """In-memory tensors: inputs is a tuple of tensors indexed along dim 0."""

    def __init__(self, inputs: tuple, labels):
        self.inputs = tuple(inputs)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx):
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return tuple(t[idx] for t in self.inputs)


class FeatureSplit:
    """A view of a FeatureSet: `inputs` picks what the model gets, in order.

    "spectrogram" -> (B, 1, F, T); "deep" -> (B, L', T, D), lengths (B,).
    Spectrograms are standardised with `spec_stats` (mean, std) computed on training data.
    """

    def __init__(self, features, indices, inputs=("spectrogram",), layers=None, spec_stats=(0.0, 1.0)):
        self.fs, self.idx = features, np.asarray(indices, dtype=np.int64)
        self.inputs, self.layers, self.spec_stats = tuple(inputs), layers, spec_stats
        self.labels = features.labels[self.idx]

    def __len__(self) -> int:
        return len(self.idx)

    def batch(self, idx):
        rows = self.idx[np.asarray(idx)]
        out = []
        for name in self.inputs:
            if name == "spectrogram":
                m, s = self.spec_stats
                out.append((self.fs.spectrogram_batch(rows) - m) / s)
            elif name == "deep":
                out.extend(self.fs.deep_batch(rows, self.layers))
            else:
                raise ValueError(f"unknown input {name!r}")
        return tuple(out)


@dataclass
class FitResult:
    best_epoch: int
    best_val_ua: float
    seconds: float
    history: list = field(default_factory=list)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _adapt_batchnorm_momentum(model: nn.Module, n_batches: int) -> None:
    """With few batches per epoch (small corpora) the default momentum 0.1 leaves batch-norm
    running statistics near their initial values, and eval-mode predictions collapse to one
    class. Let them track roughly the last two batches instead; large data keeps 0.1."""
    momentum = min(1.0, max(0.1, 2.0 / n_batches))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
            m.momentum = max(m.momentum, momentum)


@torch.no_grad()
def predict_proba(model: nn.Module, split, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        idx = np.arange(start, min(start + batch_size, len(split)))
        out.append(torch.softmax(model(*split.batch(idx)), dim=-1).numpy())
    return np.concatenate(out)


def _validate(model, val, n_classes: int) -> tuple[float, float, float]:
    probs = predict_proba(model, val)
    loss = float(nn.functional.nll_loss(torch.log(torch.tensor(probs) + 1e-9), torch.as_tensor(val.labels)))
    pred = probs.argmax(1)
    return unweighted_accuracy(val.labels, pred, n_classes), weighted_accuracy(val.labels, pred), loss


def fit(model: nn.Module, train, val, cfg: TrainConfig, n_classes: int, *, seed: int, progress: bool = False,
        log=None, keep_initial: bool = False) -> FitResult:
    """Train with AdamW + cosine schedule; keep the weights of the best validation-UA epoch.

    Only `train` moves weights; `val` only picks the epoch (never test data).
    `seed` fixes batch order and dropout: callers pass their stage's seed, derived from
    the run seed (training/stages.py `stage_seed`), so the run seed reaches every fit.
    `keep_initial`: the untrained model is candidate "epoch 0" (for warm-started models).
    """
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    weight = class_weights(train.labels, n_classes) if cfg.class_weighted else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    y_all = torch.as_tensor(train.labels)
    _adapt_batchnorm_momentum(model, n_batches=max(1, len(train) // cfg.batch_size))
    best = (-1.0, float("inf"))
    best_state, best_epoch, history, waited = copy.deepcopy(model.state_dict()), 0, [], 0
    if keep_initial:
        ua, wa, val_loss = _validate(model, val, n_classes)
        best = (ua, val_loss)
        history.append({"epoch": 0, "val_loss": val_loss, "val_ua": ua, "val_wa": wa})  # no training yet
    t0 = time.perf_counter()
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="train", disable=not progress, unit="epoch"):
        model.train()
        perm = torch.randperm(len(train), generator=gen).numpy()
        total, n = 0.0, 0
        for start in range(0, len(perm), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            if len(idx) < 2 and len(perm) > 2:
                continue  # a batch of one breaks batch norm; it is reshuffled next epoch
            loss = loss_fn(model(*train.batch(idx)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        sched.step()
        ua, wa, val_loss = _validate(model, val, n_classes)
        history.append({"epoch": epoch, "train_loss": total / max(n, 1), "val_loss": val_loss,
                        "val_ua": ua, "val_wa": wa})
        if log:
            log(history[-1])
        if (ua, -val_loss) > (best[0], -best[1]):
            best, best_epoch, waited = (ua, val_loss), epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    model.load_state_dict(best_state)
    return FitResult(best_epoch, best[0], time.perf_counter() - t0, history)
