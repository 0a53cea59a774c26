"""`emotionnas evaluate --model M NAME ROOT --out DIR`: an exported model on another corpus.

Corpus labels are mapped to the model's (identity by name, plus `--map corpus=model` renames);
utterances whose label the model does not know are dropped, and the mapping, the kept and the
dropped counts are printed and saved. Features are computed by the recognizer itself
(`predict_proba_batch`: exactly as in deployment). Writes evaluation.json, report.md and the
confusion matrices into DIR.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from emotionnas.errors import ConfigError
from emotionnas.metrics import scores
from emotionnas.utils.io import atomic_write_json, atomic_write_text


def label_mapping(corpus_labels, model_labels, renames: dict) -> dict:
    """corpus label -> model label, for the labels the model knows (after renames)."""
    unknown = sorted(set(renames) - set(corpus_labels))
    if unknown:
        raise ConfigError(f"--map: {unknown} are not labels of this corpus (it has {sorted(corpus_labels)})")
    bad = sorted({v for v in renames.values() if v not in model_labels})
    if bad:
        raise ConfigError(f"--map: {bad} are not labels of the model (it has {list(model_labels)})")
    out = {}
    for lab in corpus_labels:
        target = renames.get(lab, lab)
        if target in model_labels:
            out[lab] = target
    return out


def evaluate_model(model_dir, corpus: str, root, out_dir, mapping: dict | None = None, cache_dir=None,
                   progress: bool = True, backend: str = "torch", **options) -> dict:
    """Score the model folder on a corpus through the recognizer's own batch API (features
    computed exactly as in deployment); writes evaluation.json, report.md and the confusion
    figure into `out_dir`. `cache_dir` is accepted for older callers and unused."""
    from emotionnas.data.corpora import read_corpus
    from emotionnas.recognizer import load
    from emotionnas.recognizer.shipped import model_folder

    model_dir = model_folder(model_dir)  # a shipped model's name, or a folder
    rec = load(model_dir, backend)
    table = read_corpus(corpus, root, **options)
    labels = rec.labels
    corpus_labels = sorted({u.label for u in table.utterances})
    mapped = label_mapping(corpus_labels, labels, mapping or {})
    if not mapped:
        raise ConfigError(f"{corpus}: none of its labels {corpus_labels} maps to the model's {labels}; use --map")
    kept = [u for u in table.utterances if u.label in mapped]
    dropped = Counter(u.label for u in table.utterances if u.label not in mapped)
    probs, errors = rec.predict_proba_batch([u.path for u in kept], progress=progress)
    usable = ~np.isnan(probs).any(axis=1)
    if not usable.any():
        raise ConfigError(f"{corpus}: no usable utterance with a label the model knows")
    ok = [u for u, good in zip(kept, usable) if good]
    y = np.array([labels.index(mapped[u.label]) for u in ok])
    res = _scores(probs[usable], y, labels)
    res = {"model": str(Path(model_dir).resolve()), "corpus": corpus, "root": str(root), "mapping": mapped,
           "dropped": dict(dropped), "n_utterances": len(ok), "errors": errors, **res}
    _write(res, Path(model_dir).name, labels, Path(out_dir))
    return res


def _scores(probs: np.ndarray, y: np.ndarray, labels) -> dict:
    """UA over the classes the corpus has (the others have no recall); WA, F1 over all."""
    present = sorted(set(y.tolist()))
    pred = probs.argmax(1)
    sc = scores(y, pred, len(labels))
    recalls = [100 * float(np.mean(pred[y == c] == c)) for c in present]
    return {"classes_present": [labels[c] for c in present], "ua": float(np.mean(recalls)), "wa": sc["wa"],
            "macro_f1": sc["macro_f1"], "confusion": sc["confusion"],
            "per_class_recall": {labels[c]: r for c, r in zip(present, recalls)},
            "predicted_counts": {labels[c]: int((pred == c).sum()) for c in range(len(labels))}}


def _write(res: dict, model_name: str, labels, out: Path) -> None:
    from emotionnas.reports import plots
    from emotionnas.reports.tables import fmt, markdown_table
    atomic_write_json(out / "evaluation.json", res)
    plots.plot_confusion(np.asarray(res["confusion"]), labels, out / "confusion_normalized.png", normalize=True,
                         title=f"{model_name} on {res['corpus']}")
    mapped, dropped = res["mapping"], res["dropped"]
    lines = [f"# Cross-corpus evaluation: {model_name} on {res['corpus']}\n",
             f"{res['n_utterances']} utterances; label mapping (corpus -> model): "
             + ", ".join(f"{k} -> {v}" for k, v in mapped.items())
             + (f"; dropped (unknown to the model): {dropped}" if dropped else "") + ".\n",
             f"**UA {fmt(res['ua'])}** (mean recall over the {len(res['classes_present'])} classes present), "
             f"WA {fmt(res['wa'])}, macro-F1 {fmt(res['macro_f1'])} (over all model classes).\n",
             markdown_table([[k, fmt(v)] for k, v in res["per_class_recall"].items()], ["Class", "Recall (%)"]),
             "![confusion](confusion_normalized.png)\n"]
    atomic_write_text(out / "report.md", "\n".join(lines))
