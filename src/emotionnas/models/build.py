"""One model builder: `ModelSpec` is exactly what an exported `model.json` holds, checked as data.

The training stages and the recognizer both build networks through the functions here,
so a model served is built the way it was trained. A model.json from elsewhere is
validated field by field before anything is built from it: types, ranges, the
genotype against the ops table, the recipe against its validator. A bad file gets a
one-line ConfigError naming the file and the field; nothing in it is ever executed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from emotionnas.errors import ConfigError
from emotionnas.models.fusion import FUSIONS
from emotionnas.space.genotype import Genotype
from emotionnas.space.recipe import validate_recipe

CNN_KINDS = ("darts", "emodarts")
MODEL_FORMAT_VERSION = 2


def build_spec_branch(genotype: dict, kind: str, C: int, layers: int, n_classes: int, source: str = "genotype"):
    """The spectrogram branch of a searched genotype (DARTS cells, or emoDARTS CNN-LSTM)."""
    g = Genotype.from_dict(genotype, source)
    if kind == "emodarts":
        from emotionnas.models.emodarts import EmoDARTS
        return EmoDARTS(g, C, layers, n_classes)
    if kind != "darts":
        raise ConfigError(f"{source}: cnn kind must be one of {CNN_KINDS}, got {kind!r}")
    from emotionnas.models.cnn_branch import CNNBranch
    return CNNBranch(g, C, layers, n_classes)


def build_deep_branch(recipe: dict, deep_dim: int, hidden: int, layers: int, n_classes: int,
                      n_layers_in: int, frame_pool: int, mean_skip: bool):
    """The deep branch: a recipe cell over `n_layers_in` mixed encoder layers."""
    from emotionnas.models.rnn_branch import RNNBranch
    return RNNBranch(recipe, deep_dim, hidden=hidden, layers=layers, n_classes=n_classes,
                     n_layers_in=n_layers_in, frame_pool=frame_pool, mean_skip=mean_skip)


def build_two_stream(spec: "ModelSpec"):
    from emotionnas.models.two_stream import TwoStreamModel
    n = len(spec.label_names)
    spec_branch = build_spec_branch(spec.genotype, spec.cnn["kind"], spec.cnn["C"], spec.cnn["layers"], n,
                                    f"{spec.source}: genotype")
    layers = spec.deep_layers
    deep = build_deep_branch(spec.recipe, spec.deep_dim, spec.rnn["hidden"], spec.rnn["layers"], n,
                             len(layers) if layers else spec.deep_layers_total, spec.rnn["frame_pool"],
                             spec.rnn["mean_skip"])
    return TwoStreamModel(spec_branch, deep, n, fusion=spec.fusion, dominant=spec.dominant)


# ---------------------------------------------------------------- validation helpers
def _int(d: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{where}.{key}: expected an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _num(v, where: str, lo: float, hi: float) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(f"{where}: expected a number in [{lo}, {hi}], got {_short(v)}")
    return float(v)


def _str(d: dict, key: str, where: str, choices=None, max_len: int = 200) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v or len(v) > max_len or (choices and v not in choices):
        want = f"one of {sorted(choices)}" if choices else f"a string of at most {max_len} characters"
        raise ConfigError(f"{where}.{key}: expected {want}, got {_short(v)}")
    return v


def _dict(d: dict, key: str, where: str) -> dict:
    v = d.get(key)
    if not isinstance(v, dict):
        raise ConfigError(f"{where}.{key}: expected a mapping, got {_short(v)}")
    return v


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained two-stream model (the content of model.json)."""
    label_names: tuple
    genotype: dict
    recipe: dict
    cnn: dict            # kind, C, layers
    rnn: dict            # hidden, layers, frame_pool, mean_skip
    fusion: str
    dominant: str
    encoder: str
    deep_pool: int
    deep_layers: list | None
    deep_layers_total: int
    deep_dim: int
    spectrogram: dict
    spec_stats: tuple
    source: str = "model.json"

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
        if (not isinstance(labels, list) or not 2 <= len(labels) <= 1000
                or not all(isinstance(x, str) and 0 < len(x) <= 100 for x in labels) or len(set(labels)) != len(labels)):
            raise ConfigError(f"{w}: label_names: expected 2-1000 distinct short strings")
        genotype = _dict(meta, "genotype", w)
        Genotype.from_dict(genotype, f"{w}: genotype")
        recipe = validate_recipe(_dict(meta, "recipe", w), f"{w}: recipe")
        cnn, rnn = _dict(meta, "cnn", w), _dict(meta, "rnn", w)
        cnn = {"kind": _str(cnn, "kind", f"{w}: cnn", CNN_KINDS), "C": _int(cnn, "C", 1, 256, f"{w}: cnn"),
               "layers": _int(cnn, "layers", 1, 32, f"{w}: cnn")}
        if not isinstance(rnn.get("mean_skip", False), bool):
            raise ConfigError(f"{w}: rnn.mean_skip: expected true or false")
        rnn = {"hidden": _int(rnn, "hidden", 1, 4096, f"{w}: rnn"), "layers": _int(rnn, "layers", 1, 8, f"{w}: rnn"),
               "frame_pool": _int(rnn, "frame_pool", 1, 64, f"{w}: rnn"), "mean_skip": rnn.get("mean_skip", False)}
        total = _int(meta, "deep_layers_total", 1, 200, w)
        layers = meta.get("deep_layers")
        if layers is not None and (not isinstance(layers, list) or not layers or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < total for i in layers)):
            raise ConfigError(f"{w}: deep_layers: expected null or a list of layer indices below {total}")
        spec_cfg = _dict(meta, "spectrogram", w)
        allowed = {"sample_rate", "seconds", "win_ms", "overlap_ms", "n_fft", "out_freq", "out_time", "log_floor"}
        if set(spec_cfg) - allowed:
            raise ConfigError(f"{w}: spectrogram: unknown field(s) {sorted(set(spec_cfg) - allowed)}")
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
        stats = meta.get("spec_stats")
        if not isinstance(stats, list) or len(stats) != 2:
            raise ConfigError(f"{w}: spec_stats: expected [mean, std]")
        stats = (_num(stats[0], f"{w}: spec_stats[0]", -1e6, 1e6), _num(stats[1], f"{w}: spec_stats[1]", 1e-12, 1e6))
        return cls(tuple(labels), genotype, recipe, cnn, rnn, _str(meta, "fusion", w, FUSIONS),
                   _str(meta, "dominant", w, ("deep", "spectrogram")), _str(meta, "encoder", w),
                   _int(meta, "deep_pool", 1, 64, w), layers, total, _int(meta, "deep_dim", 1, 8192, w),
                   dict(spec_cfg), stats, source)
