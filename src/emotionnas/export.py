"""`emotionnas export RUN_DIR --out MODEL_DIR`: a run's model as a self-contained folder.

The exported model is the fused model of the fold with the best *validation*
UA (choosing by test scores would turn the test speakers into a selection set).
"""
from __future__ import annotations

from pathlib import Path

import torch

from emotionnas.recognizer import MODEL_FORMAT_VERSION, MODEL_JSON, MODEL_WEIGHTS
from emotionnas.rundir import RunDir
from emotionnas.utils.io import atomic_write_bytes, atomic_write_json, read_json


def export_run(run_dir, out_dir) -> Path:
    from safetensors.torch import save

    run, out_dir = RunDir(run_dir), Path(out_dir)
    results = run.read_results()
    cfg = run.read_config()
    candidates = []
    for i in range(len(results["folds"])):
        if cfg.fusion_training == "joint":
            r = read_json(run.stage_json(i, f"fused-{cfg.fusion}"))
        else:
            r = read_json(run.fusion_json(i))["fusions"][cfg.fusion]
        candidates.append((r["val_ua"], -i, i, r))
    _, _, best, r = max(candidates)
    fold = results["folds"][best]
    feats = results["features"]
    meta = {
        "format_version": MODEL_FORMAT_VERSION,
        "label_names": results["label_names"], "genotype": fold["genotype"], "recipe": fold["recipe"],
        "cnn": {"kind": cfg.cnn.kind, "C": cfg.cnn.C, "layers": cfg.cnn.layers},
        "rnn": {"hidden": cfg.rnn.hidden, "layers": cfg.rnn.layers, "frame_pool": cfg.rnn.frame_pool,
                "mean_skip": cfg.rnn.mean_skip},
        "fusion": cfg.fusion, "dominant": cfg.dominant, "encoder": feats["encoder"],
        "deep_pool": feats["deep_pool"], "deep_layers": fold.get("deep_layers", feats["deep_layers"]),
        "deep_layers_total": feats["deep_layers_total"], "deep_dim": feats["deep_dim"],
        "spectrogram": feats["spectrogram"], "spec_stats": r["spec_stats"],
        "source": {"run": str(run.root.resolve()), "fold": fold["name"], "val_ua": r["val_ua"],
                   "test_ua": r["ua"], "corpus": results["corpus"], "synthetic": results.get("synthetic", False)},
    }
    if cfg.fusion_training == "joint":
        state = torch.load(run.stage_weights(best, f"fused-{cfg.fusion}"), weights_only=True)
    else:  # the two-stream model = both single-branch models + the fusion trained on their embeddings
        state = {f"spec_branch.{k}": v for k, v in
                 torch.load(run.stage_weights(best, "spectrogram"), weights_only=True).items()}
        state |= {f"deep_branch.{k}": v for k, v in
                  torch.load(run.stage_weights(best, "deep"), weights_only=True).items()}
        state |= torch.load(run.fusion_weights(best, cfg.fusion), weights_only=True)
    atomic_write_bytes(out_dir / MODEL_WEIGHTS, save({k: v.contiguous() for k, v in state.items()}))
    atomic_write_json(out_dir / MODEL_JSON, meta)
    return out_dir
