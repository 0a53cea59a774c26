"""Model inputs from cached features: the one place that standardises, pads, masks and pools.

Search, training, evaluation and the recognizer all call these functions, so a model is
served exactly the inputs it was trained on.

* spectrogram: (N, F, T) -> standardised (N, 1, F, T) with (mean, std) of training data;
* deep: per-utterance (L+1, T_i, D) hidden states -> the chosen layers, frames averaged in
  windows of `frame_pool` (the recurrent step rate: the cache holds 25 Hz frames, 4 -> 6.25 Hz),
  zero-padded to (N, L', T', D) float32 with lengths (N,) int64.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from emotionnas.errors import ConfigError


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """lengths (B,) int -> mask (B, max_len) bool, True on valid frames."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.to(steps.device).unsqueeze(1)


def pool_frames(x: torch.Tensor, lengths: torch.Tensor, factor: int):
    """Average every `factor` frames, ignoring padding: x (B, [L,] T, D) -> (B, [L,] ceil(T/f), D).

    Windows average only valid frames, so a sequence's result does not depend on how much
    padding its batch has. Returns (pooled, new_lengths)."""
    if factor <= 1:
        return x, lengths
    four = x.dim() == 4
    if four:
        b, L, t, d = x.shape
        x = x.transpose(1, 2).reshape(b, t, L * d)
    b, t, d = x.shape
    t2 = -(-t // factor)
    mask = lengths_to_mask(lengths, t).to(x.dtype)
    pad = t2 * factor - t
    xm = F.pad(x * mask.unsqueeze(-1), (0, 0, 0, pad)).view(b, t2, factor, d).sum(2)
    cnt = F.pad(mask, (0, pad)).view(b, t2, factor).sum(2).clamp_min(1.0)
    new_len = torch.div(lengths + factor - 1, factor, rounding_mode="floor")
    out = xm / cnt.unsqueeze(-1)
    if four:
        out = out.reshape(b, t2, L, d // L).transpose(1, 2).contiguous()
    return out, new_len


def pool_frames_np(feats: np.ndarray, factor: int) -> np.ndarray:
    """(L, T, D) numpy -> (L, ceil(T/f), D) float32, the same averaging (used by the cache)."""
    if factor <= 1:
        return np.asarray(feats, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(feats, np.float32)).unsqueeze(0)
    out, _ = pool_frames(x, torch.tensor([x.shape[2]]), factor)
    return out[0].numpy()


# ---------------------------------------------------------------- spectrograms
def spectrogram_stats(spectrograms: np.ndarray) -> tuple[float, float]:
    """(mean, std) of training spectrograms, for `standardise`."""
    x = np.asarray(spectrograms, dtype=np.float32)
    return float(x.mean()), float(x.std() + 1e-6)


def spectrogram_inputs(spectrograms: np.ndarray, stats) -> torch.Tensor:
    """(N, F, T) -> standardised float32 (N, 1, F, T)."""
    m, s = stats
    return (torch.from_numpy(np.asarray(spectrograms, np.float32)).unsqueeze(1) - m) / s


# ---------------------------------------------------------------- deep features
def deep_inputs(arrays, layers=None, frame_pool: int = 1, chunk: int = 64):
    """List of (L+1, T_i, D) arrays -> (float32 (N, L', T', D), int64 lengths (N,)).

    `layers`: hidden states to keep (None = all). Frames are averaged in windows of
    `frame_pool`, chunk by chunk (never a float32 copy of the unpooled corpus)."""
    if not len(arrays):
        raise ConfigError("deep_inputs: no utterances")
    xs, ls = [], []
    for start in range(0, len(arrays), chunk):
        seqs = [a if layers is None else a[list(layers)] for a in arrays[start:start + chunk]]
        lengths = torch.tensor([s.shape[1] for s in seqs], dtype=torch.long)
        L, D = seqs[0].shape[0], seqs[0].shape[2]
        x = torch.zeros(len(seqs), L, int(lengths.max()), D)
        for j, s in enumerate(seqs):
            x[j, :, : s.shape[1]] = torch.from_numpy(np.asarray(s, np.float32))
        p, nl = pool_frames(x, lengths, frame_pool)
        xs.append(p)
        ls.append(nl)
    t_max = max(x.shape[2] for x in xs)
    return torch.cat([F.pad(x, (0, 0, 0, t_max - x.shape[2])) for x in xs]), torch.cat(ls)


@dataclass(frozen=True)
class InputSpec:
    """What a model reads, in order: `streams` ⊆ ("spectrogram", "deep"); the deep stream's
    encoder `layers` (None = all) and `frame_pool`; the spectrogram's standardisation."""
    streams: tuple[str, ...]
    layers: tuple[int, ...] | None = None
    frame_pool: int = 4
    spec_stats: tuple[float, float] = (0.0, 1.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {**d, "streams": list(self.streams), "layers": None if self.layers is None else list(self.layers),
                "spec_stats": list(self.spec_stats)}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(tuple(d["streams"]), None if d.get("layers") is None else tuple(d["layers"]),
                   int(d.get("frame_pool", 4)), tuple(d.get("spec_stats", (0.0, 1.0))))


def model_inputs(spec: InputSpec, spectrograms=None, deep_arrays=None) -> tuple:
    """The model's input tensors for a set of utterances: (spec,), (deep, lengths) or
    (spec, deep, lengths), per `spec.streams`."""
    out: list = []
    if "spectrogram" in spec.streams:
        out.append(spectrogram_inputs(spectrograms, spec.spec_stats))
    if "deep" in spec.streams:
        out.extend(deep_inputs(deep_arrays, spec.layers, spec.frame_pool))
    return tuple(out)
