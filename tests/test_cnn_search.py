"""DARTS search space, derivation, bi-level updates and resumable search (tiny tensors)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import Interrupt, check_search_outputs, stop_after, without_time
from emotionnas.errors import ConfigError
from emotionnas.search.architect import Architect
from emotionnas.search.loop import weight_step
from emotionnas.space.cnn_cells import MixedOp, SearchCell, reduction_layers
from emotionnas.space.genotype import Genotype, derive_cell, derive_genotype, edge_index, n_edges
from emotionnas.space.cnn_ops import OPS, PRIMITIVES, AvgPool3x3, FactorizedReduce
from emotionnas.config import CNNSearchConfig
from emotionnas.search.cnn.search import SearchJob, search_cnn
from emotionnas.search.cnn.supernet import SuperNet, beta_decay

@pytest.fixture(autouse=True)
def _one_thread():
    # Two OpenMP threads on a shared 2-core machine spin-wait: tiny convs go 100x slower.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


GENO = Genotype(
    normal=[["sep_conv_3x3", 0], ["skip_connect", 1], ["dil_conv_3x3", 0], ["avg_pool_3x3", 2],
            ["max_pool_3x3", 1], ["sep_conv_5x5", 3], ["dil_conv_5x5", 2], ["skip_connect", 4]],
    normal_concat=[2, 3, 4, 5],
    reduce=[["max_pool_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["dil_conv_5x5", 2],
            ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["skip_connect", 1], ["dil_conv_3x3", 4]],
    reduce_concat=[2, 3, 4, 5])


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [7, 8])
def test_op_shapes_and_strides(name, stride, size):
    torch.manual_seed(0)
    op = OPS[name](4, stride, True)
    y = op(torch.randn(2, 4, size, size + 1))
    assert y.shape == (2, 4, math.ceil(size / stride), math.ceil((size + 1) / stride))


def test_fast_avg_pool_matches_aten_and_no_strided_pointwise_conv():
    x = torch.randn(2, 3, 9, 10)
    for s in (1, 2):
        ref = F.avg_pool2d(x, 3, s, 1, count_include_pad=False)
        assert torch.allclose(AvgPool3x3(s)(x), ref, atol=1e-6)
    # Crash guard: no 1x1 convolution anywhere may have stride 2 (see ops.py).
    net = SuperNet(4, 3, 3, PRIMITIVES)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert convs and all(m.stride == (1, 1) for m in convs)
    fr = FactorizedReduce(3, 4, affine=False)
    assert fr(torch.randn(2, 3, 35, 35)).shape == (2, 4, 18, 18)


def test_mixed_op_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    mixed = MixedOp(4, 1, PRIMITIVES).eval()
    x = torch.randn(2, 4, 6, 6)
    outs = [op(x) for op in mixed.ops]
    one_hot = torch.zeros(len(PRIMITIVES))
    k = PRIMITIVES.index("sep_conv_3x3")
    one_hot[k] = 1.0
    assert torch.allclose(mixed(x, one_hot), outs[k], atol=1e-6)
    w = torch.softmax(torch.randn(len(PRIMITIVES)), 0)
    assert torch.allclose(mixed(x, w), sum(wi * o for wi, o in zip(w, outs)), atol=1e-5)
    pc = MixedOp(4, 2, PRIMITIVES, partial_channels=2)
    assert pc(x, w).shape == (2, 4, 3, 3)


def test_reduction_cells_at_thirds_and_cell_shapes():
    assert reduction_layers(3) == (1, 2) and reduction_layers(4) == (1, 2) and reduction_layers(8) == (2, 5)
    cell = SearchCell(PRIMITIVES, 4, 6, 6, 4, reduction=True, reduction_prev=False)
    w = torch.softmax(torch.randn(n_edges(4), len(PRIMITIVES)), -1)
    assert cell(torch.randn(2, 6, 9, 9), torch.randn(2, 6, 9, 9), w).shape == (2, 16, 5, 5)


def test_derivation_keeps_top2_edges_and_never_none():
    prims = list(PRIMITIVES)
    w = np.full((n_edges(4), len(prims)), 0.01)
    # Node 0: edge from input 0 has the biggest weight on 'none' only -> must lose.
    w[edge_index(0, 0), prims.index("none")] = 0.9
    w[edge_index(0, 1), prims.index("sep_conv_3x3")] = 0.5
    w[edge_index(0, 1), prims.index("none")] = 0.99
    # Node 3: the two strongest real edges are inputs 4 and 1.
    w[edge_index(3, 4), prims.index("dil_conv_5x5")] = 0.6
    w[edge_index(3, 1), prims.index("max_pool_3x3")] = 0.4
    w[edge_index(3, 0), prims.index("avg_pool_3x3")] = 0.3
    pairs = derive_cell(w, prims, 4)
    assert len(pairs) == 8 and all(op != "none" for op, _ in pairs)
    assert ("sep_conv_3x3", 1) in pairs[0:2]
    assert sorted(pairs[6:8], key=lambda p: p[1]) == [("max_pool_3x3", 1), ("dil_conv_5x5", 4)]
    for i in range(4):
        assert pairs[2 * i][1] != pairs[2 * i + 1][1] and max(pairs[2 * i][1], pairs[2 * i + 1][1]) < i + 2


def test_max_skip_limits_skip_connections():
    prims = list(PRIMITIVES)
    w = np.full((n_edges(4), len(prims)), 0.01)
    w[:, prims.index("skip_connect")] = 0.9  # collapsed: every edge prefers skip
    w[:, prims.index("sep_conv_3x3")] = 0.5
    assert sum(op == "skip_connect" for op, _ in derive_cell(w, prims, 4)) == 8
    g = derive_genotype(w, w, prims, 4, max_skip=2)
    assert sum(op == "skip_connect" for op, _ in g.normal) == 2
    assert sum(op == "skip_connect" for op, _ in g.reduce) == 8  # the guard is for normal cells


def test_genotype_json_round_trip_and_errors(tmp_path):
    path = tmp_path / "genotype.json"
    GENO.save(path)
    assert Genotype.load(path) == GENO
    assert json.loads(path.read_text())["normal"][0] == ["sep_conv_3x3", 0]
    path.write_text("{\"normal\": []}")
    with pytest.raises(ConfigError, match="genotype.json"):
        Genotype.load(path)
    with pytest.raises(ConfigError, match="input 5"):
        Genotype([["skip_connect", 5], ["skip_connect", 0]], [2], [["skip_connect", 0]] * 2, [2])


def _toy(n=16, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, size, size, generator=g) + y[:, None, None, None].float()
    return x, y


@pytest.mark.slow  # trains a supernet
def test_alpha_step_uses_only_val_split_and_weight_step_never_moves_alpha():
    torch.manual_seed(0)
    net = SuperNet(4, 3, 3, PRIMITIVES)
    x_val, y_val = _toy()
    arch = Architect(net, arch_lr=0.01, arch_weight_decay=0.0)
    weights0 = [p.detach().clone() for p in net.weight_parameters()]
    alphas0 = [a.detach().clone() for a in net.arch_parameters()]
    x_nan = torch.full_like(x_val, float("nan"))  # poison: any use of the train split shows up
    arch.step((x_val,), y_val, (x_nan,), y_val)
    assert all(torch.equal(a, b) for a, b in zip(weights0, net.weight_parameters()))
    assert all(torch.isfinite(a).all() and not torch.equal(a, b) for a, b in zip(net.arch_parameters(), alphas0))
    alphas1 = [a.detach().clone() for a in net.arch_parameters()]
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    weight_step(net, w_opt, (x_val,), y_val, 5.0)
    assert all(torch.equal(a, b) for a, b in zip(net.arch_parameters(), alphas1))
    assert all(a.grad is None for a in net.arch_parameters())
    assert not all(torch.equal(a, b) for a, b in zip(weights0, net.weight_parameters()))


@pytest.mark.slow  # trains a supernet
def test_second_order_and_partial_channels_and_beta_decay():
    torch.manual_seed(0)
    net = SuperNet(4, 3, 3, PRIMITIVES, partial_channels=2)
    assert len(net.arch_parameters()) == 4  # α and edge β, normal and reduce
    x, y = _toy()
    arch = Architect(net, arch_lr=0.01, arch_weight_decay=0.0, unrolled=True, regulariser=beta_decay)
    before = [a.detach().clone() for a in net.arch_parameters()]
    weights0 = [p.detach().clone() for p in net.weight_parameters()]
    arch.step((x[:8],), y[:8], (x[8:],), y[8:], w_lr=0.05, reg_lambda=1.0)
    assert all(not torch.equal(a, b) for a, b in zip(net.arch_parameters(), before))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights0, net.weight_parameters()))
    # β-decay's gradient is softmax(α): it pushes the largest α down the most.
    a = torch.zeros(2, 3, requires_grad=True)
    beta_decay(type("M", (), {"alphas_normal": a, "alphas_reduce": a * 0})()).backward()
    assert torch.allclose(a.grad, torch.full((2, 3), 1 / 3 / 4))


def _cfg(**kw):
    job = {k: kw.pop(k) for k in ("C", "layers", "head", "seed", "threads") if k in kw}
    base = dict(epochs=3, warmup_epochs=1, batch_size=8, proxy_size=None)
    return SearchJob(CNNSearchConfig(**{**base, **kw}), **{"C": 4, "layers": 3, "seed": 3, **job})


@pytest.mark.slow  # trains a supernet
def test_search_resumes_after_interrupt_and_matches_uninterrupted(tmp_path, capsys):
    x_tr, y_tr = _toy(16, 8, 1)
    x_val, y_val = _toy(16, 8, 2)
    full = tmp_path / "full"
    g_full = search_cnn(x_tr, y_tr, x_val, y_val, _cfg(), full, progress=False)
    log_full = check_search_outputs(full, json.loads(g_full.to_json()), warmup_epochs=1, epochs=3, y_val=y_val)
    assert Genotype.load(full / "genotype.json") == g_full
    part = tmp_path / "part"
    with pytest.raises(Interrupt):  # killed after two of three epochs
        search_cnn(x_tr, y_tr, x_val, y_val, _cfg(), part, progress=False, on_epoch_end=stop_after(2))
    assert len(json.loads((part / "search_log.json").read_text())["epochs"]) == 2
    ran = []
    g_part = search_cnn(x_tr, y_tr, x_val, y_val, _cfg(), part, progress=False,
                        on_epoch_end=lambda done, r: ran.append(done))
    assert ran == [3] and g_part == g_full
    log_part = check_search_outputs(part, json.loads(g_part.to_json()), warmup_epochs=1, epochs=3, y_val=y_val)
    assert without_time(log_part) == without_time(log_full)
    s_full = torch.load(full / "search_state.pt", weights_only=True)
    s_part = torch.load(part / "search_state.pt", weights_only=True)
    for k, v in s_full["model"].items():
        assert torch.equal(v, s_part["model"][k]), k
    # a finished search re-run derives the same cell without training
    assert search_cnn(x_tr, y_tr, x_val, y_val, _cfg(), part, progress=False, on_epoch_end=stop_after(1)) == g_full
    with pytest.raises(ConfigError, match="search_state.pt: written with a different config"):
        search_cnn(x_tr, y_tr, x_val, y_val, _cfg(C=8), part, progress=False)
    with pytest.raises(ConfigError, match="different config .epochs=3"):  # the lr schedule depends on it
        search_cnn(x_tr, y_tr, x_val, y_val, _cfg(epochs=4), part, progress=False)
    # a truncated checkpoint is reported and the search starts over, to the same result
    (part / "search_state.pt").write_bytes((part / "search_state.pt").read_bytes()[:17])
    assert search_cnn(x_tr, y_tr, x_val, y_val, _cfg(), part, progress=False) == g_full
    assert "unreadable checkpoint" in capsys.readouterr().err
    torch.save({"epoch": 1, "model": {}}, part / "search_state.pt")  # readable, another format
    with pytest.raises(ConfigError, match="not a search state of format"):
        search_cnn(x_tr, y_tr, x_val, y_val, _cfg(), part, progress=False)


def test_zero_epochs_derives_the_untrained_supernet(tmp_path):
    x, y = _toy(8, 8, 1)
    g = search_cnn(x, y, x, y, _cfg(epochs=0, warmup_epochs=0), tmp_path, progress=False)
    log = check_search_outputs(tmp_path, json.loads(g.to_json()), warmup_epochs=0, epochs=0, y_val=y)
    assert log["epochs"] == [] and log["result_epoch"] == 0


def test_warmup_freezes_alpha_and_emodarts_search_runs(tmp_path):
    x_tr, y_tr = _toy(12, 16, 1)
    x_val, y_val = _toy(8, 16, 2)
    cfg = _cfg(epochs=1, warmup_epochs=1, head="lstm", lstm_hidden=8, proxy_size=8, partial_channels=2)
    search_cnn(x_tr, y_tr, x_val, y_val, cfg, tmp_path, progress=False)
    state = torch.load(tmp_path / "search_state.pt", weights_only=True)
    torch.manual_seed(cfg.seed)
    fresh = SuperNet(cfg.C, cfg.layers, 3, cfg.ops, partial_channels=2, head="lstm", lstm_hidden=8)
    assert torch.equal(state["model"]["alphas_normal"], fresh.alphas_normal.detach())
