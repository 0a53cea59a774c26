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
