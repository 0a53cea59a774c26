"""Networks built from genotypes, emoDARTS, ResNet baselines, drawings, and the 140x140 crash guard."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from emotionnas.models.cnn_branch import CNNBranch, count_parameters
from emotionnas.models.emodarts import EmoDARTS
from emotionnas.models.resnet import resnet18, resnet_star
from emotionnas.reports.draw_cnn import draw_genotype
from emotionnas.space.genotype import Genotype

GENO = Genotype(
    normal=[["sep_conv_3x3", 0], ["skip_connect", 1], ["dil_conv_3x3", 0], ["avg_pool_3x3", 2],
            ["max_pool_3x3", 1], ["sep_conv_5x5", 3], ["dil_conv_5x5", 2], ["skip_connect", 4]],
    normal_concat=[2, 3, 4, 5],
    reduce=[["max_pool_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["dil_conv_5x5", 2],
            ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["skip_connect", 1], ["dil_conv_3x3", 4]],
    reduce_concat=[2, 3, 4, 5])


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("C,layers", [(4, 3), (6, 3), (8, 4)])
def test_cnn_branch_contract(C, layers):
    torch.manual_seed(0)
    net = CNNBranch(GENO, C, layers, n_classes=7, drop_path_prob=0.2)
    x = torch.randn(3, 1, 20, 20)
    emb = net.embed(x)
    assert emb.shape == (3, net.out_dim) and net.out_dim == 4 * 4 * C
    logits = net(x, lengths=None)
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())
    assert count_parameters(CNNBranch(GENO, 2 * C, layers, 7)) > count_parameters(net)


def test_emodarts_is_batch_permutation_equivariant():
    """The LSTM runs over time within each sample (batch_first), never across the batch."""
    torch.manual_seed(0)
    net = EmoDARTS(GENO, 4, 3, n_classes=5, lstm_hidden=8).eval()
    x = torch.randn(6, 1, 24, 32)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        out, out_perm = net(x), net(x[perm])
        single = net(x[2:3])
    assert out.shape == (6, 5) and net.embed(x).shape == (6, net.out_dim)
    assert torch.allclose(out[perm], out_perm, atol=1e-5)
    assert torch.allclose(out[2:3], single, atol=1e-5)
    assert net.head.lstm.batch_first


def test_baseline_parameter_counts():
    n18, nstar = count_parameters(resnet18(7)), count_parameters(resnet_star(7))
    assert abs(n18 - 11.2e6) / 11.2e6 < 0.10
    assert abs(nstar - 1.2e6) / 1.2e6 < 0.10
    net = resnet_star(7)
    assert net(torch.randn(2, 1, 40, 40)).shape == (2, 7) and net.embed(torch.randn(2, 1, 40, 40)).shape == (2, 168)


def test_draw_genotype_writes_png_and_svg(tmp_path):
    paths = draw_genotype(GENO, tmp_path / "cells" / "geno")
    assert sorted(p.name for p in paths) == ["geno_normal.png", "geno_normal.svg",
                                             "geno_reduce.png", "geno_reduce.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    svg = (tmp_path / "cells" / "geno_normal.svg").read_text()
    assert "sep_conv_5x5" in svg or "sep\\_conv" in svg or "<svg" in svg


@pytest.mark.slow  # a subprocess training 140x140 cells
def test_reduction_cell_140x140_channels_last_forward_backward_does_not_crash():
    """Regression: a stride-2 1x1 conv backward in channels_last crashes torch 2.13 on this
    CPU for inputs >= 56x56. Run in a subprocess so a crash fails this test, not pytest."""
    code = textwrap.dedent("""
        import torch
        torch.set_num_threads(1)
        from emotionnas.space.cnn_cells import Cell, SearchCell
        from emotionnas.space.cnn_ops import PRIMITIVES
        from emotionnas.space.genotype import Genotype, n_edges
        g = Genotype([["skip_connect", 0], ["skip_connect", 1]] * 4, [2, 3, 4, 5],
                     [["skip_connect", 0], ["skip_connect", 1]] * 4, [2, 3, 4, 5])
        cl = torch.channels_last
        # Shapes of the C6L3 network at 140x140: first reduction cell (inputs 140x140, 18 and
        # 24 channels), and a reduction right after a reduction (preprocess0 reduces 140 -> 70).
        cases = [(Cell(g, 18, 24, 12, reduction=True, reduction_prev=False), 140, 140, 48, 70),
                 (Cell(g, 24, 48, 24, reduction=True, reduction_prev=True), 140, 70, 96, 35),
                 (SearchCell(["skip_connect", "sep_conv_3x3"], 4, 18, 24, 12, True, False), 140, 140, 48, 70)]
        for cell, h0, h1, c_out, h_out in cases:
            cell = cell.to(memory_format=cl)
            c0 = [m for m in cell.preprocess0.modules() if isinstance(m, torch.nn.Conv2d)][0].in_channels
            c1 = [m for m in cell.preprocess1.modules() if isinstance(m, torch.nn.Conv2d)][0].in_channels
            s0 = torch.randn(2, c0, h0, h0).contiguous(memory_format=cl).requires_grad_(True)
            s1 = torch.randn(2, c1, h1, h1).contiguous(memory_format=cl).requires_grad_(True)
            args = (s0, s1) if isinstance(cell, Cell) else (s0, s1, torch.full((14, 2), 0.5))
            out = cell(*args)
            assert out.shape == (2, c_out, h_out, h_out), out.shape
            out.square().mean().backward()
            assert torch.isfinite(s0.grad).all() and torch.isfinite(s1.grad).all()
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])
