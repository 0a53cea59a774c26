"""Attention pooling over frames: (B, T, D) + mask -> (B, D).

EmotionNAS (Sun et al., Interspeech 2023, Sec. 2.2) summarises the recurrent
branch's frame sequence with attention before the classifier; the CNN branch
uses the same module over its flattened time axis. A learned score per frame,
a softmax restricted to valid frames, and the weighted sum of frames.
"""
from __future__ import annotations

import torch
from torch import nn

from emotionnas.features.inputs import lengths_to_mask  # noqa: F401  (re-exported)


class AttentionPooling(nn.Module):
    """Additive (tanh) attention pooling, one score per frame.

    score_t = v^T tanh(W x_t + b); weights = softmax over valid frames;
    out = sum_t weights_t x_t.

    Args:
        dim: feature size D of the frames.
        hidden: size of the scoring MLP (default: D, capped at 128 — scoring
            needs few units, and a small layer keeps the branch cheap on CPU).
    """

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or min(dim, 128)
        self.dim = dim
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_weights: bool = False):
        """x (B, T, D), mask (B, T) bool (True = valid) or None.

        Returns (B, D), or ((B, D), weights (B, T)) when return_weights. Weights
        sum to 1 over valid frames and are exactly 0 on padding. A row with no
        valid frame (length 0) gets all-zero weights and a zero output rather
        than NaN.
        """
        if x.dim() != 3:
            raise ValueError(f"AttentionPooling expects (B, T, D), got shape {tuple(x.shape)}")
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1)  # (B, T)
        if mask is not None:
            mask = mask.to(torch.bool)
            scores = scores.masked_fill(~mask, float("-inf"))
            # a fully masked row would give softmax NaN; give it zeros instead
            empty = ~mask.any(dim=1, keepdim=True)
            scores = scores.masked_fill(empty, 0.0)
            weights = torch.softmax(scores, dim=1)
            weights = weights.masked_fill(~mask, 0.0)
        else:
            weights = torch.softmax(scores, dim=1)
        out = torch.bmm(weights.unsqueeze(1), x).squeeze(1)  # (B, D)
        if return_weights:
            return out, weights
        return out
