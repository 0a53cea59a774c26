"""A corpus with its cached feature streams, ready for search and training.

    fs = load_features("emodb", "../shared/data/emodb", "cache", streams=("spectrogram", "deep"))
    fs.spectrograms      # float32 (N, 140, 140)
    fs.deep_batch(idx)   # (float32 (B, L+1, T, D), int64 lengths (B,))
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from emotionnas.data.utterance import CorpusTable
from emotionnas.features.augment import augmented_stream
from emotionnas.features.cache import DEFAULT_ENCODER, FeatureCache, deep_stream, spectrogram_stream
from emotionnas.features.spectrogram import SpectrogramConfig

STREAMS = ("spectrogram", "deep")


@dataclass
class FeatureSet:
    table: CorpusTable                      # only the utterances every requested stream has
    label_names: list[str]
    labels: np.ndarray                      # int64 (N,)
    speakers: np.ndarray                    # str (N,)
    spectrograms: np.ndarray | None = None  # float32 (N, F, T)
    deep: list[np.ndarray] | None = None    # float16 (L+1, T_i, D) each
    reports: list = field(default_factory=list)
    content_hashes: list[str] | None = None  # sha256 of each audio file (run fingerprints)
    # augmented copies (features/augment.py), training data only: name -> {"spectrograms": (N, F, T)
    # or None, "deep": [(L+1, T_i, D)] or None}, aligned with the utterances above
    copies: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def deep_layers(self) -> int:
        return self.deep[0].shape[0]

    @property
    def deep_dim(self) -> int:
        return self.deep[0].shape[-1]

    def deep_batch(self, indices, layers=None, max_frames: int | None = None):
        """Zero-padded deep features: (float32 (B, L', T, D), int64 lengths (B,)).

        `layers` selects encoder layers (None = all); `max_frames` cuts long ones.
        """
        seqs = [self.deep[i] if layers is None else self.deep[i][list(layers)] for i in indices]
        if max_frames:
            seqs = [s[:, :max_frames] for s in seqs]
        lengths = np.array([s.shape[1] for s in seqs], dtype=np.int64)
        L, D = seqs[0].shape[0], seqs[0].shape[2]
        out = np.zeros((len(seqs), L, int(lengths.max()), D), dtype=np.float32)
        for j, s in enumerate(seqs):
            out[j, :, : s.shape[1]] = s
        return torch.from_numpy(out), torch.from_numpy(lengths)

    def spectrogram_batch(self, indices) -> torch.Tensor:
        """float32 (B, 1, F, T)."""
        return torch.from_numpy(self.spectrograms[np.asarray(indices)]).unsqueeze(1)

    def subset(self, indices) -> "FeatureSet":
        idx = np.asarray(indices)
        return FeatureSet(
            CorpusTable(self.table.name, [self.table.utterances[i] for i in idx], list(self.table.errors)),
            self.label_names, self.labels[idx], self.speakers[idx],
            None if self.spectrograms is None else self.spectrograms[idx],
            None if self.deep is None else [self.deep[i] for i in idx], self.reports,
            None if self.content_hashes is None else [self.content_hashes[i] for i in idx],
            {name: {"spectrograms": None if c["spectrograms"] is None else c["spectrograms"][idx],
                    "deep": None if c["deep"] is None else [c["deep"][i] for i in idx]}
             for name, c in self.copies.items()})


def build_feature_set(table: CorpusTable, cache_dir, streams=STREAMS, encoder=DEFAULT_ENCODER,
                      deep_pool: int = 2, spec_cfg: SpectrogramConfig = SpectrogramConfig(),
                      label_names: list[str] | None = None, progress: bool = True,
                      augment: list[str] | tuple = ()) -> FeatureSet:
    """Extract (or read from the cache) the requested streams for every utterance of `table`,
    and each augmented copy of them (`augment`: features/augment.py names).

    Files that fail in any stream are dropped and listed in `table.errors`; a file whose copy
    fails keeps its original features in that copy (the failure is listed).
    """
    unknown = set(streams) - set(STREAMS)
    if unknown:
        raise ValueError(f"unknown stream(s) {sorted(unknown)}; choose from {STREAMS}")
    cache = FeatureCache(cache_dir)
    arrays, reports = {}, []
    made = {name: spectrogram_stream(spec_cfg) if name == "spectrogram" else deep_stream(encoder, deep_pool)
            for name in streams}
    for name, (got, report) in zip(streams, cache.extract_streams(table.utterances, [made[n] for n in streams],
                                                                   progress=progress)):
        arrays[name] = got
        reports.append(report)
    errors = list(table.errors)
    for r in reports:
        errors += [e for e in r.errors if e not in errors]
    ok = [u for u in table.utterances if all(u.path in arrays[s] for s in streams)]
    clean = CorpusTable(table.name, ok, errors)
    names = label_names or clean.labels
    index = {n: i for i, n in enumerate(names)}
    copies = {}
    for copy in augment:
        copies[copy] = {"spectrograms": None, "deep": None}
        for name in streams:
            got, report = cache.extract(ok, augmented_stream(made[name], copy), progress=progress)
            report.stream = f"{name}+{copy}"
            reports.append(report)
            errors += [f"{e} (copy {copy}: original features used)" for e in report.errors]
            values = [got.get(u.path, arrays[name][u.path]) for u in ok]
            copies[copy]["spectrograms" if name == "spectrogram" else "deep"] = (
                np.stack(values) if name == "spectrogram" else values)
    return FeatureSet(
        clean, list(names), np.array([index[u.label] for u in ok], dtype=np.int64),
        np.array([u.speaker for u in ok]),
        np.stack([arrays["spectrogram"][u.path] for u in ok]) if "spectrogram" in streams else None,
        [arrays["deep"][u.path] for u in ok] if "deep" in streams else None, reports,
        [cache.content_hash(u.path) for u in ok], copies)


def load_features(corpus: str, root, cache_dir, streams=STREAMS, encoder=DEFAULT_ENCODER,
                  deep_pool: int = 2, progress: bool = True, spec_cfg: SpectrogramConfig = SpectrogramConfig(),
                  augment: list[str] | tuple = (), **corpus_options) -> FeatureSet:
    from emotionnas.data.corpora import read_corpus
    table = read_corpus(corpus, root, **corpus_options)
    return build_feature_set(table, cache_dir, streams, encoder, deep_pool, spec_cfg, progress=progress,
                             augment=augment)
