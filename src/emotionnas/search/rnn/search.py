"""Run the recurrent-cell search: first-order DARTS on the supernet, resumable.

EmotionNAS (Sun et al., Interspeech 2023, Sec. 2.2) searches the deep branch's
recurrent cell on the emotion data. Here: network weights are trained on the
training tensors, architecture weights (alpha, beta, gamma) on the validation
tensors (first-order DARTS, Liu et al. 2019), and the recipe returned is the
one derived at the epoch with the lowest validation loss. The function only
ever sees the tensors it is given; the caller builds them from a fold, so test
speakers cannot reach the search.

    recipe = search_rnn(x_tr, len_tr, y_tr, x_val, len_val, y_val, RNNSearchConfig(), "runs/rnn0")
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emotionnas.config import RNNSearchConfig
from emotionnas.errors import ConfigError
from emotionnas.features.inputs import pool_frames
from emotionnas.space.recipe import save_recipe
from emotionnas.search.rnn.supernet import SearchModel
from emotionnas.utils.io import atomic_torch_save, atomic_write_json, load_checkpoint, read_json
from emotionnas.utils.seed import seed_everything


_EXTENDABLE = {"epochs"}  # fields a resumed search may change


def _check_tensors(x, lengths, y, name: str):
    if not (torch.is_tensor(x) and torch.is_tensor(lengths) and torch.is_tensor(y)):
        raise ConfigError(f"search_rnn: {name} inputs must be torch tensors")
    if x.dim() not in (3, 4):
        raise ConfigError(f"search_rnn: x_{name} must be (N, L+1, T, D) or (N, T, D), got {tuple(x.shape)}")
    if not (len(x) == len(lengths) == len(y)) or len(x) == 0:
        raise ConfigError(f"search_rnn: {name} x/lengths/labels sizes differ or are empty "
                          f"({len(x)}, {len(lengths)}, {len(y)})")
    T = x.shape[-2]
    if int(lengths.min()) < 1 or int(lengths.max()) > T:
        raise ConfigError(f"search_rnn: {name} lengths must be in [1, {T}]")


def _prepool(x, lengths, factor: int, chunk: int = 64):
    """Pool frames once up front (memory and time); float32 result."""
    xs, ls = zip(*(pool_frames(x[s:s + chunk].float(), lengths[s:s + chunk].long(), factor)
                   for s in range(0, len(x), chunk)))
    return torch.cat(xs), torch.cat(ls)


def _batch(x, lengths, idx):
    lb = lengths[idx]
    t = int(lb.max())
    return x[idx][..., :t, :], lb


def _evaluate(model, x, lengths, y, bs, loss_w):
    model.eval()
    losses, preds = [], []
    with torch.no_grad():
        for s in range(0, len(y), bs):
            idx = torch.arange(s, min(s + bs, len(y)))
            xb, lb = _batch(x, lengths, idx)
            logits = model(xb, lb)
            losses.append(F.cross_entropy(logits, y[idx], weight=loss_w, reduction="sum").item())
            preds.append(logits.argmax(1))
    p = torch.cat(preds).numpy()
    yt = y.numpy()
    present = np.unique(yt)
    ua = float(np.mean([np.mean(p[yt == c] == c) for c in present]) * 100)
    return sum(losses) / len(y), float(np.mean(p == yt) * 100), ua


def search_rnn(x_tr, len_tr, y_tr, x_val, len_val, y_val, cfg: RNNSearchConfig, out_dir,
               seed: int = 0, progress: bool = True) -> dict:
    """Search a recurrent cell; return its recipe (also written to out_dir/recipe.json).

    x: (N, L+1, T, D) or (N, T, D) float (float16 accepted), zero-padded; lengths (N,)
    int64; y (N,) int64. Writes recipe.json, search_log.json, checkpoint.pt (each
    epoch, atomic) and recipe.png/svg. Resumes from checkpoint.pt when present.
    """
    for name, (x, l, y) in {"tr": (x_tr, len_tr, y_tr), "val": (x_val, len_val, y_val)}.items():
        _check_tensors(x, l, y, name)
    if x_tr.shape[1:] != x_val.shape[1:] and (x_tr.dim() != x_val.dim() or x_tr.shape[-1] != x_val.shape[-1]
                                               or (x_tr.dim() == 4 and x_tr.shape[1] != x_val.shape[1])):
        raise ConfigError(f"search_rnn: train {tuple(x_tr.shape)} and val {tuple(x_val.shape)} features differ")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    seed_everything(seed)
    n_classes = int(max(int(y_tr.max()), int(y_val.max())) + 1)
    y_tr, y_val = y_tr.long(), y_val.long()
    xt, lt = _prepool(x_tr, len_tr, 1)
    xv, lv = _prepool(x_val, len_val, 1)
    model = SearchModel(xt.shape[-1], cfg.hidden, n_classes, cfg.n_nodes, cfg.n_states,
                        n_layers_in=xt.shape[1] if xt.dim() == 4 else None,
                        layer_mode=cfg.layer_mode, frame_pool=1, dropout=cfg.dropout)
    opt_w = torch.optim.Adam(model.weight_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_a = torch.optim.Adam(model.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999),
                             weight_decay=cfg.arch_weight_decay)
    counts = torch.bincount(y_tr, minlength=n_classes).float()
    loss_w = (counts.sum() / (n_classes * counts.clamp_min(1))) if cfg.class_weighted else None

    log = {"config": {**asdict(cfg), "seed": seed}, "n_train": len(y_tr), "n_val": len(y_val), "epochs": [],
           "best_epoch": None}
    start, best = 0, {"val_loss": float("inf"), "recipe": None}
    ck = load_checkpoint(ckpt_path, log=lambda m: print(m, file=sys.stderr))
    if ck is not None:
        old = ck["config"]
        now = {**asdict(cfg), "seed": seed}
        diff = [k for k in now if k not in _EXTENDABLE and old.get(k) != now[k]]
        if diff:
            raise ConfigError(f"{ckpt_path}: checkpoint was made with a different config ({', '.join(diff)}); "
                              "use a new out_dir")
        model.load_state_dict(ck["model"])
        opt_w.load_state_dict(ck["opt_w"])
        opt_a.load_state_dict(ck["opt_a"])
        torch.set_rng_state(ck["rng"])
        start, best, log = ck["epoch"], ck["best"], ck["log"]
        log["config"] = now

    epochs = range(start, cfg.epochs)
    if progress:
        from tqdm import tqdm
        epochs = tqdm(epochs, desc="rnn search", initial=start, total=cfg.epochs)
    for epoch in epochs:
        t0 = time.time()
        model.train()
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        perm = torch.randperm(len(y_tr), generator=g)
        vperm = torch.randperm(len(y_val), generator=g)
        search_arch = epoch >= cfg.warmup_epochs
        tr_loss, tr_correct, vi = 0.0, 0, 0
        for s in range(0, len(perm), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            if search_arch:  # first-order DARTS: arch step on a validation batch
                vidx = vperm[vi:vi + cfg.batch_size]
                vi = vi + cfg.batch_size if vi + 2 * cfg.batch_size <= len(vperm) else 0
                xb, lb = _batch(xv, lv, vidx)
                opt_a.zero_grad()
                F.cross_entropy(model(xb, lb), y_val[vidx], weight=loss_w).backward()
                opt_a.step()
            xb, lb = _batch(xt, lt, idx)
            opt_w.zero_grad()
            logits = model(xb, lb)
            loss = F.cross_entropy(logits, y_tr[idx], weight=loss_w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.weight_parameters(), cfg.grad_clip)
            opt_w.step()
            tr_loss += loss.item() * len(idx)
            tr_correct += int((logits.argmax(1) == y_tr[idx]).sum())
        v_loss, v_acc, v_ua = _evaluate(model, xv, lv, y_val, 2 * cfg.batch_size, loss_w)
        recipe = model.cell.derive()
        aw = {k: v.detach().tolist() for k, v in model.cell.arch_weights().items()}
        if model.mix is not None:
            aw["layers"] = model.mix.weights().detach().tolist()
        entry = {"epoch": epoch + 1, "train_loss": tr_loss / len(y_tr), "train_acc": 100 * tr_correct / len(y_tr),
                 "val_loss": v_loss, "val_acc": v_acc, "val_ua": v_ua, "arch_search": search_arch,
                 "arch_weights": aw, "recipe": recipe, "time_s": time.time() - t0}
        log["epochs"].append(entry)
        # only epochs that searched the architecture may be selected
        if search_arch and v_loss < best["val_loss"]:
            best = {"val_loss": v_loss, "recipe": recipe, "epoch": epoch + 1}
            log["best_epoch"] = epoch + 1
            save_recipe(recipe, out / "recipe.json")
        atomic_write_json(out / "search_log.json", log)
        atomic_torch_save(ckpt_path, {"epoch": epoch + 1, "config": {**asdict(cfg), "seed": seed}, "model": model.state_dict(),
                                      "opt_w": opt_w.state_dict(), "opt_a": opt_a.state_dict(),
                                      "rng": torch.get_rng_state(), "best": best, "log": log})
    if best["recipe"] is None:  # nothing searched (e.g. epochs <= warmup): derive what there is
        best = {"val_loss": float("nan"), "recipe": model.cell.derive(), "epoch": cfg.epochs}
        save_recipe(best["recipe"], out / "recipe.json")
    return best["recipe"]
