"""Which encoder layers the deep branch reads: (B, L+1, T, D) -> (B, T, D).

EmotionNAS (Sun et al., Interspeech 2023, Sec. 2.2) feeds the recurrent branch
with self-supervised / Whisper hidden states; which layer carries emotion best
varies by encoder, so the branch either learns a softmax-weighted sum of all
layers (as in SUPERB) or averages a fixed selection.
"""
from __future__ import annotations

import torch
from torch import nn

from emotionnas.errors import ConfigError


class LayerMix(nn.Module):
    """Combine encoder layers.

    Args:
        n_layers: L+1, the number of stacked hidden states the input carries.
        mode: "weighted" (learned softmax weights over the chosen layers) or
            "select" (plain mean of the chosen layers, no parameters).
        layers: indices into the L+1 axis to use; None = all.
    forward(x): (B, L+1, T, D) -> (B, T, D); a (B, T, D) input is returned unchanged
    (the caller already chose a layer).
    """

    def __init__(self, n_layers: int, mode: str = "weighted", layers=None):
        super().__init__()
        if mode not in ("weighted", "select"):
            raise ConfigError(f"LayerMix mode must be 'weighted' or 'select', got {mode!r}")
        layers = list(range(n_layers)) if layers is None else [int(i) for i in layers]
        if not layers or any(not 0 <= i < n_layers for i in layers):
            raise ConfigError(f"LayerMix layers {layers} out of range for {n_layers} layers")
        self.n_layers, self.mode = n_layers, mode
        self.register_buffer("index", torch.tensor(layers, dtype=torch.long), persistent=False)
        self.logits = nn.Parameter(torch.zeros(len(layers))) if mode == "weighted" else None

    def weights(self) -> torch.Tensor:
        """(len(layers),) mixing weights, summing to 1."""
        if self.logits is None:
            return torch.full((len(self.index),), 1.0 / len(self.index))
        return torch.softmax(self.logits, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return x
        if x.dim() != 4 or x.shape[1] != self.n_layers:
            raise ValueError(f"LayerMix expects (B, {self.n_layers}, T, D), got {tuple(x.shape)}")
        xs = x.index_select(1, self.index)
        if self.logits is None:
            return xs.mean(1)
        w = torch.softmax(self.logits, 0).to(x.dtype)
        return torch.einsum("bltd,l->btd", xs, w)
