"""`run_crossval`: corpus -> leak-free searched two-stream models -> per-fold test scores.

Read top to bottom:
  1. resolve config, write config.yaml + environment.json beside the results
  2. features from the cache (extracted once)
  3. speaker-independent folds (folds.json)
  4. architecture search without the test speakers: cross-fitted (G searches, each
     on the speakers outside one group of folds) or one search per fold
  5. per fold: branches alone, fused two-stream model, fusion ablations;
     early stopping on validation speakers; one evaluation on test speakers
  6. results.json + report
Every step is resumable: finished searches and fold stages are read back.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from emotionnas.config import RunConfig
from emotionnas.data.folds import Fold, make_folds, save_folds, search_fold_for_group
from emotionnas.errors import ConfigError
from emotionnas.features.dataset import load_features
from emotionnas.features.spectrogram import SpectrogramConfig
from emotionnas.models.fusion import FUSIONS
from emotionnas.models.two_stream import TwoStreamModel
from emotionnas.rundir import FORMAT_VERSION, RunDir, check_search_speakers, corpus_fingerprint
from emotionnas.metrics import mean_std
from emotionnas.training.stages import (build_deep_branch, build_spec_branch, deep_layers_of, fusion_stage,
                                        run_search, stage_seed, train_stage)
from emotionnas.utils.io import atomic_write_json, atomic_write_text
from emotionnas.utils.provenance import environment
from emotionnas.utils.seed import seed_everything


def spectrogram_config(cfg: RunConfig) -> SpectrogramConfig:
    size = cfg.features.spectrogram_size
    return SpectrogramConfig(out_freq=size, out_time=size)


def _check_config(cfg: RunConfig) -> None:
    if cfg.fusion_training not in ("frozen", "joint"):
        raise ConfigError(f"fusion_training must be 'frozen' or 'joint', got {cfg.fusion_training!r}")
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"fusion must be one of {sorted(FUSIONS)}, got {cfg.fusion!r}")
    if cfg.dominant not in ("deep", "spectrogram"):
        raise ConfigError(f"dominant must be 'deep' or 'spectrogram', got {cfg.dominant!r}")


def fingerprint_of(fs, folds, cfg: RunConfig) -> dict:
    """The run fingerprint: utterance ids (relative to the corpus root) with content hashes,
    speakers, labels, protocol and folds."""
    root = Path(cfg.root).resolve()

    def uid(path: str) -> str:
        p = Path(path).resolve()
        return str(p.relative_to(root)) if p.is_relative_to(root) else p.name

    rows = [(uid(u.path), h, u.speaker, u.label) for u, h in zip(fs.table.utterances, fs.content_hashes)]
    return corpus_fingerprint(rows, fs.label_names, folds, cfg.protocol, cfg.corpus, cfg.corpus_options)


def plan_searches(folds: list[Fold], cfg: RunConfig, all_speakers) -> list[tuple[Fold, list[int]]]:
    """[(search fold, indices of the CV folds that use its architecture)].

    Cross-fitted: folds are dealt round-robin into G groups; group g's search
    excludes the test speakers of all its folds, so each fold uses an
    architecture that never saw its test speakers.
    """
    if cfg.search_per_fold:
        return [(Fold(f"search-{f.name}", f.train, f.val, f.test), [i]) for i, f in enumerate(folds)]
    G = min(cfg.search_groups, len(folds))
    if G < 2:
        raise ConfigError(f"search_groups={cfg.search_groups}: cross-fitted search needs at least 2 groups "
                          "(one search may not see every fold's test speakers); or set search_per_fold")
    plans = []
    for g in range(G):
        members = list(range(g, len(folds), G))
        excluded = sorted({s for i in members for s in folds[i].test})
        sf = search_fold_for_group(all_speakers, excluded, n_val=cfg.n_val, seed=cfg.seed)
        plans.append((Fold(f"group{g}", sf.train, sf.val, sf.test), members))
    return plans


def run_crossval(cfg: RunConfig, out_dir, progress: bool = True, log=print, restart: bool = False) -> dict:
    """The whole cross-validated run into `out_dir`; resumes a killed run of the same config
    and corpus. `restart`: delete the previous run in `out_dir` first."""
    # TorchScript's profiling executor re-optimises the recurrent cell after its first calls,
    # which changes float rounding: a resumed run (cold executor) would differ in the last
    # digits from an uninterrupted one. Unoptimised execution keeps runs bit-identical.
    with torch.jit.optimized_execution(False):
        return _run_crossval(cfg, RunDir(out_dir), progress, log, restart)


def _run_crossval(cfg: RunConfig, run: RunDir, progress: bool, log, restart: bool) -> dict:
    t_start = time.perf_counter()
    _check_config(cfg)
    if restart:
        run.clear()
    run.claim(cfg.to_yaml())
    torch.set_num_threads(cfg.threads)
    out = run.root

    fs = load_features(cfg.corpus, cfg.root, cfg.features.cache_dir, encoder=cfg.features.encoder,
                       deep_pool=cfg.features.deep_pool, progress=progress, spec_cfg=spectrogram_config(cfg),
                       **cfg.corpus_options)
    folds = make_folds(fs.table, cfg.protocol, n_val=cfg.n_val, k=cfg.k, seed=cfg.seed)
    if cfg.max_folds:
        folds = folds[: cfg.max_folds]
    run.check_fingerprint(fingerprint_of(fs, folds, cfg))  # before anything is reused or overwritten
    atomic_write_json(run.environment, environment(cfg.seed))
    if fs.table.errors:
        atomic_write_text(run.skipped, "\n".join(fs.table.errors) + "\n")
        log(f"skipped {len(fs.table.errors)} bad file(s), listed in {run.skipped}")
    save_folds(folds, run.folds)

    t0 = time.perf_counter()
    plans = plan_searches(folds, cfg, sorted(set(fs.speakers)))
    arch_of_fold, searches = {}, []
    for search_fold, members in plans:
        log(f"search {search_fold.name}: {len(search_fold.train)} train / {len(search_fold.val)} val speakers, "
            f"held out {list(search_fold.test)}")
        search_dir = run.search_dir(search_fold.name)
        arch = run_search(fs, search_fold, cfg, search_dir, progress, log=log)
        searches.append({"group": search_fold.name, "held_out_speakers": list(search_fold.test),
                         "dir": run.relative(search_dir)})
        for i in members:  # on every load, fresh or cached: no fold's test speaker reached it
            check_search_speakers(arch, folds[i], search_fold.name)
            arch_of_fold[i] = (search_fold.name, arch)
    search_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    fold_results = [run_fold(i, f, arch_of_fold[i], fs, cfg, run.fold_dir(i), progress, log)
                    for i, f in enumerate(folds)]
    results = summarize(cfg, fs, fold_results, searches)
    # Timing lives in its own file: results.json must be identical after an interrupted, resumed run.
    atomic_write_json(run.timing, {"total_seconds": time.perf_counter() - t_start,
                                   "search_seconds": search_seconds,
                                   "train_seconds": time.perf_counter() - t0})
    atomic_write_json(run.results, _stable(results))
    try:
        from emotionnas.reports.report import write_report
        write_report(out)
    except Exception as e:  # a plotting problem must not turn a finished run into a failure
        log(f"warning: report not written ({type(e).__name__}: {e}); results.json is complete")
    log(f"UA {results['ua']:.1f} ± {results['ua_std']:.1f}  WA {results['wa']:.1f} ± {results['wa_std']:.1f}  "
        f"macro-F1 {results['macro_f1']:.1f}  ({len(folds)} folds) -> {run.results}")
    return results


def run_fold(i: int, fold: Fold, arch, fs, cfg: RunConfig, fold_dir: Path, progress: bool, log) -> dict:
    group, arch = arch
    fold_dir.mkdir(parents=True, exist_ok=True)
    n = fs.n_classes
    seed = stage_seed(cfg.seed, i, "spectrogram")
    seed_everything(seed)
    spec = build_spec_branch(arch, cfg, n)
    r_spec = train_stage("spectrogram", spec, fs, fold, ("spectrogram",), cfg, cfg.train, fold_dir, progress,
                         seed=seed, log=log)
    layers = deep_layers_of(arch, cfg)
    seed = stage_seed(cfg.seed, i, "deep")
    seed_everything(seed)
    deep = build_deep_branch(arch, cfg, fs, n)
    r_deep = train_stage("deep", deep, fs, fold, ("deep",), cfg, cfg.train, fold_dir, progress, layers,
                         seed=seed, log=log)

    # Fusion strategies on the frozen single-branch embeddings (paper Table 5).
    fusions = sorted(FUSIONS) if cfg.ablations else [cfg.fusion]
    ablation = fusion_stage(fusions, spec, deep, fs, fold, cfg, cfg.train, fold_dir, i, layers, log=log)
    r_fused = ablation[cfg.fusion]
    if cfg.fusion_training == "joint":  # then end to end, branches starting from their own weights
        seed = stage_seed(cfg.seed, i, "fused")
        seed_everything(seed)
        fused = TwoStreamModel(spec, deep, n, fusion=cfg.fusion, dominant=cfg.dominant)
        r_fused = train_stage(f"fused-{cfg.fusion}", fused, fs, fold, ("spectrogram", "deep"), cfg,
                              cfg.train, fold_dir, progress, layers, seed=seed, log=log)
    log(f"fold {fold.name}: test {list(fold.test)}  UA spec {r_spec['ua']:.1f}  deep {r_deep['ua']:.1f}  "
        f"fused {r_fused['ua']:.1f}")
    return {"name": fold.name, "test_speakers": list(fold.test), "val_speakers": list(fold.val),
            "search_group": group, "ua": r_fused["ua"], "wa": r_fused["wa"], "macro_f1": r_fused["macro_f1"],
            "confusion": r_fused["confusion"], "best_epoch": r_fused["best_epoch"], "history": r_fused["history"],
            "n_params": r_fused["n_params"], "genotype": arch["genotype"], "recipe": arch["recipe"],
            "deep_layers": layers,
            "branches": {"spectrogram": _scores(r_spec), "deep": _scores(r_deep), f"fused ({cfg.fusion})":
                         _scores(r_fused)}, "fusion_ablation": {k: _scores(v) for k, v in ablation.items()} if cfg.ablations else None}


def _scores(r: dict) -> dict:
    return {k: r[k] for k in ("ua", "wa", "macro_f1")}


def _agg(rows: list[dict]) -> dict:
    out = {}
    for k in ("ua", "wa", "macro_f1"):
        out[k], out[f"{k}_std"] = mean_std([r[k] for r in rows])
    return out


def summarize(cfg: RunConfig, fs, folds: list[dict], searches: list[dict]) -> dict:
    res = {"format_version": FORMAT_VERSION, "corpus": cfg.corpus, "protocol": cfg.protocol, "label_names": fs.label_names,
           **_agg(folds), "folds": folds, "searches": searches, "synthetic": cfg.corpus == "demo",
           "n_utterances": len(fs), "n_speakers": len(set(fs.speakers)),
           "features": {"encoder": cfg.features.encoder, "deep_pool": cfg.features.deep_pool,
                        "deep_layers": cfg.features.deep_layers, "deep_layers_total": fs.deep_layers,
                        "deep_dim": fs.deep_dim, "spectrogram": spectrogram_config(cfg).to_dict()}}
    ablations = {"branches": {name: _agg([f["branches"][name] for f in folds]) for name in folds[0]["branches"]}}
    if all(f["fusion_ablation"] for f in folds):
        ablations["fusion"] = {name: _agg([f["fusion_ablation"][name] for f in folds])
                               for name in folds[0]["fusion_ablation"]}
    res["ablations"] = ablations
    return res


def _stable(obj):
    """Floats to 10 significant digits (not decimals: 1e-10 must survive) for a stable results.json."""
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _stable(obj.item())
    return obj
