"""Fusion of the two branch embeddings (EmotionNAS, Sun et al. 2023, Sec. 3.4 and 4.4).

X1 is the supplementary branch's embedding (B, d1), X2 the dominant one's (B, d2)
(by default X2 = deep features, X1 = spectrogram).

* ISM, the information supplement module:
      H1 = Proj(X1);  A1 = tanh(Proj(X2) * H1);  F = X2 + A1 * H1      -> (B, d2)
  A1 gates how much of the supplementary information enters the dominant stream.
* Ablations (paper Table 5): concat(X1, X2); sum / max / min of H1 and X2.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ISMFusion(nn.Module):
    def __init__(self, d1: int, d2: int):
        super().__init__()
        self.proj1 = nn.Linear(d1, d2)
        self.proj2 = nn.Linear(d2, d2)
        self.out_dim = d2

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1 = self.proj1(x1)
        a1 = torch.tanh(self.proj2(x2) * h1)
        return x2 + a1 * h1


class ConcatFusion(nn.Module):
    def __init__(self, d1: int, d2: int):
        super().__init__()
        self.out_dim = d1 + d2

    def forward(self, x1, x2):
        return torch.cat([x1, x2], dim=-1)


class _ProjectedFusion(nn.Module):
    """H1 = Proj(X1), then an element-wise combination with X2."""

    combine = None

    def __init__(self, d1: int, d2: int):
        super().__init__()
        self.proj1 = nn.Linear(d1, d2)
        self.out_dim = d2

    def forward(self, x1, x2):
        return type(self).combine(self.proj1(x1), x2)


class SumFusion(_ProjectedFusion):
    combine = staticmethod(torch.add)


class MaxFusion(_ProjectedFusion):
    combine = staticmethod(torch.maximum)


class MinFusion(_ProjectedFusion):
    combine = staticmethod(torch.minimum)


FUSIONS = {"ism": ISMFusion, "concat": ConcatFusion, "sum": SumFusion, "max": MaxFusion, "min": MinFusion}


def create_fusion(name: str, d1: int, d2: int) -> nn.Module:
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose from {sorted(FUSIONS)}")
    return FUSIONS[name](d1, d2)
