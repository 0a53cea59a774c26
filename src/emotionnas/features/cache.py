"""Feature cache: extract once, reuse everywhere.

Layout: ``ROOT/<stream>-<config hash>/<aa>/<audio sha256>.npy`` plus a
``config.json`` per stream folder describing the extractor. The key is the
audio *content* hash plus the extractor config, so renaming or copying a
corpus reuses the cache and changing any setting starts a new folder.

Every entry is written atomically as soon as it is computed, so an
interrupted extraction resumes where it stopped; an entry that fails to load
or has the wrong shape is treated as missing and rebuilt.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotionnas.data.audio import load_audio
from emotionnas.errors import AudioError, ConfigError
from emotionnas.features.spectrogram import SpectrogramConfig, compute_spectrogram
from emotionnas.utils.io import atomic_write_bytes, atomic_write_json

DEFAULT_ENCODER = "whisper-base"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def pool_frames(feats: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool the time axis (axis -2) of (L, T, D) by `factor` (last partial window kept)."""
    if factor <= 1:
        return feats
    L, T, D = feats.shape
    pad = (-T) % factor
    x = np.concatenate([feats, np.zeros((L, pad, D), feats.dtype)], axis=1) if pad else feats
    s = x.reshape(L, -1, factor, D).sum(axis=2)
    counts = np.full(s.shape[1], factor, dtype=np.float32)
    if pad:
        counts[-1] = factor - pad
    return s / counts[None, :, None]


@dataclass
class Stream:
    """One cached stream: its name, extractor config and how to compute an entry."""
    name: str
    config: dict
    compute: object  # callable(wave) -> np.ndarray
    dtype: str = "float32"

    @property
    def folder(self) -> str:
        return f"{self.name}-{config_hash(self.config)}"


def spectrogram_stream(cfg: SpectrogramConfig = SpectrogramConfig()) -> Stream:
    return Stream("spectrogram", {"stream": "spectrogram", **cfg.to_dict()},
                  lambda w: compute_spectrogram(w, cfg), "float32")


def deep_stream(encoder=DEFAULT_ENCODER, deep_pool: int = 2, layers=None) -> Stream:
    """Deep encoder features, frames average-pooled by `deep_pool` (2: 50 -> 25 Hz).

    `layers` keeps only those hidden states (None: all, the default every run reads).
    """
    enc = encoder
    if isinstance(encoder, str):
        from emotionnas.features.encoders import create_encoder
        enc = create_encoder(encoder)
    cfg = {"stream": "deep", "encoder": enc.config_dict(), "deep_pool": deep_pool}
    if layers is None:
        return Stream("deep", cfg, lambda w: pool_frames(enc.encode(w), deep_pool), "float16")
    layers = [int(i) for i in layers]
    bad = [i for i in layers if not 0 <= i <= enc.num_layers]
    if bad:
        raise ConfigError(f"--layers {bad}: {cfg['encoder'].get('name', 'encoder')} has hidden states "
                          f"0..{enc.num_layers}")
    cfg["layers"] = layers
    return Stream("deep", cfg, lambda w: pool_frames(enc.encode(w)[layers], deep_pool), "float16")


@dataclass
class ExtractionReport:
    stream: str
    total: int = 0
    computed: int = 0
    cached: int = 0
    rebuilt: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    def line(self) -> str:
        return (f"{self.stream}: {self.total} files, {self.computed} computed, {self.cached} cached, "
                f"{self.rebuilt} rebuilt, {len(self.errors)} skipped; {self.wall_seconds:.1f} s wall, "
                f"{self.realtime_factor:.0f}x real time" + ("" if self.computed else " (all cached)"))


class FeatureCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._hashes: dict[str, str] = {}

    def _hash(self, path: str) -> str:
        if path not in self._hashes:
            self._hashes[path] = file_sha256(path)
        return self._hashes[path]

    def entry_path(self, stream: Stream, audio_path: str) -> Path:
        h = self._hash(audio_path)
        return self.root / stream.folder / h[:2] / f"{h}.npy"

    @staticmethod
    def _load_entry(path: Path) -> np.ndarray | None:
        """The cached array, or None when missing or corrupt (then it is rebuilt)."""
        if not path.exists():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception:
            return None
        if arr.ndim < 2 or arr.size == 0 or not np.all(np.isfinite(arr)):
            return None
        return arr

    def extract(self, utterances, stream: Stream, progress: bool = True) -> tuple[dict, ExtractionReport]:
        """Return ({audio path: array}, report). Bad audio is skipped and listed in report.errors."""
        from tqdm import tqdm

        folder = self.root / stream.folder
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "config.json").exists():
            atomic_write_json(folder / "config.json", stream.config)
        report = ExtractionReport(stream.name, total=len(utterances))
        out: dict[str, np.ndarray] = {}
        t0 = time.perf_counter()
        for u in tqdm(utterances, desc=f"features:{stream.name}", disable=not progress, unit="file"):
            try:
                path = self.entry_path(stream, u.path)
            except OSError as e:
                report.errors.append(f"{u.path}: unreadable file ({e.strerror})")
                continue
            arr = self._load_entry(path)
            if arr is not None:
                report.cached += 1
                out[u.path] = arr
                continue
            if path.exists():
                report.rebuilt += 1
            try:
                wave = load_audio(u.path)
                arr = np.asarray(stream.compute(wave)).astype(stream.dtype)
            except AudioError as e:
                report.errors.append(str(e))
                continue
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            atomic_write_bytes(path, buf.getvalue())
            report.computed += 1
            report.audio_seconds += len(wave) / 16000
            out[u.path] = arr
        report.wall_seconds = time.perf_counter() - t0
        return out, report
