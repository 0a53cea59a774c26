"""Reports of a cross-validated run: figures, tables and report.md from a fake run folder."""
import json
import re
import sys

import numpy as np
import pytest

from emotionnas.errors import EmotionNASError
from emotionnas.reports import plots, tables
from emotionnas.reports.report import write_report

LABELS = ["angry", "happy", "neutral", "sad"]
GENOTYPE = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["dil_conv_3x3", 2], ["max_pool_3x3", 0]],
            "normal_concat": [2, 3],
            "reduce": [["max_pool_3x3", 0], ["avg_pool_3x3", 1], ["skip_connect", 2], ["sep_conv_5x5", 1]],
            "reduce_concat": [2, 3]}
RECIPE = {"node_0": {"op": "linear", "input": ["x", "h_prev_0"]},
          "h_new_0": {"op": "activation_tanh", "input": ["node_0"]}}


def _scores(cm):
    cm = np.asarray(cm, float)
    recall = np.diag(cm) / cm.sum(1)
    prec = np.diag(cm) / np.maximum(cm.sum(0), 1)
    f1 = np.where(recall + prec > 0, 2 * recall * prec / np.maximum(recall + prec, 1e-12), 0)
    return 100 * recall.mean(), 100 * np.trace(cm) / cm.sum(), 100 * f1.mean()


def fake_results(n_folds=3, synthetic=False, ablations=True, history=True, arch=True, seed=0):
    """A results.json like training/crossval.py writes: confusion matrices from random predictions,
    scores derived from them, so every number in the fake is consistent."""
    rng = np.random.default_rng(seed)
    folds = []
    for i in range(n_folds):
        y = rng.integers(0, 4, 20 + 7 * i)
        pred = np.where(rng.random(len(y)) < 0.6, y, rng.integers(0, 4, len(y)))
        y[:4] = np.arange(4)  # every class present in every fold
        cm = np.zeros((4, 4), int)
        np.add.at(cm, (y, pred), 1)
        ua, wa, f1 = _scores(cm)
        hist = [{"epoch": e, "train_loss": 1.4 / e + 0.1 * i, "val_loss": 1.2 / e + 0.05 * e * (i + 1),
                 "val_ua": 30 + 5 * i + 8 * e - e * e}
                for e in range(1, 6)] if history else []
        fold = {"name": f"test-0{i + 3}", "test_speakers": [f"0{i + 3}"], "val_speakers": [f"1{i}"],
                "search_group": f"group{i % 2}", "ua": ua, "wa": wa, "macro_f1": f1,
                "confusion": cm.tolist(), "best_epoch": 4, "history": hist}
        if arch:
            fold["genotype"], fold["recipe"] = GENOTYPE, RECIPE
        folds.append(fold)
    uas, was, f1s = ([f[k] for f in folds] for k in ("ua", "wa", "macro_f1"))
    res = {"corpus": "emodb", "protocol": "loso", "label_names": LABELS,
           "ua": float(np.mean(uas)), "ua_std": float(np.std(uas)), "wa": float(np.mean(was)),
           "wa_std": float(np.std(was)), "macro_f1": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
           "folds": folds, "synthetic": synthetic,
           "searches": [{"group": f"group{g}", "dir": f"searches/group{g}",
                         "held_out_speakers": [f["test_speakers"][0] for f in folds if f["search_group"] == f"group{g}"]}
                        for g in range(min(2, n_folds))] if arch else [],
           "timing": {"total_seconds": 1234.5, "search_seconds": 300.0, "train_seconds": 900.0}}
    if ablations:
        row = lambda u: {"ua": u, "ua_std": 3.0, "wa": u + 1, "wa_std": 2.0, "macro_f1": u - 1, "macro_f1_std": 2.5}
        res["ablations"] = {"branches": {"spectrogram": row(55.5), "deep": row(66.6), "fused (ism)": row(res["ua"])},
                            "fusion": {"ism": row(70.7), "concat": row(68.0), "sum": row(67.0),
                                       "max": row(64.0), "min": row(60.0)}}
    return res


def make_run(tmp_path, results, config=True):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    if config:
        (run / "config.yaml").write_text("corpus: emodb\nprotocol: loso\nfusion: ism\n"
                                         "features:\n  encoder: whisper-base\n  deep_layers: null\n"
                                         "cnn:\n  search:\n    epochs: 3\nsearch_groups: 2\n"
                                         "train:\n  epochs: 5\n  patience: 2\n")
        (run / "environment.json").write_text(json.dumps(
            {"git_revision": "abc1234", "torch": "2.13.0", "seed": 0, "command": "/x/.venv/bin/emotionnas run emodb /data --out run"}))
    return run


def _links(text):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def _assert_png(path):
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200, img.shape
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_full_report(tmp_path, monkeypatch):
    # No drawing modules in this test: they belong to others and are exercised in their own tests.
    monkeypatch.setitem(sys.modules, "emotionnas.reports.draw_cnn", None)
    monkeypatch.setitem(sys.modules, "emotionnas.reports.draw_rnn", None)
    res = fake_results()
    run = make_run(tmp_path, res)
    report = write_report(run)
    text = report.read_text()

    figs = sorted((run / "figures").glob("*.png"))
    assert {p.name for p in figs} == {"confusion_counts.png", "confusion_normalized.png",
                                      "training_curves.png", "fold_scores.png"}
    for p in figs:
        _assert_png(p)
    links = _links(text)
    for p in figs:
        assert f"figures/{p.name}" in links
    for link in links:
        assert (run / link).is_file(), link

    # The main result carries the run's UA with its std, to one decimal.
    assert f"UA {res['ua']:.1f} ± {res['ua_std']:.1f} %" in text
    assert f"WA {res['wa']:.1f} ± {res['wa_std']:.1f} %" in text
    n_test = sum(np.sum(f["confusion"]) for f in res["folds"])
    assert tables.pooled_confusion(res).sum() == n_test == 20 + 27 + 34
    assert f"{n_test} test utterances" in text
    for f in res["folds"]:
        assert f"| {f['name']} | {f['test_speakers'][0]} | {np.sum(f['confusion'])} | {f['ua']:.1f} |" in text

    branches = json.loads((run / "tables" / "ablation_branches.json").read_text())
    assert [r["setting"] for r in branches["rows"]] == ["spectrogram", "deep", "fused (ism)"]
    assert branches["rows"][2]["ua"] == pytest.approx(res["ua"])
    assert "The *ism* row of the fusion table (UA 70.7)" in text  # separate trainings, explained
    fusion_md = (run / "tables" / "ablation_fusion.md").read_text()
    assert "**70.7 ± 3.0**" in fusion_md and "| min | 60.0 ± 3.0 |" in fusion_md
    assert (run / "tables" / "folds.md").read_text() in text
    assert "| normal | 0 | sep_conv_3x3 | c_{k-2} |" in text  # genotype table of a search group
    assert "| h_new_0 | activation_tanh | node_0 |" in text
    assert "Cell drawings skipped" in text
    assert "abc1234" in text and "\nemotionnas run emodb /data --out run\n" in text
    assert "--config config.yaml --out NEW_RUN_DIR" in text
    assert "SYNTHETIC" not in text and "LEAK" not in text
    assert "disjoint from the test speakers (checked" in text and "held out its test speakers; checked" in text
    assert "Limitations" in text


def test_confusion_png_values(tmp_path):
    cm = np.array([[5, 1], [0, 0]])
    with pytest.raises(ValueError, match="label names"):
        plots.plot_confusion(cm, ["a"], tmp_path / "x.png")
    _assert_png(plots.plot_confusion(cm, ["a", "b"], tmp_path / "c.png", normalize=True))
    norm = plots.row_normalise(cm)
    assert norm[0].tolist() == pytest.approx([500 / 6, 100 / 6]) and norm[1].tolist() == [0, 0]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp file


def test_synthetic_warning(tmp_path):
    run = make_run(tmp_path, fake_results(synthetic=True, arch=False), config=False)
    text = write_report(run).read_text()
    head = text[:600]
    assert "SYNTHETIC DATA" in head and "prove nothing" in head
    assert "data are synthetic" in text  # repeated in the limitations


def test_partial_results_do_not_crash(tmp_path):
    res = fake_results(n_folds=1, ablations=False, history=False, arch=False)
    del res["ua_std"], res["timing"]
    run = make_run(tmp_path, res, config=False)
    text = write_report(run).read_text()
    assert f"UA {res['ua']:.1f} %" in text
    assert "No ablations were recorded" in text
    assert "single fold" in text
    assert not (run / "figures" / "training_curves.png").exists()
    assert not (run / "tables" / "ablation_branches.json").exists()
    for link in _links(text):
        assert (run / link).is_file(), link
    assert "Searched architectures" not in text


def test_existing_search_drawing_is_reused_and_leaks_flagged(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "emotionnas.reports.draw_rnn", None)
    res = fake_results()
    res["folds"][0]["val_speakers"] = list(res["folds"][0]["test_speakers"])  # a leak the report must flag
    run = make_run(tmp_path, res)
    drawn = run / "searches" / "group0" / "cnn"
    plots.plot_fold_scores(res["folds"], drawn / "cell_normal.png")
    plots.plot_fold_scores(res["folds"], drawn / "cell_reduce.png")
    (run / "searches" / "group0" / "genotype.json").write_text(json.dumps(GENOTYPE))
    text = write_report(run).read_text()
    assert "searches/group0/cnn/cell_normal.png" in _links(text)
    assert "figures/group0_cnn_normal.png" not in _links(text)  # not redrawn
    try:  # group1 has no drawing yet: drawn with the CNN drawing module when it is importable
        import emotionnas.reports.draw_cnn  # noqa: F401
        assert "figures/group1_cnn_normal.png" in _links(text)
    except ImportError:
        assert "Cell drawings skipped" in text
    assert "LEAK: fold test-03" in text
    assert "disjoint from the test speakers" not in text  # the setup claims only what was checked
    for link in _links(text):
        assert (run / link).is_file(), link


def test_bad_results_name_the_file(tmp_path):
    with pytest.raises(EmotionNASError, match="results.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(EmotionNASError, match=str(tmp_path / "results.json")):
        write_report(tmp_path)


def test_markdown_table_and_ablation_tables():
    md = tables.markdown_table([["a|b", 1]], ["x", "y"])
    assert md.splitlines() == ["| x | y |", "| :--- | ---: |", "| a\\|b | 1 |"]
    with pytest.raises(ValueError, match="row 0"):
        tables.markdown_table([[1]], ["x", "y"])
    res = {"ablations": {"branches": {"deep": {"ua": 60.0}, "spectrogram": {"ua": 50.0, "ua_std": 1.0}}}}
    out = tables.ablation_tables(res)
    assert set(out) == {"branches"}
    assert out["branches"]["rows"][0] == {"setting": "deep", "ua": 60.0, "ua_std": None, "wa": None,
                                          "wa_std": None, "macro_f1": None, "macro_f1_std": None}
    assert "| deep | **60.0** | – | – |" in out["branches"]["markdown"]
    json.dumps(out)


def test_checks_flag_degenerate_models(tmp_path):
    res = fake_results(arch=False)
    cm = np.zeros((4, 4), int)
    cm[:, 2] = [3, 4, 5, 6]  # every test utterance predicted "neutral"
    res["folds"][1].update(confusion=cm.tolist(), ua=25.0, wa=100 * 5 / 18)
    res["folds"][2]["ua"] += 3.0  # reported UA disagrees with its confusion matrix
    res["ablations"]["branches"]["spectrogram"] = {"ua": 25.0, "ua_std": 0.0}
    text = write_report(make_run(tmp_path, res)).read_text()
    assert "fold test-04: the model predicts only *neutral*" in text
    assert "ablation branches / spectrogram: UA 25.0 equals chance" in text
    assert "fold test-05: reported UA" in text
    assert "fold test-03: reported" not in text


def test_empty_and_odd_runs_still_report(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "results.json").write_text('{"folds": []}')
    assert "no fold results yet" in write_report(empty).read_text()

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "results.json").write_text(json.dumps({
        "folds": [{"name": "f0", "ua": 50.0}], "ablations": {"branches": {"deep": None}, "fusion": {}},
        "searches": [{"group": 0, "dir": str(tmp_path / "missing")}]}))
    (odd / "config.yaml").write_text("a: [1,\n")  # malformed: noted, not fatal
    text = write_report(odd).read_text()
    assert "`config.yaml` could not be read" in text
    assert "| deep | – | – | – |" in text
    assert "No genotype or recipe was recorded" in text
    assert "not fully recorded, so this was not checked" in text
