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
from emotionnas.errors import ConfigError, LeakageError
from emotionnas.features.dataset import load_features
from emotionnas.features.spectrogram import SpectrogramConfig
from emotionnas.models.fusion import FUSIONS
from emotionnas.models.two_stream import TwoStreamModel
from emotionnas.training.metrics import mean_std
from emotionnas.training.stages import (build_deep_branch, build_spec_branch, deep_layers_of, fusion_stage,
                                        run_search, stage_seed, train_stage)
from emotionnas.utils.io import atomic_write_json, atomic_write_text, read_json
from emotionnas.utils.provenance import environment
from emotionnas.utils.seed import seed_everything


def spectrogram_config(cfg: RunConfig) -> SpectrogramConfig:
    size = cfg.features.spectrogram_size
    return SpectrogramConfig(out_freq=size, out_time=size)


def _check_config(cfg: RunConfig, out: Path) -> None:
    """A run folder belongs to one config: resuming with another would mix results."""
    if cfg.fusion_training not in ("frozen", "joint"):
        raise ConfigError(f"fusion_training must be 'frozen' or 'joint', got {cfg.fusion_training!r}")
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"fusion must be one of {sorted(FUSIONS)}, got {cfg.fusion!r}")
    path = out / "config.yaml"
    if path.exists() and path.read_text() != cfg.to_yaml():
        raise ConfigError(f"{path}: this run folder was made with a different config; "
                          "use a new --out folder (or delete it) to run another config")
    atomic_write_text(path, cfg.to_yaml())


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


def run_crossval(cfg: RunConfig, out_dir, progress: bool = True, log=print) -> dict:
    # TorchScript's profiling executor re-optimises the recurrent cell after its first calls,
    # which changes float rounding: a resumed run (cold executor) would differ in the last
    # digits from an uninterrupted one. Unoptimised execution keeps runs bit-identical.
    with torch.jit.optimized_execution(False):
        return _run_crossval(cfg, out_dir, progress, log)


def _run_crossval(cfg: RunConfig, out_dir, progress: bool, log) -> dict:
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    _check_config(cfg, out)
    atomic_write_json(out / "environment.json", environment(cfg.seed))

    fs = load_features(cfg.corpus, cfg.root, cfg.features.cache_dir, encoder=cfg.features.encoder,
                       deep_pool=cfg.features.deep_pool, progress=progress, spec_cfg=spectrogram_config(cfg),
                       **cfg.corpus_options)
    if fs.table.errors:
        atomic_write_text(out / "skipped_files.txt", "\n".join(fs.table.errors) + "\n")
        log(f"skipped {len(fs.table.errors)} bad file(s), listed in {out / 'skipped_files.txt'}")
    folds = make_folds(fs.table, cfg.protocol, n_val=cfg.n_val, k=cfg.k, seed=cfg.seed)
    if cfg.max_folds:
        folds = folds[: cfg.max_folds]
    save_folds(folds, out / "folds.json")

    t0 = time.perf_counter()
    plans = plan_searches(folds, cfg, sorted(set(fs.speakers)))
    arch_of_fold, searches = {}, []
    for search_fold, members in plans:
        log(f"search {search_fold.name}: {len(search_fold.train)} train / {len(search_fold.val)} val speakers, "
            f"held out {list(search_fold.test)}")
        arch = run_search(fs, search_fold, cfg, out / "searches" / search_fold.name, progress)
        searches.append({"group": search_fold.name, "held_out_speakers": list(search_fold.test),
                         "dir": f"searches/{search_fold.name}"})
        for i in members:
            if set(folds[i].test) - set(search_fold.test):
                raise LeakageError(f"fold {folds[i].name}: its test speakers reached search {search_fold.name}")
            arch_of_fold[i] = (search_fold.name, arch)
    search_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    fold_results = [run_fold(i, f, arch_of_fold[i], fs, cfg, out / "folds" / f"fold{i:02d}", progress, log)
                    for i, f in enumerate(folds)]
    results = summarize(cfg, fs, fold_results, searches)
    # Timing lives in its own file: results.json must be identical after an interrupted, resumed run.
    atomic_write_json(out / "timing.json", {"total_seconds": time.perf_counter() - t_start,
                                            "search_seconds": search_seconds,
                                            "train_seconds": time.perf_counter() - t0})
    atomic_write_json(out / "results.json", _stable(results))
    try:
        from emotionnas.reports.report import write_report
        write_report(out)
    except Exception as e:  # a plotting problem must not turn a finished run into a failure
        log(f"warning: report not written ({type(e).__name__}: {e}); results.json is complete")
    log(f"UA {results['ua']:.1f} ± {results['ua_std']:.1f}  WA {results['wa']:.1f} ± {results['wa_std']:.1f}  "
        f"macro-F1 {results['macro_f1']:.1f}  ({len(folds)} folds) -> {out / 'results.json'}")
    return results


def run_fold(i: int, fold: Fold, arch, fs, cfg: RunConfig, fold_dir: Path, progress: bool, log) -> dict:
    group, arch = arch
    fold_dir.mkdir(parents=True, exist_ok=True)
    n = fs.n_classes
    seed_everything(stage_seed(cfg.seed, i, "spectrogram"))
    spec = build_spec_branch(arch, cfg, n)
    r_spec = train_stage("spectrogram", spec, fs, fold, ("spectrogram",), cfg, cfg.train, fold_dir, progress)
    layers = deep_layers_of(arch, cfg)
    seed_everything(stage_seed(cfg.seed, i, "deep"))
    deep = build_deep_branch(arch, cfg, fs, n)
    r_deep = train_stage("deep", deep, fs, fold, ("deep",), cfg, cfg.train, fold_dir, progress, layers)

    # Fusion strategies on the frozen single-branch embeddings (paper Table 5).
    fusions = sorted(FUSIONS) if cfg.ablations else [cfg.fusion]
    ablation = fusion_stage(fusions, spec, deep, fs, fold, cfg, cfg.train, fold_dir, i, layers)
    r_fused = ablation[cfg.fusion]
    if cfg.fusion_training == "joint":  # then end to end, branches starting from their own weights
        seed_everything(stage_seed(cfg.seed, i, "fused"))
        fused = TwoStreamModel(spec, deep, n, fusion=cfg.fusion, dominant=cfg.dominant)
        r_fused = train_stage(f"fused-{cfg.fusion}", fused, fs, fold, ("spectrogram", "deep"), cfg,
                              cfg.train, fold_dir, progress, layers)
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
    res = {"corpus": cfg.corpus, "protocol": cfg.protocol, "label_names": fs.label_names,
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
