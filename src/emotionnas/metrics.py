"""SER metrics. UA = unweighted accuracy (mean per-class recall), the primary
metric of EmotionNAS; WA = weighted accuracy (plain accuracy); macro-F1.
All returned in percent."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def unweighted_accuracy(y_true, y_pred, n_classes: int | None = None) -> float:
    """Mean recall over the classes present in y_true."""
    n = n_classes or int(max(np.max(y_true), np.max(y_pred)) + 1)
    cm = confusion_matrix(y_true, y_pred, n)
    support = cm.sum(axis=1)
    present = support > 0
    return float(100 * np.mean(np.diag(cm)[present] / support[present]))


def weighted_accuracy(y_true, y_pred) -> float:
    return float(100 * np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """Mean F1 over the classes present in y_true or y_pred."""
    n = n_classes or int(max(np.max(y_true), np.max(y_pred)) + 1)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    prec_den, rec_den = cm.sum(axis=0), cm.sum(axis=1)
    present = (prec_den + rec_den) > 0
    f1 = np.where(prec_den + rec_den > 0, 2 * tp / np.maximum(prec_den + rec_den, 1), 0.0)
    return float(100 * f1[present].mean())


def scores(y_true, y_pred, n_classes: int) -> dict:
    return {"ua": unweighted_accuracy(y_true, y_pred, n_classes), "wa": weighted_accuracy(y_true, y_pred),
            "macro_f1": macro_f1(y_true, y_pred, n_classes),
            "confusion": confusion_matrix(y_true, y_pred, n_classes).tolist()}


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=0))


# ---------------------------------------------------------------- calibration
def temperature_scale(probs, temperature: float) -> np.ndarray:
    """Probabilities p -> softmax(log p / T) (rows sum to 1; T > 1 softens, T < 1 sharpens);
    T = 1 returns p unchanged (float32)."""
    if float(temperature) == 1.0:
        return np.asarray(probs, np.float32)
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / float(temperature)
    logp -= logp.max(axis=-1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def fit_temperature(probs, y_true, grid=np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))) -> float:
    """The temperature in [0.05, 20] (log grid) with the lowest negative log-likelihood."""
    y = np.asarray(y_true, dtype=np.int64)
    nll = [-np.log(np.clip(temperature_scale(probs, t)[np.arange(len(y)), y], 1e-12, 1.0)).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def expected_calibration_error(probs, y_true, bins: int = 10) -> float:
    """ECE (%): |accuracy - confidence| over equal-width confidence bins, weighted by count."""
    p = np.asarray(probs)
    conf, pred, y = p.max(axis=1), p.argmax(axis=1), np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(float((pred[inside] == y[inside]).mean()) - float(conf[inside].mean()))
    return 100.0 * total
