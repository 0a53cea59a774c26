"""Reports of a real (tiny) run: report.md, figures and tables read through the run folder."""
import json
import re
import shutil

import numpy as np
import pytest

from emotionnas.errors import EmotionNASError
from emotionnas.reports import plots, tables
from emotionnas.reports.report import write_report
from emotionnas.rundir import RunDir


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run[0]


def _links(text):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def _assert_png(path):
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200, img.shape
    assert img[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_full_report(run):
    rd = RunDir(run)
    text = rd.report.read_text()
    results = rd.read_results()
    for section in ("## Result", "## Searched vs hand-designed baselines", "## Per fold",
                    "## How the models were chosen", "## Figures", "## Reproduce"):
        assert section in text
    assert f"UA {results['ua']:.1f} ± {results['ua_std']:.1f}" in text
    for name in results["baselines"]:
        assert name in text
    # each fold's ensemble inner-CV UA beside its test UA, and their mean difference
    assert f"minus its test UA is **{results['optimism']['mean']:+.1f}**" in text
    for f in results["folds"]:
        assert f"| {f['name']} | {f['inner_ua']:.1f} | {f['ua']:.1f} |" in text
    links = _links(text)
    assert any("confusion_normalized" in x for x in links)
    # which searched cells are drawn: test_searched_cells_are_drawn_only_where_an_ensemble_member_uses_them
    for link in links:
        _assert_png(run / link)
    for table in ("folds.md", "baselines.md"):
        assert (rd.tables / table).read_text().startswith("| ")
    assert list(rd.tables.glob("selection_*.md"))


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_report_is_rebuilt_from_the_run_folder_alone(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = (copy / "report.md").read_text()
    shutil.rmtree(copy / "figures")
    (copy / "report.md").unlink()
    from emotionnas.cli import main
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.md").read_text() == before
    assert all((copy / link).exists() for link in _links(before))


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_leaks_and_degenerate_models_are_flagged(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    rd = RunDir(copy)
    res = json.loads(rd.results.read_text())
    res["searches"][0]["held_out_speakers"] = ["nobody"]  # as if the group had searched on its test speaker
    cm = np.zeros((4, 4), int)
    cm[:, 2] = 4  # predicts one class only
    res["folds"][1]["confusion"] = cm.tolist()
    rd.results.write_text(json.dumps(res))
    text = write_report(copy).read_text()
    assert "LEAK" in text and "predicts only *neutral*" in text


def test_confusion_png_values(tmp_path):
    cm = np.array([[5, 1], [0, 0]])
    with pytest.raises(ValueError, match="label names"):
        plots.plot_confusion(cm, ["a"], tmp_path / "x.png")
    _assert_png(plots.plot_confusion(cm, ["a", "b"], tmp_path / "c.png", normalize=True))
    norm = plots.row_normalise(cm)
    assert norm[0].tolist() == pytest.approx([500 / 6, 100 / 6]) and norm[1].tolist() == [0, 0]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp file


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_bad_or_old_results_name_the_file(tmp_path, run):
    with pytest.raises(EmotionNASError, match="results.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(EmotionNASError, match=str(tmp_path / "results.json")):
        write_report(tmp_path)
    old = json.loads((run / "results.json").read_text())
    old.pop("format_version")
    (tmp_path / "results.json").write_text(json.dumps(old))
    with pytest.raises(EmotionNASError, match="older emotionnas.*re-run") as e:
        write_report(tmp_path)
    assert "\n" not in str(e.value)


def test_markdown_table():
    md = tables.markdown_table([["a|b", 1]], ["x", "y"])
    assert md.splitlines() == ["| x | y |", "| :--- | ---: |", "| a\\|b | 1 |"]
    with pytest.raises(ValueError, match="row 0"):
        tables.markdown_table([[1]], ["x", "y"])


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_glossary_opens_the_report_and_explains_candidate_names(run):
    text = RunDir(run).report.read_text()
    assert text.index("## Words used here") < text.index("## Result")
    for term in ("**UA**", "**WA**", "**Inner CV**", "**Budget, first inner fold**", "**Ensemble**", "**Baselines**"):
        assert text.count(term) == 1, term
    glossary = text[text.index("## Words used here"):text.index("## Result")]
    for part in ("`lstm`", "`256`", "`L2.3`", "`p4`", "`attention`", "`-s1`"):  # the fields of Candidate.name
        assert part in glossary


def _cell_links(text, group):
    from emotionnas.rundir import safe_component
    stem = safe_component(group)
    return [x for x in _links(text) if x.startswith(f"figures/{stem}_cnn") or x.startswith(f"figures/{stem}_rnn")]


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_searched_cells_are_drawn_only_where_an_ensemble_member_uses_them(run, tmp_path):
    from emotionnas.space.model_spec import needs_genotype, needs_recipe
    from emotionnas.space.pipeline import Candidate
    rd = RunDir(run)
    results, text = rd.read_results(), rd.report.read_text()
    for s in results["searches"]:
        summary = json.loads(rd.selection_summary(s["group"]).read_text())
        cands = {c["key"]: Candidate.from_dict(c["candidate"]) for c in summary["candidates"]}
        used = [cands[m["key"]] for m in s["members"]]
        links = _cell_links(text, s["group"])
        assert any("_cnn" in x for x in links) == bool(s.get("genotype") and any(map(needs_genotype, used)))
        assert any("_rnn" in x for x in links) == bool(s.get("recipe") and any(map(needs_recipe, used)))
    # the same run, as if group 0's ensemble held one candidate that reads no searched cell
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    s = results["searches"][0]
    summary = json.loads(RunDir(copy).selection_summary(s["group"]).read_text())
    plain = next(c for c in summary["candidates"] if not (needs_genotype(Candidate.from_dict(c["candidate"]))
                                                          or needs_recipe(Candidate.from_dict(c["candidate"]))))
    res = json.loads(RunDir(copy).results.read_text())
    res["searches"][0]["members"] = [{"key": plain["key"], "name": plain["name"], "epoch": 1}]
    res["searches"][0]["genotype"] = res["searches"][0]["genotype"] or {"normal": []}  # a cell was searched
    RunDir(copy).results.write_text(json.dumps(res))
    shutil.rmtree(copy / "figures")
    text = write_report(copy).read_text()
    assert _cell_links(text, s["group"]) == [] and "not drawn: no ensemble member uses them" in text


@pytest.mark.slow  # tiny_run: a real run_crossval (and its exported final model)
def test_model_card_says_what_was_measured_and_what_was_shipped(tiny_run, tmp_path):
    from emotionnas.recognizer.export import export_run
    run, model = tiny_run
    results = RunDir(run).read_results()
    card = " ".join((model / "README.md").read_text().split())
    assert "measured the **per-fold ensembles**" in card and "ships is the **final model**" in card
    assert "refit on all of them" in card
    for name, b in results["baselines"].items():  # tiny_run refits the baselines: their UA beside the model's
        assert f"`{name}` UA {b['ua']:.1f}" in card
    final = json.loads(RunDir(run).final_record.read_text())
    assert f"expected calibration error {final['ece_before']:.1f} % -> {final['ece_after']:.1f} %" in card
    fold = " ".join((export_run(run, tmp_path / "fold0", fold=0) / "README.md").read_text().split())
    assert f"ships fold `{results['folds'][0]['name']}`'s ensemble" in fold and "none fit for a fold" in fold
