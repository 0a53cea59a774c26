"""The speaker-adaptive mode's arithmetic (NumPy only: the ONNX recognizer uses it too).

A speaker's deep features are standardised per (layer, dimension) with the mean and std over
every frame of that speaker's own utterances — unlabelled audio; at test time the test
speaker's, at deployment the enrolled speaker's (`Recognizer.enroll`). Off by default
(`features.speaker_norm`), and labelled wherever it appears: its scores are not
speaker-independent.
"""
from __future__ import annotations

import numpy as np

from emotionnas.errors import ConfigError


def speaker_stats(arrays) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per (layer, dimension) over every frame of one speaker's (L+1, T_i, D)
    arrays: ((L+1, 1, D), (L+1, 1, D)) float32 (the speaker-adaptive mode's enrolment)."""
    if not len(arrays):
        raise ConfigError("speaker_stats: no utterances to enrol")
    total = squares = 0.0
    n = 0
    for a in arrays:
        x = np.asarray(a, np.float64)
        total = total + x.sum(axis=1, keepdims=True)
        squares = squares + (x ** 2).sum(axis=1, keepdims=True)
        n += x.shape[1]
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0)) + 1e-3
    return mean.astype(np.float32), std.astype(np.float32)


def speaker_standardise(array: np.ndarray, stats) -> np.ndarray:
    """One utterance's (L', T, D) features standardised by its speaker's stats (of the same layers)."""
    mean, std = stats
    return ((np.asarray(array, np.float32) - mean) / std).astype(np.float32)


def speaker_normalised(arrays, speakers) -> list[np.ndarray]:
    """Every utterance standardised by the stats of its own speaker's utterances (float16, as cached)."""
    speakers = np.asarray(speakers)
    out = [None] * len(arrays)
    for spk in np.unique(speakers):
        idx = np.flatnonzero(speakers == spk)
        stats = speaker_stats([arrays[i] for i in idx])
        for i in idx:
            out[i] = speaker_standardise(arrays[i], stats).astype(np.float16)
    return out
