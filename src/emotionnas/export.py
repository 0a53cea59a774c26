"""`emotionnas export RUN_DIR --out MODEL_DIR`: a run's model as a self-contained folder.

The exported model is the fused model of the fold with the best *validation*
UA (choosing by test scores would turn the test speakers into a selection set).
"""
from __future__ import annotations

from pathlib import Path

import torch

from emotionnas.config import RunConfig
from emotionnas.errors import EmotionNASError
from emotionnas.recognizer import MODEL_JSON, MODEL_WEIGHTS
from emotionnas.utils.io import atomic_write_bytes, atomic_write_json, read_json


def export_run(run_dir, out_dir) -> Path:
    from safetensors.torch import save

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "results.json").exists():
        raise EmotionNASError(f"{run_dir}: no results.json (is the run finished?)")
    cfg = RunConfig.from_yaml(run_dir / "config.yaml")
    results = read_json(run_dir / "results.json")
    candidates = []
    for i in range(len(results["folds"])):
        fold_dir = run_dir / "folds" / f"fold{i:02d}"
        if cfg.fusion_training == "joint":
            r = read_json(fold_dir / f"fused-{cfg.fusion}.json")
        else:
            r = read_json(fold_dir / "fusion.json")[cfg.fusion]
        candidates.append((r["val_ua"], -i, i, r))
    _, _, best, r = max(candidates)
    fold = results["folds"][best]
    feats = results["features"]
    meta = {
        "label_names": results["label_names"], "genotype": fold["genotype"], "recipe": fold["recipe"],
        "cnn": {"kind": cfg.cnn.kind, "C": cfg.cnn.C, "layers": cfg.cnn.layers},
        "rnn": {"hidden": cfg.rnn.hidden, "layers": cfg.rnn.layers, "frame_pool": cfg.rnn.frame_pool,
                "mean_skip": cfg.rnn.mean_skip},
        "fusion": cfg.fusion, "dominant": cfg.dominant, "encoder": feats["encoder"],
        "deep_pool": feats["deep_pool"], "deep_layers": fold.get("deep_layers", feats["deep_layers"]),
        "deep_layers_total": feats["deep_layers_total"], "deep_dim": feats["deep_dim"],
        "spectrogram": feats["spectrogram"], "spec_stats": r["spec_stats"],
        "source": {"run": str(run_dir.resolve()), "fold": fold["name"], "val_ua": r["val_ua"],
                   "test_ua": r["ua"], "corpus": results["corpus"], "synthetic": results.get("synthetic", False)},
    }
    fold_dir = run_dir / "folds" / f"fold{best:02d}"
    if cfg.fusion_training == "joint":
        state = torch.load(fold_dir / f"fused-{cfg.fusion}.pt", weights_only=True)
    else:  # the two-stream model = both single-branch models + the fusion trained on their embeddings
        state = {f"spec_branch.{k}": v for k, v in torch.load(fold_dir / "spectrogram.pt", weights_only=True).items()}
        state |= {f"deep_branch.{k}": v for k, v in torch.load(fold_dir / "deep.pt", weights_only=True).items()}
        state |= torch.load(fold_dir / f"fusion-{cfg.fusion}.pt", weights_only=True)
    atomic_write_bytes(out_dir / MODEL_WEIGHTS, save({k: v.contiguous() for k, v in state.items()}))
    atomic_write_json(out_dir / MODEL_JSON, meta)
    return out_dir
