"""The three pieces of selection: a strategy and an ensemble builder are each one class and one
registry line. Toy ones, defined and registered here, run through a real selection; the
built-in random search is a real alternative to successive halving."""
import json

import numpy as np
import pytest

from emotionnas.errors import ConfigError
from emotionnas.training import ensembles, strategies
from emotionnas.training.ensembles import EnsembleChoice
from emotionnas.training.strategies import Trial


class EveryOtherCandidate:
    """A toy strategy: the 1st, 3rd, 5th ... original candidate, each on every inner fold at once."""
    name = "every-other"

    def __init__(self, cfg, seed):
        pass

    def propose(self, h):
        if "asked" in h.state:
            return []
        h.state["asked"] = [k for i, (k, c) in enumerate(h.pool.items()) if not c.replica and i % 2 == 0]
        return [Trial(h.pool[k], h.all_folds) for k in h.state["asked"]]

    def finalists(self, h):
        return list(h.state["asked"])

    def notes(self, key, h):
        return {"asked": key in h.state["asked"]}


class LastTwo:
    """A toy ensemble builder: the two worst-ranked finalists (a choice no built-in makes)."""
    name = "last-two"

    def __init__(self, cfg):
        pass

    def build(self, ranking, oof, labels, n_classes, speakers, seed):
        return EnsembleChoice(tuple(ranking[-2:]), (0.0,))


@pytest.fixture
def toys():
    strategies.register(EveryOtherCandidate)
    ensembles.register(LastTwo)
    yield
    del strategies.STRATEGIES["every-other"], ensembles.ENSEMBLE_BUILDERS["last-two"]


def _config(demo_root, tmp_path, strategy, ensemble="top_k"):
    from emotionnas.cli import demo_config
    cfg = demo_config(str(demo_root), str(tmp_path / "cache"))
    cfg.max_folds, cfg.workers, cfg.final_model = 1, 1, False  # serial: toys live in this process only
    cfg.selection.strategy, cfg.selection.ensemble = strategy, ensemble
    return cfg


def _summaries(run_dir):
    return [json.loads(p.read_text()) for p in sorted((run_dir / "searches").glob("*/selection.json"))]


@pytest.mark.slow  # real run_crossval
def test_a_toy_strategy_and_builder_registered_in_one_line_run_through_selection(toys, demo_root, tmp_path):
    from emotionnas.training.crossval import run_crossval
    cfg = _config(demo_root, tmp_path, "every-other", "last-two")
    results = run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    (summary,) = _summaries(tmp_path / "run")
    assert summary["strategy"] == "every-other" and summary["ensemble_builder"] == "last-two"
    rows = summary["candidates"]
    originals = [r for r in rows if "replica_of" not in r]
    asked = [r["key"] for i, r in enumerate(originals) if i % 2 == 0]
    assert [r["key"] for r in rows if r["strategy"]["asked"]] == asked
    assert {r["key"] for r in rows if "inner_ua" in r} == set(asked)  # only what the strategy asked was scored
    assert all(r["budget_scores"] == [] for r in rows)  # it asked no score at a smaller budget
    ranking = sorted(asked, key=lambda k: (-next(r["inner_ua"] for r in rows if r["key"] == k), k))
    assert summary["ranking"] == ranking
    assert [m["key"] for m in summary["members"]] == ranking[-2:]  # the toy builder's choice is what is refit
    assert [m["key"] for m in results["folds"][0]["members"]] == ranking[-2:]


@pytest.mark.slow
def test_random_search_scores_a_seeded_sample_on_every_fold(demo_root, tmp_path):
    from emotionnas.training.crossval import run_crossval
    cfg = _config(demo_root, tmp_path, "random")
    run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    (summary,) = _summaries(tmp_path / "run")
    rows = summary["candidates"]
    sampled = [r["key"] for r in rows if r["strategy"]["sampled"]]
    n = -(-cfg.selection.budget // cfg.selection.eta)
    assert len(sampled) == min(n, len(rows)) and {r["key"] for r in rows if "inner_ua" in r} == set(sampled)
    assert set(summary["ranking"]) == set(sampled)
    # halving on the same pool: every original candidate at the first budget, a cut, then every fold
    halving = _config(demo_root, tmp_path, "halving")
    run_crossval(halving, tmp_path / "halving", progress=False, log=lambda *a: None)
    (h,) = _summaries(tmp_path / "halving")
    assert all(r["budget_scores"][0]["folds"] == halving.selection.first_rung_folds for r in h["candidates"])
    assert {r["key"] for r in h["candidates"] if r["strategy"]["survived"]} == set(h["ranking"])


def test_unknown_strategy_or_builder_is_refused_before_any_work(demo_root, tmp_path):
    from emotionnas.training.run import Run
    for strategy, builder, word in (("annealing", "top_k", "strategy"), ("halving", "stacked-magic", "ensemble")):
        cfg = _config(demo_root, tmp_path, strategy, builder)
        with pytest.raises(ConfigError, match=f"selection.{word}"):
            Run.start(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
        assert not (tmp_path / "run" / "config.yaml").exists()


def test_top_k_builder_takes_the_smallest_best_prefix():
    y = np.array([0, 1, 0, 1])
    good = np.eye(2)[y].astype(np.float32)
    bad = np.eye(2)[1 - y].astype(np.float32)
    cfg = type("C", (), {"max_ensemble": 3, "seeds": 1})()
    choice = ensembles.TopK(cfg).build(["a", "b", "c"], {"a": good, "b": bad, "c": good}, y, 2)
    assert choice.members == ("a",) and choice.scores[0] == 100.0


def test_greedy_selection_adds_the_complementary_model_and_weights_it():
    """Three 'experts': a is right on classes 0 and 1, b on class 2, c nowhere. The best single (a)
    is kept and b added for class 2; c never enters. With replacement, a's weight can exceed b's."""
    y = np.array([0, 0, 1, 1, 2, 2])
    eye = np.eye(3)
    a = np.array([eye[0], eye[0], eye[1], eye[1], eye[0] * 0.5 + eye[2] * 0.4, eye[0] * 0.5 + eye[2] * 0.4])
    b = np.array([eye[2] * 0.4 + eye[0] * 0.3 + eye[1] * 0.3] * 4 + [eye[2], eye[2]])
    c = np.full((6, 3), 1 / 3)
    counts = ensembles.greedy_selection(np.stack([a, b, c]), y, 3, steps=10)
    assert counts[0] >= 1 and counts[1] >= 1 and counts[2] == 0
    from emotionnas.metrics import unweighted_accuracy
    w = counts / counts.sum()
    assert unweighted_accuracy(y, np.tensordot(w, np.stack([a, b, c]), axes=1).argmax(1), 3) == 100.0


def test_caruana_is_seeded_bagged_and_gives_weights_that_sum_to_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    speakers = np.repeat(np.arange(10), 20)
    oof = {f"m{i}": rng.dirichlet(np.ones(4), 200) * 0.5 + np.eye(4)[y] * rng.uniform(0.1, 0.6, (200, 1))
           for i in range(5)}
    ranking = sorted(oof)
    builder = ensembles.Caruana(None)
    first = builder.build(ranking, oof, y, 4, speakers, seed=3)
    assert first == builder.build(ranking, oof, y, 4, speakers, seed=3)  # seeded: the same choice
    assert abs(sum(first.weights) - 1) < 1e-5 and len(first.weights) == len(first.members)
    assert list(first.weights) == sorted(first.weights, reverse=True)  # heaviest first
    assert set(first.members) <= set(ranking)


def test_a_weighted_combiner_is_data_validated_like_the_others():
    from emotionnas.space.combiner import Combiner
    c = Combiner.from_dict({"kind": "weighted", "weights": [3, 1]}, 2, 4)
    assert c.weights == (0.75, 0.25) and Combiner.from_dict(c.to_dict(), 2, 4) == c
    for bad in ([1], [1, -1], [0, 0], [1, float("nan")], [True, 1], "ab"):
        with pytest.raises(ConfigError, match="weights"):
            Combiner.from_dict({"kind": "weighted", "weights": bad}, 2, 4)
    with pytest.raises(ConfigError, match="weights"):
        Combiner.from_dict({"kind": "weighted", "weights": [1, 1], "extra": 1}, 2, 4)


@pytest.mark.slow
def test_a_caruana_ensemble_runs_through_selection_refit_final_and_export(demo_root, tmp_path):
    from emotionnas.recognizer import load
    from emotionnas.recognizer.export import export_run
    from emotionnas.training.crossval import run_crossval
    cfg = _config(demo_root, tmp_path, "halving", "caruana")
    cfg.max_folds, cfg.final_model = 2, True
    results = run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    for s in _summaries(tmp_path / "run"):
        assert s["ensemble_builder"] == "caruana" and set(m["key"] for m in s["members"]) <= set(s["ranking"])
        fitted = s["combiner"]["fitted"]
        assert fitted["kind"] in ("mean", "weighted")
        if fitted["kind"] == "weighted":
            assert len(fitted["weights"]) == len(s["members"]) and abs(sum(fitted["weights"]) - 1) < 1e-5
    assert len(results["folds"]) == 2
    export_run(tmp_path / "run", tmp_path / "model")
    rec = load(tmp_path / "model")
    wav = next((demo_root / "wav").glob("*.wav"))
    assert abs(sum(rec.predict(str(wav))["probs"].values()) - 1) < 1e-4


@pytest.mark.slow
def test_the_fine_tuning_recipe_can_be_a_candidate_of_every_pool(demo_root, tmp_path):
    """space.finetune_in_pool: the standard recipe is scored like any candidate (its epoch from
    inner CV), not only refit on a fixed schedule as a baseline outside the pool."""
    from emotionnas.space.pipeline import FINE_TUNED
    from emotionnas.training.crossval import run_crossval
    cfg = _config(demo_root, tmp_path, "halving")
    cfg.space.finetune_in_pool, cfg.baselines = True, True
    run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    (summary,) = _summaries(tmp_path / "run")
    tuned = summary["baselines"][FINE_TUNED]
    row = next(r for r in summary["candidates"] if r["key"] == tuned["key"])
    assert row["baseline"] == FINE_TUNED and row["budget_scores"]  # scored at the first budget like the rest
    assert "fixed_schedule" not in tuned and tuned["epoch"] == row["epoch"]
