"""Audio loading: any format soundfile reads -> mono float32 at 16 kHz, validated.

Every failure is an AudioError whose message is one line naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionnas.errors import AudioError

TARGET_SR = 16000
MIN_SECONDS = 0.1
MAX_SECONDS = 3600.0  # refuse more than an hour per file: surely not one utterance


def validate_wave(wave: np.ndarray, sr: int, name: str = "<array>") -> np.ndarray:
    """Check a waveform already in memory; return it as mono float32 (not resampled)."""
    wave = np.asarray(wave)
    if wave.ndim == 2:  # (frames, channels) as soundfile returns it
        wave = wave.mean(axis=1)
    if wave.ndim != 1:
        raise AudioError(name, f"expected mono or (frames, channels) audio, got shape {wave.shape}")
    if wave.size == 0:
        raise AudioError(name, "empty audio (0 samples)")
    wave = wave.astype(np.float32, copy=False)
    if not np.all(np.isfinite(wave)):
        raise AudioError(name, "audio contains NaN or infinite samples")
    if wave.size < MIN_SECONDS * sr:
        raise AudioError(name, f"too short ({wave.size / sr:.3f} s < {MIN_SECONDS} s)")
    if wave.size > MAX_SECONDS * sr:
        raise AudioError(name, f"too long ({wave.size / sr:.0f} s > {MAX_SECONDS:.0f} s)")
    if not np.any(wave):
        raise AudioError(name, "silent audio (all samples are zero)")
    return wave


def resample(wave: np.ndarray, sr: int, target_sr: int = TARGET_SR) -> np.ndarray:
    if sr == target_sr:
        return wave
    import soxr
    return soxr.resample(wave, sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path, target_sr: int = TARGET_SR, max_seconds: float = MAX_SECONDS, name: str | None = None) -> np.ndarray:
    """Read `path` (a file name, or a binary file object such as an upload), mix down to mono,
    resample to `target_sr` with soxr.

    Raises AudioError (one line, naming the file) for unreadable, empty, too short (< 0.1 s),
    NaN/inf, all-zero or too long (> `max_seconds`) audio. Clipped audio is accepted (it is
    still speech) but values are kept within [-1, 1].
    """
    import soundfile as sf

    name = name or str(path)
    source = str(path) if isinstance(path, (str, Path)) else path
    try:
        info = sf.info(source)
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/TypeError
        raise AudioError(name, f"unreadable audio ({_short(e)})") from None
    if info.frames == 0:
        raise AudioError(name, "empty audio (0 samples)")
    if info.frames > max_seconds * info.samplerate:
        raise AudioError(name, f"too long ({info.frames / info.samplerate:.0f} s > {max_seconds:.0f} s)")
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        wave, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(name, f"unreadable audio ({_short(e)})") from None
    wave = validate_wave(wave, sr, name)
    wave = resample(wave, sr, target_sr)
    return np.clip(wave, -1.0, 1.0)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the header, NaN when the header cannot be read."""
    import soundfile as sf
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:
        return float("nan")


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
