"""One model builder: a candidate of the pipeline space -> a network; a validated model.json
(`space.model_spec.ModelSpec`) -> the ensemble it describes.

Selection, refits, baselines and the recognizer all build networks through `build_model`,
so a model served is built the way it was trained.
"""
from __future__ import annotations

from torch import nn

from emotionnas.errors import ConfigError
from emotionnas.features.inputs import InputSpec
from emotionnas.space.families import family
from emotionnas.space.genotype import Genotype
from emotionnas.space.model_spec import (MODEL_FORMAT_VERSION, Dims, Member, ModelSpec,  # noqa: F401
                                         needs_genotype, needs_recipe)
from emotionnas.space.pipeline import Candidate
from emotionnas.space.recipe import validate_recipe

def spectrogram_branch(c: Candidate, dims: Dims, arch: dict, source: str):
    """Builder of the spectrogram families darts, emodarts, resnet* (space/families.py)."""
    if c.spectrogram == "resnet*":
        from emotionnas.models.resnet import resnet_star
        return resnet_star(dims.n_classes)
    if arch.get("genotype") is None:
        raise ConfigError(f"{source}: spectrogram {c.spectrogram!r} needs a searched genotype")
    g = Genotype.from_dict(arch["genotype"], f"{source}: genotype")
    if c.spectrogram == "emodarts":
        from emotionnas.models.emodarts import EmoDARTS
        return EmoDARTS(g, dims.cnn_C, dims.cnn_layers, dims.n_classes)
    from emotionnas.models.cnn_branch import CNNBranch
    return CNNBranch(g, dims.cnn_C, dims.cnn_layers, dims.n_classes)


def deep_branch(c: Candidate, dims: Dims, arch: dict, source: str):
    """Builder of the frame-model families linear, mlp, rnn, gru, lstm, cell (space/families.py)."""
    from emotionnas.models.rnn_branch import RNNBranch
    kind = c.deep
    if family(c.deep).needs == "recipe":
        if arch.get("recipe") is None:
            raise ConfigError(f"{source}: deep {c.deep!r} needs a searched recipe")
        kind = validate_recipe(arch["recipe"], f"{source}: recipe")
    n_in = dims.deep_layers_total if c.layers == "all" else len(c.layers)
    return RNNBranch(kind, dims.deep_dim, hidden=c.hidden, n_classes=dims.n_classes, n_layers_in=n_in,
                     dropout=c.dropout, pooling=c.pooling)


def build_model(c: Candidate, dims: Dims, genotype: dict | None = None, recipe: dict | None = None,
                source: str = "candidate") -> nn.Module:
    """The network of candidate `c`, each stream built by its family's builder; its call
    signature follows `c.streams`: (spec,), (deep, lengths) or (spec, deep, lengths)."""
    arch = {"genotype": genotype, "recipe": recipe}
    spec = family(c.spectrogram).build(c, dims, arch, source) if c.spectrogram != "none" else None
    deep = family(c.deep).build(c, dims, arch, source) if c.deep != "none" else None
    if spec is None:
        return deep
    if deep is None:
        return spec
    from emotionnas.models.two_stream import TwoStreamModel
    return TwoStreamModel(spec, deep, dims.n_classes, fusion=c.fusion, dominant="deep")


def input_spec(c: Candidate, spec_stats=(0.0, 1.0)) -> InputSpec:
    """What candidate `c`'s network reads (spec_stats: training spectrogram mean/std)."""
    layers = None if c.layers == "all" else tuple(c.layers)
    return InputSpec(c.streams, layers, c.frame_pool, tuple(float(v) for v in spec_stats))


def build_ensemble(spec: ModelSpec):
    """The `Ensemble` a validated model.json describes (weights not loaded)."""
    from emotionnas.models.ensemble import Ensemble
    nets = [build_model(m.candidate, spec.dims, m.genotype, m.recipe, f"{spec.source}: members[{i}]")
            for i, m in enumerate(spec.members)]
    return Ensemble(nets, [input_spec(m.candidate, m.spec_stats) for m in spec.members],
                    [m.weights_prefix for m in spec.members])
