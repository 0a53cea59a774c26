"""The deep-feature branch: layer mix -> norm -> frame model -> pooling -> head.

EmotionNAS (Sun et al., Interspeech 2023, Sec. 2.2 and Table 3) runs a searched
recurrent cell over cached encoder features and compares it with vanilla RNN,
LSTM, GRU and a mean-pooling linear probe on the same features. All of them (and a
frame-wise MLP) are kinds of `RNNBranch`, so they share the input pipeline and differ
only in the frame model and the pooling (attention, mean, or mean and standard
deviation). Frames arrive already pooled to the step rate (features/inputs.py).

Branch contract (ARCHITECTURE.md): `out_dim`, `embed(x, lengths) -> (B, out_dim)`,
`forward(x, lengths) -> logits (B, n_classes)`; x is (B, L+1, T, D) or (B, T, D)
float32 zero-padded, lengths (B,) int64.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emotionnas.config import POOLINGS  # the one list of pooling names (config/sections.py)
from emotionnas.errors import ConfigError
from emotionnas.models.layer_mix import LayerMix
from emotionnas.features.inputs import lengths_to_mask
from emotionnas.models.pooling import AttentionPooling
from emotionnas.space.recipe import CLASSIC, load_recipe, validate_recipe
from emotionnas.space.recipe_cell import RecipeRNN

KINDS = ("rnn", "lstm", "gru", "linear", "mlp", "recipe")
_TORCH_RNN = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _recipe_needs_projection(recipe: dict) -> bool:
    return any(n["op"] != "linear" and "x" in n["input"] for n in recipe.values())


class RNNBranch(nn.Module):
    """Deep-feature branch.

    Args:
        recipe_or_kind: "rnn" | "lstm" | "gru" (torch modules, packed sequences),
            "linear" (masked mean over frames + linear), a recipe dict,
            "recipe:<rnn|lstm|gru>" (a classic cell run as a recipe), or a path
            to a recipe.json.
        input_dim: D, feature size of the encoder.
        hidden: state size H. layers: stacked recurrent layers.
        n_classes: number of emotions.
        n_layers_in: L+1 when the input is (B, L+1, T, D); None for (B, T, D).
        layer_mode / layer_select: see `LayerMix`.
        input_proj: None (feed D straight in), an int P (Linear D->P), or "auto"
            (project to H only when a recipe applies a non-linear op to x).
        pooling: "attention" (learned frame weights), "mean", or "meanstd" (mean and standard
            deviation over valid frames, concatenated). A linear probe uses mean or meanstd.
        dropout: on the normalised input and before the head.
        input_norm: LayerNorm over D — Whisper states have a few very large
            dimensions that otherwise dominate the first matmul.
        mean_skip: concatenate the masked mean of the (normalised) input frames to
            the attention-pooled recurrent output, so the head sees what a linear
            probe sees plus what the recurrence adds (out_dim = H + D').
    """

    def __init__(self, recipe_or_kind, input_dim: int, hidden: int = 256, layers: int = 1, *,
                 n_classes: int, n_layers_in: int | None = None, layer_mode: str = "weighted",
                 layer_select=None, input_proj="auto", dropout: float = 0.2,
                 input_norm: bool = True, mean_skip: bool = False, pooling: str = "attention"):
        super().__init__()
        kind, recipe = self._resolve(recipe_or_kind)
        if pooling not in POOLINGS:
            raise ConfigError(f"RNNBranch: pooling must be one of {POOLINGS}, got {pooling!r}")
        if kind == "linear" and pooling == "attention":
            pooling = "mean"
        self.kind, self.recipe, self.pooling = kind, recipe, pooling
        self.hidden, self.layers = hidden, layers
        self.mix = LayerMix(n_layers_in, layer_mode, layer_select) if n_layers_in else None
        self.norm = nn.LayerNorm(input_dim) if input_norm else nn.Identity()
        self.in_drop = nn.Dropout(dropout)
        if input_proj == "auto":
            input_proj = hidden if kind == "recipe" and _recipe_needs_projection(recipe) else None
        self.proj = nn.Linear(input_dim, int(input_proj)) if input_proj else None
        rnn_in = int(input_proj) if input_proj else input_dim
        if kind == "linear":
            self.seq = None
            self.out_dim = rnn_in
        elif kind == "mlp":
            self.seq = nn.Sequential(nn.Linear(rnn_in, hidden), nn.GELU(), nn.Dropout(dropout))
            self.out_dim = hidden
        elif kind == "recipe":
            self.seq = RecipeRNN(recipe, rnn_in, hidden, layers, dropout=dropout)
            self.out_dim = hidden
        else:
            self.seq = _TORCH_RNN[kind](rnn_in, hidden, num_layers=layers, batch_first=True,
                                        dropout=dropout if layers > 1 else 0.0)
            self.out_dim = hidden
        self.pool = AttentionPooling(self.out_dim) if pooling == "attention" else None
        if pooling == "meanstd":
            self.out_dim *= 2
        self.mean_skip = bool(mean_skip) and self.seq is not None
        if self.mean_skip:
            self.out_dim += rnn_in
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.out_dim, n_classes))

    @staticmethod
    def _resolve(spec):
        if isinstance(spec, dict):
            return "recipe", validate_recipe(spec)
        if isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(".json")):
            return "recipe", load_recipe(spec)
        if isinstance(spec, str) and spec.startswith("recipe:") and spec[7:] in CLASSIC:
            return "recipe", CLASSIC[spec[7:]]()
        if spec in ("rnn", "lstm", "gru", "linear", "mlp"):
            return spec, None
        raise ConfigError(f"RNNBranch: unknown kind {spec!r} (use one of {KINDS[:4]}, "
                          "a recipe dict, 'recipe:<rnn|lstm|gru>' or a recipe .json path)")

    def _frames(self, x, lengths):
        """(B, [L+1,] T, D) -> normalised frames (B, T', D') and lengths (B,)."""
        if x.dim() == 4:
            if self.mix is None:
                raise ValueError(f"RNNBranch got 4-D input {tuple(x.shape)} but n_layers_in was not set")
            x = self.mix(x)
        b, t = x.shape[:2]
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        lengths = lengths.to(torch.long).clamp(1, t)
        t_max = int(lengths.max())
        if t_max < t:  # a batch padded to a longer corpus-wide length: skip all-padding steps
            x = x[:, :t_max]
        x = self.in_drop(self.norm(x))
        if self.proj is not None:
            x = self.proj(x)
        return x, lengths

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, [L+1,] T, D), lengths (B,) -> (B, out_dim)."""
        frames, lengths = self._frames(x, lengths)
        mask = lengths_to_mask(lengths, frames.shape[1])
        m = mask.unsqueeze(-1).to(frames.dtype)
        if self.kind == "linear":
            out = frames
        elif self.kind == "mlp":
            out = self.seq(frames)
        elif self.kind == "recipe":
            out, _ = self.seq(frames, lengths)
        else:
            packed = pack_padded_sequence(frames, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.seq(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=frames.shape[1])
        if self.pooling == "attention":
            pooled = self.pool(out, mask)
        else:
            n = m.sum(1).clamp_min(1.0)
            pooled = (out * m).sum(1) / n
            if self.pooling == "meanstd":
                var = ((out - pooled.unsqueeze(1)) ** 2 * m).sum(1) / n
                pooled = torch.cat([pooled, (var + 1e-5).sqrt()], 1)
        if self.mean_skip:
            pooled = torch.cat([pooled, (frames * m).sum(1) / m.sum(1).clamp_min(1.0)], 1)
        return pooled

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(x, lengths))
