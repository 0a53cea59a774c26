"""Choosing inside a fold without noise: inner speaker-grouped cross-validation.

Every choice — which candidate, at which epoch, how many in the ensemble — is scored on
out-of-fold predictions over the search speakers: they are split into `k` speaker groups,
each candidate is trained k times (once without each group) and every search speaker is
validated exactly once. Never one validation speaker, never a test speaker.

Budget (successive halving): every candidate is scored on the first `first_rung_folds`
inner folds; the best 1/eta go on to the remaining folds; the ranking uses the complete
out-of-fold score. The ensemble averages the probabilities of the top k (k = 1..max_ensemble
chosen on the same out-of-fold predictions).
"""
from __future__ import annotations

import math

import numpy as np

from emotionnas.metrics import unweighted_accuracy


def inner_folds(speakers: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Positions (into `speakers`) of the validation part of each of `k` inner folds:
    speakers shuffled (seeded), then dealt to the group with fewest utterances so far, so
    groups are balanced in utterances. Every position is in exactly one fold."""
    names, counts = np.unique(speakers, return_counts=True)
    k = min(k, len(names))
    order = np.random.default_rng(seed).permutation(len(names))
    order = sorted(order, key=lambda i: -counts[i])  # stable: biggest speakers first, ties shuffled
    load, groups = [0] * k, [[] for _ in range(k)]
    for i in order:
        g = min(range(k), key=lambda j: (load[j], j))
        groups[g].append(names[i])
        load[g] += counts[i]
    return [np.flatnonzero(np.isin(speakers, g)) for g in groups]


def smooth(curve: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (shorter windows at the ends)."""
    if width <= 1:
        return curve
    half = width // 2
    return np.array([curve[max(0, i - half): i + half + 1].mean() for i in range(len(curve))])


def epoch_curve(val_probs: list[np.ndarray], val_labels: list[np.ndarray], n_classes: int) -> np.ndarray:
    """Mean over the given inner folds of the validation UA after each epoch."""
    per_fold = [[unweighted_accuracy(y, p.argmax(1), n_classes) for p in probs]
                for probs, y in zip(val_probs, val_labels)]
    return np.mean(per_fold, axis=0)


def choose_epoch(val_probs, val_labels, n_classes: int, width: int) -> tuple[int, float]:
    """(epoch (1-based), smoothed mean inner UA there): the argmax of the smoothed curve."""
    curve = smooth(epoch_curve(val_probs, val_labels, n_classes), width)
    e = int(np.argmax(curve))
    return e + 1, float(curve[e])


def oof_probs(val_probs, positions, n: int, epoch: int) -> np.ndarray:
    """Out-of-fold probabilities (n, C) at `epoch` from every inner fold's predictions."""
    out = np.zeros((n, val_probs[0].shape[-1]), dtype=np.float32)
    for probs, pos in zip(val_probs, positions):
        out[pos] = probs[epoch - 1]
    return out


def speaker_scores(probs: np.ndarray, labels: np.ndarray, speakers: np.ndarray, n_classes: int) -> dict:
    """UA per speaker (what a single validation speaker would have reported)."""
    return {str(s): unweighted_accuracy(labels[speakers == s], probs[speakers == s].argmax(1), n_classes)
            for s in np.unique(speakers)}


def survivors(scores: dict[str, float], eta: int) -> list[str]:
    """The best ceil(n / eta) keys by score (ties: key order), for the next rung."""
    keep = max(1, math.ceil(len(scores) / eta))
    return [k for k, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]]


def choose_ensemble(ranked_probs: list[np.ndarray], labels: np.ndarray, n_classes: int,
                    max_k: int) -> tuple[int, list[float]]:
    """(k, UA of top-1..top-max_k averages): the smallest k with the best out-of-fold UA."""
    uas, total = [], None
    for probs in ranked_probs[:max_k]:
        total = probs.copy() if total is None else total + probs
        uas.append(unweighted_accuracy(labels, total.argmax(1), n_classes))
    best = max(uas)
    return uas.index(best) + 1, uas
