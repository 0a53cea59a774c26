"""The one loop of both cell searches: the DARTS CNN cell (search/cnn) and the NAS-Bench-NLP
recurrent cell (search/rnn). A search hands the loop a :class:`Supernet` (its network and
weight optimizer, its α step, its batches, its derive function) and a :class:`Plan`
(epochs, warm-up, batch size, seed, config); the loop does the rest::

    for epoch in range(start, epochs):
        set the weight lr (and the α regulariser λ) from the search's schedule
        for each training batch (shuffled by a generator seeded from seed and epoch):
            α step on the next validation batch       (DARTS Alg. 1; not in warm-up epochs)
            weight step on the training batch          (α frozen, gradients clipped)
        evaluate on the validation split (loss, UA and WA via emotionnas.metrics)
        record the epoch, derived cell included; write search_log.json and search_state.pt
    the result = the cell derived from the state after the last epoch

Which epoch's cell is the result: **the last epoch's**, for both searches. Why not the epoch
with the best validation score: (1) the validation split is the one α is trained on, so a
"best" epoch would be a second selection on the same speakers, and with a handful of
α-split speakers the per-epoch UA is noise — its argmax picks noise; (2) the score is the
*supernet's* (a softmax mixture of every op, shared weights), which says little about the
discrete cell derived from it, and the cell is retrained from scratch anyway; (3) DARTS,
PC-DARTS and emoDARTS derive at the end of the search, and the epoch budget (with the
warm-up and, for the CNN, the skip guard and β-decay) is the knob against collapse; (4) the
result is a function of the state alone, so a resumed search, or one extended to more
epochs where the config allows it, gives what an uninterrupted one gives. With
``epochs == 0`` the cell is derived from the untrained supernet.

Record (one per finished epoch, in ``search_log.json["epochs"]``, the same keys for both):
``epoch`` (1-based: the cell after that many epochs), ``alpha_step``, ``lr``, ``reg_lambda``,
``train_loss``, ``train_wa``, ``alpha_loss`` (mean validation loss of the α steps, null in
warm-up), ``val_loss``, ``val_ua``, ``val_wa`` (percent), ``time_s``, ``arch`` (the space's
softmaxed architecture weights) and ``cell`` (the derived cell as plain data: a genotype or
a recipe). The log also holds ``format``, ``rule``, ``config``, ``n_train``, ``n_val`` and
``result_epoch``.

Checkpoint ``search_state.pt`` (atomic, after every epoch): format, epoch, config (JSON),
model, w_opt, a_opt, torch RNG state, log (JSON). It loads with ``weights_only=True``; an
unreadable (truncated, corrupt) file is reported and the search starts over; a readable one
from another format, another config (except the search's ``resume_free`` fields) or with
more epochs than asked is refused with a one-line ConfigError.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from emotionnas.errors import ConfigError
from emotionnas.metrics import unweighted_accuracy, weighted_accuracy
from emotionnas.search.architect import Architect, only_grad_for
from emotionnas.utils.io import atomic_torch_save, atomic_write_json, load_checkpoint

STATE, LOG = "search_state.pt", "search_log.json"
FORMAT = 1
RULE = "last epoch"
_STATE_KEYS = ("format", "epoch", "config", "model", "w_opt", "a_opt", "rng", "log")
RECORD_KEYS = ("epoch", "alpha_step", "lr", "reg_lambda", "train_loss", "train_wa", "alpha_loss",
               "val_loss", "val_ua", "val_wa", "time_s", "arch", "cell")
LOG_KEYS = ("format", "rule", "config", "n_train", "n_val", "result_epoch", "epochs")


@dataclass
class Supernet:
    """What one search gives the loop.

    ``batch(split, idx) -> (inputs, y)`` with split ``"train"`` or ``"val"``: the model is
    called as ``model(*inputs)``. ``derive()`` is the current cell as plain data (JSON);
    ``arch_weights()`` the softmaxed architecture weights for the record. ``schedule(epoch)
    -> (weight lr, α regulariser λ)``."""
    model: torch.nn.Module
    w_opt: torch.optim.Optimizer
    architect: Architect
    batch: Callable[[str, torch.Tensor], tuple[tuple, torch.Tensor]]
    n_train: int
    n_val: int
    n_classes: int
    derive: Callable[[], dict]
    arch_weights: Callable[[], dict]
    schedule: Callable[[int], tuple[float, float]]
    grad_clip: float
    loss_weight: torch.Tensor | None = None


@dataclass(frozen=True)
class Plan:
    epochs: int
    warmup_epochs: int
    batch_size: int
    seed: int
    config: dict                         # what the checkpoint must match on resume
    resume_free: frozenset = frozenset()  # config keys a resumed search may change
    name: str = "search"                  # progress bar label


def shuffled_batches(n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Shuffled index batches from a generator seeded per epoch (a resumed run repeats them);
    a last batch of one sample is dropped (BatchNorm needs two)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) > 1]


def weight_step(model, w_opt, inputs: tuple, y, grad_clip: float, loss_weight=None):
    """One step of the network weights on a training batch; α is frozen (no gradient)."""
    weights = model.weight_parameters()
    w_opt.zero_grad(set_to_none=True)
    with only_grad_for(weights, model.parameters()):
        logits = model(*inputs)
        loss = F.cross_entropy(logits, y, weight=loss_weight)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(weights, grad_clip)
    w_opt.step()
    return logits.detach(), loss.item()


@torch.no_grad()
def evaluate(net: Supernet, batch_size: int) -> dict:
    """Loss, UA and WA (percent) of the supernet on the whole validation split, in order."""
    net.model.eval()
    loss, preds, labels = 0.0, [], []
    for s in range(0, net.n_val, batch_size):
        inputs, y = net.batch("val", torch.arange(s, min(s + batch_size, net.n_val)))
        logits = net.model(*inputs)
        loss += F.cross_entropy(logits, y, weight=net.loss_weight, reduction="sum").item()
        preds.append(logits.argmax(1))
        labels.append(y)
    net.model.train()
    p, y = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    return {"val_loss": loss / net.n_val, "val_ua": unweighted_accuracy(y, p, net.n_classes),
            "val_wa": weighted_accuracy(y, p)}


def _train_epoch(net: Supernet, plan: Plan, epoch: int) -> dict:
    lr, reg = net.schedule(epoch)
    for g in net.w_opt.param_groups:
        g["lr"] = lr
    search_alpha = epoch >= plan.warmup_epochs
    base = plan.seed * 7919 + 2 * epoch
    val_batches = shuffled_batches(net.n_val, plan.batch_size, base + 1)
    loss_sum, correct, n, alpha_losses = 0.0, 0, 0, []
    net.model.train()
    for step, idx in enumerate(shuffled_batches(net.n_train, plan.batch_size, base)):
        train, y = net.batch("train", idx)
        if search_alpha:  # α on the held-out split only (bi-level, DARTS Eq. 3-4)
            val, y_val = net.batch("val", val_batches[step % len(val_batches)])
            wd = net.w_opt.param_groups[0].get("weight_decay", 0.0)
            alpha_losses.append(net.architect.step(val, y_val, train, y, lr, wd, reg))
        logits, loss = weight_step(net.model, net.w_opt, train, y, net.grad_clip, net.loss_weight)
        loss_sum += loss * len(idx)
        correct += int((logits.argmax(1) == y).sum())
        n += len(idx)
    return {"alpha_step": search_alpha, "lr": lr, "reg_lambda": reg, "train_loss": loss_sum / n,
            "train_wa": 100.0 * correct / n,
            "alpha_loss": float(np.mean(alpha_losses)) if alpha_losses else None}


def run_epoch(net: Supernet, plan: Plan, epoch: int) -> dict:
    """Train epoch ``epoch`` (0-based) and return its record."""
    t0 = time.perf_counter()
    record = {"epoch": epoch + 1, **_train_epoch(net, plan, epoch), **evaluate(net, 2 * plan.batch_size)}
    record["time_s"] = round(time.perf_counter() - t0, 3)
    record["arch"] = net.arch_weights()
    record["cell"] = net.derive()
    return record


def _canonical(config: dict) -> dict:
    return json.loads(json.dumps(config))


def _refuse(path: Path, why: str):
    raise ConfigError(f"{path}: {why}; use a new out_dir to search with a different config")


def load_state(path: Path, net: Supernet, plan: Plan) -> list[dict]:
    """Restore ``net`` from the checkpoint at ``path``; returns the log so far ([] = fresh)."""
    state = load_checkpoint(path, log=lambda m: print(m, file=sys.stderr))
    if state is None:
        return []
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in _STATE_KEYS):
        _refuse(path, f"not a search state of format {FORMAT}")
    saved, now = json.loads(state["config"]), _canonical(plan.config)
    diff = [k for k in sorted(set(now) | set(saved)) if k not in plan.resume_free and saved.get(k) != now.get(k)]
    if diff:
        k = diff[0]
        _refuse(path, f"written with a different config ({k}={saved.get(k)!r}, now {now.get(k)!r})")
    if int(state["epoch"]) > plan.epochs:
        _refuse(path, f"holds {int(state['epoch'])} epochs, more than the {plan.epochs} asked for")
    net.model.load_state_dict(state["model"])
    net.w_opt.load_state_dict(state["w_opt"])
    net.architect.optimizer.load_state_dict(state["a_opt"])
    torch.set_rng_state(state["rng"])
    return json.loads(state["log"])


def _write(out_dir: Path, net: Supernet, plan: Plan, log: list[dict]) -> None:
    atomic_write_json(out_dir / LOG, {
        "format": FORMAT, "rule": RULE, "config": _canonical(plan.config), "n_train": net.n_train,
        "n_val": net.n_val, "result_epoch": len(log), "epochs": log})
    atomic_torch_save(out_dir / STATE, {
        "format": FORMAT, "epoch": len(log), "config": json.dumps(_canonical(plan.config)),
        "model": net.model.state_dict(), "w_opt": net.w_opt.state_dict(),
        "a_opt": net.architect.optimizer.state_dict(), "rng": torch.get_rng_state(),
        "log": json.dumps(log)})


def run_search(net: Supernet, plan: Plan, out_dir, progress: bool = True,
               on_epoch_end: Callable[[int, dict], None] | None = None) -> dict:
    """Run (or resume) the search in ``out_dir``; returns the last epoch's cell (plain data).

    ``on_epoch_end(done, record)`` runs after each epoch's checkpoint, ``done`` = the epochs
    finished so far (= ``record["epoch"]``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if net.n_train < 2 or net.n_val < 2:
        raise ConfigError(f"{plan.name}: need >= 2 samples in the train and the validation split")
    log = load_state(out_dir / STATE, net, plan)
    epochs = range(len(log), plan.epochs)
    if progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, desc=plan.name, initial=len(log), total=plan.epochs)
    for epoch in epochs:
        record = run_epoch(net, plan, epoch)
        log.append(record)
        _write(out_dir, net, plan, log)
        if progress:
            epochs.set_postfix(val_ua=f"{record['val_ua']:.1f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)
    if not log:  # epochs == 0: nothing trained, still a log saying so
        _write(out_dir, net, plan, log)
    return net.derive()
