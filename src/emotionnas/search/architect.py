"""The bi-level DARTS update of the architecture parameters (Liu et al. 2019, Sec. 2.3),
shared by both cell searches (search/loop.py calls it; the supernets only provide
``arch_parameters()`` / ``weight_parameters()`` and ``forward(*inputs)``).

α (and PC-DARTS β) are updated on a *validation* batch, the network weights on a
*training* batch, alternately. First order: ∇_α L_val(w, α). Second order
(``unrolled=True``): ∇_α L_val(w', α) with w' = w − ξ ∇_w L_train(w, α), whose
Hessian-vector term is a finite difference (DARTS Eq. 7-8).

Collapse guard (optional): a ``regulariser(model) -> scalar`` (the CNN search passes
β-DARTS "beta-decay", Ye et al. 2022) is added to the α loss times ``reg_lambda``.
The optimizer is DARTS's: Adam with β1 = 0.5.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call


@contextmanager
def only_grad_for(params, all_params):
    """Temporarily turn off requires_grad outside ``params``: backward skips the weight
    gradients of every conv in the α step (about a third of its cost on CPU)."""
    keep = {id(p) for p in params}
    frozen = [p for p in all_params if id(p) not in keep and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


class Architect:
    def __init__(self, model, arch_lr: float, arch_weight_decay: float, unrolled: bool = False,
                 loss_weight: torch.Tensor | None = None,
                 regulariser: Callable[[torch.nn.Module], torch.Tensor] | None = None):
        self.model = model
        self.unrolled = unrolled
        self.loss_weight = loss_weight
        self.regulariser = regulariser
        self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=arch_lr, betas=(0.5, 0.999),
                                          weight_decay=arch_weight_decay)

    def _loss(self, inputs: tuple, y, params=None):
        logits = self.model(*inputs) if params is None else functional_call(self.model, params, inputs)
        return F.cross_entropy(logits, y, weight=self.loss_weight)

    def _val_loss(self, inputs, y, reg_lambda: float, params=None):
        loss = self._loss(inputs, y, params)
        if reg_lambda > 0 and self.regulariser is not None:
            loss = loss + reg_lambda * self.regulariser(self.model)
        return loss

    def step(self, val: tuple, y_val, train: tuple | None = None, y_tr=None, w_lr: float = 0.0,
             w_weight_decay: float = 0.0, reg_lambda: float = 0.0) -> float:
        """One α update on the validation batch ``model(*val)``; ``train`` / ``y_tr`` (the
        training batch) are read only when unrolled. Returns the validation loss (without the
        regulariser)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.unrolled:
            loss = self._unrolled_grads(val, y_val, train, y_tr, w_lr, w_weight_decay, reg_lambda)
        else:
            with only_grad_for(self.model.arch_parameters(), self.model.parameters()):
                loss_t = self._val_loss(val, y_val, reg_lambda)
                loss_t.backward()
            loss = loss_t.item()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # no stale α gradient survives the step
        return loss

    def _unrolled_grads(self, val, y_val, train, y_tr, xi, wd, reg_lambda) -> float:
        model = self.model
        arch = model.arch_parameters()
        arch_ids = {id(a) for a in arch}
        names = [n for n, p in model.named_parameters() if id(p) not in arch_ids]
        weights = [p for n, p in model.named_parameters() if id(p) not in arch_ids]
        # w' = w - ξ (∇w L_train + wd·w): one virtual SGD step (DARTS uses the real lr as ξ).
        g_tr = torch.autograd.grad(self._loss(train, y_tr), weights, allow_unused=True)
        w_virtual = {n: (w - xi * ((g if g is not None else 0) + wd * w)).detach().requires_grad_(True)
                     for n, w, g in zip(names, weights, g_tr)}
        loss = self._val_loss(val, y_val, reg_lambda, params=w_virtual)
        grads = torch.autograd.grad(loss, arch + list(w_virtual.values()), allow_unused=True)
        d_alpha = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads[: len(arch)], arch)]
        d_w = [g if g is not None else torch.zeros_like(w) for g, w in zip(grads[len(arch):], weights)]
        # Finite-difference Hessian-vector product ∇²_{α,w} L_train · d_w (DARTS Eq. 8).
        r = 1e-2 / torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12)
        hvp = []
        for sign in (1.0, -2.0):  # w + r·d_w, then w - r·d_w
            with torch.no_grad():
                for w, g in zip(weights, d_w):
                    w.add_(sign * r * g)
            hvp.append(torch.autograd.grad(self._loss(train, y_tr), arch, allow_unused=True))
        with torch.no_grad():
            for w, g in zip(weights, d_w):
                w.add_(r * g)
        return self._finish_unrolled(arch, d_alpha, hvp, r, xi, loss)

    def _finish_unrolled(self, arch, d_alpha, hvp, r, xi, loss) -> float:
        g_pos, g_neg = hvp
        for a, da, gp, gn in zip(arch, d_alpha, g_pos, g_neg):
            gp = gp if gp is not None else torch.zeros_like(a)
            gn = gn if gn is not None else torch.zeros_like(a)
            a.grad = (da - xi * (gp - gn) / (2 * r)).detach()
        return loss.item()
