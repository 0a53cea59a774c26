"""The resumable stages of a cross-validated run: search, branch training, fusion.

Every stage writes its result atomically into its own folder and is skipped
when that result exists, so a killed run picks up at the stage it was in.
Each stage reseeds from (run seed, fold, stage) and passes that seed on to `fit`,
so a re-run stage computes exactly what the interrupted one would have, and a
different run seed changes every stage. A stage's JSON records the fold and seed it
was computed for; a truncated or corrupt result or checkpoint is recomputed, a
result computed for another fold is refused.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

from emotionnas.config import TrainConfig
from emotionnas.data.folds import Fold
from emotionnas.errors import ConfigError, LeakageError
from emotionnas.features.dataset import FeatureSet
from emotionnas.rundir import RESTART_HINT
from emotionnas.training.loop import ArraySplit, FeatureSplit, fit, predict_proba
from emotionnas.metrics import scores
from emotionnas.utils.io import atomic_torch_save, atomic_write_json, load_checkpoint, read_json_or_none
from emotionnas.utils.seed import seed_everything


def stage_seed(seed: int, *parts) -> int:
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2**31)


def speaker_indices(fs: FeatureSet, speakers) -> np.ndarray:
    return np.flatnonzero(np.isin(fs.speakers, list(speakers)))


def spec_stats(fs: FeatureSet, idx) -> tuple[float, float]:
    """Mean/std of the spectrograms of the training utterances only."""
    x = fs.spectrograms[idx]
    return float(x.mean()), float(x.std() + 1e-6)


# ---------------------------------------------------------------- search
def search_speakers(fs: FeatureSet, search_fold: Fold) -> dict:
    """The speakers a search reads (train: weights, val: architecture) and those it must not."""
    tr, va = speaker_indices(fs, search_fold.train), speaker_indices(fs, search_fold.val)
    return {"train": sorted(set(fs.speakers[tr].tolist())), "val": sorted(set(fs.speakers[va].tolist())),
            "excluded": sorted(search_fold.test)}


def run_search(fs: FeatureSet, search_fold: Fold, cfg, out_dir: Path, progress: bool = True,
               streams=("cnn", "rnn"), log=print) -> dict:
    """Search the branches in `streams` on `search_fold.train` (weights) and `.val` (architecture choice).

    `search_fold.test` speakers are never read. Returns {"genotype", "recipe", "deep_layers",
    "speakers"}; a finished search is read back from `search_done.json` when it used exactly
    the speakers it would use now (else it is stale: ConfigError).
    """
    from emotionnas.search.cnn.search import CNNSearchConfig, search_cnn
    from emotionnas.space.recipe import load_recipe
    from emotionnas.search.rnn.search import RNNSearchConfig, deep_tensors, search_rnn

    out_dir = Path(out_dir)
    done = out_dir / "search_done.json"
    speakers = search_speakers(fs, search_fold)
    if set(speakers["train"] + speakers["val"]) & set(search_fold.test):
        raise LeakageError(f"search {search_fold.name}: test speakers reached its training data")
    record = read_json_or_none(done, log)
    if record is not None:
        if record.get("speakers") != speakers:
            raise ConfigError(f"{done}: this search used other speakers than it would now "
                              f"(stale search); {RESTART_HINT}")
        return record
    tr, va = speaker_indices(fs, search_fold.train), speaker_indices(fs, search_fold.val)
    atomic_write_json(out_dir / "search_speakers.json", speakers)

    genotype = recipe = None
    layers = cfg.features.deep_layers
    if layers == "auto" and "rnn" in streams:  # encoder layers: chosen on the search speakers
        from emotionnas.search.layers import select_layers
        path = out_dir / "layers.json"
        choice = read_json_or_none(path, log)
        if choice is None or choice.get("speakers") != sorted(set(fs.speakers[np.concatenate([tr, va])].tolist())):
            choice = select_layers(fs, np.concatenate([tr, va]), cfg.features.deep_layers_k,
                                   stage_seed(cfg.seed, "layers", search_fold.name))
            atomic_write_json(path, choice)
        layers = choice["layers"]
    if "cnn" in streams:
        m, s = spec_stats(fs, tr)
        seed = stage_seed(cfg.seed, "search-cnn", search_fold.name)
        seed_everything(seed)
        head = {"darts": "gap", "emodarts": "lstm"}[cfg.cnn.kind]
        cnn_cfg = CNNSearchConfig.from_dict({"C": cfg.cnn.C, "layers": cfg.cnn.layers, "seed": seed,
                                             "head": head, **cfg.cnn.search})
        genotype = search_cnn((fs.spectrogram_batch(tr) - m) / s, torch.as_tensor(fs.labels[tr]),
                              (fs.spectrogram_batch(va) - m) / s, torch.as_tensor(fs.labels[va]),
                              cnn_cfg, out_dir / "cnn", progress=progress)
    if "rnn" not in streams:
        pass
    elif cfg.rnn.recipe_path:
        recipe = load_recipe(cfg.rnn.recipe_path)
    else:
        seed = stage_seed(cfg.seed, "search-rnn", search_fold.name)
        seed_everything(seed)
        # Frames are pooled here, chunk by chunk: the whole (N, L+1, T, D) float32 training
        # set at 25 Hz would take gigabytes; the search then runs with frame_pool=1.
        rnn_cfg = RNNSearchConfig.from_dict({**cfg.rnn.search, "seed": seed, "frame_pool": 1})
        pool = cfg.rnn.search.get("frame_pool", cfg.rnn.frame_pool)
        x_tr, l_tr = deep_tensors(fs, tr, layers, pool)
        x_va, l_va = deep_tensors(fs, va, layers, pool)
        recipe = search_rnn(x_tr, l_tr, torch.as_tensor(fs.labels[tr]), x_va, l_va,
                            torch.as_tensor(fs.labels[va]), rnn_cfg, out_dir / "rnn", progress=progress)
    result = {"genotype": None if genotype is None else json.loads(genotype.to_json()), "recipe": recipe,
              "deep_layers": None if layers == "auto" else layers, "speakers": speakers}
    if set(streams) == {"cnn", "rnn"}:
        atomic_write_json(done, result)
    return result


# ---------------------------------------------------------------- models
def build_spec_branch(arch: dict, cfg, n_classes: int):
    from emotionnas.models.build import build_spec_branch as build
    return build(arch["genotype"], cfg.cnn.kind, cfg.cnn.C, cfg.cnn.layers, n_classes)


def deep_layers_of(arch: dict, cfg):
    """The encoder layers a fold's deep branch reads: its search's choice, else the config's."""
    layers = arch["deep_layers"] if "deep_layers" in arch else cfg.features.deep_layers
    if layers == "auto":
        raise ValueError("features.deep_layers='auto' is resolved by a search; this architecture has none")
    return layers


def build_deep_branch(arch: dict, cfg, fs: FeatureSet, n_classes: int):
    from emotionnas.models.build import build_deep_branch as build
    layers = deep_layers_of(arch, cfg)
    if layers and max(layers) >= fs.deep_layers:
        raise ConfigError(f"features.deep_layers={layers}: the encoder has hidden states 0..{fs.deep_layers - 1}")
    n_layers = len(layers) if layers else fs.deep_layers
    return build(arch["recipe"], fs.deep_dim, cfg.rnn.hidden, cfg.rnn.layers, n_classes, n_layers,
                 cfg.rnn.frame_pool, cfg.rnn.mean_skip)


# ---------------------------------------------------------------- training stages
def _evaluate(model, split, n_classes: int) -> tuple[dict, np.ndarray]:
    probs = predict_proba(model, split)
    return scores(split.labels, probs.argmax(1), n_classes), probs


def _identity(fold: Fold, seed: int) -> dict:
    """What a stage result was computed for; a cached result must match it to be reused."""
    return {"fold": fold.to_dict(), "seed": int(seed)}


def _cached(result_path: Path, weight_paths, identity: dict, log):
    """A finished stage's result when it and its weights are intact and it was computed for
    this fold and seed; None when it must be (re)computed; ConfigError when it is stale."""
    result = read_json_or_none(result_path, log)
    if result is None:
        return None, None
    if result.get("identity") != identity:
        raise ConfigError(f"{result_path}: computed for another fold or seed (stale stage); {RESTART_HINT}")
    states = []
    for path in weight_paths:
        state = load_checkpoint(path, log)
        if state is None:
            return None, None
        states.append(state)
    return result, states


def train_stage(name: str, model, fs: FeatureSet, fold: Fold, inputs, cfg, train_cfg: TrainConfig,
                fold_dir: Path, progress: bool = False, deep_layers=None, *, seed: int, log=print) -> dict:
    """Train `model` on fold.train, early-stop on fold.val, evaluate once on fold.test.

    `seed` (from `stage_seed`) fixes initial weights' successors: batch order and dropout.
    `deep_layers`: encoder layers fed to a deep input (None = all)."""
    result_path = fold_dir / f"{name}.json"
    weights_path = fold_dir / f"{name}.pt"
    identity = _identity(fold, seed)
    result, states = _cached(result_path, [weights_path], identity, log)
    if result is not None:
        model.load_state_dict(states[0])
        return result
    tr, va, te = (speaker_indices(fs, fold.train), speaker_indices(fs, fold.val), speaker_indices(fs, fold.test))
    stats = spec_stats(fs, tr) if "spectrogram" in inputs else (0.0, 1.0)
    split = lambda idx: FeatureSplit(fs, idx, inputs, deep_layers, stats)  # noqa: E731
    fit_res = fit(model, split(tr), split(va), train_cfg, fs.n_classes, seed=seed, progress=progress)
    test_scores, probs = _evaluate(model, split(te), fs.n_classes)
    result = {"stage": name, **{k: test_scores[k] for k in ("ua", "wa", "macro_f1", "confusion")},
              "best_epoch": fit_res.best_epoch, "val_ua": fit_res.best_val_ua,
              "train_seconds": fit_res.seconds, "history": fit_res.history,
              "n_params": sum(p.numel() for p in model.parameters()), "spec_stats": list(stats),
              "test_pred": probs.argmax(1).tolist(), "test_true": fs.labels[te].tolist(), "identity": identity}
    atomic_torch_save(weights_path, model.state_dict())
    atomic_write_json(result_path, result)  # written last: its presence means the stage is complete
    return result


@torch.no_grad()
def branch_embeddings(model, fs: FeatureSet, idx, inputs, stats, deep_layers=None) -> torch.Tensor:
    model.eval()
    split = FeatureSplit(fs, idx, inputs, deep_layers, stats)
    out = []
    for start in range(0, len(split), 64):
        out.append(model.embed(*split.batch(np.arange(start, min(start + 64, len(split))))))
    return torch.cat(out)


def classifier_of(branch) -> torch.nn.Linear:
    """The final linear layer of a branch's own classifier (`classifier`, or the last layer of `head`)."""
    clf = getattr(branch, "classifier", None)
    if isinstance(clf, torch.nn.Linear):
        return clf
    head = getattr(branch, "head", None)
    if isinstance(head, torch.nn.Sequential) and isinstance(head[-1], torch.nn.Linear):
        return head[-1]
    if isinstance(head, torch.nn.Linear):
        return head
    raise TypeError(f"{type(branch).__name__}: no final linear classifier to start a fusion from")


def fusion_stage(fusions, spec_model, deep_model, fs: FeatureSet, fold: Fold, cfg,
                 train_cfg: TrainConfig, fold_dir: Path, fold_index: int, deep_layers=None, log=print) -> dict:
    """Fusion on frozen branch embeddings: each strategy's fusion + classifier trained alone
    (paper Table 5). Weights saved as `fusion-<name>.pt` (keys `fusion.*`, `head.*`, as in
    TwoStreamModel, so an exported model is the two branches plus these)."""
    from emotionnas.models.two_stream import EmbeddingFusionModel

    path = fold_dir / "fusion.json"
    seeds = {name: stage_seed(cfg.seed, "fusion", fold_index, name) for name in fusions}
    identity = {**_identity(fold, cfg.seed), "fusions": list(fusions), "seeds": seeds}
    result, _ = _cached(path, [fold_dir / f"fusion-{name}.pt" for name in fusions], identity, log)
    if result is not None:
        return result["fusions"]
    tr, va, te = (speaker_indices(fs, fold.train), speaker_indices(fs, fold.val), speaker_indices(fs, fold.test))
    stats = spec_stats(fs, tr)
    emb = {}
    for part, idx in (("train", tr), ("val", va), ("test", te)):
        emb[part] = (branch_embeddings(spec_model, fs, idx, ("spectrogram",), stats),
                     branch_embeddings(deep_model, fs, idx, ("deep",), stats, deep_layers))
    fcfg = TrainConfig(**{**train_cfg.to_dict(), "lr": 1e-3, "epochs": max(train_cfg.epochs, 30),
                          "patience": max(train_cfg.patience, 10)})
    out = {}
    for name in fusions:
        seed_everything(seeds[name])
        model = EmbeddingFusionModel(spec_model.out_dim, deep_model.out_dim, fs.n_classes, name, cfg.dominant)
        dominant = deep_model if cfg.dominant == "deep" else spec_model
        model.start_from_dominant(classifier_of(dominant))
        res = fit(model, ArraySplit(emb["train"], fs.labels[tr]), ArraySplit(emb["val"], fs.labels[va]),
                  fcfg, fs.n_classes, seed=seeds[name], keep_initial=True)
        sc, probs = _evaluate(model, ArraySplit(emb["test"], fs.labels[te]), fs.n_classes)
        out[name] = {**{k: sc[k] for k in ("ua", "wa", "macro_f1", "confusion")}, "best_epoch": res.best_epoch,
                     "val_ua": res.best_val_ua, "history": res.history, "spec_stats": list(stats),
                     "n_params": sum(p.numel() for m in (spec_model, deep_model, model) for p in m.parameters()),
                     "test_pred": probs.argmax(1).tolist(), "test_true": fs.labels[te].tolist()}
        atomic_torch_save(fold_dir / f"fusion-{name}.pt", model.state_dict())
    atomic_write_json(path, {"identity": identity, "fusions": out})
    return out
