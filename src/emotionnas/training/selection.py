"""Choosing inside a fold without noise: inner speaker-grouped cross-validation.

Every choice — which candidate, at which epoch, how many in the ensemble — is scored on
out-of-fold predictions over the search speakers: they are split into `k` speaker groups,
each candidate is trained k times (once without each group) and every search speaker is
validated exactly once. Never one validation speaker, never a test speaker.

Budget (successive halving): every candidate is scored on the first `first_rung_folds`
inner folds; the best 1/eta go on to the remaining folds; the ranking uses the complete
out-of-fold score. The ensemble averages the probabilities of the top k (k = 1..max_ensemble
chosen on the same out-of-fold predictions).

Combiner (`selection.combiner`): averaging, or a stacked combiner (space/combiner.py) fitted on
the members' out-of-fold probabilities. The stacker is scored cross-fitted (`cross_fit_stack`:
each inner fold predicted by a stacker fitted on the other inner folds only), so its score never
reads the labels it is scored on; `auto` keeps it only when that score beats averaging.
"""
from __future__ import annotations

import math

import numpy as np

from emotionnas.metrics import unweighted_accuracy
from emotionnas.space.combiner import Combiner, fit_stacker


def inner_folds(speakers: np.ndarray, k: int, seed: int, labels: np.ndarray | None = None,
                biggest_first: bool = True) -> list[np.ndarray]:
    """Positions (into `speakers`) of the validation part of each of `k` inner folds; every
    position is in exactly one fold and every speaker in one fold only.

    Speakers are dealt greedily, biggest first (ties shuffled by `seed`; `biggest_first=False`: in
    an order shuffled by `seed`, so the seed changes the folds even when no two speakers tie), each to the fold where
    it keeps the folds most alike: with `labels`, the folds' class proportions closest to the
    whole set's (stratified group k-fold: a corpus whose speakers each show one or two emotions
    would otherwise give folds that lack a class in training); without, the utterance counts."""
    names, counts = np.unique(speakers, return_counts=True)
    k = min(k, len(names))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    order = sorted(order, key=lambda i: -counts[i]) if biggest_first else list(order)
    n_classes = int(labels.max()) + 1 if labels is not None and len(labels) else 1
    per_speaker = {n: np.bincount(labels[speakers == n], minlength=n_classes) if labels is not None
                   else np.array([c]) for n, c in zip(names, counts)}
    total = sum(per_speaker.values()).astype(float)
    load = np.zeros((k, len(total)))
    groups: list[list] = [[] for _ in range(k)]

    def spread(m: np.ndarray) -> float:
        share = m / np.maximum(total, 1)  # each fold's share of each class
        return float(share.std(axis=0).mean())

    for i in order:
        add = per_speaker[names[i]]
        best = min(range(k), key=lambda g: (spread(load + np.eye(k)[g][:, None] * add), load[g].sum(), g))
        groups[best].append(names[i])
        load[best] += add
    return [np.flatnonzero(np.isin(speakers, g)) for g in groups]


def inner_partitions(speakers: np.ndarray, k: int, seeds: list[int], labels: np.ndarray | None = None
                     ) -> list[np.ndarray]:
    """The inner folds of len(seeds) speaker partitions, concatenated: folds 0..k-1 are the first
    partition (`inner_folds`, biggest speakers first), k..2k-1 the second, and so on. Later
    partitions deal the speakers in a shuffled order: of 20 draws, the first whose folds all hold
    speakers and whose grouping differs from every earlier one (with as many speakers as folds none
    can differ: then the first draw without an empty fold)."""
    seen, out = [], []
    for p, seed in enumerate(seeds):
        draws = [inner_folds(speakers, k, seed + a, labels, biggest_first=p == 0) for a in range(20 if p else 1)]
        full = [f for f in draws if all(len(x) for x in f)] or draws[:1]  # a fold without speakers: never
        groupings = [{frozenset(speakers[x].tolist()) for x in f} for f in full]
        i = next((j for j, g in enumerate(groupings) if g not in seen), 0)
        seen.append(groupings[i])
        out += full[i]
    return out


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


def oof_probs(val_probs, positions, n: int, epoch: int, partitions: int = 1) -> np.ndarray:
    """Out-of-fold probabilities (n, C) at `epoch` from every inner fold's predictions; with
    several partitions (folds in partition order, as `inner_partitions` makes them) the mean of
    each partition's out-of-fold probabilities, so every row is still predicted only by models
    that did not train on it."""
    out = np.zeros((n, val_probs[0].shape[-1]), dtype=np.float32)
    for probs, pos in zip(val_probs, positions):
        out[pos] += probs[epoch - 1] / partitions
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


def cross_fit_stack(member_probs, labels: np.ndarray, positions: list[np.ndarray], n_classes: int) -> np.ndarray:
    """(n, C): each inner fold's rows predicted by a stacker fitted on the other folds' rows (their
    out-of-fold member probabilities and labels); a fold's own labels are never read for it."""
    member_probs = np.asarray(member_probs)
    out = np.zeros(member_probs.shape[1:], np.float64)
    for pos in positions:
        rest = np.setdiff1d(np.arange(len(labels)), pos)
        out[pos] = fit_stacker(member_probs[:, rest], labels[rest], n_classes).apply(member_probs[:, pos])
    return out


def choose_combiner(member_probs, labels: np.ndarray, positions: list[np.ndarray], n_classes: int,
                    mode: str) -> tuple[Combiner, dict]:
    """(the combiner, its record) for the ensemble's (M, n, C) out-of-fold probabilities. `mean`:
    averaging, nothing fitted; `stack`: the stacker; `auto`: the stacker only if its cross-fitted
    out-of-fold UA beats averaging's. The stacker returned is fitted on every row (for refits)."""
    mean_ua = unweighted_accuracy(labels, np.mean(member_probs, axis=0).argmax(1), n_classes)
    record = {"mode": mode, "mean_ua": round(mean_ua, 3)}
    if mode == "mean":
        return Combiner(), {**record, "choice": "mean"}
    crossed = cross_fit_stack(member_probs, labels, positions, n_classes)
    stack_ua = unweighted_accuracy(labels, crossed.argmax(1), n_classes)
    choice = "stack" if mode == "stack" or stack_ua > mean_ua else "mean"
    record.update({"stack_ua": round(stack_ua, 3), "choice": choice})
    return (fit_stacker(member_probs, labels, n_classes) if choice == "stack" else Combiner()), record


def combiner_of(summary: dict, n_classes: int) -> Combiner:
    """A selection summary's combiner (a summary from before the option: averaging)."""
    fitted = (summary.get("combiner") or {}).get("fitted")
    return Combiner.from_dict(fitted, len(summary["members"]), n_classes, f"selection {summary.get('group')}: combiner")
