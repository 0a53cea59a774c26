"""Hand-designed CNN baselines on the spectrogram (EmotionNAS Table 2): ResNet18 and ResNet*.

ResNet18 (He et al. 2016) with a 1-channel input: ~11.2M parameters for 7 classes.
ResNet* is the same 2-2-2-2 BasicBlock layout narrowed to a base width of 21 channels
(21-42-84-168), ~1.2M parameters — the size the paper reports for its ResNet*.
Input ``(B, 1, H, W)`` -> stem (7x7/2 conv, 3x3/2 max pool) -> 4 stages -> global
average pool -> ``embed`` ``(B, out_dim)`` -> linear head.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """Branch contract (ARCHITECTURE.md): ``out_dim``, ``embed(x, lengths=None)``, ``forward``."""

    def __init__(self, n_classes: int, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2),
                 in_channels: int = 1, dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, c_in = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for b in range(n):
                stages.append(BasicBlock(c_in, w, 2 if b == 0 and i > 0 else 1))
                c_in = w
        self.stages = nn.Sequential(*stages)
        self.out_dim = c_in
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, n_classes)

    def embed(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """x ``(B, in_channels, H, W)`` -> ``(B, out_dim)``; lengths ignored."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))


def resnet18(n_classes: int, in_channels: int = 1, **kw) -> ResNet:
    return ResNet(n_classes, (64, 128, 256, 512), (2, 2, 2, 2), in_channels, **kw)


def resnet_star(n_classes: int, in_channels: int = 1, **kw) -> ResNet:
    return ResNet(n_classes, (21, 42, 84, 168), (2, 2, 2, 2), in_channels, **kw)


BASELINES = {"resnet18": resnet18, "resnet_star": resnet_star}
