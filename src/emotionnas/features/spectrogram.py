"""Handcrafted stream of EmotionNAS (Sun et al. 2023, Sec. 3.1).

Audio is cut or zero-padded to 8 s, framed with a 25 ms Hamming window and
14 ms overlap (11 ms hop), turned into a log power spectrogram and
average-pooled to 140 x 140 (frequency x time).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SpectrogramConfig:
    sample_rate: int = 16000
    seconds: float = 8.0        # cut or zero-pad every utterance to this length
    win_ms: float = 25.0        # Hamming window length
    overlap_ms: float = 14.0    # overlap between windows -> hop = 11 ms
    n_fft: int | None = None    # default: the window length in samples (400 -> 201 bins)
    out_freq: int = 140         # average-pooled size (paper: 140 x 140)
    out_time: int = 140
    log_floor: float = 1e-10    # power floor before the log

    @property
    def win_length(self) -> int:
        return int(round(self.win_ms * self.sample_rate / 1000))

    @property
    def hop_length(self) -> int:
        return int(round((self.win_ms - self.overlap_ms) * self.sample_rate / 1000))

    @property
    def fft_size(self) -> int:
        return self.n_fft or self.win_length

    def to_dict(self) -> dict:
        return asdict(self)


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut to the first n samples or zero-pad at the end."""
    if wave.shape[-1] >= n:
        return wave[..., :n]
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, n - wave.shape[-1])])


def power_spectrogram(wave: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """(..., samples) -> (..., freq, frames) power, no centring (frames start at sample 0)."""
    window = torch.hamming_window(cfg.win_length, periodic=True, dtype=wave.dtype)  # as librosa/scipy "hamming"
    spec = torch.stft(wave, n_fft=cfg.fft_size, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=window, center=False, return_complex=True)
    return spec.real.square() + spec.imag.square()


def compute_spectrogram(wave: np.ndarray, cfg: SpectrogramConfig = SpectrogramConfig()) -> np.ndarray:
    """Mono 16 kHz waveform -> float32 (out_freq, out_time) log power spectrogram."""
    return compute_spectrograms([wave], cfg)[0]


def compute_spectrograms(waves: list[np.ndarray], cfg: SpectrogramConfig = SpectrogramConfig()) -> np.ndarray:
    """Batch version: list of waveforms -> float32 (N, out_freq, out_time)."""
    n = int(round(cfg.seconds * cfg.sample_rate))
    batch = torch.from_numpy(np.stack([fit_length(np.asarray(w, np.float32), n) for w in waves]))
    power = power_spectrogram(batch, cfg)                       # (N, 201, 726)
    logp = torch.log(power.clamp_min(cfg.log_floor))
    pooled = F.adaptive_avg_pool2d(logp.unsqueeze(1), (cfg.out_freq, cfg.out_time)).squeeze(1)
    return pooled.numpy().astype(np.float32)
