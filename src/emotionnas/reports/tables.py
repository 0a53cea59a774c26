"""Table helpers of the report: number formatting, Markdown tables, the confusion matrix
pooled over folds, and ``check_results``: the findings a reader must not miss (speaker
leaks, scores that disagree with their confusion matrix, models stuck at chance).

Scores are percentages; a missing value prints as an en dash, never as 0.
"""
from __future__ import annotations

import numpy as np

from emotionnas.errors import EmotionNASError

METRICS = (("ua", "UA (%)"), ("wa", "WA (%)"), ("macro_f1", "Macro-F1 (%)"))
DASH = "–"


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def fmt(value, std=None, digits: int = 1) -> str:
    """``71.2 ± 5.1``; ``71.2`` without a std; an en dash when the value is missing."""
    v, s = _num(value), _num(std)
    if v is None:
        return DASH
    return f"{v:.{digits}f} ± {s:.{digits}f}" if s is not None else f"{v:.{digits}f}"


def _cell(x) -> str:
    # A '|' inside a cell would split it into two columns; newlines would end the row.
    return str(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows, headers, align=None) -> str:
    """A GitHub-flavoured Markdown table.

    rows: sequence of row sequences, each as long as ``headers``; align: optional
    sequence of "l" / "r" / "c" per column (default: first column left, others right).
    """
    headers = [_cell(h) for h in headers]
    align = list(align) if align else ["l"] + ["r"] * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"{len(align)} alignments for {len(headers)} columns")
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    for k, row in enumerate(rows):
        row = [_cell(c) for c in row]
        if len(row) != len(headers):
            raise ValueError(f"row {k} has {len(row)} cells, table has {len(headers)} columns")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def pooled_confusion(results: dict) -> np.ndarray | None:
    """Sum of the folds' confusion matrices, (C, C) counts; None if no fold has one.

    Each test utterance is in exactly one fold's test set, so the sum holds every
    test utterance once.
    """
    cms = [np.asarray(f["confusion"], dtype=np.int64) for f in results.get("folds") or []
           if f.get("confusion") is not None and np.asarray(f["confusion"]).size]
    if not cms:
        return None
    if len({cm.shape for cm in cms}) != 1:
        raise EmotionNASError(f"results.json: folds have confusion matrices of different shapes "
                              f"{sorted({cm.shape for cm in cms})}")
    return np.sum(cms, axis=0)


def _consistency_notes(results: dict) -> list[str]:
    """Re-derive each fold's UA / WA from its confusion matrix and flag disagreements."""
    notes = []
    for f in results.get("folds") or []:
        if f.get("confusion") is None or not np.asarray(f["confusion"]).size:
            continue
        cm = np.asarray(f["confusion"], dtype=float)
        support = cm.sum(axis=1)
        present = support > 0
        ua = 100 * float(np.mean(np.diag(cm)[present] / support[present]))
        wa = 100 * float(np.trace(cm) / max(cm.sum(), 1))
        for key, value in (("ua", ua), ("wa", wa)):
            if f.get(key) is not None and abs(float(f[key]) - value) > 0.1:
                notes.append(f"fold {f.get('name')}: reported {key.upper()} {float(f[key]):.1f} but its "
                             f"confusion matrix gives {value:.1f}.")
    return notes


def _degenerate_notes(results: dict) -> list[str]:
    """Flag models that learned nothing: one predicted class, or ablation scores at chance in every fold."""
    notes = []
    labels = results.get("label_names") or []
    for f in results.get("folds") or []:
        if f.get("confusion") is None or not np.asarray(f["confusion"]).size:
            continue
        used = np.flatnonzero(np.asarray(f["confusion"]).sum(axis=0))
        if len(used) == 1 and len(np.asarray(f["confusion"])) > 1:
            name = labels[used[0]] if used[0] < len(labels) else f"class {used[0]}"
            notes.append(f"fold {f.get('name')}: the model predicts only *{name}* on the test speakers.")
    if labels:
        chance = 100 / len(labels)
        for table, entries in (results.get("ablations") or {}).items():
            for setting, sc in (entries or {}).items():
                ua, std = _num((sc or {}).get("ua")), _num((sc or {}).get("ua_std"))
                if ua is not None and abs(ua - chance) < 0.5 and (std or 0) < 0.5:
                    notes.append(f"ablation {table} / {setting}: UA {ua:.1f} equals chance (100/{len(labels)}) "
                                 "in every fold; this model learned nothing usable.")
    return notes


def _leakage_notes(results: dict) -> list[str]:
    """Test speakers must be unseen by validation and by the search whose cells the fold uses."""
    notes = []
    held = {s.get("group"): set(map(str, s.get("held_out_speakers") or [])) for s in results.get("searches") or []}
    for f in results.get("folds") or []:
        test = set(map(str, f.get("test_speakers") or []))
        if test & set(map(str, f.get("val_speakers") or [])):
            notes.append(f"LEAK: fold {f.get('name')} has speakers in both validation and test.")
        g = f.get("search_group")
        if g in held and not test <= held[g]:
            notes.append(f"LEAK: fold {f.get('name')} tests on speakers {sorted(test - held[g])} "
                         f"that search group {g} did not hold out.")
    return notes


def check_results(results: dict) -> list[str]:
    """One-line findings a reader must see: leaks, scores that disagree with their
    confusion matrices, models that learned nothing. Empty when all is well."""
    return _leakage_notes(results) + _consistency_notes(results) + _degenerate_notes(results)
