import pytest
import torch

from emotionnas.errors import ConfigError
from emotionnas.models.layer_mix import LayerMix
from emotionnas.models.rnn_branch import RNNBranch
from emotionnas.space.recipe import gru_recipe

KINDS = ["rnn", "lstm", "gru", "linear", "mlp", "recipe:lstm", "recipe:gru"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pooling,mean_skip", [("attention", False), ("meanstd", False), ("mean", False),
                                               ("attention", True)])
def test_branch_contract_and_padding_invariance(kind, pooling, mean_skip):
    torch.manual_seed(0)
    m = RNNBranch(kind, 6, hidden=5, layers=2 if kind == "lstm" else 1, n_classes=3,
                  n_layers_in=3, pooling=pooling, mean_skip=mean_skip).eval()
    width = 6 if kind == "linear" else 5
    assert m.out_dim == width * (2 if pooling == "meanstd" else 1) + 6 * (mean_skip and kind != "linear")
    x = torch.randn(2, 3, 7, 6)
    lengths = torch.tensor([7, 4])
    x[1, :, 4:] = 0
    e = m.embed(x, lengths)
    assert e.shape == (2, m.out_dim)
    logits = m(x, lengths)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    x2 = torch.cat([x, torch.full((2, 3, 3, 6), 9.0)], 2)
    x2[1, :, 4:] = 9.0
    torch.testing.assert_close(m(x2, lengths), logits)
    torch.testing.assert_close(m(x[1:, :, :4], lengths[1:]), logits[1:])
    logits.sum().backward()


def test_branch_accepts_3d_input_and_recipe_dict():
    m = RNNBranch(gru_recipe(), 4, hidden=8, n_classes=2)
    assert m(torch.randn(3, 5, 4), torch.tensor([5, 2, 1])).shape == (3, 2)
    with pytest.raises(ConfigError, match="unknown kind"):
        RNNBranch("transformer", 4, n_classes=2)


def test_layer_mix():
    x = torch.randn(2, 4, 3, 5)
    w = LayerMix(4, "weighted")
    torch.testing.assert_close(w(x), x.mean(1))  # zero logits = uniform
    s = LayerMix(4, "select", layers=[2, 3])
    torch.testing.assert_close(s(x), x[:, 2:4].mean(1))
    assert s(x[:, 0]) is not None and s(x[:, 0]).shape == (2, 3, 5)
    torch.testing.assert_close(w.weights().sum(), torch.tensor(1.0))
    with pytest.raises(ConfigError):
        LayerMix(4, "select", layers=[4])


def test_branch_from_user_recipe_json(tmp_path):
    import json
    # NAS-Bench-NLP style: numbered nodes, a 3-input linear reading other nodes, leaky ReLU
    recipe = {"node_0": {"op": "linear", "input": ["h_prev_0", "x"]},
              "node_1": {"op": "activation_leaky_relu", "input": ["node_0"]},
              "node_2": {"op": "linear", "input": ["x", "node_1", "h_prev_0"]},
              "h_new_0": {"op": "activation_tanh", "input": ["node_2"]}}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    m = RNNBranch(str(path), 6, hidden=4, n_classes=3)
    assert m.kind == "recipe" and m.recipe == recipe and m.proj is None
    assert m(torch.randn(2, 5, 6), torch.tensor([5, 3])).shape == (2, 3)
    path.write_text(json.dumps({"h_new_0": {"op": "linear", "input": ["x", "ghost"]}}))
    with pytest.raises(ConfigError, match="recipe.json: node 'h_new_0' reads 'ghost'"):
        RNNBranch(str(path), 6, n_classes=3)
