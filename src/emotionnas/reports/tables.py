"""Result tables of a cross-validated run, as JSON-able rows and as Markdown.

* the per-fold table (fold, test speakers, test utterances, UA, WA, macro-F1)
  with a mean ± std summary row;
* the ablations of EmotionNAS (Sun et al., Interspeech 2023, Sec. 3.3):
  each branch alone vs the fused model (the paper's Table 4) and the fusion
  strategies (its Table 5), read from ``results["ablations"]``.

Also the searched cells as tables (``genotype_table``, ``recipe_table``), the
confusion matrix pooled over folds, and ``check_results``: the findings a reader
must not miss (speaker leaks, scores that disagree with their confusion matrix,
models stuck at chance).

Scores are percentages; a missing value prints as an en dash, never as 0.
"""
from __future__ import annotations

import numpy as np

from emotionnas.errors import EmotionNASError

METRICS = (("ua", "UA (%)"), ("wa", "WA (%)"), ("macro_f1", "Macro-F1 (%)"))
ABLATIONS = {
    "branches": ("Each branch alone vs the fused model (analogue of EmotionNAS Table 4)",
                 "branch"),
    "fusion": ("Fusion strategies for the two branch embeddings (analogue of EmotionNAS Table 5)",
               "fusion"),
}
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


def fold_support(fold: dict) -> int | None:
    """Number of test utterances of a fold: the sum of its confusion matrix."""
    cm = fold.get("confusion")
    return int(np.asarray(cm).sum()) if cm is not None and np.asarray(cm).size else None


def summary(results: dict) -> dict:
    """Mean and std over folds of UA, WA and macro-F1.

    Taken from the top level of ``results.json`` where present (the numbers the
    run reported); otherwise computed from the folds with the population std
    (ddof=0), as ``training.metrics.mean_std`` does.
    """
    folds = results.get("folds") or []
    out = {}
    for key, _ in METRICS:
        vals = [v for f in folds if (v := _num(f.get(key))) is not None]
        mean, std = _num(results.get(key)), _num(results.get(key + "_std"))
        if mean is None and vals:
            mean = float(np.mean(vals))
        if std is None and len(vals) > 1:
            std = float(np.std(vals, ddof=0))
        out[key], out[key + "_std"] = mean, std
    return out


def folds_table(results: dict) -> str:
    """Markdown: one row per fold, then the mean ± std row."""
    folds = results.get("folds") or []
    headers = ["Fold", "Test speakers", "Test utts", "UA (%)", "WA (%)", "Macro-F1 (%)"]
    rows = []
    for k, f in enumerate(folds):
        n = fold_support(f)
        rows.append([f.get("name", f"fold {k}"), ", ".join(map(str, f.get("test_speakers") or [])) or DASH,
                     DASH if n is None else n] + [fmt(f.get(key)) for key, _ in METRICS])
    s = summary(results)
    supports = [fold_support(f) for f in folds]
    total = sum(supports) if supports and None not in supports else DASH
    rows.append([f"**mean ± std ({len(folds)} fold{'s' * (len(folds) != 1)})**", "", total]
                + [f"**{fmt(s[key], s[key + '_std'])}**" for key, _ in METRICS])
    return markdown_table(rows, headers, align="llrrrr")


def ablation_tables(results: dict) -> dict:
    """The ablation tables present in ``results["ablations"]``, JSON-able.

    Returns ``{name: {"title", "columns", "rows", "markdown"}}`` for name in
    ("branches", "fusion") that the run recorded; each row is
    ``{"setting", "ua", "ua_std", "wa", "wa_std", "macro_f1", "macro_f1_std"}``
    (None where missing), in the order the run wrote them. In the Markdown the
    best UA is bold.
    """
    ablations = results.get("ablations") or {}
    out = {}
    for name, (title, setting_header) in ABLATIONS.items():
        entries = ablations.get(name)
        if not isinstance(entries, dict) or not entries:
            continue
        rows = []
        for setting, scores in entries.items():
            scores = scores if isinstance(scores, dict) else {}
            row = {"setting": str(setting)}
            for key, _ in METRICS:
                row[key], row[key + "_std"] = _num(scores.get(key)), _num(scores.get(key + "_std"))
            rows.append(row)
        uas = [r["ua"] for r in rows if r["ua"] is not None]
        best = max(uas) if uas else None
        md_rows = []
        for r in rows:
            cells = [fmt(r[key], r[key + "_std"]) for key, _ in METRICS]
            if best is not None and r["ua"] == best:
                cells[0] = f"**{cells[0]}**"
            md_rows.append([r["setting"]] + cells)
        headers = [setting_header] + [h for _, h in METRICS]
        out[name] = {"title": title, "columns": ["setting"] + [k for k, _ in METRICS],
                     "rows": rows, "markdown": markdown_table(md_rows, headers)}
    return out


def genotype_table(g: dict) -> str:
    """(cell, node, op, input) rows; inputs named as in DARTS: c_{k-2}, c_{k-1}, node j."""
    def src(j):
        return {0: "c_{k-2}", 1: "c_{k-1}"}.get(int(j), f"node {int(j) - 2}")
    rows = []
    for cell in ("normal", "reduce"):
        for k, (op, j) in enumerate(g.get(cell) or []):
            rows.append([cell, k // 2, op, src(j)])
        concat = g.get(cell + "_concat")
        if concat:
            rows.append([cell, "output", "concat", ", ".join(f"node {int(c) - 2}" for c in concat)])
    return markdown_table(rows, ["Cell", "Node", "Edge op", "Input"], align="lrll")


def recipe_table(recipe: dict) -> str:
    rows = [[node, spec.get("op", DASH), ", ".join(spec.get("input") or [])]
            for node, spec in recipe.items() if isinstance(spec, dict)]
    return markdown_table(rows, ["Node", "Op", "Inputs"], align="lll")


# ---------------------------------------------------------------- checks


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
