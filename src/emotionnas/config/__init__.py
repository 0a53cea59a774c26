"""Typed run configuration: values only (code builds the objects), YAML in and out.

    cfg = RunConfig.from_yaml("cfg.yaml", overrides=["train.epochs=10", "fusion=concat"])

sections.py holds the sections (train, features, cnn, rnn, space, selection), parsing.py turns
YAML values into them; this module holds the whole run's config and its overrides.
"""
from __future__ import annotations

import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from emotionnas.config.parsing import _build
from emotionnas.config.sections import (AUGMENT_NOISE, AUGMENT_SPEED, COMBINERS, FUSIONS, POOLINGS,  # noqa: F401
                                        CNNConfig, CNNSearchConfig, FeatureConfig, RNNConfig, RNNSearchConfig,
                                        SelectionConfig, SpaceConfig, TrainConfig, check_augment)
from emotionnas.errors import ConfigError

PRESETS = ("demo", "paper")
MAX_CONFIG_BYTES = 1 << 20  # a run config is a page of YAML; nothing larger is read


@dataclass
class RunConfig:
    corpus: str = "demo"
    root: str = "runs/demo-corpus"
    corpus_options: dict = field(default_factory=dict)
    protocol: str = "loso"            # loso | loso-session | iemocap-paper | kfold
    n_val: int = 1                    # α-split speakers of a cell search (taken from its training speakers)
    k: int = 5                        # folds for protocol=kfold
    seed: int = 0
    # Selection groups: folds are dealt into G groups; group g's search and selection use the
    # speakers of no fold of the group (0 = one group per fold, the exhaustive plan).
    search_groups: int = 5
    search_per_fold: bool = False     # same as search_groups: 0
    baselines: bool = False           # also refit the hand-designed baselines on every fold
    final_model: bool = True          # also select and refit on every speaker: the model `export` ships
    max_folds: int | None = None      # run only the first N folds (quick looks; not a full protocol)
    threads: int = 1                  # torch threads per process
    workers: int = 2                  # processes for independent tasks (1 = serial)
    executor: str = "local"           # "local" or "dask://HOST:PORT"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    _free_fields = ("max_folds",)

    def __post_init__(self):
        if self.workers < 1 or self.threads < 1:
            raise ConfigError("workers and threads must be >= 1")
        if not (self.executor == "local" or self.executor.startswith("dask://")):
            raise ConfigError(f"executor: expected 'local' or 'dask://HOST:PORT', got {self.executor!r}")
        if self.search_groups < 0:
            raise ConfigError(f"search_groups: expected >= 0, got {self.search_groups}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # How a run is carried out, not what it computes: changing these between a run and its
    # resume is allowed (results are identical by test, tests/test_run_identity.py).
    HOW_FIELDS = ("threads", "workers", "executor", "features.cache_dir")

    def identity(self) -> dict:
        """The run's identity: the config without the HOW_FIELDS."""
        d = self.to_dict()
        for name in self.HOW_FIELDS:
            *parents, leaf = name.split(".")
            node = d
            for part in parents:
                node = node[part]
            node.pop(leaf, None)
        return d

    def identity_yaml(self) -> str:
        return yaml.safe_dump(self.identity(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "RunConfig":
        return _build(cls, data or {}, source)

    @classmethod
    def preset(cls, name: str, overrides=()) -> "RunConfig":
        """A shipped preset (src/emotionnas/presets/NAME.yaml: demo, paper)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; presets: {list(PRESETS)}")
        from importlib import resources
        with resources.as_file(resources.files("emotionnas.presets").joinpath(f"{name}.yaml")) as path:
            return cls.from_yaml(path, overrides)

    @classmethod
    def from_yaml(cls, path, overrides=(), require=()) -> "RunConfig":
        """The config in YAML file `path`, read with bounds (a regular file of at most
        MAX_CONFIG_BYTES, asked of os.stat first); `require`: keys the file itself must hold (a run
        folder's config.yaml always names its corpus, root and seed: an empty or hand-made file
        would otherwise read silently as the defaults)."""
        path = Path(path)
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{path}: not a regular file")
            if st.st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{path}: {st.st_size} bytes > limit {MAX_CONFIG_BYTES} for a config")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read YAML ({str(e).splitlines()[0][:100]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
        if missing := [k for k in require if k not in data]:
            raise ConfigError(f"{path}: no {', '.join(missing)} (a run writes {', '.join(require)})")
        return apply_overrides(cls.from_dict(data, str(path)), overrides)


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
