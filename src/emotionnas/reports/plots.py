"""Figures of a cross-validated run: confusion matrices, training curves, per-fold scores.

Every function draws on a bare ``matplotlib.figure.Figure`` with the Agg canvas
(no pyplot, so no global figure state and no display needed) and writes a PNG
atomically: the figure is rendered into memory, then written to a temp file in
the target folder and renamed (``emotionnas.utils.io.atomic_write_bytes``), so
a report never links a half-written image.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emotionnas.utils.io import atomic_write_bytes

DPI = 130


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def row_normalise(cm) -> np.ndarray:
    """Row-normalised confusion in percent (rows = true class); all-zero rows stay 0.

    cm: (C, C) counts -> (C, C) float, each non-empty row sums to 100, diagonal = recall.
    """
    cm = np.asarray(cm, dtype=float)
    support = cm.sum(axis=1, keepdims=True)
    return np.divide(100 * cm, support, out=np.zeros_like(cm), where=support > 0)


def plot_confusion(cm, label_names, path, normalize: bool = False, title: str | None = None) -> Path:
    """Confusion matrix heat map with the value written in every cell.

    cm: (C, C) counts, rows = true class, columns = predicted class (the layout of
    ``training.metrics.confusion_matrix``). With ``normalize`` the cells show row
    percentages, so the diagonal reads as per-class recall (whose mean is UA).
    The y labels carry each class's number of test utterances.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    names = [str(n) for n in label_names]
    if len(names) != cm.shape[0]:
        raise ValueError(f"{len(names)} label names for a {cm.shape[0]}-class confusion matrix")
    support = cm.sum(axis=1).astype(int)
    values = row_normalise(cm) if normalize else cm.astype(float)
    n = len(names)
    # Cells must stay big enough for their text: grow the figure with the class count.
    side = max(4.5, 0.75 * n + 2.5)
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    vmax = 100.0 if normalize else max(float(values.max()), 1.0)
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("% of true class" if normalize else "utterances")
    fontsize = 11 if n <= 6 else 9 if n <= 10 else 7
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            text = f"{v:.0f}" if normalize else f"{int(round(v))}"
            # White text on dark cells, black on light ones: readable at any value.
            color = "white" if v > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize,
                    fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(n))
    ax.set_xticklabels(names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{name} (n={s})" for name, s in zip(names, support)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title is None:
        title = ("Confusion matrix, row-normalised % (diagonal = recall)" if normalize
                 else f"Confusion matrix, counts (N = {int(cm.sum())})")
    ax.set_title(title)
    return _save(fig, path)


def plot_fold_scores(folds, path) -> Path | None:
    """Per-fold UA and WA as paired bars, with the mean over folds as dashed lines.

    The spread between bars is the speaker variability that the ± in the main
    result summarises. Returns None (and writes nothing) when there are no folds.
    """
    folds = [f for f in folds if "ua" in f or "wa" in f]
    if not folds:
        return None
    names = [str(f.get("name", f"fold {k}")) for k, f in enumerate(folds)]
    ua = np.array([f.get("ua", np.nan) for f in folds], dtype=float)
    wa = np.array([f.get("wa", np.nan) for f in folds], dtype=float)
    n = len(folds)
    fig = _new_figure(max(6.0, 0.55 * n + 3.0), 4.4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    w = 0.38
    ax.bar(x - w / 2, ua, w, color="C0", label="UA")
    ax.bar(x + w / 2, wa, w, color="C1", label="WA")
    for values, color, name in ((ua, "C0", "UA"), (wa, "C1", "WA")):
        if np.isfinite(values).any():
            m = float(np.nanmean(values))
            ax.axhline(m, color=color, ls="--", lw=1.3, label=f"mean {name} {m:.1f}")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=40 if n > 4 else 0, ha="right" if n > 4 else "center",
                       rotation_mode="anchor")
    ax.set_ylabel("score (%)")
    top = np.nanmax(np.concatenate([ua, wa])) if np.isfinite(np.concatenate([ua, wa])).any() else 100
    ax.set_ylim(0, min(105.0, max(10.0, top * 1.18)))
    ax.set_title("Test scores per fold")
    ax.grid(axis="y", alpha=0.3)
    # Outside the axes: inside, it would cover the bars of high-scoring folds.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def plot_timeline(windows: list[dict], labels, path, title: str | None = None) -> Path:
    """Emotion over time: each class's probability per window (lines at window centres) above
    a strip coloured by the winning label of each window."""
    if not windows:
        raise ValueError("plot_timeline: no windows")
    centres = np.array([(w["start"] + w["end"]) / 2 for w in windows])
    fig = _new_figure(max(6.0, min(14.0, 2.0 + 0.25 * len(windows))), 4.0)
    ax = fig.add_axes([0.08, 0.30, 0.74, 0.60])
    strip = fig.add_axes([0.08, 0.12, 0.74, 0.08], sharex=ax)
    for k, lab in enumerate(labels):  # windows without speech (probs None) leave gaps
        ax.plot(centres, [100 * w["probs"][lab] if w.get("probs") else np.nan for w in windows], color=f"C{k % 10}",
                lw=1.6, label=lab, marker="o" if len(windows) < 40 else None, ms=3)
    for i, w in enumerate(windows):
        end = windows[i + 1]["start"] if i + 1 < len(windows) and windows[i + 1]["start"] < w["end"] else w["end"]
        colour = f"C{list(labels).index(w['label']) % 10}" if w.get("label") is not None else "0.85"
        strip.axvspan(w["start"], end, color=colour, lw=0)
    ax.set_ylabel("probability (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Emotion over time")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    strip.set_yticks([])
    strip.set_xlabel("time (s)")
    strip.set_xlim(0, windows[-1]["end"])
    return _save(fig, path)
