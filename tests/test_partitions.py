"""A second speaker partition at the last rung (issue 18 item 4, `selection.partitions`) and the
inner-vs-test rank agreement every run reports."""
import json

import numpy as np
import pytest

from emotionnas.config import SelectionConfig
from emotionnas.errors import ConfigError
from emotionnas.metrics import unweighted_accuracy
from emotionnas.training.selection import inner_folds, inner_partitions, oof_probs
from emotionnas.training.summary import rank_agreement


def _corpus(n_speakers=12, per=6, seed=0):
    rng = np.random.default_rng(seed)
    speakers = np.repeat([f"s{i:02d}" for i in range(n_speakers)], per)
    return speakers, rng.integers(0, 3, len(speakers))


def _unequal(seed=0):
    """Speakers of all different sizes (as EmoDB's): no tie for a seed to shuffle."""
    rng = np.random.default_rng(seed)
    speakers = np.concatenate([[f"s{i:02d}"] * (5 + 3 * i) for i in range(10)])
    return speakers, rng.integers(0, 3, len(speakers))


@pytest.mark.parametrize("corpus", [_corpus, _unequal])
def test_each_partition_covers_every_utterance_once_and_keeps_speakers_whole(corpus):
    speakers, labels = corpus()
    folds = inner_partitions(speakers, 3, [11, 12, 13], labels)
    assert len(folds) == 9
    groupings = [{frozenset(speakers[f]) for f in folds[p * 3:(p + 1) * 3]} for p in range(3)]
    assert len({frozenset(g) for g in groupings}) == 3  # three different groupings of the speakers
    for part in (folds[:3], folds[3:6], folds[6:]):
        assert sorted(np.concatenate(part).tolist()) == list(range(len(speakers)))
        owners = [set(speakers[f]) for f in part]
        assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])
    # one partition is what every run before the option made
    assert all(np.array_equal(a, b) for a, b in zip(inner_partitions(speakers, 3, [11], labels),
                                                     inner_folds(speakers, 3, 11, labels)))


def test_later_partitions_never_take_an_empty_fold():
    rng = np.random.default_rng(5)
    for n in (3, 4, 5):  # as many speakers as folds, or barely more: few groupings exist
        speakers = np.concatenate([[f"s{i}"] * int(rng.integers(2, 9)) for i in range(n)])
        labels = rng.integers(0, 2, len(speakers))
        folds = inner_partitions(speakers, 3, [1, 2, 3], labels)
        assert len(folds) == 9 and all(len(f) for f in folds)


def test_out_of_fold_probabilities_average_the_partitions():
    speakers, labels = _corpus()
    folds = inner_partitions(speakers, 3, [1, 2], labels)
    rng = np.random.default_rng(0)
    records = [rng.random((4, len(f), 3)) for f in folds]  # (epochs, rows of that fold, classes)
    got = oof_probs(records, folds, len(speakers), epoch=2, partitions=2)
    per_part = [oof_probs(records[p * 3:(p + 1) * 3], folds[p * 3:(p + 1) * 3], len(speakers), 2) for p in (0, 1)]
    np.testing.assert_allclose(got, (per_part[0] + per_part[1]) / 2, rtol=1e-6)
    row = folds[4][0]  # any row: the mean of exactly the two models that held it out
    held = [(k, list(f).index(row)) for k, f in enumerate(folds) if row in f]
    assert len(held) == 2
    np.testing.assert_allclose(got[row], np.mean([records[k][1, j] for k, j in held], axis=0), rtol=1e-6)


def test_partitions_option_is_validated():
    assert SelectionConfig().partitions == 1
    for bad in (0, 4, "2", 1.5):
        with pytest.raises(ConfigError, match="selection.partitions"):
            SelectionConfig(partitions=bad)


def _fold(group, members, baselines=None):
    return {"search_group": group, "members": [{"key": k, "ua": u} for k, u in members],
            **({"baselines": baselines} if baselines else {})}


def _summary(inner, baselines=None, spectrogram=None):
    spectrogram = spectrogram or {}
    return {"candidates": [{"key": k, "inner_ua": u, "candidate": {"spectrogram": spectrogram.get(k, "none")}}
                           for k, u in inner.items()] + [{"key": "cut", "candidate": {"spectrogram": "none"}}],
            "baselines": baselines or {}}


def test_rank_agreement_counts_pairs_ordered_alike():
    summaries = {"g": _summary({"a": 80, "b": 70, "c": 60, "d": 50}, {"LSTM": {"key": "d"}}, {"c": "resnet"})}
    folds = [_fold("g", [("a", 90), ("b", 60), ("c", 75)], {"LSTM": {"ua": 65}})]
    # inner order a > b > c > d; test a 90, c 75, d 65, b 60: same order in ab ac ad cd, not bc bd
    got = rank_agreement(folds, summaries)
    assert (got["pairs"], got["same_order"]) == (6, 4) and got["share"] == pytest.approx(4 / 6)
    assert got["median_inner_gap"] == pytest.approx(15)  # gaps 10 20 30 10 20 10
    deep = rank_agreement(folds, summaries, deep_only=True)  # c reads the spectrogram: ab ad bd
    assert (deep["pairs"], deep["same_order"]) == (3, 2)
    tied = rank_agreement([_fold("g", [("a", 70), ("b", 70)])], summaries)  # test ties are not pairs
    assert tied["pairs"] == 0 and tied["share"] is None


@pytest.fixture(scope="module")
def two_partition_run(tmp_path_factory, demo_root):
    from emotionnas.cli import demo_config
    from emotionnas.config import apply_overrides
    from emotionnas.reports.report import write_report
    from emotionnas.training.crossval import run_crossval
    tmp = tmp_path_factory.mktemp("partitions")
    cfg = apply_overrides(demo_config(str(demo_root), str(tmp / "cache")),
                          ["selection.partitions=2", "selection.budget=6", "max_folds=2", "final_model=false"])
    cfg.baselines = True
    run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)
    first = (tmp / "run" / "results.json").read_bytes()
    (tmp / "run" / "results.json").unlink()
    run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)  # resumed from the records
    assert (tmp / "run" / "results.json").read_bytes() == first
    write_report(tmp / "run")
    return tmp / "run", cfg


@pytest.mark.slow
def test_survivors_are_scored_on_both_partitions_and_ranked_by_their_mean(two_partition_run):
    from emotionnas.rundir import RunDir
    from emotionnas.training.run import Run
    rd = RunDir(two_partition_run[0])
    with Run.start(two_partition_run[1], rd.root, progress=False, log=lambda *a: None) as run:
        labels, n_classes = run.fs.labels, run.fs.n_classes
    results = json.loads(rd.results.read_text())
    assert results["selection_spread"]["partitions"] == 2
    for s in results["searches"]:
        summary = json.loads(rd.selection_summary(s["group"]).read_text())
        k = len(summary["inner_folds"]) // 2
        assert summary["partitions"] == 2 and k == two_partition_run[1].selection.inner_folds
        if len(summary["speakers"]) > k:  # then a second grouping exists, and is used
            assert {frozenset(f) for f in summary["inner_folds"][:k]} != {frozenset(f) for f in summary["inner_folds"][k:]}
        assert all(len(c["inner_fold_uas"]) == k for c in summary["candidates"] if "inner_ua" in c)
        for c in summary["candidates"]:  # the first rung on partition 0 only; survivors on both
            present = [rd.selection_record(s["group"], c["key"], f).exists() for f in range(2 * k)]
            assert present == ([True] * (2 * k) if "inner_ua" in c else [True] + [False] * (2 * k - 1))
        for c in (c for c in summary["candidates"] if "inner_ua" in c):
            records = []
            for f in range(2 * k):
                with np.load(rd.selection_record(s["group"], c["key"], f)) as z:
                    records.append((z["val_probs"][c["epoch"] - 1], z["val_idx"]))
            idx = np.sort(np.concatenate([v for _, v in records[:k]]))
            assert np.array_equal(idx, np.sort(np.concatenate([v for _, v in records[k:]])))
            probs = np.zeros((len(idx), n_classes))
            for p, v in records:
                probs[np.searchsorted(idx, v)] += p / 2
            assert c["inner_ua"] == pytest.approx(unweighted_accuracy(labels[idx], probs.argmax(1), n_classes), abs=1e-3)
    assert "other partition" in (rd.root / "report.md").read_text()
