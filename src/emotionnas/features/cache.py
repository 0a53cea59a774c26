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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotionnas.data.audio import load_audio
from emotionnas.config import FeatureConfig
from emotionnas.errors import AudioError, ConfigError
from emotionnas.features.inputs import pool_frames_np
from emotionnas.features.spectrogram import SpectrogramConfig, compute_spectrogram
from emotionnas.utils.io import atomic_write_bytes, atomic_write_json, file_sha256

DEFAULT_ENCODER = FeatureConfig.encoder  # what a run extracts unless told otherwise
# Bump when the code that turns audio into a cached array changes (audio loading, spectrogram,
# pooling, dtype handling): it is part of every cache key, so old entries are never reused.
FEATURE_IMPL_VERSION = 2       # deep stream (the encoder's own version is in its config too)
SPECTROGRAM_IMPL_VERSION = 3   # 3: NumPy STFT and pooling (was torch; differences ~1e-5)
FLOAT16_MAX = 65504.0


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def to_stored(arr: np.ndarray, dtype: str, name: str = "<features>") -> np.ndarray:
    """Cast computed features to their cache dtype. Non-finite values are an error (the file is
    skipped and listed); values beyond float16's range are clipped, not stored as inf."""
    arr = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise AudioError(name, "features contain NaN or infinite values")
    if dtype == "float16":
        arr = np.clip(arr, -FLOAT16_MAX, FLOAT16_MAX)
    return arr.astype(dtype)


def deep_features(encoder, wave: np.ndarray, deep_pool: int, max_layer: int | None = None,
                  name: str = "<wave>") -> np.ndarray:
    """The deep stream of one utterance exactly as training reads it: hidden states of the whole
    utterance (0..max_layer, or all), frames average-pooled by `deep_pool`, stored as float16.
    The feature cache and the recognizer both call this (no train/serve skew)."""
    states = encoder.encode(wave) if max_layer is None else encoder.encode_upto(wave, max_layer)
    return to_stored(pool_frames_np(states, deep_pool), "float16", name)


@dataclass
class Stream:
    """One cached stream: its name, extractor config, how to compute an entry and its shape.

    `shape` gives the expected size per axis (None: any size); entries of another shape,
    or with non-finite values, are rebuilt on load and refused on write."""
    name: str
    config: dict
    compute: object  # callable(wave) -> np.ndarray
    dtype: str = "float32"
    shape: tuple = ()
    compute_many: object = None  # optional callable(list of waves) -> list of arrays (batched)

    @property
    def folder(self) -> str:
        return f"{self.name}-{config_hash(self.config)}"

    def valid(self, arr: np.ndarray) -> bool:
        return (arr.ndim == len(self.shape) and arr.size > 0 and str(arr.dtype) == self.dtype
                and all(want is None or got == want for got, want in zip(arr.shape, self.shape))
                and bool(np.all(np.isfinite(arr))))


def spectrogram_stream(cfg: SpectrogramConfig = SpectrogramConfig()) -> Stream:
    key = {k: v for k, v in cfg.to_dict().items() if not (k == "mel_bins" and v is None)}  # linear: key unchanged
    return Stream("spectrogram", {"stream": "spectrogram", "impl": SPECTROGRAM_IMPL_VERSION, **key},
                  lambda w: compute_spectrogram(w, cfg), "float32", (cfg.out_freq, cfg.out_time))


def deep_stream(encoder=DEFAULT_ENCODER, deep_pool: int = 2, layers=None) -> Stream:
    """Deep encoder features, frames average-pooled by `deep_pool` (2: 50 -> 25 Hz).

    `layers` keeps only those hidden states (None: all, the default every run reads).
    """
    enc = encoder
    if isinstance(encoder, str):
        from emotionnas.features.encoders import create_encoder
        enc = create_encoder(encoder)
    cfg = {"stream": "deep", "impl": FEATURE_IMPL_VERSION, "encoder": enc.config_dict(), "deep_pool": deep_pool}
    if layers is None:
        return Stream("deep", cfg, lambda w: deep_features(enc, w, deep_pool), "float16",
                      (enc.num_layers + 1, None, enc.dim),
                      (lambda ws: [pool_frames_np(s, deep_pool) for s in enc.encode_many(ws)])
                      if hasattr(enc, "encode_many") else None)
    layers = [int(i) for i in layers]
    bad = [i for i in layers if not 0 <= i <= enc.num_layers]
    if bad:
        raise ConfigError(f"--layers {bad}: {cfg['encoder'].get('name', 'encoder')} has hidden states "
                          f"0..{enc.num_layers}")
    cfg["layers"] = layers
    return Stream("deep", cfg, lambda w: deep_features(enc, w, deep_pool)[layers], "float16",
                  (len(layers), None, enc.dim))


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


def _write_entry(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def combined_line(reports: list[ExtractionReport], wall: float) -> str:
    """One line for streams extracted together: their shared wall time and real-time factor."""
    audio = max(r.audio_seconds for r in reports)
    return f"all streams: {wall:.1f} s wall" + (f", {audio / wall:.0f}x real time" if audio and wall > 0 else "")


class FeatureCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._hashes: dict[str, str] = {}

    def content_hash(self, path: str) -> str:
        """sha256 of an audio file's bytes (memoised: each file is read once per cache object)."""
        if path not in self._hashes:
            self._hashes[path] = file_sha256(path)
        return self._hashes[path]

    def entry_path(self, stream: Stream, audio_path: str) -> Path:
        h = self.content_hash(audio_path)
        return self.root / stream.folder / h[:2] / f"{h}.npy"

    @staticmethod
    def _load_entry(path: Path, stream: Stream) -> np.ndarray | None:
        """The cached array, or None when missing, corrupt, of the wrong shape or dtype, or
        not finite (then it is rebuilt)."""
        if not path.exists():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception:
            return None
        return arr if stream.valid(arr) else None

    def extract(self, utterances, stream: Stream, progress: bool = True,
                batch: int = 16) -> tuple[dict, ExtractionReport]:
        """Return ({audio path: array}, report). Bad audio is skipped and listed in report.errors.

        Missing entries are computed `batch` at a time, in order of duration, through the
        stream's `compute_many` when it has one (Whisper batching is exact: same numbers as one
        at a time); each entry is written as soon as its batch is done."""
        from tqdm import tqdm

        self._prepare_folder(stream)
        report = ExtractionReport(stream.name, total=len(utterances))
        out: dict[str, np.ndarray] = {}
        t0 = time.perf_counter()
        bar = tqdm(total=len(utterances), desc=f"features:{stream.name}", disable=not progress, unit="file")
        todo = self._collect_cached(utterances, stream, report, out, bar)
        todo.sort(key=lambda item: (getattr(item[0], "duration", 0.0) or 0.0, item[0].path))
        # Entries are written by one background thread while the next batch computes (a write
        # releases the GIL); leaving the block, normally or on interrupt, waits for every write.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-writer") as writer:
            pending = []
            for start in range(0, len(todo), batch):
                chunk, waves = self._load_waves(todo[start:start + batch], report, bar)
                arrays = self._compute(stream, waves, chunk, report)
                pending += self._store(stream, chunk, waves, arrays, report, out, bar, writer)
        for future in pending:
            future.result()  # a failed write (disk full, permissions) is raised here, not lost
        bar.close()
        report.wall_seconds = time.perf_counter() - t0
        return out, report

    def extract_streams(self, utterances, streams: list[Stream], progress: bool = True) -> list[tuple[dict, ExtractionReport]]:
        """`extract` of several streams, one result per stream in order. The stream with a batched
        encoder (`compute_many`: torch, both cores; else the first) runs here while the others
        (NumPy, which frees the GIL in its FFTs and writes) run in one thread beside it: same
        entries, less wall time; only this stream shows a progress bar."""
        if len(streams) < 2:
            return [self.extract(utterances, s, progress=progress) for s in streams]
        heavy = max(range(len(streams)), key=lambda i: streams[i].compute_many is not None)
        rest = [s for i, s in enumerate(streams) if i != heavy]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-beside") as beside:
            others = beside.submit(lambda: [self.extract(utterances, s, progress=False) for s in rest])
            first = self.extract(utterances, streams[heavy], progress=progress)
            done = iter(others.result())
        return [first if i == heavy else next(done) for i in range(len(streams))]

    def _prepare_folder(self, stream: Stream) -> None:
        """Create the stream's folder and its config.json (once)."""
        folder = self.root / stream.folder
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "config.json").exists():
            atomic_write_json(folder / "config.json", stream.config)

    def _collect_cached(self, utterances, stream: Stream, report: ExtractionReport, out: dict, bar) -> list:
        """Put every valid cached entry into `out`; return [(utterance, entry path)] still to compute."""
        todo = []
        for u in utterances:
            try:
                path = self.entry_path(stream, u.path)
            except OSError as e:
                report.errors.append(f"{u.path}: unreadable file ({e.strerror})")
                bar.update(1)
                continue
            arr = self._load_entry(path, stream)
            if arr is not None:
                report.cached += 1
                out[u.path] = arr
                bar.update(1)
                continue
            if path.exists():
                report.rebuilt += 1
            todo.append((u, path))
        return todo

    @staticmethod
    def _load_waves(items, report: ExtractionReport, bar) -> tuple[list, list]:
        """Audio of a batch: ([(utterance, entry path)] that loaded, their waves); bad audio is listed."""
        chunk, waves = [], []
        for u, path in items:
            try:
                waves.append(load_audio(u.path))
                chunk.append((u, path))
            except AudioError as e:
                report.errors.append(str(e))
                bar.update(1)
        return chunk, waves

    @staticmethod
    def _store(stream: Stream, chunk, waves, arrays, report: ExtractionReport, out: dict, bar,
               writer) -> list:
        """Queue each computed array of a batch on `writer` (atomic write to its entry) and put it
        into `out`; an array of the wrong shape is listed, not written. Returns the futures."""
        futures = []
        for (u, path), wave, arr in zip(chunk, waves, arrays):
            bar.update(1)
            if arr is None:
                continue
            if not stream.valid(arr):
                report.errors.append(f"{u.path}: {stream.name} features of shape {arr.shape}, "
                                     f"expected {stream.shape} (None: any)")
                continue
            futures.append(writer.submit(_write_entry, path, arr))
            report.computed += 1
            report.audio_seconds += len(wave) / 16000
            out[u.path] = arr
        return futures

    @staticmethod
    def _compute(stream: Stream, waves, chunk, report) -> list:
        """Stored arrays for a batch (None for a file that fails; its error is listed)."""
        if stream.compute_many is not None and waves:
            try:
                return [to_stored(a, stream.dtype, u.path) for a, (u, _) in
                        zip(stream.compute_many(waves), chunk)]
            except AudioError:
                pass  # one bad file in the batch: fall back to one at a time to name it
        arrays = []
        for wave, (u, _) in zip(waves, chunk):
            try:
                arrays.append(to_stored(stream.compute(wave), stream.dtype, u.path))
            except AudioError as e:
                report.errors.append(str(e))
                arrays.append(None)
        return arrays
