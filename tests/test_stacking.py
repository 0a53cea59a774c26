"""Variance reduction (issue 18): seed replicas in the ensemble and a stacked combiner, both
chosen by inner CV; the stacker is scored cross-fitted and applied identically by both backends."""
import copy
import json

import numpy as np
import pytest

from emotionnas.config import RunConfig, SelectionConfig
from emotionnas.errors import ConfigError
from emotionnas.space.combiner import Combiner, fit_stacker, pool_start
from emotionnas.space.model_spec import ModelSpec
from emotionnas.space.pipeline import Candidate
from emotionnas.training.run_helpers import stage_seed
from emotionnas.training.selection import choose_combiner, cross_fit_stack


# ------------------------------------------------------------------ replicas
def test_replica_zero_keeps_every_key_and_name():
    # the keys and names of every run before the option (computed by the code before it)
    assert (Candidate().key, Candidate().name) == ("e929b9961016", "gru256-L2.3-p4-attention")
    c = Candidate("lstm", (1,), 4, "meanstd", 128, 0.3, "resnet*", "ism")
    assert (c.key, c.name) == ("2c27a69d2d73", "resnet*+lstm128-L1-p4-meanstd-d0.3-ism")
    assert "replica" not in c.to_dict() and c.with_replica(0) == c


def test_replicas_differ_in_key_name_and_seed():
    c = Candidate()
    r1, r2 = c.with_replica(1), c.with_replica(2)
    assert len({c.key, r1.key, r2.key}) == 3
    assert (r1.name, r2.name) == (c.name + "-s1", c.name + "-s2")
    assert r1.to_dict() == {**c.to_dict(), "replica": 1}
    assert Candidate.from_dict(json.loads(json.dumps(r1.to_dict()))) == r1
    seeds = {stage_seed(0, "inner", "g", x.key, 0) for x in (c, r1, r2)}
    assert len(seeds) == 3
    for bad in (-1, 100, True, 1.5):
        with pytest.raises(ConfigError, match="replica"):
            Candidate(replica=bad)


def test_selection_options_are_validated():
    assert (SelectionConfig().seeds, SelectionConfig().combiner) == (1, "mean")
    for bad in ({"seeds": 0}, {"seeds": 9}, {"combiner": "median"}):
        with pytest.raises(ConfigError, match="selection"):
            RunConfig.from_dict({"selection": bad})


# ------------------------------------------------------------------ the stacker
def _member(y, strength, rng, n_classes=4, invert=False):
    logits = rng.normal(size=(len(y), n_classes))
    logits[np.arange(len(y)), y] += strength
    p = np.exp(logits)
    if invert:  # anti-correlated: most probable where the class is least likely
        p = 1.0 / p
    return p / p.sum(1, keepdims=True)


def _toy(seed=0, n=240, n_classes=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    positions = [np.arange(i, n, 3) for i in range(3)]
    return rng, y, positions


def test_cross_fitted_stacker_never_reads_a_folds_own_labels():
    rng, y, positions = _toy()
    probs = np.stack([_member(y, 1.0, rng), _member(y, 2.0, rng, invert=True)])
    base = cross_fit_stack(probs, y, positions, 4)
    shuffled = y.copy()
    fold = positions[1]
    shuffled[fold] = rng.permutation(y[fold])
    shuffled[fold] = (shuffled[fold] + 1) % 4  # surely other labels there
    after = cross_fit_stack(probs, shuffled, positions, 4)
    np.testing.assert_array_equal(after[fold], base[fold])           # fold 1's rows: its labels unread
    others = np.setdiff1d(np.arange(len(y)), fold)
    assert np.abs(after[others] - base[others]).max() > 1e-3          # the others' stackers did read them


def test_stacker_beats_averaging_with_an_anti_correlated_member_and_auto_picks_it():
    rng, y, positions = _toy()
    probs = np.stack([_member(y, 1.0, rng), _member(y, 3.0, rng, invert=True)])
    comb, rec = choose_combiner(probs, y, positions, 4, "auto")
    assert rec["choice"] == "stack" and comb.kind == "stack"
    assert rec["stack_ua"] > rec["mean_ua"] + 20
    # the fitted stacker leans on the inverted member with negative weights on its own classes
    w = np.asarray(comb.coef)
    assert np.trace(w[:, 4:]) < 0 < np.trace(w[:, :4])


def test_stacker_rescales_an_overconfident_member():
    rng, y, positions = _toy(seed=3)
    good, flat = _member(y, 2.0, rng), _member(y, 0.5, rng)
    loud = flat ** 8  # a weak member made very confident (scaled logits): it dominates the mean
    loud /= loud.sum(1, keepdims=True)
    probs = np.stack([good, loud])
    comb, rec = choose_combiner(probs, y, positions, 4, "auto")
    assert rec["choice"] == "stack" and rec["stack_ua"] > rec["mean_ua"]


def test_auto_keeps_the_mean_for_exchangeable_members():
    for seed in range(3):
        rng, y, positions = _toy(seed=seed)
        probs = np.stack([_member(y, 1.5, rng) for _ in range(3)])
        comb, rec = choose_combiner(probs, y, positions, 4, "auto")
        assert rec["choice"] == "mean" and comb == Combiner() and rec["stack_ua"] <= rec["mean_ua"]


def test_mean_mode_fits_nothing_and_stack_mode_always_stacks():
    rng, y, positions = _toy()
    probs = np.stack([_member(y, 1.5, rng) for _ in range(2)])
    comb, rec = choose_combiner(probs, y, positions, 4, "mean")
    assert comb == Combiner() and "stack_ua" not in rec and rec["choice"] == "mean"
    np.testing.assert_array_equal(comb.apply(probs), probs.mean(0))
    comb, rec = choose_combiner(probs, y, positions, 4, "stack")
    assert comb.kind == "stack" and rec["choice"] == "stack"


def test_strong_regularisation_is_the_geometric_mean_and_fits_are_deterministic():
    rng, y, _ = _toy()
    probs = np.stack([_member(y, 1.0, rng), _member(y, 2.0, rng)])
    stiff = fit_stacker(probs, y, 4, l2=1e6)
    np.testing.assert_allclose(np.asarray(stiff.coef), pool_start(2, 4), atol=1e-3)
    geo = np.sqrt(probs[0] * probs[1])
    unbiased = Combiner("stack", stiff.coef, (0.0,) * 4)  # intercepts (class priors) are not penalised
    np.testing.assert_allclose(unbiased.apply(probs), geo / geo.sum(1, keepdims=True), atol=1e-3)
    assert fit_stacker(probs, y, 4) == fit_stacker(probs, y, 4)


# ------------------------------------------------------------------ model.json
def _meta_with(meta, combiner):
    m = copy.deepcopy(meta)
    m["combiner"] = combiner
    return m


def _stack_dict(n_members, n_classes, value=0.5):
    return {"kind": "stack", "coef": [[value] * (n_members * n_classes) for _ in range(n_classes)],
            "intercept": [0.0] * n_classes}


def test_model_json_combiner_is_validated_and_old_files_read(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hostile_input import _exported_meta
    meta = _exported_meta(tmp_path)
    m, c = len(meta["members"]), len(meta["label_names"])
    spec = ModelSpec.from_meta(_meta_with(meta, _stack_dict(m, c)))
    assert spec.combiner.kind == "stack" and ModelSpec.from_meta(spec.to_dict()).combiner == spec.combiner
    old = {k: v for k, v in meta.items() if k != "combiner"} | {"format_version": 3}
    assert ModelSpec.from_meta(old).combiner == Combiner()       # a version-3 model.json averages
    bad = [_stack_dict(m + 1, c), _stack_dict(m, c, float("nan")), _stack_dict(m, c, 1e9),
           {**_stack_dict(m, c), "intercept": [0.0]}, {"kind": "vote"}, {"kind": "mean", "coef": []},
           {**_stack_dict(m, c), "code": "x"}]
    for combiner in bad:
        with pytest.raises(ConfigError, match="combiner"):
            ModelSpec.from_meta(_meta_with(meta, combiner), "model.json")
    with pytest.raises(ConfigError, match="combiner"):
        ModelSpec.from_meta(_meta_with(old, _stack_dict(m, c)), "model.json")


# ------------------------------------------------------------------ a demo run with both options
@pytest.fixture(scope="module")
def stack_run(tmp_path_factory, demo_root):
    """A 2-fold demo run with selection.seeds 2 and combiner stack (final model included),
    exported, with its ONNX graphs."""
    from emotionnas.cli import demo_config
    from emotionnas.config import apply_overrides
    from emotionnas.recognizer.export import export_run
    from emotionnas.recognizer.onnx_export import export_onnx
    from emotionnas.reports.report import write_report
    from emotionnas.training.crossval import run_crossval
    tmp = tmp_path_factory.mktemp("stack_run")
    cfg = apply_overrides(demo_config(str(demo_root), str(tmp / "cache")),
                          ["selection.seeds=2", "selection.combiner=stack", "selection.budget=6", "max_folds=2"])
    run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)
    first = {f: (tmp / "run" / f).read_bytes() for f in ("results.json", "final/final.json")}
    (tmp / "run" / "results.json").unlink()
    run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)  # resumed from the records
    assert first == {f: (tmp / "run" / f).read_bytes() for f in first}   # replicas and stacker: the same bytes
    write_report(tmp / "run")
    export_run(tmp / "run", tmp / "model")
    info = export_onnx(tmp / "model")
    assert max(info["max_error"].values()) < 1e-4
    return tmp / "run", tmp / "model"


@pytest.mark.slow
def test_demo_run_with_seeds_and_stacker_records_and_uses_them(stack_run):
    from emotionnas.metrics import scores
    from emotionnas.rundir import RunDir
    from emotionnas.training.selection import combiner_of
    rd = RunDir(stack_run[0])
    results = json.loads(rd.results.read_text())
    n = len(results["label_names"])
    assert "ensemble, members averaged" in results["ablations"]["selection"]
    for s in results["searches"]:
        comb = s["combiner"]
        assert comb["mode"] == comb["choice"] == "stack" and {"mean_ua", "stack_ua"} <= set(comb)
        summary = json.loads(rd.selection_summary(s["group"]).read_text())
        assert summary["combiner"]["fitted"]["kind"] == "stack"
        replicas = [c for c in summary["candidates"] if c.get("replica_of")]
        assert replicas and all(c["key"] in summary["ranking"] and c["name"].endswith("-s1") for c in replicas)
        for c in replicas:  # trained with other seeds: other predictions on the same inner fold
            with np.load(rd.selection_record(s["group"], c["key"], 0)) as a, \
                    np.load(rd.selection_record(s["group"], c["replica_of"], 0)) as b:
                assert np.array_equal(a["val_idx"], b["val_idx"])
                assert np.abs(a["val_probs"] - b["val_probs"]).max() > 1e-4
    # on this demo one group's ensemble is a replica (deterministic data and seeds): its refit is a member's
    assert any(m["name"].endswith("-s1") for s in results["searches"] for m in s["members"])
    for i, f in enumerate(results["folds"]):  # the refit members' test probabilities, stacked
        summary = json.loads(rd.selection_summary(f["search_group"]).read_text())
        probs = [np.asarray(json.loads(rd.refit_json(i, m["key"]).read_text())["test_probs"], np.float32)
                 for m in f["members"]]
        assert combiner_of(summary, n).apply(probs).argmax(1).tolist() == f["test_pred"]
        assert f["ua"] == pytest.approx(scores(f["test_true"], f["test_pred"], n)["ua"])
    final = json.loads(rd.final_record.read_text())
    assert final["combiner"]["choice"] == "stack"
    model = json.loads((stack_run[1] / "model.json").read_text())
    assert model["format_version"] == 5 and model["combiner"] == final["combiner"]["fitted"]
    assert len(model["combiner"]["coef"][0]) == len(model["members"]) * n
    assert "stacker" in (stack_run[1] / "README.md").read_text()
    assert "Combiner (stack)" in (rd.root / "report.md").read_text()


@pytest.mark.slow
def test_stacked_model_torch_and_onnx_give_the_same_probabilities(stack_run, demo_root):
    from emotionnas.metrics import temperature_scale
    from emotionnas.recognizer import Recognizer
    t, o = Recognizer.load(stack_run[1]), Recognizer.load(stack_run[1], backend="onnx")
    assert t.spec.combiner.kind == o.spec.combiner.kind == "stack"
    for f in sorted((demo_root / "wav").glob("*.wav"))[:4]:
        wave = t.load_wave(f)
        p = t.predict_proba(wave)
        np.testing.assert_allclose(o.predict_proba(wave), p, atol=1e-4)
        members = t.model.member_probs(*t.features(wave))[:, 0]
        stacked = temperature_scale(t.spec.combiner.apply(members[:, None])[0], t.spec.temperature)
        np.testing.assert_allclose(p, stacked, atol=1e-7)
        # the stacker is not the mean of the members
        assert np.abs(p - temperature_scale(members.mean(0), t.spec.temperature)).max() > 1e-4
