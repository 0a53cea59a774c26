import pytest
import torch

from emotionnas.models.fusion import FUSIONS, ISMFusion, create_fusion


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_fusion_contract(name):
    f = create_fusion(name, 6, 10)
    x1, x2 = torch.randn(3, 6, requires_grad=True), torch.randn(3, 10, requires_grad=True)
    out = f(x1, x2)
    assert out.shape == (3, f.out_dim) and torch.isfinite(out).all()
    out.sum().backward()
    assert x1.grad.abs().sum() > 0 and x2.grad.abs().sum() > 0


def test_ism_formula():
    f = ISMFusion(4, 5)
    x1, x2 = torch.randn(2, 4), torch.randn(2, 5)
    h1 = f.proj1(x1)
    expected = x2 + torch.tanh(f.proj2(x2) * h1) * h1
    assert torch.allclose(f(x1, x2), expected)
    # with a zero supplementary projection, the dominant stream passes unchanged
    torch.nn.init.zeros_(f.proj1.weight)
    torch.nn.init.zeros_(f.proj1.bias)
    assert torch.allclose(f(x1, x2), x2)


def test_min_max_sum():
    x1, x2 = torch.randn(2, 3), torch.randn(2, 3)
    for name, op in [("sum", torch.add), ("max", torch.maximum), ("min", torch.minimum)]:
        f = create_fusion(name, 3, 3)
        assert torch.allclose(f(x1, x2), op(f.proj1(x1), x2))


def test_unknown_fusion_and_dominant_swap():
    with pytest.raises(ValueError, match="unknown fusion"):
        create_fusion("mean", 2, 2)
    from emotionnas.models.two_stream import TwoStreamModel
    spec, deep = torch.nn.Linear(3, 4), torch.nn.Linear(3, 8)
    spec.out_dim, deep.out_dim = 4, 8
    spec.embed = lambda x: spec(x)
    deep.embed = lambda x, lengths: deep(x)
    m = TwoStreamModel(spec, deep, 3, "ism", dominant="spectrogram")
    assert m.fusion.out_dim == 4 and m(torch.randn(2, 3), torch.randn(2, 3), None).shape == (2, 3)
