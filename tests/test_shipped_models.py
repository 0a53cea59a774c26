"""Shipped recognizers (recognizer/shipped.py, src/emotionnas/shipped/): used by name, listed, and
predicting what they predicted when `make models` built them.

The name rules are checked on a shipped folder made here from a hand-made model (always). The
models themselves are checked when this checkout has them: reference.json holds each model's
probabilities on synthetic waves made by code (checked everywhere) and on a few corpus files
(checked when ../shared/data is there), so a change to the model format, the feature front end, the
encoder or the networks that alters a shipped model's outputs fails here, not in a user's hands.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotionnas.recognizer import shipped
from emotionnas.recognizer.shipped import catalog, catalog_text, model_folder, reference_waves

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLI = [sys.executable, "-m", "emotionnas"]
BUILT = shipped.shipped_names()  # what `make models` has put in this checkout


@pytest.fixture
def shipped_root(tmp_path, monkeypatch, model_dir):
    """A shipped folder holding one model, `toy`, made from the hand-made model folder, and a build
    left half-done (`.toy2.tmp`), in place of the package's own."""
    root = tmp_path / "shipped"
    shutil.copytree(model_dir, root / "toy")
    info = {"description": "a toy", "corpus": "none", "language": "none", "classes": ["a", "b"], "cv_ua": 51.0,
            "protocol": "loso", "license": "research use", "commands": ["emotionnas run ..."], "commit": "x"}
    (root / "toy" / "shipped.json").write_text(json.dumps(info))
    shutil.copytree(root / "toy", root / ".toy2.tmp")
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", root)
    return root


def test_a_shipped_name_is_its_folder_and_a_path_is_a_path(shipped_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert shipped.shipped_names() == ["toy"]  # the half-done build is no model
    assert model_folder("toy") == shipped_root / "toy"
    assert model_folder("./toy") == Path("./toy")
    assert model_folder("../toy") == Path("../toy") and model_folder(".toy2.tmp") == Path(".toy2.tmp")
    (tmp_path / "toy").mkdir()  # a user's own folder of the same name: the name wins, with a note
    assert model_folder("toy") == shipped_root / "toy"
    assert "./toy" in capsys.readouterr().err


def test_load_by_name_and_the_catalog(shipped_root):
    from emotionnas.recognizer import load
    rec = load("toy")
    assert rec.labels == json.loads((shipped_root / "toy" / "model.json").read_text())["label_names"]
    rows = catalog()
    assert [r["name"] for r in rows] == ["toy"] and rows[0]["size_mb"] >= 0
    text = catalog_text(rows)
    assert "toy: a toy" in text and "UA 51.0" in text and "research use" in text and "--model toy " in text
    (shipped_root / "toy" / "shipped.json").write_text(json.dumps({"name": "evil", "cv_ua": "n/a",
                                                                     "loco_ua": {"x": 1}}))
    rows = catalog()  # a malformed shipped.json: the folder still names it, the table still prints
    assert rows[0]["name"] == "toy" and "UA ?" in catalog_text(rows)


def test_catalog_text_of_no_models_says_how_to_make_them():
    assert "make models" in catalog_text([])


def test_models_command_lists_what_is_shipped():
    out = subprocess.run(CLI + ["models", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in json.loads(out.stdout)] == BUILT


def _built(name):
    if name not in BUILT:
        pytest.skip(f"the shipped model {name!r} is not built in this checkout (make models)")


@pytest.mark.parametrize("name", ["emodb", "emodb+urdu"])
def test_a_shipped_model_has_its_files_and_card(name):
    _built(name)
    folder = shipped.SHIPPED_ROOT / name
    for f in ("model.json", "model.safetensors", "README.md", "shipped.json", "reference.json"):
        assert (folder / f).is_file(), f"{name}: {f} missing"
    info = shipped.read_shipped(name)
    assert 25.0 < info["cv_ua"] <= 100.0 and info["commands"] and info["commit"] and "research" in info["license"]
    assert info["classes"] == json.loads((folder / "model.json").read_text())["label_names"]
    card = (folder / "README.md").read_text()
    assert f"--model {name}" in card and f"{info['cv_ua']:.1f}" in card
    if name == "emodb+urdu":
        assert info["classes"] == ["angry", "happy", "neutral", "sad"]
        assert set(info["loco_ua"]) == {"emodb->urdu", "urdu->emodb"}
        assert all(f"{v:.1f}" in card for v in info["loco_ua"].values())


@pytest.mark.parametrize("name", ["emodb", "emodb+urdu"])
def test_a_shipped_model_predicts_what_it_predicted_when_built(name):
    _built(name)
    from emotionnas.recognizer import load
    rec, ref = load(name), json.loads((shipped.SHIPPED_ROOT / name / "reference.json").read_text())
    waves = reference_waves()
    assert len(waves) == len(ref["synthetic"]) >= 4
    checks = list(zip([rec.predict(w)["probs"] for w in waves], ref["synthetic"]))
    if DATA.is_dir():
        assert len(ref["files"]) >= 4
        checks += [(rec.predict(DATA / rel)["probs"], want) for rel, want in ref["files"].items()]
    for got, want in checks:
        assert list(got) == list(want)
        np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], atol=ref["tolerance"])
