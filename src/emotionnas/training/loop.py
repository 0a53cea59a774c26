"""One training loop for every model: a fixed cosine schedule, no early stopping.

The epoch a model is used at is chosen by inner cross-validation (training/selection.py),
never by one validation speaker: `train_model` records the validation predictions of every
epoch, and a refit on all training speakers stops at the chosen epoch of the same schedule.

A *split* has ``labels`` (int64 numpy array), ``__len__`` and ``batch(indices) -> tuple of
model inputs``; the model is called as ``model(*split.batch(idx))`` and returns logits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from emotionnas.config import TrainConfig
from emotionnas.metrics import unweighted_accuracy


def sequence_positions(inputs) -> list[int]:
    """Positions i of padded sequence inputs (deep (B, L, T, D) or (B, T, D)) whose next input is
    their lengths (B,) int64 — the (x, lengths) pairs of a model's call."""
    return [i for i in range(len(inputs) - 1)
            if inputs[i].dim() >= 3 and inputs[i + 1].dim() == 1 and inputs[i + 1].dtype == torch.long]


class ArraySplit:
    """In-memory tensors: inputs is a tuple of tensors indexed along dim 0. Padded sequence
    batches are trimmed to their longest member (lengths are the tensor after a 3-D/4-D one)."""

    def __init__(self, inputs: tuple, labels):
        self.inputs = tuple(inputs)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx):
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        out = [t[idx] for t in self.inputs]
        for i in sequence_positions(out):
            out[i] = out[i][..., :int(out[i + 1].max()), :]
        return tuple(out)

    def lengths(self) -> np.ndarray | None:
        """Sequence lengths when the split holds a padded sequence input, else None."""
        seq = sequence_positions(self.inputs)
        return self.inputs[seq[0] + 1].numpy() if seq else None


@dataclass
class TrainResult:
    epochs: int
    seconds: float
    history: list = field(default_factory=list)          # per epoch: train_loss (and val_ua)
    val_probs: list = field(default_factory=list)        # per epoch: (n_val, n_classes) float32
    outside_probs: list = field(default_factory=list)    # per epoch: (n_outside, n_classes), never scored here


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


def augment(inputs: tuple, cfg: TrainConfig, gen: torch.Generator) -> tuple:
    """SpecAugment-style masking of a training batch: spectrograms (B, 1, F, T) lose one time span
    and one frequency span; deep features (B, L, T, D) with lengths lose random frames. Draws
    come from `gen`, so a seeded run masks the same way every time."""
    if not (cfg.time_mask or cfg.freq_mask):
        return inputs
    out = list(inputs)
    seq = set(sequence_positions(out))
    for i, x in enumerate(out):
        if x.dim() == 4 and x.shape[1] == 1 and i not in seq:  # spectrogram
            x = x.clone()
            b, _, f, t = x.shape
            for axis, frac, size in ((3, cfg.time_mask, t), (2, cfg.freq_mask, f)):
                w = int(round(frac * size))
                if w < 1:
                    continue
                starts = torch.randint(0, size - w + 1, (b,), generator=gen)
                idx = torch.arange(size)
                m = (idx[None, :] >= starts[:, None]) & (idx[None, :] < starts[:, None] + w)  # (B, size)
                shape = (b, 1, 1, size) if axis == 3 else (b, 1, size, 1)
                x = x.masked_fill(m.view(shape), 0.0)
            out[i] = x
        elif i in seq and cfg.time_mask:  # deep + lengths
            t = x.shape[-2]
            keep = torch.rand(x.shape[0], t, generator=gen) >= cfg.time_mask
            shape = (x.shape[0],) + (1,) * (x.dim() - 3) + (t, 1)
            out[i] = x * keep.view(shape).to(x.dtype)
    return tuple(out)


def mixup(inputs: tuple, alpha: float, gen: torch.Generator) -> tuple[tuple, torch.Tensor, float]:
    """Mixup of a training batch: every input is lam * x + (1 - lam) * x[perm] (padded sequences
    keep the longer of the two lengths), lam ~ Beta(alpha, alpha) drawn from `gen`.
    -> (mixed inputs, perm, lam); the caller mixes the loss with the same perm and lam."""
    b = len(inputs[0])
    perm = torch.randperm(b, generator=gen)
    lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen))).beta(alpha, alpha))
    lengths_at = {i + 1 for i in sequence_positions(inputs)}
    out = tuple(torch.maximum(x, x[perm]) if i in lengths_at else lam * x + (1.0 - lam) * x[perm]
                for i, x in enumerate(inputs))
    return out, perm, lam


def balanced_batches(labels: np.ndarray, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
    """An epoch of class-balanced batches: as many draws as utterances, each class drawn equally
    often (with replacement within a class)."""
    classes = np.unique(labels)
    per = -(-len(labels) // len(classes))
    picks = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        picks.append(idx[torch.randint(0, len(idx), (per,), generator=gen).numpy()])
    order = np.concatenate(picks)[torch.randperm(per * len(classes), generator=gen).numpy()][: len(labels)]
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def batches(n: int, batch_size: int, gen: torch.Generator, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """Shuffled batches. With sequence `lengths`, "sortish": the shuffled order is cut into
    chunks of 8 batches, each chunk sorted by length before it is split, and the batches are
    shuffled again — batches of similar length waste little time on padding."""
    perm = torch.randperm(n, generator=gen).numpy()
    if lengths is None:
        return [perm[s:s + batch_size] for s in range(0, n, batch_size)]
    chunk = 8 * batch_size
    out = []
    for s in range(0, n, chunk):
        part = perm[s:s + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        out += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    order = torch.randperm(len(out), generator=gen).numpy()
    return [out[i] for i in order]


@torch.no_grad()
def predict_proba(model: nn.Module, split, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, C) in the split's order (computed in length order: less padding)."""
    was_training = model.training
    model.eval()
    lengths = split.lengths() if hasattr(split, "lengths") else None
    order = np.arange(len(split)) if lengths is None else np.argsort(-lengths, kind="stable")
    parts = []
    for start in range(0, len(split), batch_size):
        idx = order[start:start + batch_size]
        parts.append(torch.softmax(model(*split.batch(idx)), dim=-1).numpy())
    model.train(was_training)
    probs = np.concatenate(parts).astype(np.float32)
    out = np.empty_like(probs)
    out[order] = probs
    return out


def param_groups(model: nn.Module, lr: float):
    """What AdamW updates: every parameter at `lr`, except those a module says came pretrained
    (its `pretrained_parameters()`, e.g. models/tune.py's encoder blocks), which learn at `lr`
    x its `PRETRAINED_LR`, and frozen ones (left out). A model without such a module gets
    `model.parameters()`, as before."""
    tuned = [m for m in model.modules() if hasattr(m, "pretrained_parameters")]
    if not tuned:
        return model.parameters()
    scale = {id(p): m.PRETRAINED_LR for m in tuned for p in m.pretrained_parameters()}
    groups: dict[float, list] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault(scale.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr": lr * s} for s, ps in groups.items()]


def train_model(model: nn.Module, train, cfg: TrainConfig, n_classes: int, *, seed: int,
                schedule_epochs: int | None = None, stop_after: int | None = None, lr: float | None = None,
                val=None, outside=None, progress: bool = False) -> TrainResult:
    """AdamW with a cosine schedule over `schedule_epochs` (default cfg.epochs), trained for
    `stop_after` epochs (default: all). With `val`, its class probabilities are recorded after
    every epoch (they choose the epoch; they never move weights); with `outside` (speakers the
    selection never sees: the held-out folds' test speakers), its probabilities too, recorded and
    never scored here (the bagged fold models' test predictions). `seed` fixes batch order and
    dropout: callers pass their task's seed, derived from the run seed."""
    from tqdm import tqdm

    total = int(schedule_epochs or cfg.epochs)
    stop = min(int(stop_after or total), total)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    opt = torch.optim.AdamW(param_groups(model, lr or cfg.lr), lr=lr or cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    weight = class_weights(train.labels, n_classes) if cfg.class_weighted else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    y_all = torch.as_tensor(train.labels)
    lengths = train.lengths() if hasattr(train, "lengths") else None
    _adapt_batchnorm_momentum(model, n_batches=max(1, len(train) // cfg.batch_size))
    result = TrainResult(stop, 0.0)
    t0 = time.perf_counter()
    for epoch in tqdm(range(1, stop + 1), desc="train", disable=not progress, unit="epoch"):
        model.train()
        run_loss, n = 0.0, 0
        epoch_batches = (balanced_batches(train.labels, cfg.batch_size, gen) if cfg.balanced_batches
                         else batches(len(train), cfg.batch_size, gen, lengths))
        for idx in epoch_batches:
            if len(idx) < 2 and len(train) > 2:
                continue  # a batch of one breaks batch norm; it is reshuffled next epoch
            inputs, y = augment(train.batch(idx), cfg, gen), y_all[idx]
            if cfg.mixup:
                inputs, perm, lam = mixup(inputs, cfg.mixup, gen)
                logits = model(*inputs)
                loss = lam * loss_fn(logits, y) + (1.0 - lam) * loss_fn(logits, y[perm])
            else:
                loss = loss_fn(model(*inputs), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            run_loss, n = run_loss + loss.item() * len(idx), n + len(idx)
        sched.step()
        record = {"epoch": epoch, "train_loss": run_loss / max(n, 1)}
        if val is not None:
            probs = predict_proba(model, val)
            result.val_probs.append(probs)
            record["val_ua"] = unweighted_accuracy(val.labels, probs.argmax(1), n_classes)
        if outside is not None:  # its own call: the validation predictions are exactly as without it
            result.outside_probs.append(predict_proba(model, outside))
        result.history.append(record)
    result.seconds = time.perf_counter() - t0
    model.eval()
    return result
