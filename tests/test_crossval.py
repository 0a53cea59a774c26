"""End to end on the synthetic demo corpus: leak-free run, resume, export, predict."""
import json
import shutil
import subprocess
import sys

import pytest

from emotionnas.cli import demo_config
from emotionnas.config import RunConfig
from emotionnas.data.folds import Fold, make_folds
from emotionnas.rundir import RunDir
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
    tmp = tmp_path_factory.mktemp("run")
    cfg = demo_config(str(demo_root), str(tmp / "cache"))
    cfg.max_folds = 2  # keep the test short: 2 of the 4 leave-one-speaker-out folds
    results = run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)
    return cfg, tmp / "run", results


def test_run_writes_results_and_provenance(demo_run):
    cfg, run, results = demo_run
    for name in ("config.yaml", "environment.json", "folds.json", "results.json", "timing.json"):
        assert (run / name).exists(), name
    assert set(results) >= {"ua", "wa", "macro_f1", "ua_std", "folds", "ablations"}
    assert len(results["folds"]) == 2 and results["synthetic"] is True
    for f in results["folds"]:
        assert 0 <= f["ua"] <= 100 and f["genotype"]["normal"] and f["recipe"]
    assert set(results["ablations"]["fusion"]) == {"ism", "concat", "sum", "max", "min"}
    report = (run / "report.md").read_text()
    assert "**Encoder layers**" in report  # the per-search layer choice, with its probe scores
    env = json.loads((run / "environment.json").read_text())
    assert env["seed"] == cfg.seed and env["torch"]


def test_no_test_speaker_reaches_search_or_early_stopping(demo_run):
    _, run, results = demo_run
    for f in results["folds"]:
        test = set(f["test_speakers"])
        search_dir = RunDir(run).search_dir(f["search_group"])
        used = json.loads((search_dir / "search_speakers.json").read_text())
        assert not test & (set(used["train"]) | set(used["val"]))
        assert not test & set(f["val_speakers"])
        layers = json.loads((search_dir / "layers.json").read_text())
        assert not test & set(layers["speakers"])  # layer selection saw only search speakers
        assert f["deep_layers"] == layers["layers"]
        Fold(f["name"], tuple(s for s in used["train"]), tuple(used["val"]), tuple(used["excluded"]))


def test_interrupted_run_resumes_to_identical_results(demo_run):
    cfg, run, _ = demo_run
    before = (run / "results.json").read_bytes()
    copy = run.parent / "run_copy"
    shutil.copytree(run, copy)
    # simulate a kill in fold 1 during the deep branch: it and the fusion stage never finished
    rd = RunDir(copy)
    for path in (rd.stage_json(1, "deep"), rd.stage_weights(1, "deep"), rd.fusion_json(1),
                 rd.fusion_weights(1, "ism")):
        path.unlink()
    (copy / "results.json").unlink()
    run_crossval(cfg, copy, progress=False, log=lambda *a: None)
    assert (copy / "results.json").read_bytes() == before


def test_other_config_refused_in_same_folder(demo_run):
    cfg, run, _ = demo_run
    other = RunConfig.from_dict(cfg.to_dict())
    other.fusion = "concat"
    from emotionnas.errors import ConfigError
    with pytest.raises(ConfigError, match="different config"):
        run_crossval(other, run, progress=False, log=lambda *a: None)


def test_export_and_predict_in_fresh_process(demo_run, demo_root, tmp_path):
    _, run, results = demo_run
    model = tmp_path / "model"
    subprocess.run([sys.executable, "-m", "emotionnas", "export", str(run), "--out", str(model)], check=True)
    wavs = sorted((demo_root / "wav").glob("*.wav"))[:2]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "emotionnas", "predict", "--model", str(model),
                           *map(str, wavs), str(bad)], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["file"] for x in lines] == [str(w) for w in wavs]
    for x in lines:
        assert x["label"] in results["label_names"]
        assert abs(sum(x["probs"].values()) - 1) < 1e-3
    assert str(bad) in proc.stderr and "skipped" in proc.stderr


def test_recognizer_computes_features_exactly_as_training(demo_run, demo_root, tmp_path):
    """No train/serve skew: for a long (12 s) utterance the recognizer's inputs equal the cached
    training features, and its probabilities equal the model's output on those features."""
    from types import SimpleNamespace

    import numpy as np
    import soundfile as sf
    import torch

    from emotionnas.data.audio import load_audio
    from emotionnas.export import export_run
    from emotionnas.features.cache import FeatureCache, deep_stream, spectrogram_stream
    from emotionnas.recognizer import Recognizer
    from emotionnas.training.crossval import spectrogram_config

    cfg, run, _ = demo_run
    rec = Recognizer.load(export_run(run, tmp_path / "model"))
    waves = [sf.read(str(p), dtype="float32")[0] for p in sorted((demo_root / "wav").glob("*.wav"))[:10]]
    long_wav = tmp_path / "long.wav"
    sf.write(str(long_wav), np.concatenate(waves)[: 12 * 16000], 16000, subtype="PCM_16")
    utt = [SimpleNamespace(path=str(long_wav))]
    cache = FeatureCache(tmp_path / "cache")
    spec = cache.extract(utt, spectrogram_stream(spectrogram_config(cfg)), progress=False)[0][str(long_wav)]
    deep = cache.extract(utt, deep_stream(cfg.features.encoder, cfg.features.deep_pool),
                         progress=False)[0][str(long_wav)]
    x_spec, x_deep, lengths = rec.features(load_audio(long_wav))
    m, s = rec.spec.spec_stats
    torch.testing.assert_close(x_spec, (torch.from_numpy(spec)[None, None] - m) / s, rtol=0, atol=0)
    layers = rec.spec.deep_layers
    torch.testing.assert_close(x_deep, torch.from_numpy(deep[layers].astype(np.float32))[None], rtol=0, atol=0)
    assert int(lengths[0]) == deep.shape[1]
    with torch.no_grad():
        cached = torch.softmax(rec.model(x_spec, x_deep, lengths), -1)[0].numpy()
    np.testing.assert_allclose(rec.predict_proba(load_audio(long_wav)), cached, atol=1e-6)
