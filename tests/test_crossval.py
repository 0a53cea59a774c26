"""End to end on the synthetic demo corpus: leak-free run, resume, export, predict."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import check_fold_scores
from emotionnas.cli import demo_config
from emotionnas.config import RunConfig
from emotionnas.data.folds import Fold, make_folds
from emotionnas.rundir import RunDir
from emotionnas.space.pipeline import FINE_TUNED
from emotionnas.training.crossval import plan_searches, run_crossval


def test_cross_fitted_plan_never_searches_on_a_folds_test_speakers():
    speakers = [f"s{i}" for i in range(10)]
    folds = make_folds(speakers, "loso")
    from emotionnas.errors import ConfigError
    with pytest.raises(ConfigError, match="at least 2 groups"):
        plan_searches(folds, RunConfig(search_groups=1), speakers)
    for G in (2, 3):
        plans = plan_searches(folds, RunConfig(search_groups=G), speakers)
        assert len(plans) == G
        covered = sorted(i for _, members in plans for i in members)
        assert covered == list(range(len(folds)))
        for search, members in plans:
            searched = set(search.train) | set(search.val)
            for i in members:
                assert not searched & set(folds[i].test)
    per_fold = plan_searches(folds, RunConfig(search_per_fold=True), speakers)
    assert [p[1] for p in per_fold] == [[i] for i in range(10)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_root):
    """A 2-fold demo run with baselines, every task recorded (serial executor, in-process)."""
    import emotionnas.training.run as cv  # every stage's training tasks go through Run.map
    from emotionnas.training.tasks import TrainTask
    tmp = tmp_path_factory.mktemp("run")
    cfg = demo_config(str(demo_root), str(tmp / "cache"))
    cfg.max_folds, cfg.baselines = 2, True
    seen = []
    original_map, original_final = cv.Run.map, cv.Run.final

    def map_spy(self, jobs, desc):  # serial executor: tasks run in the order they are submitted
        seen.extend(arg for _, _, arg in jobs if isinstance(arg, TrainTask))
        return original_map(self, jobs, desc)

    def final_spy(run):  # marks where the final model's tasks (every speaker, no test) begin
        seen.append("FINAL")
        return original_final(run)
    cv.Run.map, cv.Run.final = map_spy, final_spy
    try:
        results = run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)
    finally:
        cv.Run.map, cv.Run.final = original_map, original_final
    from emotionnas.reports.report import write_report
    write_report(tmp / "run")
    return cfg, tmp / "run", results, seen


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_run_writes_results_and_provenance(demo_run):
    cfg, run, results, _ = demo_run
    for name in ("config.yaml", "environment.json", "fingerprint.json", "folds.json", "results.json", "timing.json"):
        assert (run / name).exists(), name
    assert set(results) >= {"ua", "wa", "macro_f1", "ua_std", "folds", "searches", "baselines", "selection_spread"}
    assert len(results["folds"]) == 2 and results["synthetic"] is True
    # the selection's optimism: each fold's ensemble inner-CV UA beside its test UA
    assert results["optimism"]["per_fold"] == pytest.approx([f["inner_ua"] - f["ua"] for f in results["folds"]])
    assert all(0 <= f["inner_ua"] <= 100 for f in results["folds"])
    assert set(results["baselines"]) == {"linear probe", "GRU", "LSTM", "ResNet*", "ResNet* + LSTM (concat)",
                                         FINE_TUNED}
    for group in run.glob("searches/*/selection.json"):  # fine-tuning: a fixed-schedule baseline, not in the pool
        summary = json.loads(group.read_text())
        if group.parent.name.startswith("final"):  # the final model's selection compares with no baseline
            assert summary["baselines"] == {}
            continue
        tuned = summary["baselines"][FINE_TUNED]
        assert tuned["fixed_schedule"] and tuned["epoch"] == cfg.train.epochs
        assert tuned["key"] not in {c["key"] for c in summary["candidates"]}
    check_fold_scores(run, results)  # UA etc. recomputed from the saved refit predictions
    for f in results["folds"]:
        assert 1 <= len(f["members"]) <= cfg.selection.max_ensemble
        assert set(f["baselines"]) == set(results["baselines"])
    report = (run / "report.md").read_text()
    assert "How the models were chosen" in report and "Searched vs hand-designed baselines" in report
    env = json.loads((run / "environment.json").read_text())
    assert env["seed"] == cfg.seed and env["torch"]


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_no_test_speaker_reaches_any_selection(demo_run, demo_root):
    """Every task that chose something (cell search, inner CV, ensemble size) read only the
    search speakers of its group; refits never trained on their fold's test speakers."""
    from emotionnas.data.corpora import read_corpus
    _, run, results, seen = demo_run
    speakers = [u.speaker for u in read_corpus("demo", demo_root).utterances]
    rd = RunDir(run)
    tested_by_group = {}
    for f in results["folds"]:
        tested_by_group.setdefault(f["search_group"], set()).update(f["test_speakers"])
    for group, tested in tested_by_group.items():
        summary = json.loads(rd.selection_summary(group).read_text())
        assert not tested & set(summary["speakers"])                      # candidates, epochs, k
        assert sorted(s for fold in summary["inner_folds"] for s in fold) == summary["speakers"]  # each once
        assert not tested & set(json.loads(rd.layer_probe(group).read_text())["speakers"])
        rec = json.loads(rd.search_record(group).read_text())
        assert not tested & (set(rec["speakers"]["train"]) | set(rec["speakers"]["val"]))
    group_speakers = {g: set(json.loads(rd.selection_summary(g).read_text())["speakers"]) for g in tested_by_group}
    assert seen.count("FINAL") == 1
    cv_tasks = seen[:seen.index("FINAL")]  # after it: the final model (every speaker, never scored)
    evaluate = [t for t in cv_tasks if t.kind == "evaluate"]
    refit = [t for t in cv_tasks if t.kind == "refit"]
    assert evaluate and refit
    for t in evaluate:  # inner CV trains and validates within one group's search speakers
        used = {speakers[i] for i in t.train + t.predict}
        assert any(used <= group_speakers[g] for g in group_speakers)
    for t in refit:
        assert not {speakers[i] for i in t.train} & {speakers[i] for i in t.predict}


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_final_model_is_selected_and_refit_on_every_speaker(demo_run, demo_root, tmp_path):
    from emotionnas.data.corpora import read_corpus
    from emotionnas.recognizer import load
    from emotionnas.recognizer.export import export_run
    cfg, run, results, seen = demo_run
    everyone = sorted({u.speaker for u in read_corpus("demo", demo_root).utterances})
    rd = RunDir(run)
    final = json.loads(rd.final_record.read_text())
    assert final["speakers"] == everyone and final["n_utterances"] == results["n_utterances"]
    summary = json.loads(rd.selection_summary("final").read_text())
    assert summary["speakers"] == everyone and [m["key"] for m in final["members"]] == \
        [m["key"] for m in summary["members"]]
    final_refits = [t for t in seen[seen.index("FINAL"):] if not isinstance(t, str) and t.kind == "refit"]
    assert len(final_refits) == len(final["members"])
    assert all(len(t.train) == results["n_utterances"] for t in final_refits)  # every utterance
    assert 0.05 <= final["temperature"] <= 20 and final["ece_after"] <= final["ece_before"] + 1e-9
    model = export_run(run, tmp_path / "final-model")
    meta = json.loads((model / "model.json").read_text())
    assert meta["source"]["trained_speakers"] == everyone and meta["source"]["model"] == "final"
    assert meta["temperature"] == final["temperature"] and meta["source"]["cv_ua"] == results["ua"]
    card = (model / "README.md").read_text()
    assert "final model" in card and f"{len(everyone)}:" in card and "Calibration" in card
    rec = load(model)
    assert rec.spec.card["trained_speakers"] == len(everyone) and rec.spec.temperature == final["temperature"]
    one = export_run(run, tmp_path / "fold0", fold=0)
    src = json.loads((one / "model.json").read_text())["source"]
    assert src["held_out_speakers"] == results["folds"][0]["test_speakers"]
    assert not set(src["trained_speakers"]) & set(src["held_out_speakers"])


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_interrupted_run_resumes_to_identical_results(demo_run):
    cfg, run, _, _ = demo_run
    before = (run / "results.json").read_bytes()
    copy = run.parent / "run_copy"
    shutil.copytree(run, copy)
    rd = RunDir(copy)
    group = json.loads(rd.results.read_text())["folds"][1]["search_group"]
    summary = json.loads(rd.selection_summary(group).read_text())
    member = summary["members"][0]["key"]
    # as if killed mid-selection and mid-refit: records, the summary and a refit are gone
    for path in [rd.selection_summary(group), rd.refit_json(1, member), rd.refit_weights(1, member), rd.results,
                 *sorted((rd.search_dir(group) / "selection").glob("*.npz"))[:3]]:
        path.unlink()
    run_crossval(cfg, copy, progress=False, log=lambda *a: None)
    assert (copy / "results.json").read_bytes() == before


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_other_config_refused_in_same_folder(demo_run):
    cfg, run, _, _ = demo_run
    other = RunConfig.from_dict(cfg.to_dict())
    other.space.hidden = [16]
    from emotionnas.errors import ConfigError
    with pytest.raises(ConfigError, match="different config"):
        run_crossval(other, run, progress=False, log=lambda *a: None)


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_export_and_predict_in_fresh_process(demo_run, demo_root, tmp_path):
    _, run, results, _ = demo_run
    model = tmp_path / "model"
    subprocess.run([sys.executable, "-m", "emotionnas", "export", str(run), "--out", str(model)], check=True)
    wavs = sorted((demo_root / "wav").glob("*.wav"))[:2]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "emotionnas", "predict", "--model", str(model),
                           *map(str, wavs), str(bad)], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["file"] for x in lines] == [str(w) for w in wavs] + [str(bad)]  # one row per input, in order
    for x in lines[:2]:
        assert x["label"] in results["label_names"]
        assert abs(sum(x["probs"].values()) - 1) < 1e-3
    assert lines[2]["label"] is None and str(bad) in lines[2]["error"]
    assert str(bad) in proc.stderr and "failed" in proc.stderr


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_recognizer_computes_features_exactly_as_training(demo_run, demo_root, tmp_path):
    """No train/serve skew: for a long (12 s) utterance the recognizer's inputs equal the cached
    training features, and its probabilities equal the model's output on those features."""
    from types import SimpleNamespace

    import numpy as np
    import soundfile as sf

    from emotionnas.data.audio import load_audio
    from emotionnas.recognizer.export import export_run
    from emotionnas.features.cache import FeatureCache, deep_stream, spectrogram_stream
    from emotionnas.recognizer import Recognizer
    from emotionnas.training.tasks import DataRef

    cfg, run, _, _ = demo_run
    rec = Recognizer.load(export_run(run, tmp_path / "model"))
    waves = [sf.read(str(p), dtype="float32")[0] for p in sorted((demo_root / "wav").glob("*.wav"))[:10]]
    long_wav = tmp_path / "long.wav"
    sf.write(str(long_wav), np.concatenate(waves)[: 12 * 16000], 16000, subtype="PCM_16")
    utt = [SimpleNamespace(path=str(long_wav))]
    cache = FeatureCache(tmp_path / "cache")
    spec = cache.extract(utt, spectrogram_stream(DataRef.from_config(cfg).spectrogram_config()), progress=False)[0][str(long_wav)]
    deep = cache.extract(utt, deep_stream(cfg.features.encoder, cfg.features.deep_pool),
                         progress=False)[0][str(long_wav)]
    x_spec, x_deep = rec.features(load_audio(long_wav))
    if rec.uses_spectrogram():
        np.testing.assert_array_equal(x_spec[0], spec)
    else:  # a stream no member reads is not computed
        assert x_spec is None
    top = rec.max_layer()
    np.testing.assert_array_equal(x_deep[0], deep if top is None else deep[: top + 1])
    from emotionnas.metrics import temperature_scale
    cached = rec.model.predict_proba(spec[None], [deep])[0]  # the ensemble on the cached training features
    calibrated = temperature_scale(cached, rec.spec.temperature)  # the model folder's calibration on top
    np.testing.assert_allclose(rec.predict_proba(load_audio(long_wav)), calibrated, atol=1e-6)


@pytest.mark.slow  # the demo_run fixture: a real run_crossval
def test_bagged_fold_models_predict_only_held_out_speakers_and_are_reported(demo_run, demo_root):
    """Issue 29 item 4: every inner-fold model also predicts its group's held-out speakers (recorded
    apart, never trained or validated on); results.json scores the bag of the members' inner-fold
    models beside the refit ensemble, and that score follows from the records."""
    import numpy as np

    from emotionnas.data.corpora import read_corpus
    from emotionnas.metrics import unweighted_accuracy
    _, run, results, seen = demo_run
    table = read_corpus("demo", demo_root)
    speakers = np.array([u.speaker for u in table.utterances])
    cv_tasks = seen[:seen.index("FINAL")]
    evaluate = [t for t in cv_tasks if t.kind == "evaluate"]
    assert evaluate and all(t.outside for t in evaluate)
    for t in evaluate:
        held = {speakers[i] for i in t.outside}
        assert not held & {speakers[i] for i in t.train + t.predict}
    assert all(not t.outside for t in seen[seen.index("FINAL") + 1:] if t.kind == "evaluate")  # no test speaker
    assert results["bagged"]["paired_ua_vs_refit"]["wins"] + results["bagged"]["paired_ua_vs_refit"]["ties"] + \
        results["bagged"]["paired_ua_vs_refit"]["losses"] == len(results["folds"])
    assert "bagged fold models (no refit)" in results["ablations"]["selection"]
    rd = RunDir(run)
    f = results["folds"][0]
    summary = json.loads(rd.selection_summary(f["search_group"]).read_text())
    n_inner = len(summary["inner_folds"])
    test_rows = np.flatnonzero(np.isin(speakers, f["test_speakers"]))
    member_probs = []
    for m in f["members"]:
        bag = []
        for k in range(n_inner):
            with np.load(rd.selection_record(f["search_group"], m["key"], k)) as z:
                where = np.searchsorted(z["outside_idx"], test_rows)
                bag.append(z["outside_probs"][m["epoch"] - 1][where])
        member_probs.append(np.mean(bag, axis=0))
    assert summary["combiner"]["fitted"]["kind"] in ("mean", "weighted", "stack")
    if summary["combiner"]["fitted"]["kind"] == "mean":  # the demo's default combiner
        labels = results["label_names"]
        y = np.array([labels.index(table.utterances[i].label) for i in test_rows])
        ua = unweighted_accuracy(y, np.mean(member_probs, axis=0).argmax(1), len(labels))
        assert abs(ua - f["bagged"]["ua"]) < 1e-6
