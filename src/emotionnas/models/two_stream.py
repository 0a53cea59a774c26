"""The EmotionNAS two-stream model: spectrogram branch + deep branch + fusion + classifier."""
from __future__ import annotations

import torch
import torch.nn as nn

from emotionnas.models.fusion import create_fusion


class TwoStreamModel(nn.Module):
    """forward(spec (B,1,F,T), deep (B,L,T,D), lengths (B,)) -> logits (B, n_classes).

    `dominant` names the branch that plays X2 in the ISM ("deep" in the paper).
    Both branches follow the branch contract: `out_dim` and `embed(x, lengths)`.
    """

    def __init__(self, spec_branch: nn.Module, deep_branch: nn.Module, n_classes: int,
                 fusion: str = "ism", dominant: str = "deep", dropout: float = 0.2):
        super().__init__()
        if dominant not in ("deep", "spectrogram"):
            raise ValueError(f"dominant must be 'deep' or 'spectrogram', got {dominant!r}")
        self.spec_branch, self.deep_branch, self.dominant = spec_branch, deep_branch, dominant
        d_spec, d_deep = spec_branch.out_dim, deep_branch.out_dim
        d1, d2 = (d_spec, d_deep) if dominant == "deep" else (d_deep, d_spec)
        self.fusion_name = fusion
        self.fusion = create_fusion(fusion, d1, d2)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.fusion.out_dim, n_classes))

    def fuse(self, spec, deep, lengths):
        e_spec = self.spec_branch.embed(spec)
        e_deep = self.deep_branch.embed(deep, lengths)
        x1, x2 = (e_spec, e_deep) if self.dominant == "deep" else (e_deep, e_spec)
        return self.fusion(x1, x2)

    embed = fuse  # the vector the head classifies, as every family's `embed`

    def forward(self, spec, deep, lengths):
        return self.head(self.fuse(spec, deep, lengths))
