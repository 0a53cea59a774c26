"""results.json from a finished run: per-fold scores of the selected ensemble, its top-1
member and (when trained) the baselines; means and spreads; fold-paired comparisons.

Everything here is computed from stored records, so an interrupted and resumed run writes
the same bytes (floats rounded to 10 significant digits).
"""
from __future__ import annotations

import numpy as np

from emotionnas.metrics import mean_std, scores
from emotionnas.rundir import FORMAT_VERSION
from emotionnas.training.run_helpers import speaker_indices
from emotionnas.training.tasks import DataRef

METRICS = ("ua", "wa", "macro_f1")


def _agg(rows: list[dict]) -> dict:
    out = {}
    for k in METRICS:
        out[k], out[f"{k}_std"] = mean_std([r[k] for r in rows])
    return out


def paired(ours: list[float], theirs: list[float]) -> dict:
    """Fold-paired comparison: wins/ties/losses, mean difference and a Wilcoxon signed-rank p."""
    d = np.asarray(ours, float) - np.asarray(theirs, float)
    out = {"wins": int((d > 1e-9).sum()), "ties": int((np.abs(d) <= 1e-9).sum()), "losses": int((d < -1e-9).sum()),
           "mean_diff": float(d.mean()) if len(d) else 0.0, "p_value": None}
    if np.any(np.abs(d) > 1e-9) and len(d) >= 2:
        from scipy.stats import wilcoxon
        try:
            out["p_value"] = float(wilcoxon(d, zero_method="zsplit").pvalue)
        except ValueError:
            pass
    return out


def _metrics(y, probs, n: int) -> dict:
    """UA, WA, macro-F1 of class probabilities `probs` (N, C) against labels `y`."""
    return {k: v for k, v in scores(y, np.asarray(probs, np.float32).argmax(1), n).items() if k in METRICS}


def summarize(cfg, fs, folds, groups, refits: dict, rundir, bagged: dict | None = None) -> dict:
    """`bagged`: {(fold, key): test probabilities of the bagged inner-fold models} (training/bagging.py)."""
    fold_rows, group_of = [], {i: g for g in groups for i in g.members}
    baseline_names = [b.name for b in groups[0].result.baselines] if groups else []  # what the selection compared
    for i, fold in enumerate(folds):
        fold_rows.append(_fold_row(cfg, fs, i, fold, group_of[i], refits, baseline_names, bagged or {}))
    res = {"format_version": FORMAT_VERSION, "corpus": cfg.corpus, "protocol": cfg.protocol,
           "label_names": fs.label_names, "synthetic": cfg.corpus == "demo", "n_utterances": len(fs),
           "n_speakers": len(set(fs.speakers)), **_agg(fold_rows), "folds": fold_rows,
           **({"speaker_adaptive": True} if cfg.features.speaker_norm else {})}  # labelled; defaults unchanged
    res["ablations"] = {"selection": {"ensemble (selected k)": _agg(fold_rows),
                                      "top-1 candidate": _agg([f["top1"] for f in fold_rows])}}
    if cfg.selection.combiner != "mean":
        res["ablations"]["selection"]["ensemble, members averaged"] = _agg([f["mean_combiner"] for f in fold_rows])
    if fold_rows and all("bagged" in f for f in fold_rows):
        res["bagged"] = _bagged_summary(fold_rows, baseline_names)
        res["ablations"]["selection"]["bagged fold models (no refit)"] = _agg([f["bagged"] for f in fold_rows])
    if baseline_names:
        res["baselines"] = {}
        for b in baseline_names:
            rows = [f["baselines"][b] for f in fold_rows]
            res["baselines"][b] = {**_agg(rows), "paired_ua": paired([f["ua"] for f in fold_rows],
                                                                     [r["ua"] for r in rows])}
    res["searches"] = [{"group": g.name, "held_out_speakers": list(g.fold.test), "folds": g.members,
                        "dir": rundir.relative(rundir.search_dir(g.name)),
                        "layer_scores": g.result.layer_scores, "ensemble_k": len(g.result.members),
                        "members": [m.to_dict() for m in g.result.members], "n_candidates": len(g.result.rows),
                        "n_full": sum("inner_ua" in c for c in g.result.rows),
                        "genotype": g.result.cells["genotype"], "recipe": g.result.cells["recipe"],
                        **_combiner_entry(cfg, g.result.combiner_record)} for g in groups]
    res["optimism"] = optimism(fold_rows)
    res["rank_agreement"] = rank_agreement(fold_rows, {g.name: g.result.to_dict() for g in groups})
    full = [c for g in groups for c in g.result.rows if "inner_ua" in c]
    res["selection_spread"] = {
        "single_speaker_ua_std": float(np.mean([c["speaker_ua_std"] for c in full])) if full else None,
        "inner_cv_ua_se": float(np.mean([c["inner_fold_se"] for c in full])) if full else None,
        "note": "std over search speakers of a candidate's UA on that speaker alone (what one validation "
                "speaker reports) vs the standard error of the inner-CV mean; averaged over fully scored candidates"}
    if cfg.selection.partitions > 1:
        res["selection_spread"]["partitions"] = cfg.selection.partitions
    spec = DataRef.from_config(cfg).spectrogram_config().to_dict()
    if spec["mel_bins"] is None:
        spec.pop("mel_bins")  # results and models of linear spectrograms read as before
    res["features"] = {"encoder": cfg.features.encoder, "deep_pool": cfg.features.deep_pool,
                       "deep_layers_total": fs.deep_layers, "deep_dim": fs.deep_dim, "spectrogram": spec}
    return _stable(res)


def _bagged_summary(fold_rows: list[dict], baseline_names: list[str]) -> dict:
    """The bagged fold models (no refit) beside the refit ensemble, fold-paired, and the baselines
    bagged the same way."""
    out = {**_agg([f["bagged"] for f in fold_rows]),
           "paired_ua_vs_refit": paired([f["bagged"]["ua"] for f in fold_rows], [f["ua"] for f in fold_rows]),
           "note": "the selected ensemble's members as the mean of their inner-fold models (trained on the search "
                   "speakers, k-1 of k inner folds each, at the chosen epoch), combined as the refits are; no "
                   "refit. Baselines bagged the same way where they were scored on every inner fold"}
    names = [b for b in baseline_names if all(b in f.get("bagged_baselines", {}) for f in fold_rows)]
    if names:
        out["baselines"] = {b: _agg([f["bagged_baselines"][b] for f in fold_rows]) for b in names}
    return out


def _fold_row(cfg, fs, i: int, fold, g, refits: dict, baseline_names: list[str], bagged: dict) -> dict:
    """One fold's scores: the group's ensemble (as its combiner combines the refit members' test
    probabilities), each member, the top-1, the ensemble's inner-CV UA beside them, the baselines."""
    n = fs.n_classes
    test = speaker_indices(fs.speakers, fold.test)
    y = fs.labels[test]
    members = g.result.members
    probs = [np.asarray(refits[i, m.key]["test_probs"], np.float32) for m in members]
    ens = g.result.combiner.apply(probs)  # a stacker: fitted on the group's out-of-fold probabilities
    sc = scores(y, ens.argmax(1), n)
    row = {"name": fold.name, "test_speakers": list(fold.test), "search_group": g.name,
           **{k: sc[k] for k in METRICS}, "confusion": sc["confusion"],
           "members": [{"name": m.name, "key": m.key, "epoch": m.epoch,
                        "ua": scores(y, p.argmax(1), n)["ua"]} for m, p in zip(members, probs)],
           "top1": _metrics(y, probs[0], n), "inner_ua": g.result.inner_ua,
           "test_pred": ens.argmax(1).tolist(), "test_true": y.tolist()}
    if cfg.selection.combiner != "mean":  # what averaging the same members scores (an ablation; chooses nothing)
        row["mean_combiner"] = _metrics(y, np.mean(probs, axis=0), n)
    if baseline_names:
        row["baselines"] = {b: _metrics(y, refits[i, g.result.baseline(b).key]["test_probs"], n)
                            for b in baseline_names}
    if all((i, m.key) in bagged for m in members):  # the inner-fold models themselves, no refit
        row["bagged"] = _metrics(y, g.result.combiner.apply([bagged[i, m.key] for m in members]), n)
        row["bagged_baselines"] = {b: _metrics(y, bagged[i, g.result.baseline(b).key], n) for b in baseline_names
                                   if (i, g.result.baseline(b).key) in bagged}
    return row


def optimism(fold_rows: list[dict]) -> dict:
    """How far the selection's own estimate can be trusted: per fold, the selected ensemble's
    inner-CV UA (on its search speakers) minus its test UA (on the fold's test speakers, scored once).
    Computed after the test scores; it chooses nothing."""
    gaps = [f["inner_ua"] - f["ua"] for f in fold_rows]
    return {"per_fold": gaps, "mean": float(np.mean(gaps)) if gaps else None,
            "note": "selected ensemble's inner-CV UA minus its test UA, per fold (> 0: the selection flattered itself)"}


def rank_agreement(fold_rows: list[dict], summaries: dict, deep_only: bool = False) -> dict:
    """Does the inner-CV ranking predict the test ranking? Over every fold, every pair of models with
    both an inner-CV UA (from the fold's selection group) and a test UA (ensemble members and
    baselines): the share ordered the same way (0.5 = a coin), and the median inner-CV gap of a pair.
    Computed after the test scores, it chooses nothing. `deep_only`: deep-stream models only."""
    same = total = 0
    gaps = []
    for f in fold_rows:
        summary = summaries[f["search_group"]]
        inner = {c["key"]: c["inner_ua"] for c in summary["candidates"]
                 if "inner_ua" in c and (not deep_only or c["candidate"]["spectrogram"] == "none")}
        test = {m["key"]: m["ua"] for m in f["members"]}
        test.update({b["key"]: f["baselines"][name]["ua"] for name, b in summary["baselines"].items()
                     if name in f.get("baselines", {})})
        keys = sorted(set(inner) & set(test))
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                if abs(inner[a] - inner[b]) < 1e-9 or abs(test[a] - test[b]) < 1e-9:
                    continue
                total += 1
                same += (inner[a] > inner[b]) == (test[a] > test[b])
                gaps.append(abs(inner[a] - inner[b]))
    return {"pairs": total, "same_order": same, "share": same / total if total else None,
            "median_inner_gap": float(np.median(gaps)) if gaps else None}


def _combiner_entry(cfg, record: dict) -> dict:
    """{"combiner": mode, choice, inner UAs of averaging and of the cross-fitted stacker} when the
    run asked for one (results of the default, averaging, read as before)."""
    if cfg.selection.combiner == "mean":
        return {}
    return {"combiner": dict(record)}


def _stable(obj):
    """Floats to 10 significant digits (not decimals: 1e-10 must survive) for a stable results.json."""
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _stable(obj.item())
    return obj
