"""Audio loading: any format soundfile reads, or an array -> mono float32 at 16 kHz, validated,
within limits checked before anything is allocated.

One place holds the limits (`AudioLimits`): seconds, bytes, sample rate, channels and the decoded
size (frames x channels x 4 bytes of float32). The header is checked first; decoding then runs in
blocks that are mixed down and resampled as they come (only the 16 kHz mono result is held), and
the same limits are counted again while decoding, so a header that lies cannot exceed them.

Every failure is an AudioError whose message is one line naming the input; `AudioError.limit`
is True when a limit (not the content) refused it.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionnas.data.file_kind import file_problem, not_regular
from emotionnas.errors import AudioError

TARGET_SR = 16000
MIN_SECONDS = 0.1
BLOCK_FRAMES = 65536  # decode/resample block; the result does not depend on it for 16 kHz input


@dataclass(frozen=True)
class AudioLimits:
    """What one input may be. `max_decoded_mb` bounds the work of decoding (frames x channels x
    4 bytes, counted as it decodes); memory held is only the 16 kHz mono result."""
    max_seconds: float = 3600.0      # an hour per file: surely not one utterance
    max_bytes: int = 2 * 1024 ** 3   # file or upload size
    min_rate: int = 8000
    max_rate: int = 192000
    max_channels: int = 8
    max_decoded_mb: float = 4096.0

    def describe(self) -> str:
        return (f"{self.max_seconds:g} s, {self.max_bytes / 2 ** 20:g} MB per file, "
                f"{self.min_rate}-{self.max_rate} Hz, <= {self.max_channels} channels, "
                f"<= {self.max_decoded_mb:g} MB decoded")

    def check_header(self, name: str, sr: int, channels: int, frames: int | None) -> None:
        if not self.min_rate <= sr <= self.max_rate:
            raise AudioError(name, f"sample rate {sr} Hz outside the supported "
                                   f"{self.min_rate}-{self.max_rate} Hz", limit=True)
        if not 1 <= channels <= self.max_channels:
            raise AudioError(name, f"{channels} channels (limit {self.max_channels})", limit=True)
        if frames:
            self.check_decoded(name, sr, channels, frames)

    def check_decoded(self, name: str, sr: int, channels: int, frames: int) -> None:
        if frames > self.max_seconds * sr:
            raise AudioError(name, f"too long ({frames / sr:.0f} s > limit {self.max_seconds:g} s)", limit=True)
        mb = frames * channels * 4 / 2 ** 20
        if mb > self.max_decoded_mb:
            raise AudioError(name, f"decodes to {mb:.0f} MB > limit {self.max_decoded_mb:g} MB", limit=True)


DEFAULT_LIMITS = AudioLimits()
MAX_SECONDS = DEFAULT_LIMITS.max_seconds


def _mono_blocks(blocks, sr: int, channels: int, name: str, limits: AudioLimits, target_sr: int):
    """(frames, channels) float32 blocks -> mono float32 blocks at `target_sr`, clipped to
    [-1, 1], the limits counted as they come. Raises AudioError for NaN/inf, empty, too short."""
    stream = None
    if sr != target_sr:
        import soxr
        stream = soxr.ResampleStream(sr, target_sr, 1, dtype="float32", quality="HQ")
    frames = 0
    for block in blocks:
        frames += len(block)
        limits.check_decoded(name, sr, channels, frames)
        mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
        if not np.all(np.isfinite(mono)):
            raise AudioError(name, "audio contains NaN or infinite samples")
        out = stream.resample_chunk(mono) if stream is not None else mono
        if len(out):
            yield np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield np.clip(tail, -1.0, 1.0).astype(np.float32, copy=False)
    if frames == 0:
        raise AudioError(name, "empty audio (0 samples)")
    if frames < MIN_SECONDS * sr:
        raise AudioError(name, f"too short ({frames / sr:.3f} s < {MIN_SECONDS} s)")


def _decode(blocks, sr: int, channels: int, name: str, limits: AudioLimits, target_sr: int) -> np.ndarray:
    """(frames, channels) float32 blocks -> one mono float32 array at `target_sr`, validated."""
    return _joined(_mono_blocks(blocks, sr, channels, name, limits, target_sr), name)


def _joined(mono_blocks, name: str) -> np.ndarray:
    """Mono blocks -> one array; AudioError when every sample is zero."""
    parts = list(mono_blocks)
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if not np.any(wave):
        raise AudioError(name, "silent audio (all samples are zero)")
    return wave


def _frames_view(wave, name: str, max_channels: int) -> np.ndarray:
    """An array as (frames, channels), without a copy: mono gets a channel axis, channel-first
    arrays are transposed (a view)."""
    a = np.asarray(wave)
    if a.dtype.kind not in "iuf":
        raise AudioError(name, f"unsupported sample type {a.dtype} (expected integer or float samples)")
    if a.ndim == 1:
        return a[:, None]
    if a.ndim == 2:
        return a.T if a.shape[1] > max_channels and a.shape[0] <= max_channels else a  # (channels, frames)
    raise AudioError(name, f"expected mono, (frames, channels) or (channels, frames) audio, got shape {a.shape}")


def _as_float(a: np.ndarray) -> np.ndarray:
    """Samples as a file would decode them: float32 in [-1, 1] scale, integers scaled as
    libsndfile scales them."""
    if a.dtype.kind == "i":
        return (a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))).astype(np.float32)
    if a.dtype.kind == "u":
        half = float(2 ** (8 * a.dtype.itemsize - 1))
        return ((a.astype(np.float64) - half) / half).astype(np.float32)
    return a.astype(np.float32, copy=False)


def prepare_array(wave, sample_rate: int = TARGET_SR, name: str = "<array>",
                  limits: AudioLimits = DEFAULT_LIMITS, target_sr: int = TARGET_SR) -> np.ndarray:
    """A waveform array (any integer or float dtype; mono, channel-last or channel-first) ->
    mono float32 at `target_sr`, exactly as `load_audio` treats the same samples in a file.
    The limits are checked on the shape, before any copy is made."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise AudioError(name, f"sample_rate must be an integer, got {type(sample_rate).__name__}")
    view = _frames_view(wave, name, limits.max_channels)
    limits.check_header(name, int(sample_rate), view.shape[1], len(view))
    a = _as_float(view)
    blocks = (a[i:i + BLOCK_FRAMES] for i in range(0, len(a), BLOCK_FRAMES))
    return _decode(blocks, int(sample_rate), a.shape[1], name, limits, target_sr)


def validate_wave(wave: np.ndarray, sr: int, name: str = "<array>") -> np.ndarray:
    """Check a waveform at its own rate; return it as mono float32 (not resampled)."""
    return prepare_array(wave, sr, name, target_sr=sr)


def resample(wave: np.ndarray, sr: int, target_sr: int = TARGET_SR) -> np.ndarray:
    if sr == target_sr:
        return wave
    return prepare_array(wave, sr, target_sr=target_sr)


def load_audio(path, target_sr: int = TARGET_SR, max_seconds: float | None = None, name: str | None = None,
               limits: AudioLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read `path` (a file name, or a binary file object such as an upload) within `limits`
    (`max_seconds` overrides its duration), mix down to mono, resample to `target_sr` with soxr.

    Raises AudioError (one line, naming the input) for unreadable, empty, too short (< 0.1 s),
    NaN/inf, all-zero audio and anything over a limit. Clipped audio is accepted (it is still
    speech) but values are kept within [-1, 1].
    """
    name = _input_name(path, name)
    return _joined(stream_audio(path, target_sr, max_seconds, name, limits), name)


def _input_name(path, name: str | None) -> str:
    return name or (str(path) if isinstance(path, (str, Path)) else "upload")


def stream_audio(path, target_sr: int = TARGET_SR, max_seconds: float | None = None, name: str | None = None,
                 limits: AudioLimits = DEFAULT_LIMITS):
    """Like `load_audio`, as a generator of mono `target_sr` float32 blocks (~4 s each): an hour
    of audio is read in bounded memory. The header is checked before the first block."""
    import soundfile as sf

    if max_seconds is not None:
        limits = AudioLimits(**{**limits.__dict__, "max_seconds": max_seconds})
    is_path = isinstance(path, (str, Path))
    name = _input_name(path, name)
    if is_path:
        try:
            st = os.stat(path)  # never open() a FIFO or a device: it would block or never end
        except OSError as e:
            raise AudioError(name, f"unreadable audio ({e.strerror or type(e).__name__})") from None
        if not stat.S_ISREG(st.st_mode):
            raise AudioError(name, not_regular(st.st_mode))
        size = st.st_size
        if size > limits.max_bytes:
            raise AudioError(name, f"file of {size / 2 ** 20:.0f} MB > limit {limits.max_bytes / 2 ** 20:g} MB",
                             limit=True)
    try:
        f = sf.SoundFile(str(path) if is_path else path)
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/TypeError
        raise AudioError(name, f"unreadable audio ({_short(e)})") from None
    with f:
        frames = f.frames if 0 < f.frames < 2 ** 62 else None
        limits.check_header(name, f.samplerate, f.channels, frames)
        if frames is None and f.frames == 0:
            raise AudioError(name, "empty audio (0 samples)")
        try:
            yield from _mono_blocks(_read_blocks(f), f.samplerate, f.channels, name, limits, target_sr)
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(name, f"unreadable audio ({_short(e)})") from None


def _read_blocks(f):
    """Blocks of what the file really holds: `SoundFile.blocks` pads a short read (a truncated
    file whose header promises more) with stale or uninitialised memory; `read` trims."""
    while True:
        block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        if not len(block):
            return
        yield block


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the header, NaN when the header cannot be read (or `path` is not a
    regular file: a FIFO would block the header read)."""
    import soundfile as sf
    if file_problem(path) is not None:
        return float("nan")
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:
        return float("nan")


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
