"""`emotionnas evaluate --model M NAME ROOT --out DIR`: an exported model on another corpus.

Corpus labels are mapped to the model's (identity by name, plus `--map corpus=model` renames);
utterances whose label the model does not know are dropped, and the mapping, the kept and the
dropped counts are printed and saved. Features go through the feature cache with the model's
own encoder and settings (a cache shared with training is reused). Writes evaluation.json,
report.md and the confusion matrices into DIR.
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
                   progress: bool = True, **options) -> dict:
    from emotionnas.data.corpora import read_corpus
    from emotionnas.features.cache import FeatureCache, deep_stream, spectrogram_stream
    from emotionnas.features.spectrogram import SpectrogramConfig
    from emotionnas.recognizer import Recognizer
    from emotionnas.reports import plots
    from emotionnas.reports.tables import fmt, markdown_table

    rec = Recognizer.load(model_dir)
    table = read_corpus(corpus, root, **options)
    labels = rec.labels
    corpus_labels = sorted({u.label for u in table.utterances})
    mapped = label_mapping(corpus_labels, labels, mapping or {})
    if not mapped:
        raise ConfigError(f"{corpus}: none of its labels {corpus_labels} maps to the model's {labels}; use --map")
    kept = [u for u in table.utterances if u.label in mapped]
    dropped = Counter(u.label for u in table.utterances if u.label not in mapped)
    cache = FeatureCache(cache_dir or Path(out_dir) / "cache")
    spec_arrays, rep1 = cache.extract(kept, spectrogram_stream(SpectrogramConfig(**rec.spec.spectrogram)), progress)
    uses_deep = any(m.candidate.deep != "none" for m in rec.spec.members)
    deep_arrays, errors = {}, list(rep1.errors)
    if uses_deep:
        deep_arrays, rep2 = cache.extract(kept, deep_stream(rec.encoder, rec.spec.deep_pool), progress)
        errors += rep2.errors
    ok = [u for u in kept if u.path in spec_arrays and (not uses_deep or u.path in deep_arrays)]
    if not ok:
        raise ConfigError(f"{corpus}: no usable utterance with a label the model knows")
    probs = []
    for start in range(0, len(ok), 32):
        part = ok[start:start + 32]
        spec = np.stack([spec_arrays[u.path] for u in part])
        deep = [deep_arrays[u.path] for u in part] if uses_deep else None
        probs.append(rec.model.predict_proba(spec, deep))
    probs = np.concatenate(probs)
    y = np.array([labels.index(mapped[u.label]) for u in ok])
    present = sorted(set(y.tolist()))  # UA over the classes this corpus has (others have no recall)
    pred = probs.argmax(1)
    sc = scores(y, pred, len(labels))
    recalls = [100 * float(np.mean(pred[y == c] == c)) for c in present]
    res = {"model": str(Path(model_dir).resolve()), "corpus": corpus, "root": str(root),
           "mapping": mapped, "dropped": dict(dropped), "n_utterances": len(ok), "errors": errors,
           "classes_present": [labels[c] for c in present], "ua": float(np.mean(recalls)), "wa": sc["wa"],
           "macro_f1": sc["macro_f1"], "confusion": sc["confusion"],
           "per_class_recall": {labels[c]: r for c, r in zip(present, recalls)},
           "predicted_counts": {labels[c]: int((pred == c).sum()) for c in range(len(labels))}}
    out = Path(out_dir)
    atomic_write_json(out / "evaluation.json", res)
    cm = np.asarray(sc["confusion"])
    plots.plot_confusion(cm, labels, out / "confusion_normalized.png", normalize=True,
                         title=f"{Path(model_dir).name} on {corpus}")
    lines = [f"# Cross-corpus evaluation: {Path(model_dir).name} on {corpus}\n",
             f"{len(ok)} utterances; label mapping (corpus -> model): "
             + ", ".join(f"{k} -> {v}" for k, v in mapped.items())
             + (f"; dropped (unknown to the model): {dict(dropped)}" if dropped else "") + ".\n",
             f"**UA {fmt(res['ua'])}** (mean recall over the {len(present)} classes present), WA {fmt(res['wa'])}, "
             f"macro-F1 {fmt(res['macro_f1'])} (over all model classes).\n",
             markdown_table([[k, fmt(v)] for k, v in res["per_class_recall"].items()], ["Class", "Recall (%)"]),
             "![confusion](confusion_normalized.png)\n"]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return res
