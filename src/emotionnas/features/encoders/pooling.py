"""The paper's fixed-size deep input (EmotionNAS, Sun et al. 2023, Sec. 3.1).

Deep features are zero-padded to the longest utterance and average-pooled to
727 frames, so every utterance becomes the same (L+1, 727, D) block. The rest
of the toolkit keeps variable length (padding + lengths); this is the option
that reproduces the paper's input exactly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PAPER_FRAMES = 727


def fixed_length(features: np.ndarray, n_frames: int = PAPER_FRAMES, pad_to: int | None = None) -> np.ndarray:
    """features (L, T, D) -> (L, n_frames, D) float32.

    Zero-pads time to `pad_to` (default T: no padding; pass the corpus'
    longest T to follow the paper), then adaptive average pooling to
    `n_frames` (which repeats frames when there are fewer than `n_frames`).
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 3:
        raise ValueError(f"fixed_length expects (L, T, D) features, got shape {tuple(x.shape)}")
    t = x.shape[1]
    pad_to = t if pad_to is None else int(pad_to)
    if pad_to < t:
        raise ValueError(f"pad_to={pad_to} is shorter than the {t} frames given")
    if n_frames < 1 or t < 1:
        raise ValueError(f"need n_frames >= 1 and T >= 1, got n_frames={n_frames}, T={t}")
    x = F.pad(x, (0, 0, 0, pad_to - t))  # (L, pad_to, D)
    pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), n_frames)  # (L, D, n_frames): pool over time
    return pooled.transpose(1, 2).contiguous().numpy()


def fixed_length_many(features: list[np.ndarray], n_frames: int = PAPER_FRAMES) -> np.ndarray:
    """list of (L, T_i, D) -> (N, L, n_frames, D): each padded to the longest T_i, then pooled."""
    if not features:
        raise ValueError("fixed_length_many needs at least one feature array")
    longest = max(f.shape[1] for f in features)
    return np.stack([fixed_length(f, n_frames, pad_to=longest) for f in features])
