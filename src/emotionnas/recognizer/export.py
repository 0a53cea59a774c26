"""`emotionnas export RUN_DIR --out MODEL_DIR`: a run's model as a self-contained folder.

By default the run's final model (training/final.py): selected by the same inner CV over every
speaker and refit on all of them, calibrated; model.json's `source` lists `trained_speakers`
and the run's cross-validated UA/WA as the expected accuracy. `--fold F` exports fold F's refit
ensemble instead (trained without that fold's test speakers). The folder holds
model.safetensors (member weights under `m<i>.` prefixes), model.json (`ModelSpec`) and a
model card (README.md).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from emotionnas.data.folds import load_folds
from emotionnas.errors import ConfigError
from emotionnas.space.combiner import Combiner
from emotionnas.space.model_spec import Dims, Member, ModelSpec, needs_genotype, needs_recipe
from emotionnas.recognizer.folder import MODEL_JSON, MODEL_WEIGHTS
from emotionnas.rundir import RESTART_HINT, RunDir, run_identity
from emotionnas.training.tasks import DataRef
from emotionnas.space.pipeline import Candidate
from emotionnas.utils.io import (atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, read_verified,
                                 read_json_or_none)


def export_run(run_dir, out_dir, fold: int | None = None) -> Path:
    """The run's final model (selected and refit on every speaker) into `out_dir`; with
    `fold`, that fold's refit ensemble instead (trained without the fold's test speakers)."""
    from safetensors.torch import save

    run, out_dir = RunDir(run_dir), Path(out_dir)
    results, cfg = run.read_results(), run.read_config()
    if fold is None:
        members, state, where = _final_members(run)
    else:
        members, state, where = _fold_members(run, results, fold)
    feats = results["features"]
    spec = ModelSpec(tuple(results["label_names"]), tuple(members),
                     Dims(len(results["label_names"]), feats["deep_dim"], feats["deep_layers_total"], cfg.cnn.C,
                          cfg.cnn.layers), cfg.features.encoder, cfg.features.deep_pool,
                     DataRef.from_config(cfg).spectrogram_config().to_dict(),  # feature settings: the run's config
                     temperature=where.get("temperature", 1.0),
                     combiner=Combiner.from_dict(where.get("combiner"), len(members), len(results["label_names"]),
                                                 f"{run.root}: combiner"),
                     speaker_norm=cfg.features.speaker_norm)
    meta = {**spec.to_dict(), "source": {
        "run": str(run.root.resolve()), "corpus": results["corpus"], "protocol": results["protocol"],
        "synthetic": results.get("synthetic", False),
        **{k: v for k, v in where.items() if k not in ("temperature", "combiner")},
        "cv_ua": results["ua"], "cv_ua_std": results["ua_std"], "cv_wa": results["wa"],
        "note": "cv_* are the run's cross-validated scores (every fold's test speakers, scored once): the "
                "expected accuracy of this model on new speakers"}}
    weights = save({k: v.contiguous() for k, v in state.items()})
    meta["files"] = {MODEL_WEIGHTS: hashlib.sha256(weights).hexdigest()}  # load checks it
    ModelSpec.from_meta(meta, str(out_dir / MODEL_JSON))  # what a recognizer will refuse, refused here first
    atomic_write_bytes(out_dir / MODEL_WEIGHTS, weights)
    atomic_write_json(out_dir / MODEL_JSON, meta)
    atomic_write_text(out_dir / "README.md", model_card(spec, results, where, cfg))
    return out_dir


def _members(run, group: str, chosen: list[dict], spec_stats, weights_of, record_of) -> tuple[list, dict]:
    """The chosen members' descriptions and weights; each weights file is checked against the
    sha256 and the run identity its record holds (IntegrityError / ConfigError naming it)."""
    identity = run_identity(run.read_config())
    search = read_json_or_none(run.search_record(group)) or {}
    candidates = {c["key"]: c["candidate"] for c in read_json(run.selection_summary(group))["candidates"]}
    members, state = [], {}
    for j, m in enumerate(chosen):
        weights, record_path = weights_of(m["key"]), record_of(m["key"])
        if not weights.exists():
            raise ConfigError(f"{weights}: missing; re-run the same `emotionnas run` command to rebuild it")
        record = read_json_or_none(record_path)
        if not isinstance(record, dict):
            raise ConfigError(f"{record_path}: missing or unreadable; re-run the same `emotionnas run` command")
        if (record.get("identity") or {}).get("run") != identity:
            raise ConfigError(f"{record_path}: made under another seed or config than {run.config.name}; "
                              f"{RESTART_HINT}")
        data = read_verified(weights, record.get("weights_sha256"))  # what is shipped is what was trained
        cand = Candidate.from_dict(candidates[m["key"]])
        members.append(Member(m["name"], cand, search.get("genotype") if needs_genotype(cand) else None,
                              search.get("recipe") if needs_recipe(cand) else None, tuple(spec_stats(m)), f"m{j}."))
        state |= {f"m{j}.{k}": v for k, v in _load_weights(weights, data).items()}
    return members, state


def _load_weights(path: Path, data: bytes) -> dict:
    """The state dict in `data` (the verified bytes of `path`), or one line naming `path`."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, disallowed global: one line
        raise ConfigError(f"{path}: unreadable weights ({type(e).__name__}); re-run the same "
                          "`emotionnas run` command to rebuild them") from None


def _final_members(run):
    final = read_json_or_none(run.final_record)
    if final is None:
        raise ConfigError(f"{run.root}: no final model (final/final.json); re-run the same `emotionnas run` "
                          "command (final_model: true, the default) or export one fold with --fold F")
    members, state = _members(run, final["group"], final["members"], lambda m: m["spec_stats"], run.final_weights,
                              run.final_refit_json)
    return members, state, {"model": "final", "trained_speakers": final["speakers"],
                            "n_utterances": final["n_utterances"], "temperature": final["temperature"],
                            "combiner": (final.get("combiner") or {}).get("fitted"),
                            "ece_before": final["ece_before"], "ece_after": final["ece_after"]}


def _fold_members(run, results: dict, index: int):
    folds = results["folds"]
    if not 0 <= index < len(folds):
        raise ConfigError(f"--fold {index}: this run has folds 0..{len(folds) - 1}")
    fold = folds[index]
    members, state = _members(run, fold["search_group"], fold["members"],
                              lambda m: read_json(run.refit_json(index, m["key"]))["spec_stats"],
                              lambda key: run.refit_weights(index, key), lambda key: run.refit_json(index, key))
    split = next(f for f in load_folds(run.folds) if f.name == fold["name"])
    trained = sorted(set(split.train) | set(split.val))
    combiner = (read_json(run.selection_summary(fold["search_group"])).get("combiner") or {}).get("fitted")
    return members, state, {"model": f"fold {fold['name']}", "fold": fold["name"], "trained_speakers": trained,
                            "held_out_speakers": fold["test_speakers"], "combiner": combiner}


CORPUS_TERMS = {
    "emodb": "EmoDB (Burkhardt et al. 2005): acted German speech of 10 actors; freely available for research",
    "urdu": "URDU (Latif et al. 2018): Urdu talk-show speech; for research use only",
    "demo": "the built-in synthetic demo corpus (made by code, not speech)",
}


def model_card(spec: ModelSpec, results: dict, where: dict, cfg) -> str:
    """README.md of a model folder: what it is, how well it did, what it must not be used for."""
    corpus = results["corpus"]
    members = "\n".join(f"- `{m.name}`: encoder layers {m.candidate.layers}, deep model {m.candidate.deep}, "
                         f"spectrogram model {m.candidate.spectrogram}" for m in spec.members)
    synthetic = ("\n**This model was trained on synthetic audio: it shows that the pipeline works and "
                 "recognises nothing in real speech.**\n" if results.get("synthetic") else "")
    return f"""# Speech emotion model ({corpus})
{synthetic}
- **Classes**: {", ".join(spec.label_names)}
- **Trained on**: {CORPUS_TERMS.get(corpus, corpus)}; {results['n_utterances']} utterances,
  {results['n_speakers']} speakers. {_trained(where)}
- **How well** (speaker-independent cross-validation, {results['protocol']}, {len(results['folds'])} folds,
  each fold's test speakers scored once): UA {results['ua']:.1f} ± {results['ua_std']:.1f},
  WA {results['wa']:.1f} ± {results['wa_std']:.1f}, macro-F1 {results['macro_f1']:.1f} (mean ± std over folds).
  {_measured(where)} Expect less on other languages, microphones and on spontaneous speech.{_baselines(results)}
{_calibration(where, spec)}
- **Inputs**: 16 kHz mono audio; spectrograms {spec.spectrogram.get("out_freq", 140)} x
  {spec.spectrogram.get("out_time", 140)} of the first {spec.spectrogram.get("seconds", 8.0)} s, and
  hidden states of the `{spec.encoder}` encoder (frames pooled by {spec.deep_pool}).
- **Ensemble** ({_combining(spec)}):
{members}
- **Made with** emotionnas, config seed {cfg.seed}; run `emotionnas predict --model THIS_FOLDER file.wav`.

## Must not be used for

Judging people. A model trained on {"acted speech of ten actors" if corpus == "emodb" else "one corpus"}
recognises how *those recordings* expressed emotions; it is no lie detector, no diagnosis of mental
health, and no basis for decisions about hiring, policing, insurance, schooling or anyone's rights.
Emotion labels of speech are uncertain even between human listeners.

## Licences

- Encoder weights: OpenAI Whisper (MIT licence), used unchanged and loaded from the package
  named in `model.json`; they are not inside this folder.
- The weights in `model.safetensors` were trained on {CORPUS_TERMS.get(corpus, corpus)}: their use
  follows that corpus's terms.
- emotionnas: MIT.
"""


def _trained(where: dict) -> str:
    speakers = ", ".join(where["trained_speakers"])
    if where["model"] == "final":
        return (f"This folder is the **final model**: selected by inner cross-validation over every speaker "
                f"and refit on all of them ({len(where['trained_speakers'])}: {speakers}).")
    return (f"This folder is the ensemble refit for fold `{where['fold']}`: trained on {speakers}; "
            f"not on {', '.join(where['held_out_speakers'])}.")


def _combining(spec: ModelSpec) -> str:
    if spec.combiner.kind == "mean":
        return "probabilities averaged"
    return ("probabilities combined by a stacker: a logistic regression on the members' log-probabilities, "
            "fit on out-of-fold inner-CV predictions")


def _measured(where: dict) -> str:
    """Which models the cross-validated score measured, and how the shipped one relates to them."""
    measured = ("The scores measured the **per-fold ensembles**: in each fold, the ensemble selected by inner "
                "cross-validation without that fold's test speakers, refit on its training speakers and scored "
                "once on the test speakers.")
    if where["model"] == "final":
        return (measured + " What this folder ships is the **final model**: the same selection rerun over every "
                "speaker and refit on all of them. It has no test score of its own (no speaker was held out); the "
                "cross-validated scores are its expected accuracy on new speakers.")
    return (measured + f" This folder ships fold `{where['fold']}`'s ensemble, one of those measured; its own test "
            "score is that fold's row of the run's report.")


def _baselines(results: dict) -> str:
    """The hand-designed baselines' cross-validated UA beside the model's (same folds), when the run refit them."""
    base = results.get("baselines") or {}
    if not base:
        return ""
    scores = ", ".join(f"`{name}` UA {b['ua']:.1f}" + (f" ± {b['ua_std']:.1f}" if b.get("ua_std") is not None else "")
                       for name, b in base.items())
    return (f"\n- **Hand-designed baselines** on the same folds and speakers, scored the same way: {scores} "
            f"(searched ensemble: UA {results['ua']:.1f}).")


def _calibration(where: dict, spec: ModelSpec) -> str:
    if "ece_before" not in where:
        return (f"- **Calibration**: none fit for a fold's ensemble (temperature {spec.temperature:g}); the "
                "probabilities are the members' combined outputs as they are.")
    return (f"- **Calibration**: probabilities are temperature-scaled (temperature {spec.temperature:g}, fit on "
            f"out-of-fold inner-CV predictions, never a test speaker); expected calibration error "
            f"{where['ece_before']:.1f} % -> {where['ece_after']:.1f} % out of fold.")
