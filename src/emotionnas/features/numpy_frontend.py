"""The deep-stream front end in NumPy only, for the recognizer's ONNX backend (no torch).

Mirrors `features/encoders/mel.py` (Whisper's log-mel) and `features/inputs.py` (frame
pooling); tests hold each pair equal to 1e-5, so ONNX and torch give the same probabilities.
"""
from __future__ import annotations

import numpy as np

from emotionnas.features.mel_filters import slaney_mel

SAMPLE_RATE, N_FFT, HOP_LENGTH, CHUNK_FRAMES = 16000, 400, 160, 3000
FLOAT16_MAX = 65504.0


def mel_filters(n_mels: int = 80) -> np.ndarray:
    return slaney_mel(SAMPLE_RATE, N_FFT, n_mels)


def log_mel(wave: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """wave (n,) float32 16 kHz -> log-mel (n_mels, n // 160) float32 (centred reflect-padded STFT,
    periodic Hann window, the last frame dropped), as `encoders.mel.log_mel`."""
    wave = np.asarray(wave, np.float32)
    padded = np.pad(wave, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:-1]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    spec = np.fft.rfft(frames * window, axis=-1)
    power = (spec.real ** 2 + spec.imag ** 2).T.astype(np.float32)      # (freq, frames)
    mel = mel_filters(n_mels) @ power
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def pool_frames(feats: np.ndarray, factor: int) -> np.ndarray:
    """(L, T, D) -> (L, ceil(T/f), D): the mean of each window of `factor` frames (the last
    window averages only the frames it has)."""
    feats = np.asarray(feats, np.float32)
    if factor <= 1:
        return feats
    L, T, D = feats.shape
    t2 = -(-T // factor)
    pad = t2 * factor - T
    x = np.concatenate([feats, np.zeros((L, pad, D), np.float32)], axis=1) if pad else feats
    sums = x.reshape(L, t2, factor, D).sum(axis=2)
    counts = np.full(t2, factor, np.float32)
    if pad:
        counts[-1] = factor - pad
    return sums / counts[None, :, None]


def as_stored(x: np.ndarray) -> np.ndarray:
    """What the cache would hold: clipped to the float16 range and rounded to float16."""
    return np.clip(np.asarray(x, np.float32), -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)


def windows(n_samples: int, window: float, hop: float, sr: int = SAMPLE_RATE) -> list[tuple[float, float]]:
    """(start, end) seconds of analysis windows every `hop` s, `window` s long; the last one ends
    at the end of the audio; audio no longer than one window is one window."""
    if window <= 0 or hop <= 0:
        from emotionnas.errors import ConfigError
        raise ConfigError(f"windows: window and hop must be positive (got {window}, {hop})")
    total = n_samples / sr
    if total <= window:
        return [(0.0, round(total, 3))]
    starts = list(np.arange(0.0, total - window + 1e-9, hop))
    if starts[-1] + window < total - 1e-9:
        starts.append(total - window)
    return [(round(float(s), 3), round(float(s) + window, 3)) for s in starts]
