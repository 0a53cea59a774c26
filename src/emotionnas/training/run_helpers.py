"""Run-wide helpers: task seeds, speaker lookups, the corpus fingerprint and the plan of
selection groups. Every stage of a run (training/run.py) and every task uses them."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from emotionnas.config import RunConfig
from emotionnas.data.folds import Fold, search_fold_for_group
from emotionnas.errors import ConfigError
from emotionnas.rundir import corpus_fingerprint


def stage_seed(seed: int, *parts) -> int:
    """A task's seed from the run seed and the task's name parts (stable across processes)."""
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2**31)


def speaker_indices(speakers: np.ndarray, names) -> np.ndarray:
    return np.flatnonzero(np.isin(speakers, list(names)))


def train_indices(speakers: np.ndarray, fold) -> np.ndarray:
    """Utterances of a fold's training and validation speakers, in corpus order (what its models train on)."""
    return speaker_indices(speakers, [*fold.train, *fold.val])


def fingerprint_of(fs, folds, cfg: RunConfig) -> dict:
    """Utterance ids (relative to the corpus root) with content hashes, speakers, labels,
    protocol and folds."""
    root = Path(cfg.root).resolve()

    def uid(path: str) -> str:
        p = Path(path).resolve()
        return str(p.relative_to(root)) if p.is_relative_to(root) else p.name

    rows = [(uid(u.path), h, u.speaker, u.label) for u, h in zip(fs.table.utterances, fs.content_hashes)]
    return corpus_fingerprint(rows, fs.label_names, folds, cfg.protocol, cfg.corpus, cfg.corpus_options)


def plan_searches(folds: list[Fold], cfg: RunConfig, all_speakers) -> list[tuple[Fold, list[int]]]:
    """[(search fold, indices of the CV folds that use its selection)].

    Folds are dealt round-robin into G groups; group g's search fold excludes the test
    speakers of all its folds. G = number of folds (search_groups 0 or search_per_fold)
    is one selection per fold."""
    G = len(folds) if (cfg.search_per_fold or cfg.search_groups == 0) else min(cfg.search_groups, len(folds))
    if G < 2 and len(folds) > 1:
        raise ConfigError(f"search_groups={cfg.search_groups}: needs at least 2 groups (one selection may not "
                          "see every fold's test speakers), or 0 for one per fold")
    if G == len(folds):
        return [(Fold(f"search-{f.name}", f.train, f.val, f.test), [i]) for i, f in enumerate(folds)]
    plans = []
    for g in range(G):
        members = list(range(g, len(folds), G))
        excluded = sorted({s for i in members for s in folds[i].test})
        sf = search_fold_for_group(all_speakers, excluded, n_val=cfg.n_val, seed=cfg.seed)
        plans.append((Fold(f"group{g}", sf.train, sf.val, sf.test), members))
    return plans
