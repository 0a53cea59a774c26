"""The run folder: fingerprints, stale state, --restart, safe paths, seeds, file modes."""
import json
import os
import shutil
import stat

import numpy as np
import pytest
import torch

from conftest import check_fold_scores
from emotionnas.cli import demo_config
from emotionnas.errors import ConfigError, LeakageError
from emotionnas.rundir import RunDir, check_search_speakers, corpus_fingerprint, fingerprint_changes, safe_component
from emotionnas.training.crossval import run_crossval

QUIET = dict(progress=False, log=lambda *a: None)


def tiny_config(root, cache, **over):
    cfg = demo_config(str(root), str(cache))
    cfg.max_folds = 1
    cfg.search_per_fold = True  # one fold, one selection
    cfg.space.deep, cfg.space.spectrogram = ["linear", "cell"], ["none"]
    cfg.selection.budget = 6
    cfg.train.epochs, cfg.train.cnn_epochs = 3, 2
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def copy_corpus(demo_root, dest):
    shutil.copytree(demo_root, dest)
    return dest


# ---------------------------------------------------------------- names into paths
@pytest.mark.parametrize("name", ["a/../../..", "..", "/etc/passwd", "a\\b", "x\x00y", "", "ok-name"])
def test_safe_component_is_one_plain_path_component(name):
    comp = safe_component(name)
    assert "/" not in comp and "\\" not in comp and "\x00" not in comp and comp not in (".", "..")
    assert not comp.startswith(".") and len(comp) <= 49


def test_safe_component_never_collides_for_different_names():
    assert safe_component("a/b") != safe_component("a_b")


@pytest.mark.slow  # a real run_crossval
def test_hostile_manifest_speakers_write_nothing_outside_out(tmp_path, demo_root, cache):
    corpus = tmp_path / "corpus"
    (corpus / "wav").mkdir(parents=True)
    rows = ["path,label,speaker"]
    hostile = {"spk1": "+/../../../escape", "spk2": "..", "spk3": "/tmp/abs", "spk4": "b\\..\\c"}
    for wav in sorted((demo_root / "wav").glob("*.wav")):
        spk, label, _ = wav.stem.split("_")
        shutil.copy(wav, corpus / "wav" / wav.name)
        rows.append(f"wav/{wav.name},{label},{hostile[spk]}")
    (corpus / "manifest.csv").write_text("\n".join(rows) + "\n")
    before = {p for p in tmp_path.parent.rglob("*")}
    cfg = tiny_config(corpus, cache, corpus="manifest", search_per_fold=True)
    out = tmp_path / "deep" / "out"
    res = run_crossval(cfg, out, **QUIET)
    assert res["folds"][0]["test_speakers"] == [hostile["spk1"]]  # the traversing name is searched on
    created = {p for p in tmp_path.parent.rglob("*")} - before
    outside = [p for p in created if out not in p.parents and p != out and cache not in p.parents
               and p not in out.parents]
    assert outside == []
    assert not (tmp_path / "deep" / "escape").exists() and not (tmp_path / "escape").exists()


# ---------------------------------------------------------------- fingerprints and resume
def test_fingerprint_names_what_changed():
    from emotionnas.data.folds import make_folds
    rows = [("a.wav", "h1", "s1", "x"), ("b.wav", "h2", "s2", "y"), ("c.wav", "h3", "s3", "x")]
    folds = make_folds(["s1", "s2", "s3"], "loso")
    fp = corpus_fingerprint(rows, ["x", "y"], folds, "loso", "manifest", {})
    assert fingerprint_changes(fp, fp) == []
    changed = corpus_fingerprint([rows[0], ("b.wav", "OTHER", "s2", "y"), rows[2], ("d.wav", "h4", "s4", "y")],
                                 ["x", "y"], make_folds(["s1", "s2", "s3", "s4"], "loso"), "loso", "manifest", {})
    text = "; ".join(fingerprint_changes(fp, changed))
    assert "speaker(s) added: s4" in text and "utterances changed for speaker(s) s2" in text


@pytest.mark.slow  # a real run_crossval
def test_changed_corpus_is_refused_and_restart_starts_afresh(tmp_path, demo_root, cache):
    corpus = copy_corpus(demo_root, tmp_path / "corpus")
    cfg = tiny_config(corpus, cache)
    out = tmp_path / "run"
    first = run_crossval(cfg, out, **QUIET)
    from emotionnas.training.tasks import DataRef
    first_hashes = list(DataRef.from_config(cfg).load().content_hashes)
    # same config, same corpus: reused
    assert run_crossval(cfg, out, **QUIET)["ua"] == first["ua"]
    # drop one utterance of a training speaker: refused with what changed and how to start fresh
    manifest = corpus / "manifest.csv"
    lines = manifest.read_text().splitlines()
    victim = next(i for i, line in enumerate(lines) if ",spk3," in line)
    manifest.write_text("\n".join(lines[:victim] + lines[victim + 1:]) + "\n")
    with pytest.raises(ConfigError) as e:
        run_crossval(cfg, out, **QUIET)
    msg = str(e.value)
    assert "spk3" in msg and "--restart" in msg and "\n" not in msg
    # a changed audio file (same name) is also a change
    manifest.write_text("\n".join(lines) + "\n")
    wav = corpus / lines[victim].split(",")[0]
    import soundfile as sf
    x, sr = sf.read(str(wav))
    sf.write(str(wav), x * 0.5, sr)
    with pytest.raises(ConfigError, match="utterances changed"):
        run_crossval(cfg, out, **QUIET)
    import emotionnas.training.tasks as tasks
    seen = []
    original = tasks.DataRef.load

    def spy(self, *a, **k):
        fs = original(self, *a, **k)
        seen.append(fs.content_hashes)
        return fs
    tasks.DataRef.load = spy
    try:
        res = run_crossval(cfg, out, restart=True, **QUIET)
    finally:
        tasks.DataRef.load = original
    assert res["n_utterances"] == first["n_utterances"]
    # the serial tasks of the restarted run read the changed audio, not the first run's features
    assert seen and all(h == seen[0] for h in seen) and "".join(seen[0]) != "".join(first_hashes)
    assert json.loads(RunDir(out).fingerprint.read_text())["speakers"] != {}


def test_restart_refuses_a_folder_that_is_not_a_run(tmp_path, demo_root, cache):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a run folder"):
        run_crossval(tiny_config(demo_root, cache), tmp_path, restart=True, **QUIET)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_cached_search_is_checked_against_every_fold_that_uses_it():
    from emotionnas.data.folds import Fold
    record = {"speakers": {"train": ["a", "b"], "val": ["c"], "excluded": ["d"]}}
    check_search_speakers(record, Fold("f", ("a", "b"), ("c",), ("d",)), "g0")
    with pytest.raises(LeakageError, match="reached search"):
        check_search_speakers(record, Fold("f", ("b", "c"), ("d",), ("a",)), "g0")
    with pytest.raises(LeakageError):
        check_search_speakers({"genotype": {}}, Fold("f", ("a", "b"), ("c",), ("d",)), "g0")


@pytest.mark.slow  # a real run_crossval
def test_stale_search_record_is_refused(tmp_path, demo_root, cache):
    cfg = tiny_config(demo_root, cache)
    out = tmp_path / "run"
    res = run_crossval(cfg, out, **QUIET)
    rd = RunDir(out)
    group = res["folds"][0]["search_group"]
    rec_path = rd.search_record(group)
    assert rec_path.exists()
    rec = json.loads(rec_path.read_text())
    rec["speakers"]["train"] = rec["speakers"]["train"] + rec["speakers"]["excluded"]  # as if it saw a test speaker
    rec_path.write_text(json.dumps(rec))
    with pytest.raises(ConfigError, match="search_done.json: made for other speakers \\(stale\\)"):
        run_crossval(cfg, out, **QUIET)


# ---------------------------------------------------------------- seeds
def test_fit_follows_its_seed():
    from emotionnas.config import TrainConfig
    from emotionnas.training.loop import ArraySplit, train_model
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long().numpy()

    def weights(seed):
        torch.manual_seed(123)  # same initial weights every time: only the training seed differs
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2))
        train_model(model, ArraySplit((x[:48],), y[:48]), TrainConfig(epochs=3, batch_size=8), 2, seed=seed)
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(weights(1), weights(1))
    assert not torch.equal(weights(1), weights(2))


@pytest.mark.slow  # a real run_crossval
def test_run_seed_changes_results_and_reproduces_them_bit_for_bit(tmp_path, demo_root, cache):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        runs[name] = run_crossval(tiny_config(demo_root, cache, seed=seed), tmp_path / name, **QUIET)
    read = lambda n: (tmp_path / n / "results.json").read_bytes()  # noqa: E731
    assert read("a") == read("b")
    assert read("a") != read("c")  # the seed reached the searches, the inner CV and the refits


@pytest.mark.slow  # a real run_crossval
def test_emodarts_in_the_space_runs_and_fuses_either_way(tmp_path, demo_root, cache):
    import json as _json

    from emotionnas.models.build import Dims, build_model
    from emotionnas.models.two_stream import TwoStreamModel
    from emotionnas.space.pipeline import Candidate
    cfg = tiny_config(demo_root, cache)
    cfg.space.spectrogram = ["emodarts"]
    cfg.space.deep = ["gru"]
    res = run_crossval(cfg, tmp_path / "run", **QUIET)
    check_fold_scores(tmp_path / "run", res)
    genotype = res["searches"][0]["genotype"]
    assert len(genotype["normal"]) == len(genotype["reduce"]) == 2 * cfg.cnn.search.nodes  # two inputs per node
    net = build_model(Candidate("gru", (1,), 4, "attention", 16, 0.2, "emodarts", "ism"), Dims(4, 384, 5, 4, 3),
                      _json.loads(_json.dumps(genotype)))
    swapped = TwoStreamModel(net.spec_branch, net.deep_branch, 4, fusion="ism", dominant="spectrogram")
    out = swapped(torch.randn(2, 1, 32, 32), torch.randn(2, 1, 6, 384), torch.tensor([6, 3]))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


# ---------------------------------------------------------------- files
@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, mask, mode):
    from emotionnas.utils.io import atomic_torch_save, atomic_write_text
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_torch_save(tmp_path / "b.pt", {"w": torch.zeros(1)})
    finally:
        os.umask(old)
    for name in ("a.txt", "b.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_cache_entries_are_rebuilt_and_overflow_is_not_stored(tmp_path, demo_root):
    from emotionnas.data.corpora import read_corpus
    from emotionnas.features.cache import FeatureCache, Stream, to_stored

    table = read_corpus("demo", demo_root)
    utts = table.utterances[:3]
    stream = Stream("toy", {"stream": "toy", "v": 1}, lambda w: np.full((2, 3), 7.0), "float32", (2, 3))
    cache = FeatureCache(tmp_path)
    arrays, rep = cache.extract(utts, stream, progress=False)
    assert rep.computed == 3
    bad_shape, bad_values, truncated = (cache.entry_path(stream, u.path) for u in utts)
    np.save(bad_shape, np.zeros((3, 3), np.float32))
    np.save(bad_values, np.full((2, 3), np.nan, np.float32))
    truncated.write_bytes(truncated.read_bytes()[:20])
    arrays, rep = FeatureCache(tmp_path).extract(utts, stream, progress=False)
    assert rep.rebuilt == 3 and all(np.array_equal(a, np.full((2, 3), 7.0)) for a in arrays.values())
    big = to_stored(np.array([1e6, -1e6, 3.0]), "float16")
    assert np.all(np.isfinite(big)) and big[0] == np.float16(65504)
    from emotionnas.errors import AudioError
    with pytest.raises(AudioError, match="NaN"):
        to_stored(np.array([np.nan]), "float16", "x.wav")


def test_cache_key_carries_an_implementation_version():
    from emotionnas.features.cache import SPECTROGRAM_IMPL_VERSION, spectrogram_stream
    assert spectrogram_stream().config["impl"] == SPECTROGRAM_IMPL_VERSION
