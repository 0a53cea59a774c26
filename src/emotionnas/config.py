"""Typed run configuration: values only (code builds the objects), YAML in and out.

    cfg = RunConfig.from_yaml("cfg.yaml", overrides=["train.epochs=10", "fusion=concat"])
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from emotionnas.errors import ConfigError


@dataclass
class TrainConfig:
    epochs: int = 30           # upper bound; early stopping usually ends sooner
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 8          # epochs without a better validation UA before stopping
    grad_clip: float = 5.0
    class_weighted: bool = True  # inverse-frequency loss weights: UA is the primary metric
    label_smoothing: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FeatureConfig:
    cache_dir: str = "cache"          # shared by every run: features are extracted once
    encoder: str = "whisper-base"     # registry name, Hugging Face id or local path
    deep_pool: int = 2                # average-pool encoder frames: 50 Hz -> 25 Hz
    # Encoder layers the deep branch reads. "auto": the best `deep_layers_k` consecutive
    # layers, chosen in each search by a linear probe on that search's speakers
    # (emotionnas.search.layers; never the test speakers). A list: those layers.
    # None: all layers, mixed by learned softmax weights.
    deep_layers: list[int] | str | None = "auto"
    deep_layers_k: int = 2
    # Spectrogram side (paper: 140). On a 2-core CPU a searched cell network trained at
    # 140 x 140 costs minutes per epoch; 70 x 70 is 4x cheaper (see BENCHMARKS.md).
    spectrogram_size: int = 140

    _free_fields = ("deep_layers",)   # several types allowed: checked in __post_init__

    def __post_init__(self):
        v = self.deep_layers
        ok = v is None or v == "auto" or (isinstance(v, list) and v and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v))
        if not ok:
            raise ConfigError(f"features.deep_layers: expected 'auto', null or a list of layer "
                              f"indices (e.g. [2, 3]), got {v!r}")
        if self.deep_layers_k < 1:
            raise ConfigError(f"features.deep_layers_k: expected >= 1, got {self.deep_layers_k}")


@dataclass
class CNNConfig:
    kind: str = "darts"               # "darts" (EmotionNAS cells) or "emodarts" (CNN-LSTM)
    C: int = 6                        # initial channels (paper: C=6)
    layers: int = 3                   # cells (paper: L=3)
    search: dict = field(default_factory=dict)  # CNNSearchConfig fields, e.g. {"epochs": 10}


@dataclass
class RNNConfig:
    hidden: int = 256                 # paper: H=256
    layers: int = 1                   # paper: L=1
    frame_pool: int = 4               # average this many cached frames per recurrent step (25 Hz / 4)
    mean_skip: bool = False           # also feed the head the masked mean of the input frames
    search: dict = field(default_factory=dict)  # RNNSearchConfig fields
    recipe_path: str | None = None    # a user-supplied recipe JSON skips the search


@dataclass
class RunConfig:
    corpus: str = "demo"
    root: str = "runs/demo-corpus"
    corpus_options: dict = field(default_factory=dict)
    protocol: str = "loso"            # loso | loso-session | iemocap-paper | kfold
    n_val: int = 1                    # validation speakers per fold (taken from training speakers)
    k: int = 5                        # folds for protocol=kfold
    seed: int = 0
    search_groups: int = 2            # cross-fitted search: G searches, each without its folds' test speakers
    search_per_fold: bool = False     # exhaustive: one search per fold
    fusion: str = "ism"               # ism | concat | sum | max | min
    # "frozen": branches trained alone, then fusion + classifier trained on their embeddings
    # (cheap on CPU); "joint": the two-stream model fine-tuned end to end from the branch weights.
    fusion_training: str = "frozen"
    dominant: str = "deep"            # the branch playing X2 in the ISM
    ablations: bool = True            # branches alone + every fusion strategy (paper Tables 4 and 5)
    max_folds: int | None = None      # run only the first N folds (quick looks; not a full protocol)
    threads: int = 2
    features: FeatureConfig = field(default_factory=FeatureConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "RunConfig":
        return _build(cls, data or {}, source)

    @classmethod
    def from_yaml(cls, path, overrides=()) -> "RunConfig":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
        return apply_overrides(cls.from_dict(data, str(path)), overrides)


def _build(cls, data: dict, source: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in {cls.__name__}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if name in getattr(cls, "_free_fields", ()):
            kwargs[name] = value
        elif dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{source}:{name}")
        else:
            kwargs[name] = _coerce(value, default, f"{source}:{name}")
    return cls(**kwargs)


def _coerce(value, default, where: str):
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    for typ in (int, float):
        if isinstance(default, typ):
            try:
                out = typ(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
            if typ is int and float(value) != out:
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            return out
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def apply_overrides(cfg: RunConfig, overrides) -> RunConfig:
    """Apply `a.b=value` strings (value parsed as YAML) and re-validate."""
    data = cfg.to_dict()
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node, parts = data, key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
            node = node[p]
        node[parts[-1]] = yaml.safe_load(raw)
    return RunConfig.from_dict(data, "overrides")
