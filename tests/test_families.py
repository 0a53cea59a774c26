"""Contract test over the model-family registry (space/families.py), as timm tests every model:
each registered family is built from a Candidate, runs forward and backward on a small batch
with finite outputs, saves and loads to the same outputs, and exports to ONNX equal to torch
where it says it can. A toy family registered here runs through a real selection: adding a
family is its module + one registry line."""
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from emotionnas.errors import ConfigError
from emotionnas.features.inputs import InputSpec
from emotionnas.models.build import build_model, input_spec
from emotionnas.space.families import FAMILIES, Family, family, names, register, unregister
from emotionnas.space.genotype import Genotype
from emotionnas.space.model_spec import Dims, needs_genotype, needs_recipe
from emotionnas.space.pipeline import Candidate, enumerate_space

DIMS = Dims(n_classes=3, deep_dim=8, deep_layers_total=4, cnn_C=4, cnn_layers=3)
GENOTYPE = json.loads(Genotype((("sep_conv_3x3", 0), ("avg_pool_3x3", 1)) * 4, (2, 3, 4, 5),
                               (("max_pool_3x3", 0), ("skip_connect", 1)) * 4, (2, 3, 4, 5)).to_json())
RECIPE = {"pre": {"op": "linear", "input": ["x", "h_prev_0"]}, "h_new_0": {"op": "activation_tanh", "input": ["pre"]}}
SPEC_SIZE = (32, 32)


def candidate_for(name: str) -> Candidate:
    f = family(name)
    if f.stream == "deep":  # a family tuning the encoder blocks above one layer reads one
        return Candidate(name, (1,) if f.tunes_encoder else (1, 2), 2, "meanstd", 16, 0.0)
    return Candidate("none", (1,), 2, "attention", 16, 0.0, name)


def inputs_for(c: Candidate, batch: int = 3, frames: int = 11):
    gen = torch.Generator().manual_seed(0)
    out = []
    if c.spectrogram != "none":
        out.append(torch.randn(batch, 1, *SPEC_SIZE, generator=gen))
    if c.deep != "none":
        out += [torch.randn(batch, len(c.layers), frames, DIMS.deep_dim, generator=gen),
                torch.tensor([frames, frames - 3, 5][:batch])]
    return out


def build(c: Candidate) -> nn.Module:
    torch.manual_seed(0)
    return build_model(c, DIMS, GENOTYPE if needs_genotype(c) else None, RECIPE if needs_recipe(c) else None)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_builds_trains_saves_and_loads(name):
    c = candidate_for(name)
    net = build(c)
    x = inputs_for(c)
    net.train()
    logits = net(*x)
    assert logits.shape == (3, DIMS.n_classes) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    net.eval()
    with torch.no_grad():
        before = net(*x)
        emb = net.embed(*x)  # the vector the classifier reads (predict --embeddings)
    assert emb.ndim == 2 and emb.shape[0] == 3 and torch.isfinite(emb).all()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    again = build(c)
    again.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    again.eval()
    with torch.no_grad():
        assert torch.equal(again(*x), before)


@pytest.mark.parametrize("name", sorted(n for n, f in FAMILIES.items() if f.onnx))
def test_every_family_that_says_onnx_exports_equal_to_torch(name, tmp_path):
    pytest.importorskip("onnxruntime")
    from emotionnas.recognizer.onnx_export import export_member
    c = candidate_for(name)
    net = build(c)
    names_, err = export_member(net, input_spec(c), DIMS, SPEC_SIZE, tmp_path / "m.onnx", 17,
                                torch.Generator().manual_seed(0), c)
    assert names_ == (["spectrogram"] if c.spectrogram != "none" else []) + \
        (["deep", "lengths"] if c.deep != "none" else [])
    assert err < 1e-3


def test_registry_is_the_one_vocabulary():
    assert names("deep")[0] == "none" and "gru" in names("deep") and "resnet*" in names("spectrogram")
    assert {f.stream for f in FAMILIES.values()} == {"deep", "spectrogram"}
    with pytest.raises(ConfigError, match="unknown model family"):
        family("transformer")
    with pytest.raises(ConfigError, match="candidate.deep"):
        Candidate("resnet*")  # a spectrogram family on the deep stream
    with pytest.raises(ConfigError, match="already registered"):
        register(Family("gru", "deep", "x:y"))
    with pytest.raises(ConfigError, match="names its search"):
        Family("half", "deep", "x:y", needs="recipe")


# ------------------------------------------------------------ a family added in the test itself
class ToyNet(nn.Module):
    """Mean over layers and frames, then a linear layer: the smallest deep-stream family."""

    def __init__(self, dims):
        super().__init__()
        self.head = nn.Linear(dims.deep_dim, dims.n_classes)

    def forward(self, x, lengths):
        mask = (torch.arange(x.shape[2])[None, :] < lengths[:, None]).float()
        pooled = (x.mean(1) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled)


@pytest.fixture
def toy_family():
    register(Family("toy", "deep", lambda c, dims, arch, source: ToyNet(dims), width=False, frame_model=False))
    yield "toy"
    unregister("toy")


@pytest.mark.slow  # a real run_crossval
def test_a_family_registered_in_one_line_runs_through_selection(toy_family, demo_root, tmp_path):
    from emotionnas.cli import demo_config
    from emotionnas.training.crossval import run_crossval
    c = Candidate("toy", (1,), 4, "mean", 32, 0.2)
    assert c.name.startswith("toy-L1") and not c.expensive
    cfg = demo_config(str(demo_root), str(tmp_path / "cache"))
    cfg.max_folds, cfg.workers = 1, 1          # serial: the toy family lives in this process only
    cfg.final_model = False
    cfg.space.deep, cfg.space.spectrogram = ["toy"], ["none"]
    cfg.space.layer_mix = False
    cfg.selection.budget, cfg.selection.eta = 9, 1  # 5 baselines + 4 toys; halving keeps all
    space = enumerate_space(cfg.space, [(0,), (1,)])
    # 2 windows x (mean, meanstd): attention becomes mean, the family has no frame model
    assert {s.deep for s in space} == {"toy"} and sorted(s.pooling for s in space) == ["mean", "mean", "meanstd", "meanstd"]
    results = run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    summaries = sorted((tmp_path / "run").rglob("selection.json"))
    rows = [r for s in summaries for r in json.loads(s.read_text())["candidates"] if r["candidate"]["deep"] == "toy"]
    assert len(rows) == 4 and all(np.isfinite(r["inner_ua"]) for r in rows)
    assert np.isfinite(results["ua"])
