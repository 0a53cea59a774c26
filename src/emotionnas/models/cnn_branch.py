"""The spectrogram branch built from a searched Genotype, trained from scratch
(EmotionNAS Sec. 2.2, "CNN branch"; DARTS Sec. 3.2 evaluation network).

``(B, in_channels, H, W)`` spectrogram -> stem conv -> ``layers`` cells (reductions at
1/3 and 2/3 of the depth) -> global average pool -> ``embed`` ``(B, out_dim)`` -> linear head.
"""
from __future__ import annotations

import torch
from torch import nn

from emotionnas.space.cnn_cells import Cell, reduction_layers
from emotionnas.space.genotype import Genotype


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class CellStack(nn.Module):
    """Stem + discrete cells: ``(B, in_channels, H, W) -> (B, out_channels, H/4, W/4)`` (two reductions)."""

    def __init__(self, genotype: Genotype, C: int, layers: int, in_channels: int = 1,
                 stem_multiplier: int = 3, drop_path_prob: float = 0.0):
        super().__init__()
        self.drop_path_prob = drop_path_prob
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            c_curr = c_curr * 2 if reduction else c_curr
            cell = Cell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
        self.out_channels = c_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return s1


class CNNBranch(nn.Module):
    """Branch contract (ARCHITECTURE.md): ``out_dim``, ``embed(x, lengths=None)``, ``forward``.

    x ``(B, in_channels, H, W)``; ``lengths`` is ignored (spectrograms have a fixed size).
    """

    def __init__(self, genotype: Genotype, C: int, layers: int, n_classes: int, in_channels: int = 1,
                 drop_path_prob: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.genotype = genotype
        self.features = CellStack(genotype, C, layers, in_channels, drop_path_prob=drop_path_prob)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = self.features.out_channels
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.out_dim, n_classes)
        # Depthwise and dilated convolutions run 1.2-1.5x faster in channels_last on CPU
        # (BENCHMARKS.md); the one op that crashes in that format is not used (ops.py).
        self.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))
