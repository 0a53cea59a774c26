import pytest
import torch

from emotionnas.models.fusion import FUSIONS, ISMFusion, create_fusion
from emotionnas.models.two_stream import EmbeddingFusionModel


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
    m = EmbeddingFusionModel(4, 8, 3, "ism", dominant="spectrogram")
    assert m.fusion.out_dim == 4 and m(torch.randn(2, 4), torch.randn(2, 8)).shape == (2, 3)


@pytest.mark.parametrize("name", ["concat", "sum", "ism"])
def test_fusion_starts_as_the_dominant_branch(name):
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 3)
    e_spec, e_deep = torch.randn(5, 4), torch.randn(5, 6)
    exact = EmbeddingFusionModel(4, 6, 3, fusion=name).eval()
    exact.start_from_dominant(head, supplement_scale=0.0)  # concat: zero X1 weights; sum, ISM: H1 = 0
    torch.testing.assert_close(exact(e_spec, e_deep), head(e_deep))
    if name != "concat":  # a small but trainable supplement: close to the branch, not equal
        near = EmbeddingFusionModel(4, 6, 3, fusion=name).eval()
        near.start_from_dominant(head, supplement_scale=0.1)
        diff = (near(e_spec, e_deep) - head(e_deep)).abs().max()
        assert 0 < diff < 0.5


def test_fit_keeps_the_initial_model_when_training_only_hurts():
    import numpy as np

    from emotionnas.training.loop import ArraySplit, TrainConfig, fit
    torch.manual_seed(0)
    x = torch.randn(40, 2)
    y = (x[:, 0] > 0).long().numpy()
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():  # a perfect classifier to start from
        model.weight.copy_(torch.tensor([[-5.0, 0.0], [5.0, 0.0]]))
        model.bias.zero_()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    flipped = ArraySplit((x,), 1 - y)  # training on flipped labels can only hurt validation
    res = fit(model, flipped, ArraySplit((x,), y), TrainConfig(epochs=5, lr=0.5, patience=5), 2,
              seed=0, keep_initial=True)
    assert res.best_epoch == 0 and res.history[0]["epoch"] == 0 and res.best_val_ua == 100.0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, start[k])
    assert np.isfinite(res.history[-1]["train_loss"])
