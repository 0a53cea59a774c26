import inspect

import pytest
import torch

from conftest import Interrupt, check_search_outputs, stop_after, without_time
from emotionnas.errors import ConfigError
from emotionnas.space.recipe import load_recipe, validate_recipe
from emotionnas.config import RNNSearchConfig
from emotionnas.search.rnn.search import search_rnn
from emotionnas.search.rnn.supernet import SuperCell


@pytest.mark.parametrize("n_states", [1, 2])
def test_derive_always_gives_a_valid_recipe(n_states):
    for seed in range(40):
        torch.manual_seed(seed)
        cell = SuperCell(4, n_nodes=4, n_states=n_states)
        with torch.no_grad():  # random, peaked architectures
            for p in cell.arch_parameters():
                p.normal_(0, 3)
        r = validate_recipe(cell.derive())
        assert (n_states == 2) == ("h_new_1" in r)


def test_derive_follows_the_argmaxes():
    cell = SuperCell(4, n_nodes=2, n_states=1)
    with torch.no_grad():
        for p in cell.arch_parameters():
            p.zero_()
        cell.alpha[0, 0] = 5  # node_0: linear
        cell.beta[0, 0, 0] = 5  # slot a <- x
        cell.beta[0, 1, 1] = 5  # slot b <- h_prev_0
        cell.alpha[1, 6] = 5  # node_1: leaky relu of node_0
        cell.beta[1, 0, 2] = 5
        cell.gamma[0, 1] = 5
    assert cell.derive() == {
        "node_0": {"op": "linear", "input": ["x", "h_prev_0"]},
        "node_1": {"op": "activation_leaky_relu", "input": ["node_0"]},
        "h_new_0": {"op": "activation_tanh", "input": ["node_1"]},
    }


def test_supernet_masks_padding():
    torch.manual_seed(0)
    cell = SuperCell(4, n_nodes=3, n_states=2)
    x = torch.randn(2, 6, 4)
    lengths = torch.tensor([6, 3])
    out = cell(x, lengths)
    x2 = x.clone()
    x2[1, 3:] = 7.0
    torch.testing.assert_close(cell(x2, lengths), out)
    torch.testing.assert_close(cell(x[1:, :3], lengths[1:]), out[1:, :3])


def _data(n, seed, layers=3, T=12, D=6):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    lengths = torch.randint(4, T + 1, (n,), generator=g)
    x = 0.5 * torch.randn(n, layers, T, D, generator=g)
    x[:, layers // 2, :, :3] += torch.nn.functional.one_hot(y, 3).float()[:, None]
    x *= (torch.arange(T)[None] < lengths[:, None]).float()[:, None, :, None]
    return x, lengths, y


CFG = dict(hidden=8, n_nodes=3, warmup_epochs=1, batch_size=16)


@pytest.mark.slow  # trains three searches
def test_search_writes_outputs_and_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    tr, va = _data(48, 0), _data(16, 1)
    full = search_rnn(*tr, *va, RNNSearchConfig(epochs=4, **CFG), tmp_path / "full", progress=False)
    assert load_recipe(tmp_path / "full" / "recipe.json") == full
    log_full = check_search_outputs(tmp_path / "full", full, warmup_epochs=1, epochs=4, y_val=va[2])
    assert log_full["epochs"][-1]["arch"]["alpha"] != log_full["epochs"][0]["arch"]["alpha"]  # α moved
    # killed after 3 of 4 epochs, then resumed
    with pytest.raises(Interrupt):
        search_rnn(*tr, *va, RNNSearchConfig(epochs=4, **CFG), tmp_path / "kill", progress=False,
                   on_epoch_end=stop_after(3))
    ran = []
    killed = search_rnn(*tr, *va, RNNSearchConfig(epochs=4, **CFG), tmp_path / "kill", progress=False,
                        on_epoch_end=lambda done, r: ran.append(done))
    # run for 2 epochs, then extended to 4 (epochs is the one resume-free field: the lr is constant)
    search_rnn(*tr, *va, RNNSearchConfig(epochs=2, **CFG), tmp_path / "part", progress=False)
    extended = search_rnn(*tr, *va, RNNSearchConfig(epochs=4, **CFG), tmp_path / "part", progress=False)
    assert ran == [4] and killed == extended == full
    for run in ("kill", "part"):
        log = check_search_outputs(tmp_path / run, full, warmup_epochs=1, epochs=4, y_val=va[2])
        assert without_time(log) == without_time(log_full), run
    s_full = torch.load(tmp_path / "full" / "search_state.pt", weights_only=True)
    s_kill = torch.load(tmp_path / "kill" / "search_state.pt", weights_only=True)
    for k, v in s_full["model"].items():
        assert torch.equal(v, s_kill["model"][k]), k
    with pytest.raises(ConfigError, match="search_state.pt: written with a different config .hidden"):
        search_rnn(*tr, *va, RNNSearchConfig(epochs=4, **{**CFG, "hidden": 4}), tmp_path / "full",
                   progress=False)
    with pytest.raises(ConfigError, match="holds 4 epochs, more than the 2 asked for"):
        search_rnn(*tr, *va, RNNSearchConfig(epochs=2, **CFG), tmp_path / "full", progress=False)


def test_search_sees_only_the_tensors_it_is_given(tmp_path, monkeypatch):
    # the contract: tensors in, no speakers, no corpus, no paths other than out_dir
    params = list(inspect.signature(search_rnn).parameters)
    assert params == ["x_tr", "len_tr", "y_tr", "x_val", "len_val", "y_val", "cfg", "out_dir", "seed", "progress",
                      "on_epoch_end"]
    monkeypatch.chdir(tmp_path)
    tr, va = _data(20, 0, layers=1), _data(12, 1, layers=1)
    tr = (tr[0][:, 0], tr[1], tr[2])  # (N, T, D) input is accepted too
    va = (va[0][:, 0], va[1], va[2])
    search_rnn(*tr, *va, RNNSearchConfig(epochs=2, **CFG), tmp_path / "out", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(ConfigError, match="must be torch tensors"):
        search_rnn(tr[0].numpy(), *tr[1:], *va, RNNSearchConfig(epochs=1, **CFG), tmp_path / "o2",
                   progress=False)
    with pytest.raises(ConfigError, match="lengths must be in"):
        search_rnn(tr[0], tr[1] * 0, tr[2], *va, RNNSearchConfig(epochs=1, **CFG), tmp_path / "o3",
                   progress=False)


def test_deep_inputs_pools_and_selects_layers():
    import numpy as np

    from emotionnas.features.inputs import deep_inputs
    rng = np.random.default_rng(0)
    deep = [rng.standard_normal((4, t, 3)).astype(np.float16) for t in (7, 3, 5)]
    x, lengths = deep_inputs(deep, layers=[2, 3], frame_pool=2, chunk=2)
    assert x.shape == (3, 2, 4, 3) and x.dtype == torch.float32 and lengths.tolist() == [4, 2, 3]
    torch.testing.assert_close(x[1, 0, 1], torch.from_numpy(deep[1][2, 2].astype(np.float32)))
    torch.testing.assert_close(x[0, 1, 0], torch.from_numpy(deep[0][3, :2].astype(np.float32)).mean(0))
    assert torch.all(x[1, :, 2:] == 0)


def test_config_validation():
    from emotionnas.config import RunConfig
    assert RunConfig.from_dict({"rnn": {"search": {"epochs": 3}}}).rnn.search.epochs == 3
    with pytest.raises(ConfigError, match="unknown key"):
        RunConfig.from_dict({"rnn": {"search": {"epoch": 3}}})
    with pytest.raises(ConfigError, match="n_states"):
        RunConfig.from_dict({"rnn": {"search": {"n_states": 3}}})
