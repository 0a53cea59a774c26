"""Handcrafted stream of EmotionNAS (Sun et al. 2023, Sec. 3.1).

Audio is cut or zero-padded to 8 s, framed with a 25 ms Hamming window and
14 ms overlap (11 ms hop), turned into a log power spectrogram and
average-pooled to 140 x 140 (frequency x time).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    mel_bins: int | None = None  # log-mel instead of log-linear: power through this many Slaney mel filters

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


def hamming(n: int) -> np.ndarray:
    """Periodic Hamming window (as scipy/librosa "hamming" and torch.hamming_window(periodic=True))."""
    return (0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def power_spectrogram(wave: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """(N, samples) -> (N, freq, frames) power, no centring (frames start at sample 0)."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, cfg.win_length, axis=-1)[..., ::cfg.hop_length, :]
    window = np.zeros(cfg.fft_size)
    off = (cfg.fft_size - cfg.win_length) // 2
    window[off:off + cfg.win_length] = hamming(cfg.win_length)
    if cfg.fft_size != cfg.win_length:
        padded = np.zeros(frames.shape[:-1] + (cfg.fft_size,))
        padded[..., off:off + cfg.win_length] = frames
        frames = padded
    spec = np.fft.rfft(frames * window, axis=-1)             # (N, frames, freq)
    return np.swapaxes(spec.real ** 2 + spec.imag ** 2, -1, -2)


def adaptive_avg_pool(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(N, H, W) -> (N, out_h, out_w): bin i averages rows floor(i*H/out)..ceil((i+1)*H/out),
    as torch's adaptive_avg_pool2d."""
    def pool(a: np.ndarray, out: int, axis: int) -> np.ndarray:
        n = a.shape[axis]
        c = np.cumsum(a, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        starts = (np.arange(out) * n) // out
        ends = -((-(np.arange(out) + 1) * n) // out)
        total = np.take(c, ends, axis=axis) - np.take(c, starts, axis=axis)
        shape = [1] * a.ndim
        shape[axis] = out
        return total / (ends - starts).reshape(shape)
    return pool(pool(x, out_h, 1), out_w, 2)


def _padded_power(wave: np.ndarray, used: int, cfg: SpectrogramConfig) -> np.ndarray:
    """`power_spectrogram` of one cut/padded wave whose first `used` samples are audio: the
    frames that lie wholly in the zero padding have power exactly 0, so only the others go
    through the FFT (a 2 s utterance padded to 8 s costs a quarter)."""
    frames = (len(wave) - cfg.win_length) // cfg.hop_length + 1
    live = min(frames, max(1, -(-used // cfg.hop_length)))  # frames starting before the padding
    power = np.zeros((cfg.fft_size // 2 + 1, frames))
    end = min(len(wave), (live - 1) * cfg.hop_length + cfg.win_length)
    power[:, :live] = power_spectrogram(wave[None, :end], cfg)[0]
    return power


def compute_spectrogram(wave: np.ndarray, cfg: SpectrogramConfig = SpectrogramConfig()) -> np.ndarray:
    """Mono 16 kHz waveform -> float32 (out_freq, out_time) log power spectrogram."""
    return compute_spectrograms([wave], cfg)[0]


def compute_spectrograms(waves: list[np.ndarray], cfg: SpectrogramConfig = SpectrogramConfig()) -> np.ndarray:
    """Batch version: list of waveforms -> float32 (N, out_freq, out_time). NumPy only (the
    recognizer's ONNX backend runs it without torch)."""
    n = int(round(cfg.seconds * cfg.sample_rate))
    power = np.stack([_padded_power(fit_length(np.asarray(w, np.float32), n).astype(np.float64),
                                    min(len(w), n), cfg) for w in waves])
    if cfg.mel_bins:
        from emotionnas.features.mel_filters import slaney_mel
        fb = slaney_mel(cfg.sample_rate, cfg.fft_size, cfg.mel_bins)
        power = np.einsum("mf,nft->nmt", fb, power)
    logp = np.log(np.maximum(power, cfg.log_floor))
    return adaptive_avg_pool(logp, cfg.out_freq, cfg.out_time).astype(np.float32)
