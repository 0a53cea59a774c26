"""Choose which encoder layers feed the deep branch, on search speakers only.

Encoders differ in where emotion lives: for Whisper-base on EmoDB the lower-middle
hidden states (2-3 of 0-6) beat a learned mix of all seven by 20 UA points
(BENCHMARKS.md, "Deep branch"). The choice is part of the architecture, so it is
made like the rest of the search: with the speakers a search may see, never the
test speakers of the folds that use it.

Method: every utterance becomes one mean-pooled vector per layer; for every layer a
multinomial logistic regression (L2, full-batch L-BFGS, all layers fitted at once)
is scored leave-one-speaker-out over the given speakers, the pooled predictions
give one UA per layer, and the best window of ``k`` consecutive layers wins.

    choice = select_layers(fs, search_indices, k=2)   # {"layers": [2, 3], "scores": [...], ...}
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from emotionnas.metrics import unweighted_accuracy


def layer_means(fs, indices) -> np.ndarray:
    """(n, L, D) float32: each utterance's deep features averaged over frames, per layer."""
    return np.stack([np.asarray(fs.deep[i], dtype=np.float32).mean(axis=1) for i in indices])


def _fit_predict(x_tr: torch.Tensor, y_tr: torch.Tensor, x_te: torch.Tensor, n_classes: int,
                 l2: float, steps: int) -> torch.Tensor:
    """One logistic regression per layer, fitted jointly: x (n, L, D) -> predicted labels (n_te, L)."""
    mean, std = x_tr.mean(0, keepdim=True), x_tr.std(0, keepdim=True) + 1e-5
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    L, D = x_tr.shape[1:]
    w = torch.zeros(L, D, n_classes, requires_grad=True)
    b = torch.zeros(L, n_classes, requires_grad=True)
    counts = torch.bincount(y_tr, minlength=n_classes).float()
    weight = torch.where(counts > 0, counts.sum() / counts.clamp_min(1) / n_classes, torch.zeros(()))
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    y_rep = y_tr.repeat_interleave(L)

    def closure():
        opt.zero_grad()
        logits = torch.einsum("nld,ldc->nlc", x_tr, w) + b
        loss = F.cross_entropy(logits.reshape(-1, n_classes), y_rep, weight=weight) * L
        loss = loss + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (torch.einsum("nld,ldc->nlc", x_te, w) + b).argmax(-1)


def probe_scores(x: np.ndarray, labels: np.ndarray, speakers: np.ndarray, n_classes: int,
                 l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """UA (percent) of a per-layer linear probe, leave-one-speaker-out over `speakers`: (L,).

    With a single speaker, 5 interleaved folds of utterances stand in for speakers."""
    x_t, y_t = torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(labels, dtype=torch.long)
    pred = np.zeros((len(labels), x.shape[1]), dtype=np.int64)
    speakers = np.asarray(speakers)
    if len(set(speakers)) < 2:  # one speaker (e.g. a k-fold corpus): 5 interleaved utterance folds
        speakers = np.arange(len(labels)) % min(5, len(labels))
    with torch.enable_grad():
        for spk in sorted(set(speakers)):
            te = speakers == spk
            pred[te] = _fit_predict(x_t[~te], y_t[~te], x_t[te], n_classes, l2, steps).numpy()
    return np.array([unweighted_accuracy(labels, pred[:, layer], n_classes) for layer in range(x.shape[1])])


def best_window(scores, k: int) -> list[int]:
    """The k consecutive layers with the highest mean score (ties: the lowest layers)."""
    scores = np.asarray(scores, dtype=np.float64)
    k = max(1, min(int(k), len(scores)))
    means = [scores[s:s + k].mean() for s in range(len(scores) - k + 1)]
    start = int(np.argmax(means))
    return list(range(start, start + k))


def select_layers(fs, indices, k: int = 2, seed: int = 0) -> dict:
    """Pick `k` consecutive encoder layers from the utterances `indices` of FeatureSet `fs`.

    Only those utterances (and their speakers) are read. Returns
    {"layers": [...], "scores": [UA per layer], "k": k, "speakers": [...], "method": str}.
    """
    indices = np.asarray(indices)
    torch.manual_seed(seed)
    x = layer_means(fs, indices)
    scores = probe_scores(x, fs.labels[indices], fs.speakers[indices], fs.n_classes)
    return {"layers": best_window(scores, k), "scores": [round(float(s), 4) for s in scores], "k": int(k),
            "speakers": sorted(map(str, set(fs.speakers[indices]))),
            "method": "per-layer logistic regression on frame-mean features, leave-one-speaker-out UA; "
                      "best window of k consecutive layers"}
