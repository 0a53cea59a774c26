"""One model builder: a candidate of the pipeline space -> a network; `ModelSpec` is exactly
what an exported `model.json` holds, checked as data.

Selection, refits, baselines and the recognizer all build networks through `build_model`,
so a model served is built the way it was trained. A model.json from elsewhere is validated
field by field before anything is built from it: types, ranges, each member's candidate,
genotype (against the ops table) and recipe (against its validator). A bad file gets a
one-line ConfigError naming the file and the field; nothing in it is ever executed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from emotionnas.config import FUSIONS
from emotionnas.errors import ConfigError
from emotionnas.features.inputs import InputSpec
from emotionnas.space.genotype import Genotype
from emotionnas.space.pipeline import Candidate
from emotionnas.space.recipe import validate_recipe

MODEL_FORMAT_VERSION = 3


@dataclass(frozen=True)
class Dims:
    """Sizes a network needs besides its candidate: classes, encoder width and layer count,
    and the CNN cell network's C and layers (cnn.C, cnn.layers)."""
    n_classes: int
    deep_dim: int = 512
    deep_layers_total: int = 7
    cnn_C: int = 6
    cnn_layers: int = 3


def needs_genotype(c: Candidate) -> bool:
    return c.spectrogram in ("darts", "emodarts")


def needs_recipe(c: Candidate) -> bool:
    return c.deep == "cell"


def _spectrogram_branch(c: Candidate, dims: Dims, genotype: dict | None, source: str):
    if c.spectrogram == "resnet*":
        from emotionnas.models.resnet import resnet_star
        return resnet_star(dims.n_classes)
    if genotype is None:
        raise ConfigError(f"{source}: spectrogram {c.spectrogram!r} needs a searched genotype")
    g = Genotype.from_dict(genotype, f"{source}: genotype")
    if c.spectrogram == "emodarts":
        from emotionnas.models.emodarts import EmoDARTS
        return EmoDARTS(g, dims.cnn_C, dims.cnn_layers, dims.n_classes)
    from emotionnas.models.cnn_branch import CNNBranch
    return CNNBranch(g, dims.cnn_C, dims.cnn_layers, dims.n_classes)


def _deep_branch(c: Candidate, dims: Dims, recipe: dict | None, source: str):
    from emotionnas.models.rnn_branch import RNNBranch
    if c.deep == "cell":
        if recipe is None:
            raise ConfigError(f"{source}: deep 'cell' needs a searched recipe")
        kind = validate_recipe(recipe, f"{source}: recipe")
    else:
        kind = {"linear": "linear_probe"}.get(c.deep, c.deep)
    n_in = dims.deep_layers_total if c.layers == "all" else len(c.layers)
    return RNNBranch(kind, dims.deep_dim, hidden=c.hidden, n_classes=dims.n_classes, n_layers_in=n_in,
                     dropout=c.dropout, pooling=c.pooling)


def build_model(c: Candidate, dims: Dims, genotype: dict | None = None, recipe: dict | None = None,
                source: str = "candidate") -> nn.Module:
    """The network of candidate `c`; its call signature follows `c.streams`:
    (spec,), (deep, lengths) or (spec, deep, lengths)."""
    spec = _spectrogram_branch(c, dims, genotype, source) if c.spectrogram != "none" else None
    deep = _deep_branch(c, dims, recipe, source) if c.deep != "none" else None
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


# ---------------------------------------------------------------- model.json
def _int(d: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{where}.{key}: expected an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _num(v, where: str, lo: float, hi: float) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(f"{where}: expected a number in [{lo}, {hi}], got {_short(v)}")
    return float(v)


def _str(d: dict, key: str, where: str, max_len: int = 200) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise ConfigError(f"{where}.{key}: expected a string of at most {max_len} characters, got {_short(v)}")
    return v


def _dict(d: dict, key: str, where: str) -> dict:
    v = d.get(key)
    if not isinstance(v, dict):
        raise ConfigError(f"{where}.{key}: expected a mapping, got {_short(v)}")
    return v


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


_SPEC_FIELDS = {"sample_rate", "seconds", "win_ms", "overlap_ms", "n_fft", "out_freq", "out_time", "log_floor"}


def _check_spectrogram(spec_cfg: dict, w: str) -> dict:
    if set(spec_cfg) - _SPEC_FIELDS:
        raise ConfigError(f"{w}: spectrogram: unknown field(s) {sorted(set(spec_cfg) - _SPEC_FIELDS)}")
    if spec_cfg.get("sample_rate", 16000) != 16000:
        raise ConfigError(f"{w}: spectrogram.sample_rate: only 16000 is supported")
    for key, lo, hi in (("seconds", 0.1, 60.0), ("win_ms", 1.0, 200.0), ("overlap_ms", 0.0, 199.0),
                        ("log_floor", 1e-30, 1.0)):
        if key in spec_cfg:
            _num(spec_cfg[key], f"{w}: spectrogram.{key}", lo, hi)
    for key in ("out_freq", "out_time"):
        if key in spec_cfg:
            _int(spec_cfg, key, 4, 1024, f"{w}: spectrogram")
    if spec_cfg.get("n_fft") is not None:
        _int(spec_cfg, "n_fft", 16, 16384, f"{w}: spectrogram")
    return dict(spec_cfg)


@dataclass(frozen=True)
class Member:
    """One network of the exported ensemble: its candidate, searched cells and input stats."""
    name: str
    candidate: Candidate
    genotype: dict | None
    recipe: dict | None
    spec_stats: tuple[float, float]
    weights_prefix: str

    def to_dict(self) -> dict:
        return {"name": self.name, "candidate": self.candidate.to_dict(), "genotype": self.genotype,
                "recipe": self.recipe, "spec_stats": list(self.spec_stats), "weights_prefix": self.weights_prefix}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an exported recognizer (the content of model.json):
    the members of the ensemble (their probabilities are averaged) and the features."""
    label_names: tuple
    members: tuple
    dims: Dims
    encoder: str
    deep_pool: int
    spectrogram: dict
    source: str = "model.json"

    def build(self) -> nn.Module:
        from emotionnas.models.ensemble import Ensemble
        nets = [build_model(m.candidate, self.dims, m.genotype, m.recipe, f"{self.source}: members[{i}]")
                for i, m in enumerate(self.members)]
        return Ensemble(nets, [input_spec(m.candidate, m.spec_stats) for m in self.members],
                        [m.weights_prefix for m in self.members])

    def to_dict(self) -> dict:
        return {"format_version": MODEL_FORMAT_VERSION, "label_names": list(self.label_names),
                "members": [m.to_dict() for m in self.members],
                "dims": {"deep_dim": self.dims.deep_dim, "deep_layers_total": self.dims.deep_layers_total,
                         "cnn_C": self.dims.cnn_C, "cnn_layers": self.dims.cnn_layers},
                "encoder": self.encoder, "deep_pool": self.deep_pool, "spectrogram": self.spectrogram}

    @classmethod
    def from_meta(cls, meta, source: str = "model.json") -> "ModelSpec":
        w = source
        if not isinstance(meta, dict):
            raise ConfigError(f"{w}: expected a JSON object, got {type(meta).__name__}")
        version = meta.get("format_version", 1)
        if version != MODEL_FORMAT_VERSION:
            raise ConfigError(f"{w}: model format {_short(version)}, this emotionnas reads "
                              f"{MODEL_FORMAT_VERSION}; re-export the model with `emotionnas export`")
        labels = meta.get("label_names")
        if (not isinstance(labels, list) or not 2 <= len(labels) <= 1000 or len(set(map(str, labels))) != len(labels)
                or not all(isinstance(x, str) and 0 < len(x) <= 100 for x in labels)):
            raise ConfigError(f"{w}: label_names: expected 2-1000 distinct short strings")
        d = _dict(meta, "dims", w)
        dims = Dims(len(labels), _int(d, "deep_dim", 1, 8192, f"{w}: dims"),
                    _int(d, "deep_layers_total", 1, 200, f"{w}: dims"), _int(d, "cnn_C", 1, 256, f"{w}: dims"),
                    _int(d, "cnn_layers", 1, 32, f"{w}: dims"))
        raw = meta.get("members")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 32:
            raise ConfigError(f"{w}: members: expected a list of 1-32 members")
        members = []
        for i, m in enumerate(raw):
            where = f"{w}: members[{i}]"
            if not isinstance(m, dict):
                raise ConfigError(f"{where}: expected a mapping")
            cand = Candidate.from_dict(m.get("candidate"), f"{where}.candidate")
            if cand.layers != "all" and max(cand.layers) >= dims.deep_layers_total:
                raise ConfigError(f"{where}.candidate.layers: layer {max(cand.layers)} beyond the encoder's "
                                  f"{dims.deep_layers_total} hidden states")
            genotype = m.get("genotype")
            if genotype is not None:
                Genotype.from_dict(genotype, f"{where}.genotype")
            elif needs_genotype(cand):
                raise ConfigError(f"{where}.genotype: {cand.spectrogram} needs a genotype")
            recipe = m.get("recipe")
            if recipe is not None:
                validate_recipe(recipe, f"{where}.recipe")
            elif needs_recipe(cand):
                raise ConfigError(f"{where}.recipe: a 'cell' member needs a recipe")
            stats = m.get("spec_stats")
            if not isinstance(stats, list) or len(stats) != 2:
                raise ConfigError(f"{where}.spec_stats: expected [mean, std]")
            stats = (_num(stats[0], f"{where}.spec_stats[0]", -1e6, 1e6),
                     _num(stats[1], f"{where}.spec_stats[1]", 1e-12, 1e6))
            prefix = m.get("weights_prefix")
            if not isinstance(prefix, str) or prefix != f"m{i}.":
                raise ConfigError(f"{where}.weights_prefix: expected 'm{i}.'")
            members.append(Member(_str(m, "name", where), cand, genotype, recipe, stats, prefix))
        deep_pool = _int(meta, "deep_pool", 1, 64, w)
        spec_cfg = _check_spectrogram(_dict(meta, "spectrogram", w), w)
        return cls(tuple(labels), tuple(members), dims, _str(meta, "encoder", w), deep_pool, spec_cfg, source)


__all__ = ["Dims", "FUSIONS", "MODEL_FORMAT_VERSION", "Member", "ModelSpec", "build_model", "input_spec",
           "needs_genotype", "needs_recipe"]
