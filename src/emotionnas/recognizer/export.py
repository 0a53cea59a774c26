"""`emotionnas export RUN_DIR --out MODEL_DIR`: a run's ensemble as a self-contained folder.

A run holds one refit ensemble per fold, each trained on every speaker but that fold's test
speakers. The exported one is the fold trained on the most utterances (ties: the first);
choosing by test scores would turn the test speakers into a selection set. The folder holds
model.safetensors (member weights under `m<i>.` prefixes) and model.json (`ModelSpec`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from emotionnas.errors import ConfigError
from emotionnas.space.model_spec import Dims, Member, ModelSpec, needs_genotype, needs_recipe
from emotionnas.recognizer.folder import MODEL_JSON, MODEL_WEIGHTS
from emotionnas.rundir import RunDir
from emotionnas.training.tasks import DataRef
from emotionnas.space.pipeline import Candidate
from emotionnas.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json


def export_run(run_dir, out_dir) -> Path:
    from safetensors.torch import save

    run, out_dir = RunDir(run_dir), Path(out_dir)
    results = run.read_results()
    cfg = run.read_config()
    n_test = [len(f["test_true"]) for f in results["folds"]]
    best = min(range(len(n_test)), key=lambda i: (n_test[i], i))  # fewest held out = most trained on
    fold = results["folds"][best]
    search = next(s for s in results["searches"] if s["group"] == fold["search_group"])
    candidates = {c["key"]: c["candidate"] for c in read_json(run.selection_summary(search["group"]))["candidates"]}
    feats = results["features"]
    members, state = [], {}
    for j, m in enumerate(fold["members"]):
        rec = read_json(run.refit_json(best, m["key"]))
        weights = run.refit_weights(best, m["key"])
        if not weights.exists():
            raise ConfigError(f"{weights}: missing; re-run the same `emotionnas run` command to rebuild it")
        cand = Candidate.from_dict(candidates[m["key"]])
        members.append(Member(m["name"], cand, search["genotype"] if needs_genotype(cand) else None,
                              search["recipe"] if needs_recipe(cand) else None, tuple(rec["spec_stats"]), f"m{j}."))
        state |= {f"m{j}.{k}": v for k, v in torch.load(weights, weights_only=True).items()}
    spec = ModelSpec(tuple(results["label_names"]), tuple(members),
                     Dims(len(results["label_names"]), feats["deep_dim"], feats["deep_layers_total"], cfg.cnn.C,
                          cfg.cnn.layers), cfg.features.encoder, cfg.features.deep_pool,
                     DataRef.from_config(cfg).spectrogram_config().to_dict())  # feature settings: the run's config
    meta = {**spec.to_dict(), "source": {
        "run": str(run.root.resolve()), "fold": fold["name"], "corpus": results["corpus"],
        "protocol": results["protocol"], "synthetic": results.get("synthetic", False),
        "cv_ua": results["ua"], "cv_ua_std": results["ua_std"], "cv_wa": results["wa"],
        "note": "cv_* are the run's cross-validated scores (every fold's test speakers, scored once)"}}
    atomic_write_bytes(out_dir / MODEL_WEIGHTS, save({k: v.contiguous() for k, v in state.items()}))
    atomic_write_json(out_dir / MODEL_JSON, meta)
    atomic_write_text(out_dir / "README.md", model_card(spec, results, fold, cfg))
    return out_dir


CORPUS_TERMS = {
    "emodb": "EmoDB (Burkhardt et al. 2005): acted German speech of 10 actors; freely available for research",
    "urdu": "URDU (Latif et al. 2018): Urdu talk-show speech; for research use only",
    "demo": "the built-in synthetic demo corpus (made by code, not speech)",
}


def model_card(spec: ModelSpec, results: dict, fold: dict, cfg) -> str:
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
  {results['n_speakers']} speakers; this folder is the ensemble refit for fold `{fold['name']}`
  (all speakers but {", ".join(fold['test_speakers'])}).
- **How well** (speaker-independent cross-validation, {results['protocol']}, {len(results['folds'])} folds,
  each fold's test speakers scored once): UA {results['ua']:.1f} ± {results['ua_std']:.1f},
  WA {results['wa']:.1f} ± {results['wa_std']:.1f}, macro-F1 {results['macro_f1']:.1f} (mean ± std over folds).
  Expect less on other speakers, languages, microphones and on spontaneous speech.
- **Inputs**: 16 kHz mono audio; spectrograms {spec.spectrogram.get("out_freq", 140)} x
  {spec.spectrogram.get("out_time", 140)} of the first {spec.spectrogram.get("seconds", 8.0)} s, and
  hidden states of the `{spec.encoder}` encoder (frames pooled by {spec.deep_pool}).
- **Ensemble** (probabilities averaged):
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
