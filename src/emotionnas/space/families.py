"""The one registry of model families: name -> what the family is, what it needs, who builds it.

A candidate of the pipeline space (space/pipeline.py) names one family per stream
(`candidate.deep`, `candidate.spectrogram`); everything that must know about a family —
Candidate validation, `enumerate_space`, the builder (models/build.py), model.json validation
(space/model_spec.py), the run's cell searches and the CLI — reads it here. Adding a family is
its module (a builder) + one `register(Family(...))` line below.

    builder(candidate, dims, arch, source) -> torch.nn.Module
        candidate: the Candidate; dims: space.model_spec.Dims; arch: {"genotype": ..., "recipe": ...}
        (the group's searched cells, as plain data); source: where to say an error came from.
        Deep families take (x (B, T, L, D), lengths (B,)) -> (logits, embedding); spectrogram
        families take (spec (B, 1, F, T)) -> (logits, embedding).

`builder` is a callable or "module:function" (resolved on first use, so this module imports
no torch and model folders validate without it). The registry is code, never read from a file.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from emotionnas.errors import ConfigError

STREAMS = ("deep", "spectrogram")
NEEDS = ("nothing", "genotype", "recipe")
COSTS = ("cheap", "expensive")


@dataclass(frozen=True)
class Family:
    name: str
    stream: str                       # "deep" (encoder frames) | "spectrogram"
    builder: str | Callable           # "module:function" or a callable (see module docstring)
    needs: str = "nothing"            # searched cells it reads: nothing | genotype | recipe
    search: str | None = None         # the cell search that makes them: "darts" | "emodarts" | "recipe"
    cost: str = "cheap"               # cheap: seconds to train; expensive: minutes (a CNN, a tuned encoder)
    onnx: bool = True                 # `export --onnx` supports it
    width: bool = True                # reads candidate.hidden (a linear probe has no width)
    frame_model: bool = True          # has frames to attend over (attention pooling makes sense)
    tunes_encoder: bool = False       # runs the pretrained encoder blocks above one cached layer L
                                      # (reads exactly one layer; initialised from the run's encoder)

    def __post_init__(self):
        if not self.name or not self.name.replace("*", "").replace("_", "").isalnum():
            raise ConfigError(f"family name {self.name!r}: letters, digits, '_' or '*' only")
        if self.stream not in STREAMS or self.needs not in NEEDS or self.cost not in COSTS:
            raise ConfigError(f"family {self.name}: stream/needs/cost must be from {STREAMS}/{NEEDS}/{COSTS}")
        if (self.needs == "nothing") != (self.search is None):
            raise ConfigError(f"family {self.name}: a family that needs searched cells names its search")

    @property
    def searched(self) -> bool:
        return self.needs != "nothing"

    def build(self, candidate, dims, arch: dict, source: str):
        fn = self.builder
        if isinstance(fn, str):
            module, attr = fn.split(":")
            fn = getattr(importlib.import_module(module), attr)
        return fn(candidate, dims, arch, source)


FAMILIES: dict[str, Family] = {}


def register(f: Family) -> Family:
    if f.name in FAMILIES or f.name == "none":
        raise ConfigError(f"family {f.name!r} is already registered")
    FAMILIES[f.name] = f
    return f


def unregister(name: str) -> None:
    FAMILIES.pop(name, None)


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; registered: {sorted(FAMILIES)}") from None


def names(stream: str) -> tuple[str, ...]:
    """'none' + the families of `stream`, in registration order."""
    return ("none",) + tuple(n for n, f in FAMILIES.items() if f.stream == stream)


_DEEP, _SPEC = "emotionnas.models.build:deep_branch", "emotionnas.models.build:spectrogram_branch"
register(Family("linear", "deep", _DEEP, width=False, frame_model=False))   # linear probe on pooled frames
register(Family("mlp", "deep", _DEEP))
register(Family("rnn", "deep", _DEEP))
register(Family("gru", "deep", _DEEP))
register(Family("lstm", "deep", _DEEP))
register(Family("cell", "deep", _DEEP, needs="recipe", search="recipe"))     # searched NAS-Bench-NLP cell
# fine-tuned Whisper: the 2 blocks above layer L + pooled linear head (models/tune.py); not in the
# default space: `--set 'space.deep=[linear,mlp,gru,lstm,cell,tune]'` adds it (README, "Fine-tuning").
# Expensive: whisper-base, 428 EmoDB-size utterances of ~17 frames, 1 thread: an epoch 6.5 s (tune),
# 3.5 s (tunenb), 3.0 s (tunelora) against 0.7 s for a GRU; 20 epochs are minutes.
_TUNE = "emotionnas.models.tune:tune_branch"
register(Family("tune", "deep", _TUNE, cost="expensive", width=False, tunes_encoder=True))      # all block weights
register(Family("tunenb", "deep", _TUNE, cost="expensive", width=False, tunes_encoder=True))    # norms + biases
register(Family("tunelora", "deep", _TUNE, cost="expensive", width=False, tunes_encoder=True))  # LoRA on q, v
register(Family("darts", "spectrogram", _SPEC, needs="genotype", search="darts", cost="expensive"))
register(Family("emodarts", "spectrogram", _SPEC, needs="genotype", search="emodarts", cost="expensive",
                onnx=False))  # adaptive pooling to a traced size: torch.onnx refuses it (contract test)
register(Family("resnet*", "spectrogram", _SPEC, cost="expensive"))

__all__ = ["FAMILIES", "Family", "family", "names", "register", "unregister"]
