"""Waveform augmentation as cached copies of a stream: each copy is the corpus perturbed once
(speed perturbation, additive noise at a drawn SNR), encoded once and cached like the original.

Copies are training data only: a task adds the copies of its *training* utterances to its
training set (training/tasks.py); validation and test speakers are always scored on the
original audio, and the recognizer never sees a copy.

    features.augment: [speed0.9, speed1.1]     # Kaldi-style speed perturbation (tempo and pitch)
    features.augment: [noise5-20]              # white noise at an SNR drawn from U(5, 20) dB

A copy is a pure function of the audio: the noise and its SNR are seeded by the wave's bytes,
so a copy is the same in every process and every run (and its cache entry is reusable).
"""
from __future__ import annotations

import zlib
from dataclasses import replace
from fractions import Fraction

import numpy as np

from emotionnas.config import AUGMENT_NOISE, AUGMENT_SPEED  # the names' grammar lives with the config check
from emotionnas.errors import ConfigError

def perturb(wave: np.ndarray, name: str) -> np.ndarray:
    """The copy `name` of a 16 kHz float32 wave."""
    from scipy.signal import resample_poly

    wave = np.asarray(wave, dtype=np.float32)
    m = AUGMENT_SPEED.match(name)
    if m:  # played `factor` times as fast: resampled to len / factor samples, read at the same rate
        f = Fraction(m.group(1)).limit_denominator(100)
        return resample_poly(wave, f.denominator, f.numerator).astype(np.float32)
    n = AUGMENT_NOISE.match(name)
    if n:
        rng = np.random.default_rng(zlib.crc32(wave.tobytes()))
        snr = rng.uniform(float(n.group(1)), float(n.group(2)))
        power = float(np.mean(wave.astype(np.float64) ** 2)) or 1e-10
        noise = rng.standard_normal(len(wave)) * np.sqrt(power / 10 ** (snr / 10))
        return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)
    raise ConfigError(f"features.augment: unknown copy {name!r}")


def augmented_stream(stream, name: str):
    """The Stream of copy `name` of `stream`: its own cache folder (the copy is in its config)."""
    compute, many = stream.compute, stream.compute_many
    return replace(stream, config={**stream.config, "augment": name},
                   compute=lambda w: compute(perturb(w, name)),
                   compute_many=None if many is None else (lambda ws: many([perturb(w, name) for w in ws])))
