"""Cells: the searchable (mixed-edge) cell and the discrete cell built from a Genotype.

A cell reads the outputs of the two previous cells ``s0 (B, C_pp, H0, W0)`` and
``s1 (B, C_p, H, W)`` and returns ``(B, multiplier * C, H', W')`` with ``H' = H`` in a
normal cell and ``ceil(H / 2)`` in a reduction cell, where the ops next to the two
inputs have stride 2 (DARTS Sec. 2.1; EmotionNAS Sec. 2.2).
"""
from __future__ import annotations

import torch
from torch import nn

from emotionnas.space.genotype import Genotype
from emotionnas.space.cnn_ops import OPS, FactorizedReduce, Identity, ReLUConvBN


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Cells at 1/3 and 2/3 of the depth reduce (DARTS); distinct and >= 1 for tiny nets."""
    return tuple(sorted({max(1, layers // 3), max(1, 2 * layers // 3)} - {layers}))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MixedOp(nn.Module):
    """One searchable edge: ``sum_o softmax(α)_o * o(x)``.

    With ``partial_channels = K > 1`` (PC-DARTS, Xu et al. 2020) only the first ``C/K``
    channels go through the candidate ops; the rest bypass the edge (max-pooled when
    strided) and a channel shuffle mixes which channels are sampled next time.
    """

    def __init__(self, C: int, stride: int, primitives, partial_channels: int = 1):
        super().__init__()
        if C % partial_channels:
            raise ValueError(f"channels {C} not divisible by partial_channels={partial_channels}")
        self.k = partial_channels
        self.stride = stride
        self.names = tuple(primitives)
        c = C // partial_channels
        ops = []
        for name in self.names:
            op = OPS[name](c, stride, False)
            if "pool" in name:  # DARTS: pools get a BN so their scale matches the conv ops
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 and self.k > 1 else None

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x ``(B, C, H, W)``, weights ``(n_ops,)`` -> ``(B, C, H', W')``."""
        xs = x if self.k == 1 else x[:, : x.shape[1] // self.k]
        # 'none' contributes exactly 0; skipping it saves a full-size tensor per edge.
        out = sum(w * op(xs) for w, op, name in zip(weights, self.ops, self.names) if name != "none")
        if self.k == 1:
            return out
        rest = x[:, x.shape[1] // self.k:]
        if self.bypass_pool is not None:
            rest = self.bypass_pool(rest)
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)


def _preprocess(C_pp: int, C_p: int, C: int, reduction_prev: bool, affine: bool):
    pre0 = FactorizedReduce(C_pp, C, affine) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0, affine)
    return pre0, ReLUConvBN(C_p, C, 1, 1, 0, affine)


class SearchCell(nn.Module):
    """Every edge of the DAG is a MixedOp; weights come from the supernet's α."""

    def __init__(self, primitives, nodes, C_pp, C_p, C, reduction, reduction_prev, partial_channels=1):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.multiplier = nodes
        self.preprocess0, self.preprocess1 = _preprocess(C_pp, C_p, C, reduction_prev, affine=False)
        self.ops = nn.ModuleList(
            MixedOp(C, 2 if reduction and j < 2 else 1, primitives, partial_channels)
            for i in range(nodes) for j in range(i + 2))

    def forward(self, s0, s1, weights, edge_weights=None):
        """weights ``(n_edges, n_ops)``; edge_weights ``(n_edges,)`` (PC-DARTS β) or None."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            terms = []
            for j, h in enumerate(states):
                y = self.ops[offset + j](h, weights[offset + j])
                terms.append(y if edge_weights is None else edge_weights[offset + j] * y)
            offset += len(states)
            states.append(sum(terms))
        return torch.cat(states[-self.multiplier:], dim=1)


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples of a path with probability p, rescaled (DARTS retraining)."""
    keep = torch.bernoulli(torch.full((x.shape[0], 1, 1, 1), 1.0 - p, device=x.device))
    return x * keep / (1.0 - p)


class Cell(nn.Module):
    """The discrete cell of a Genotype: two ops per node, summed; concat of ``*_concat``."""

    def __init__(self, genotype: Genotype, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(C_pp, C_p, C, reduction_prev, affine=True)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.multiplier = len(self.concat)
        self.inputs = [j for _, j in pairs]
        self.names = [op for op, _ in pairs]
        self.ops = nn.ModuleList(OPS[op](C, 2 if reduction and j < 2 else 1, True) for op, j in pairs)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            hs = []
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob)
                hs.append(h)
            states.append(hs[0] + hs[1])
        return torch.cat([states[i] for i in self.concat], dim=1)
