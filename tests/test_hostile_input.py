"""Hostile files: recipes, genotypes and model folders are data; nothing in them runs."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from emotionnas.errors import ConfigError
from emotionnas.space.model_spec import ModelSpec
from emotionnas.space.genotype import Genotype, derive_cell, n_edges
from emotionnas.space.recipe_cell import RecipeCell
from emotionnas.space.recipe import load_recipe, lstm_recipe, validate_recipe

INJECTED = "pre\n  __import__('os').system('touch {marker}')\n  #"


def _hostile_recipe(marker) -> dict:
    name = INJECTED.format(marker=marker)
    return {name: {"op": "linear", "input": ["x", "h_prev_0"]}, "h_new_0": {"op": "activation_tanh", "input": [name]}}


@pytest.mark.parametrize("bad_name", ["pre\nx", "a b", "1abc", "x" * 65, "", "h;import os", "é"])
def test_node_names_must_be_identifiers(bad_name):
    recipe = {bad_name: {"op": "linear", "input": ["x", "h_prev_0"]},
              "h_new_0": {"op": "activation_tanh", "input": [bad_name]}}
    with pytest.raises(ConfigError, match="not an identifier|node names"):
        validate_recipe(recipe, "r.json")


def test_recipe_file_with_injected_node_name_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(_hostile_recipe(marker)))
    with pytest.raises(ConfigError) as e:
        load_recipe(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


def test_recipe_bounds_and_unknown_fields():
    big = {f"n{i}": {"op": "activation_tanh", "input": ["x"]} for i in range(70)}
    with pytest.raises(ConfigError, match="at most 64"):
        validate_recipe(big)
    r = lstm_recipe()
    r["i"]["code"] = "print(1)"
    with pytest.raises(ConfigError, match="unknown field"):
        validate_recipe(r)


def test_generated_source_holds_no_recipe_string():
    recipe = {"my_special_node": {"op": "linear", "input": ["x", "h_prev_0"]},
              "h_new_0": {"op": "activation_tanh", "input": ["my_special_node"]}}
    cell = RecipeCell(recipe, 8, 8)
    assert "my_special_node" not in cell.source
    out, _ = cell(torch.randn(2, 5, 8))
    assert out.shape == (2, 5, 8)


def test_no_exec_or_eval_in_the_package():
    import pathlib
    import re

    import emotionnas
    root = pathlib.Path(emotionnas.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if re.search(r"(?<![\w.])(exec|eval)\(", p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("field,value,match", [
    ("normal", [["rm -rf /", 0], ["skip_connect", 1]] * 4, "unknown"),
    ("normal", [["skip_connect", "0"], ["skip_connect", 1]] * 4, "pairs"),
    ("normal", [["skip_connect", 0], ["skip_connect", 1]] * 40, "at most"),
    ("normal_concat", [2, 2, 3, 4, 5], "bad node indices"),
    ("reduce", "max_pool_3x3", "pairs"),
])
def test_genotype_fields_validated(field, value, match):
    good = json.loads(Genotype((("skip_connect", 0), ("skip_connect", 1)) * 4, (2, 3, 4, 5),
                               (("max_pool_3x3", 0), ("skip_connect", 1)) * 4, (2, 3, 4, 5)).to_json())
    Genotype.from_dict(good, "g.json")
    bad = {**good, field: value}
    with pytest.raises(ConfigError, match=match) as e:
        Genotype.from_dict(bad, "g.json")
    assert "g.json" in str(e.value)


def test_derive_cell_raises_instead_of_hanging_when_skip_is_the_only_op():
    prims = ["none", "skip_connect"]
    w = np.random.default_rng(0).random((n_edges(4), 2))
    with pytest.raises(ConfigError, match="allowed op"):
        derive_cell(w, prims, 4, max_skip=2)
    assert len(derive_cell(w, prims, 4)) == 8  # without the guard every edge may skip


def _exported_meta(tmp_path):
    """A small valid model folder: a two-member ensemble (searched cells + a GRU), built by the
    same builder the exporter and recognizer use."""
    from safetensors.torch import save_file

    from emotionnas.models.build import build_ensemble
    from emotionnas.space.model_spec import Dims, Member, ModelSpec
    from emotionnas.space.pipeline import Candidate
    g = json.loads(Genotype((("skip_connect", 0), ("avg_pool_3x3", 1)) * 4, (2, 3, 4, 5),
                            (("max_pool_3x3", 0), ("skip_connect", 1)) * 4, (2, 3, 4, 5)).to_json())
    recipe = {"pre": {"op": "linear", "input": ["x", "h_prev_0"]}, "h_new_0": {"op": "activation_tanh", "input": ["pre"]}}
    members = (Member("cells", Candidate("cell", (1, 2), 2, "attention", 16, 0.2, "darts", "ism"), g, recipe,
                      (0.0, 1.0), "m0."),
               Member("gru", Candidate("gru", (2,), 4, "meanstd", 16, 0.2), None, None, (0.0, 1.0), "m1."))
    spec = ModelSpec(("a", "b"), members, Dims(2, 384, 5, 4, 3), "whisper-tiny.en", 2, {"out_freq": 32, "out_time": 32})
    model = build_ensemble(spec)
    tmp_path.mkdir(parents=True, exist_ok=True)
    save_file({f"m{i}.{k}": v.contiguous() for i, net in enumerate(model.nets) for k, v in net.state_dict().items()},
              str(tmp_path / "model.safetensors"))
    meta = spec.to_dict()
    (tmp_path / "model.json").write_text(json.dumps(meta))
    return meta


def test_predict_with_injected_model_json_prints_one_line_and_creates_nothing(tmp_path, demo_root):
    model_dir = tmp_path / "model"
    meta = _exported_meta(model_dir)
    marker = tmp_path / "pwned"
    meta["members"][0]["recipe"] = _hostile_recipe(marker)
    (model_dir / "model.json").write_text(json.dumps(meta))
    wav = sorted((demo_root / "wav").glob("*.wav"))[0]
    proc = subprocess.run([sys.executable, "-m", "emotionnas", "predict", "--model", str(model_dir), str(wav)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.json" in lines[0] and "recipe" in lines[0], proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("path,value,match", [
    (("members", 1, "candidate", "hidden"), 10**9, "candidate.hidden"),
    (("members", 1, "candidate", "deep"), "transformer; rm", "candidate.deep"),
    (("members", 0, "candidate", "fusion"), "exec", "fusion"),
    (("members", 1, "candidate", "layers"), [0, 99], "layers"),
    (("members", 0, "spec_stats"), [0.0, float("nan")], "spec_stats"),
    (("members", 0, "weights_prefix"), "../x", "weights_prefix"),
    (("members", 0, "genotype", "normal"), [["rm -rf", 0]] * 8, "genotype"),
    (("members",), [], "members"),
    (("label_names",), "angry", "label_names"),
    (("format_version",), 2, "re-export"),
    (("spectrogram", "n_fft"), 10**8, "n_fft"),
    (("dims", "deep_dim"), -1, "deep_dim"),
])
def test_model_json_fields_validated(tmp_path, path, value, match):
    meta = _exported_meta(tmp_path)
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=match) as e:
        ModelSpec.from_meta(meta, str(tmp_path / "model.json"))
    assert "model.json" in str(e.value) and "\n" not in str(e.value)


def test_recognizer_refuses_weights_that_do_not_match(tmp_path):
    from safetensors.torch import save_file

    from emotionnas.recognizer import Recognizer
    _exported_meta(tmp_path)
    save_file({"x": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match="do not match"):
        Recognizer.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ConfigError, match="unreadable weights"):
        Recognizer.load(tmp_path)
