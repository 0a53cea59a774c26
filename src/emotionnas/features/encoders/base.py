"""The deep-feature encoder contract (deep stream of EmotionNAS, Sun et al. 2023, Sec. 2.1).

An encoder turns a 16 kHz mono waveform into EVERY hidden state of a
pretrained speech model, so that later stages can learn a per-layer mix
(models/layer_mix.py) instead of fixing one layer here.
"""
from __future__ import annotations

import abc

import numpy as np

from emotionnas.errors import AudioError, EncoderError  # noqa: F401  (EncoderError: defined in errors.py, imported from here too)




class Encoder(abc.ABC):
    """Base class of every registered encoder.

    Attributes:
        name: registry name or ``hf:<id>``.
        num_layers: number of transformer blocks L.
        dim: hidden size D.
        sample_rate: expected input rate (16000).
        frame_rate: output frames per second (50.0 for Whisper).
    """

    name: str
    num_layers: int
    dim: int
    sample_rate: int = 16000
    frame_rate: float

    @abc.abstractmethod
    def encode(self, wave: np.ndarray) -> np.ndarray:
        """wave float32 (n,) at 16 kHz -> float32 (num_layers + 1, T, dim).

        Index 0 is the input-embedding output, index i the output of block i
        (Hugging Face ``output_hidden_states`` convention).
        """

    def encode_upto(self, wave: np.ndarray, max_layer: int) -> np.ndarray:
        """Hidden states 0..max_layer only: ``encode(wave)[: max_layer + 1]``. Encoders that can
        stop early (Whisper) override this to skip the blocks above `max_layer`."""
        return self.encode(wave)[: max_layer + 1]

    def encode_many(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Encode a list of waves; subclasses may batch. Same result as ``encode`` each."""
        return [self.encode(w) for w in waves]

    @abc.abstractmethod
    def config_dict(self) -> dict:
        """JSON-able identity of the extractor (weights checksum, layers, front end).

        Used in the feature-cache key: two encoders giving different numbers
        must never share a dict.
        """

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, num_layers={self.num_layers}, "
                f"dim={self.dim}, frame_rate={self.frame_rate})")


MIN_SAMPLES = 400  # one 25 ms analysis window; shorter input has no frame


def check_wave(wave: np.ndarray, name: str = "<wave>") -> np.ndarray:
    """Return `wave` as contiguous float32 (n,), or raise a one-line AudioError."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise AudioError(name, f"encoder expects mono audio of shape (n,), got {wave.shape}")
    if wave.size < MIN_SAMPLES:
        raise AudioError(name, f"too short for an encoder ({wave.size} samples < {MIN_SAMPLES})")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if not np.all(np.isfinite(wave)):
        raise AudioError(name, "audio contains NaN or infinite samples")
    return wave
