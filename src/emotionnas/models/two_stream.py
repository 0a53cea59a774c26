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

    def forward(self, spec, deep, lengths):
        return self.head(self.fuse(spec, deep, lengths))


class EmbeddingFusionModel(nn.Module):
    """Fusion + classifier over *precomputed* branch embeddings (B, d_spec), (B, d_deep).

    Used for the cheap fusion ablations: branches trained alone, then frozen.
    """

    def __init__(self, d_spec: int, d_deep: int, n_classes: int, fusion: str = "ism",
                 dominant: str = "deep", dropout: float = 0.2):
        super().__init__()
        self.dominant = dominant
        d1, d2 = (d_spec, d_deep) if dominant == "deep" else (d_deep, d_spec)
        self.fusion = create_fusion(fusion, d1, d2)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.fusion.out_dim, n_classes))

    def forward(self, e_spec: torch.Tensor, e_deep: torch.Tensor) -> torch.Tensor:
        x1, x2 = (e_spec, e_deep) if self.dominant == "deep" else (e_deep, e_spec)
        return self.head(self.fusion(x1, x2))

    @torch.no_grad()
    def start_from_dominant(self, head: nn.Linear, supplement_scale: float = 0.1) -> None:
        """Begin (nearly) as the dominant branch alone: its trained classifier reads the dominant
        embedding, and the supplementary path starts small (concat: zero weights on X1; ISM, sum,
        max, min: Proj(X1) scaled by `supplement_scale`). Trained on frozen *training* embeddings,
        a fusion started from scratch can end below the dominant branch it is meant to supplement."""
        lin = self.head[-1]
        d2 = head.in_features
        if lin.in_features == d2:
            lin.weight.copy_(head.weight)
        else:  # concat: [X1, X2] -> only the X2 columns start from the branch classifier
            lin.weight.zero_()
            lin.weight[:, -d2:] = head.weight
        lin.bias.copy_(head.bias)
        proj1 = getattr(self.fusion, "proj1", None)
        if proj1 is not None:
            proj1.weight.mul_(supplement_scale)
            proj1.bias.mul_(supplement_scale)
