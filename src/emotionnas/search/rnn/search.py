"""Run the recurrent-cell search: first-order DARTS on the supernet, resumable.

EmotionNAS (Sun et al., Interspeech 2023, Sec. 2.2) searches the deep branch's
recurrent cell on the emotion data. Network weights are trained on the training
tensors, architecture weights (alpha, beta, gamma) on the validation tensors
(first-order DARTS, Liu et al. 2019). This module gives the shared loop
(search/loop.py: epochs, α / weight steps, record, ``search_log.json`` and
``search_state.pt``, resume, the last-epoch rule) what is the recurrent search's own:
the supernet with its Adam, class weights, the padded-sequence batches and the derived
recipe (``recipe.json``). The function only ever sees the tensors it is given; the
caller builds them from a fold, so test speakers cannot reach the search.

    recipe = search_rnn(x_tr, len_tr, y_tr, x_val, len_val, y_val, RNNSearchConfig(), "runs/rnn0")
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from emotionnas.config import RNNSearchConfig
from emotionnas.errors import ConfigError
from emotionnas.features.inputs import pool_frames
from emotionnas.search.architect import Architect
from emotionnas.search.loop import Plan, Supernet, run_search
from emotionnas.search.rnn.supernet import SearchModel
from emotionnas.space.recipe import save_recipe
from emotionnas.utils.seed import seed_everything

RECIPE = "recipe.json"
_RESUME_FREE = frozenset({"epochs"})  # a resumed search may run longer (constant lr)


def _check_tensors(x, lengths, y, name: str):
    if not (torch.is_tensor(x) and torch.is_tensor(lengths) and torch.is_tensor(y)):
        raise ConfigError(f"search_rnn: {name} inputs must be torch tensors")
    if x.dim() not in (3, 4):
        raise ConfigError(f"search_rnn: x_{name} must be (N, L+1, T, D) or (N, T, D), got {tuple(x.shape)}")
    if not (len(x) == len(lengths) == len(y)) or len(x) < 2:
        raise ConfigError(f"search_rnn: {name} x/lengths/labels sizes differ or hold < 2 samples "
                          f"({len(x)}, {len(lengths)}, {len(y)})")
    T = x.shape[-2]
    if int(lengths.min()) < 1 or int(lengths.max()) > T:
        raise ConfigError(f"search_rnn: {name} lengths must be in [1, {T}]")


def _prepool(x, lengths, factor: int, chunk: int = 64):
    """Pool frames once up front (memory and time); float32 result."""
    xs, ls = zip(*(pool_frames(x[s:s + chunk].float(), lengths[s:s + chunk].long(), factor)
                   for s in range(0, len(x), chunk)))
    return torch.cat(xs), torch.cat(ls)


def _arch_weights(model: SearchModel) -> dict:
    aw = {k: v.detach().tolist() for k, v in model.cell.arch_weights().items()}
    if model.mix is not None:
        aw["layers"] = model.mix.weights().detach().tolist()
    return aw


def _supernet(cfg: RNNSearchConfig, tr: tuple, va: tuple) -> Supernet:
    (xt, lt, y_tr), (xv, lv, y_val) = tr, va
    n_classes = int(max(int(y_tr.max()), int(y_val.max())) + 1)
    model = SearchModel(xt.shape[-1], cfg.hidden, n_classes, cfg.n_nodes, cfg.n_states,
                        n_layers_in=xt.shape[1] if xt.dim() == 4 else None,
                        layer_mode=cfg.layer_mode, frame_pool=1, dropout=cfg.dropout)
    counts = torch.bincount(y_tr, minlength=n_classes).float()
    loss_w = (counts.sum() / (n_classes * counts.clamp_min(1))) if cfg.class_weighted else None
    w_opt = torch.optim.Adam(model.weight_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    architect = Architect(model, cfg.arch_lr, cfg.arch_weight_decay, unrolled=False, loss_weight=loss_w)
    splits = {"train": tr, "val": va}

    def batch(split, idx):
        x, lengths, y = splits[split]
        lb = lengths[idx]
        return (x[idx][..., :int(lb.max()), :], lb), y[idx]

    return Supernet(model, w_opt, architect, batch, len(y_tr), len(y_val), n_classes,
                    derive=model.cell.derive, arch_weights=lambda: _arch_weights(model),
                    schedule=lambda epoch: (cfg.lr, 0.0), grad_clip=cfg.grad_clip, loss_weight=loss_w)


def search_rnn(x_tr, len_tr, y_tr, x_val, len_val, y_val, cfg: RNNSearchConfig, out_dir,
               seed: int = 0, progress: bool = True,
               on_epoch_end: Callable[[int, dict], None] | None = None) -> dict:
    """Search a recurrent cell; return the recipe derived after the last epoch (search/loop.py),
    also written to out_dir/recipe.json.

    x: (N, L+1, T, D) or (N, T, D) float (float16 accepted), zero-padded; lengths (N,)
    int64; y (N,) int64. Writes search_log.json and search_state.pt (each epoch, atomic) and
    resumes from search_state.pt when present; ``on_epoch_end(done, record)`` runs after each
    epoch's checkpoint.
    """
    for name, (x, l, y) in {"tr": (x_tr, len_tr, y_tr), "val": (x_val, len_val, y_val)}.items():
        _check_tensors(x, l, y, name)
    if x_tr.shape[1:] != x_val.shape[1:] and (x_tr.dim() != x_val.dim() or x_tr.shape[-1] != x_val.shape[-1]
                                               or (x_tr.dim() == 4 and x_tr.shape[1] != x_val.shape[1])):
        raise ConfigError(f"search_rnn: train {tuple(x_tr.shape)} and val {tuple(x_val.shape)} features differ")
    seed_everything(seed)
    net = _supernet(cfg, (*_prepool(x_tr, len_tr, 1), y_tr.long()), (*_prepool(x_val, len_val, 1), y_val.long()))
    plan = Plan(cfg.epochs, cfg.warmup_epochs, cfg.batch_size, seed, {**asdict(cfg), "seed": seed},
                _RESUME_FREE, name="rnn search")
    recipe = run_search(net, plan, out_dir, progress, on_epoch_end)
    save_recipe(recipe, Path(out_dir) / RECIPE)
    return recipe
