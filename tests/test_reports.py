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
    links = _links(text)
    assert any("confusion_normalized" in x for x in links)
    if any(s.get("recipe") for s in results["searches"]):  # a searched cell is drawn where there is one
        assert any("_rnn.png" in x for x in links)
    if any(s.get("genotype") for s in results["searches"]):
        assert any("_cnn_normal.png" in x for x in links)
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
