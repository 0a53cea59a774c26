import json

import pytest
import torch

from emotionnas.errors import ConfigError
from emotionnas.features.inputs import pool_frames
from emotionnas.space.recipe_cell import RecipeCell
from emotionnas.space.recipe import (CLASSIC, load_recipe, lstm_recipe, n_states,
                                          prune_recipe, save_recipe, validate_recipe)


@pytest.mark.parametrize("name", sorted(CLASSIC))
def test_classic_recipes_are_valid(name):
    r = CLASSIC[name]()
    assert validate_recipe(r) is r
    assert n_states(r) == (2 if name == "lstm" else 1)


def _rnn():
    return {"pre": {"op": "linear", "input": ["x", "h_prev_0"]},
            "h_new_0": {"op": "activation_tanh", "input": ["pre"]}}


BAD = {
    "empty": ({}, "non-empty dict"),
    "no output": ({"a": {"op": "linear", "input": ["x", "h_prev_0"]}}, "no output node h_new_0"),
    "unknown op": ({"h_new_0": {"op": "conv", "input": ["x", "h_prev_0"]}}, "unknown op 'conv'"),
    "arity": ({"h_new_0": {"op": "blend", "input": ["x", "h_prev_0"]}}, "takes 3 inputs, got 2"),
    "linear arity": ({"h_new_0": {"op": "linear", "input": ["x"]}, "z": {"op": "activation_tanh", "input": ["h_prev_0"]}},
                     "takes 2-3 inputs, got 1"),
    "missing input": ({"h_new_0": {"op": "linear", "input": ["x", "nope"]}}, "reads 'nope', which does not exist"),
    "cycle": ({"a": {"op": "linear", "input": ["x", "b"]}, "b": {"op": "activation_tanh", "input": ["a"]},
               "h_new_0": {"op": "elementwise_sum", "input": ["b", "h_prev_0"]}}, "cycle"),
    "x unused": ({"h_new_0": {"op": "activation_tanh", "input": ["h_prev_0"]}}, "input 'x' is never used"),
    "h_prev unused": ({"h_new_0": {"op": "activation_tanh", "input": ["x"]}}, "input 'h_prev_0' is never used"),
    "dead node": ({**_rnn(), "junk": {"op": "activation_sigm", "input": ["pre"]}}, "do not reach any output"),
    "gap in states": ({**_rnn(), "h_new_2": {"op": "activation_sigm", "input": ["h_prev_1"]}}, "no h_new_1"),
    "redefines input": ({**_rnn(), "h_prev_0": {"op": "activation_sigm", "input": ["x"]}}, "redefines an input"),
    "not a node": ({"h_new_0": ["x"]}, "must be a dict with 'op' and 'input'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validation_errors(case):
    recipe, msg = BAD[case]
    with pytest.raises(ConfigError, match=msg) as e:
        validate_recipe(recipe, source="cell.json")
    assert str(e.value).startswith("cell.json: ") and "\n" not in str(e.value)


def test_json_round_trip_and_load_errors(tmp_path):
    save_recipe(lstm_recipe(), tmp_path / "recipe.json")
    assert load_recipe(tmp_path / "recipe.json") == lstm_recipe()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_recipe(tmp_path / "bad.json")
    (tmp_path / "dead.json").write_text(json.dumps(BAD["dead node"][0]))
    with pytest.raises(ConfigError, match="dead.json"):
        load_recipe(tmp_path / "dead.json")
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "missing.json")


def test_prune_drops_dead_nodes():
    assert prune_recipe(BAD["dead node"][0]) == _rnn()


def _lstm_cell_from_torch(lstm, D, H):
    cell = RecipeCell(lstm_recipe(), D, H)
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0
    for j, n in enumerate("ifgo"):  # torch's gate order
        sl = slice(j * H, (j + 1) * H)
        cell.set_linear(n, {"x": lstm.weight_ih_l0[sl], "h_prev_0": lstm.weight_hh_l0[sl]}, b[sl])
    return cell


def test_lstm_recipe_reproduces_torch_lstm():
    torch.manual_seed(0)
    D, H = 6, 5
    lstm = torch.nn.LSTM(D, H, batch_first=True)
    cell = _lstm_cell_from_torch(lstm, D, H)
    x = torch.randn(3, 9, D)
    ref, (h, c) = lstm(x)
    out, (h2, c2) = cell(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(h2, h[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(c2, c[0], atol=1e-5, rtol=0)
    # gradients flow to every parameter
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in cell.parameters() if p.numel())


@pytest.mark.parametrize("name", sorted(CLASSIC) + ["nasbench"])
def test_padding_never_changes_output(name):
    torch.manual_seed(1)
    recipe = CLASSIC[name]() if name in CLASSIC else {
        # a NAS-Bench-NLP style cell with a node->node linear, blend and leaky relu
        "n0": {"op": "linear", "input": ["x", "h_prev_0"]},
        "n1": {"op": "activation_sigm", "input": ["n0"]},
        "n2": {"op": "linear", "input": ["n1", "h_prev_0", "x"]},
        "n3": {"op": "activation_leaky_relu", "input": ["n2"]},
        "n4": {"op": "elementwise_sum", "input": ["n3", "x", "n1"]},
        "h_new_0": {"op": "blend", "input": ["n1", "h_prev_0", "n4"]}}
    cell = RecipeCell(recipe, 4, 4)
    x = torch.randn(2, 5, 4)
    lengths = torch.tensor([5, 3])
    out, st = cell(x, lengths)
    x2 = torch.cat([x, torch.randn(2, 4, 4)], 1)  # more (garbage) padding
    x2[1, 3:] = 50.0
    out2, st2 = cell(x2, lengths)
    torch.testing.assert_close(out2[:, :5], out)
    assert torch.all(out2[1, 3:] == 0) and torch.all(out2[:, 5:] == 0)
    alone, st_alone = cell(x[1:, :3])
    torch.testing.assert_close(st2[0][1], st_alone[0][0])
    torch.testing.assert_close(out2[1, :3], alone[0])


def test_x_in_non_linear_op_needs_matching_dims():
    r = {"h_new_0": {"op": "elementwise_sum", "input": ["x", "h_prev_0"]}}
    with pytest.raises(ConfigError, match="input_dim == hidden"):
        RecipeCell(r, 8, 4)
    RecipeCell(r, 4, 4)


def test_pool_frames_ignores_padding():
    x = torch.arange(14, dtype=torch.float32).view(1, 7, 2).repeat(2, 1, 1)
    lengths = torch.tensor([7, 5])
    p, n = pool_frames(x, lengths, 3)
    assert p.shape == (2, 3, 2) and n.tolist() == [3, 2]
    torch.testing.assert_close(p[0, 2], x[0, 6])
    torch.testing.assert_close(p[1, 1], x[1, 3:5].mean(0))
