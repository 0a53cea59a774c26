"""The DARTS supernet over spectrograms (EmotionNAS Sec. 2.2; emoDARTS when ``head="lstm"``).

``(B, in_channels, H, W)`` -> stem conv -> ``layers`` search cells (reductions at 1/3
and 2/3 of the depth) -> head -> logits ``(B, n_classes)``. ``head="gap"`` is global
average pooling (EmotionNAS); ``head="lstm"`` turns the final feature map into a
sequence over time and runs an LSTM + attention pooling (emoDARTS).

Architecture weights α (one row per edge, one column per op; separate for normal and
reduction cells) and, with partial channels, the edge weights β are registered
``nn.Parameter``s, so checkpoints carry them; :meth:`arch_parameters` and
:meth:`weight_parameters` split the two optimizer groups.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.models.emodarts import SequenceHead
from emotionnas.space.cnn_cells import SearchCell, reduction_layers
from emotionnas.space.genotype import Genotype, derive_genotype, n_edges
from emotionnas.space.cnn_ops import check_primitives

ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")


def edge_softmax(betas: torch.Tensor, nodes: int) -> torch.Tensor:
    """PC-DARTS edge normalisation: softmax of β over the inputs of each node."""
    out, start = [], 0
    for i in range(nodes):
        out.append(F.softmax(betas[start:start + i + 2], dim=-1))
        start += i + 2
    return torch.cat(out)


class SuperNet(nn.Module):
    def __init__(self, C: int, layers: int, n_classes: int, primitives, nodes: int = 4,
                 partial_channels: int = 1, in_channels: int = 1, stem_multiplier: int = 3,
                 head: str = "gap", lstm_hidden: int = 64, freq_bins: int = 4):
        super().__init__()
        self.primitives = check_primitives(primitives)
        self.nodes = nodes
        self.partial_channels = partial_channels
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            c_curr = c_curr * 2 if reduction else c_curr
            cell = SearchCell(self.primitives, nodes, c_pp, c_p, c_curr, reduction, reduction_prev,
                              partial_channels)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
        if head == "gap":
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.out_dim = c_p
        elif head == "lstm":
            self.head = SequenceHead(c_p, lstm_hidden, freq_bins)
            self.out_dim = lstm_hidden
        else:
            raise ValueError(f"unknown supernet head {head!r} (gap, lstm)")
        self.classifier = nn.Linear(self.out_dim, n_classes)
        shape = (n_edges(nodes), len(self.primitives))
        # Small random α as in DARTS: near-uniform mixing, ties broken reproducibly by the seed.
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(shape))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(shape))
        if partial_channels > 1:
            self.betas_normal = nn.Parameter(1e-3 * torch.randn(shape[0]))
            self.betas_reduce = nn.Parameter(1e-3 * torch.randn(shape[0]))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, n) for n in ARCH_NAMES if hasattr(self, n)]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def _edge_weights(self, reduction: bool):
        if self.partial_channels == 1:
            return None
        return edge_softmax(self.betas_reduce if reduction else self.betas_normal, self.nodes)

    def embed(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """x ``(B, in_channels, H, W)`` -> ``(B, out_dim)``."""
        w_normal = F.softmax(self.alphas_normal, dim=-1)
        w_reduce = F.softmax(self.alphas_reduce, dim=-1)
        e_normal, e_reduce = self._edge_weights(False), self._edge_weights(True)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w, e = (w_reduce, e_reduce) if cell.reduction else (w_normal, e_normal)
            s0, s1 = s1, cell(s0, s1, w, e)
        return self.head(s1)

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.classifier(self.embed(x))

    @torch.no_grad()
    def op_weights(self) -> dict[str, torch.Tensor]:
        """Per-edge op weights used for derivation: softmax(α), times softmax(β) per node with PC-DARTS."""
        out = {}
        for kind in ("normal", "reduce"):
            w = F.softmax(getattr(self, "alphas_" + kind), dim=-1)
            e = self._edge_weights(kind == "reduce")
            out[kind] = w if e is None else w * e[:, None]
        return out

    def genotype(self, max_skip: int | None = None) -> Genotype:
        w = self.op_weights()
        return derive_genotype(w["normal"].numpy(), w["reduce"].numpy(), self.primitives,
                               self.nodes, max_skip)


def beta_decay(model) -> torch.Tensor:
    """β-DARTS regulariser (Ye et al. 2022): mean over edges (and cell types) of
    logsumexp(α_edge). Its gradient is softmax(α): it pulls the dominant α down and keeps
    parameter-free ops from running away."""
    alphas = [model.alphas_normal, model.alphas_reduce]
    return torch.cat([torch.logsumexp(a, dim=-1) for a in alphas]).mean()
