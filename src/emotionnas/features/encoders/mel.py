"""Whisper's log-mel front end (Radford et al. 2022, Sec. 2.2), computed unpadded.

Identical to ``whisper.audio.log_mel_spectrogram``: 25 ms Hann window
(n_fft 400), 10 ms hop (160), power spectrum, Slaney mel filters from
``librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`` (what Whisper ships in
``mel_filters.npz``), log10 clamped at 1e-10, dynamic range limited to 8
(i.e. 80 dB) below the utterance maximum, then ``(x + 4) / 4``.

Whisper pads every input to 30 s; we do not (the encoder accepts shorter
input), which is ~20x cheaper for 1-9 s emotional utterances.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_FRAMES = 3000  # 30 s of mel frames: the longest input Whisper's positions cover


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) float32 Slaney filter bank, as Whisper uses."""
    from emotionnas.features.mel_filters import slaney_mel  # librosa's numbers, without importing it
    return torch.from_numpy(slaney_mel(SAMPLE_RATE, N_FFT, n_mels).copy())


@functools.lru_cache(maxsize=1)
def _hann() -> torch.Tensor:
    return torch.hann_window(N_FFT)


def log_mel(wave: np.ndarray | torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """wave (n,) float32 16 kHz -> log-mel (n_mels, n // 160) float32."""
    audio = torch.as_tensor(wave, dtype=torch.float32)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=_hann(), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = mel_filters(n_mels) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
