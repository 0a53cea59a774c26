"""The sections of a run config: what training, features, the cell searches, the space and the
selection are configured with. Values only, each checked where it is defined (`__post_init__`);
names that a registry owns (families, strategies, ensemble builders) are checked against it when a
run starts (space/pipeline.py `check_space`, training/strategies.py `check_selection`)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from emotionnas.errors import ConfigError


# The vocabulary of the pipeline-wide space (space/pipeline.py builds candidates from it).
POOLINGS = ("attention", "mean", "meanstd")
FUSIONS = ("ism", "concat", "sum", "max", "min")


@dataclass
class TrainConfig:
    """How every model (candidate, ensemble member, baseline) is trained. There is no early
    stopping on one validation speaker: the epoch is chosen by inner cross-validation and the
    refit on all training speakers stops there."""
    epochs: int = 20           # the schedule's length; the selected epoch is at most this
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    class_weighted: bool = True  # inverse-frequency loss weights: UA is the primary metric
    label_smoothing: float = 0.0
    cnn_epochs: int = 12       # spectrogram CNNs cost more per epoch than a deep head
    cnn_lr: float = 3e-3
    # Augmentation (training batches only): mask this fraction of each utterance's frames (deep
    # stream: random frames; spectrogram: one time span) and of the spectrogram's frequency bins
    # (one span) -- SpecAugment-style; 0 = off.
    time_mask: float = 0.0
    freq_mask: float = 0.0
    balanced_batches: bool = False  # sample batches class-balanced instead of shuffling
    # mixup (Zhang et al. 2018) on training batches: each input (spectrogram, deep features) is
    # lam * x + (1 - lam) * x of a shuffled partner, lam ~ Beta(mixup, mixup), and the loss is
    # mixed the same way; 0 = off. 0.4: decided by inner CV on EmoDB and URDU (docs/defaults.md)
    mixup: float = 0.4

    def __post_init__(self):
        if not (isinstance(self.mixup, (int, float)) and 0.0 <= self.mixup <= 10.0):
            raise ConfigError(f"train.mixup: expected a Beta parameter in [0, 10] (0 = off), got {self.mixup!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FeatureConfig:
    cache_dir: str = "cache"          # shared by every run: features are extracted once
    # registry name (optionally @dtype), Hugging Face id or local path. int8: decided by inner CV on
    # EmoDB and URDU with the full pipeline (docs/defaults.md), ~2x faster than float32.
    encoder: str = "whisper-base@int8"
    deep_pool: int = 2                # the cache stores encoder frames average-pooled: 50 Hz -> 25 Hz
    # Spectrogram side (paper: 140). On a 2-core CPU a CNN trained at 140 x 140 costs minutes
    # per epoch; 70 x 70 is 4x cheaper (BENCHMARKS.md). the paper preset (presets/paper.yaml) has 140.
    spectrogram_size: int = 70
    spectrogram_mel: int | None = None  # e.g. 64: the spectrogram stream as log-mel (option; default linear, as the paper)
    # augmented copies of the corpus for training speakers only (features/augment.py): e.g.
    # [speed0.9, speed1.1] or [noise5-20]; each is encoded once and cached. [] = off (decided by inner CV)
    augment: list[str] = field(default_factory=list)
    # speaker-adaptive mode (off by default; labelled wherever it appears): deep features are
    # standardised per speaker with that speaker's unlabelled audio (test speakers: their own audio,
    # never labels); a model of such a run needs `enroll` before it predicts
    speaker_norm: bool = False

    _free_fields = ("spectrogram_mel",)

    def __post_init__(self):
        if not 1 <= self.deep_pool <= 16:
            raise ConfigError(f"features.deep_pool: expected 1..16, got {self.deep_pool}")
        if not 8 <= self.spectrogram_size <= 512:
            raise ConfigError(f"features.spectrogram_size: expected 8..512, got {self.spectrogram_size}")
        m = self.spectrogram_mel
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or not 8 <= m <= 201):
            raise ConfigError(f"features.spectrogram_mel: expected null or 8..201 mel bins, got {m!r}")
        self.augment = check_augment(self.augment)


AUGMENT_SPEED = re.compile(r"speed(\d+(?:\.\d+)?)$")                         # speedF
AUGMENT_NOISE = re.compile(r"noise(-?\d+(?:\.\d+)?)-(-?\d+(?:\.\d+)?)$")     # noiseA-B (SNR dB)


def check_augment(names) -> list[str]:
    """features.augment validated: speedF (0.5 <= F <= 2, F != 1) or noiseA-B (-10 <= A <= B <= 60)."""
    def ok(name):
        m, n = AUGMENT_SPEED.match(str(name)), AUGMENT_NOISE.match(str(name))
        return bool(m and 0.5 <= float(m[1]) <= 2.0 and float(m[1]) != 1.0 or n and -10 <= float(n[1]) <= float(n[2]) <= 60)
    bad = [n for n in names if not ok(n)] if isinstance(names, list) else [names]
    if bad or len(set(names)) != len(names):
        raise ConfigError(f"features.augment: {bad[0] if bad else 'a copy listed twice'!r} in {names!r}: expected "
                          "a list of distinct speedF (0.5..2, not 1) or noiseA-B (SNR in dB, -10 <= A <= B <= 60)")
    return [str(n) for n in names]


@dataclass
class CNNSearchConfig:
    """DARTS / emoDARTS cell search (search/cnn/search.py)."""
    nodes: int = 4                # intermediate nodes per cell
    ops: list[str] | None = None  # candidate op subset (names of space/cnn_ops.OPS); None = all 8
    lstm_hidden: int = 64         # emoDARTS LSTM size
    freq_bins: int = 4            # emoDARTS: frequency bins kept per time step
    epochs: int = 7               # total search epochs (weights + α); set for time (<= 2 min a search)
    warmup_epochs: int = 2        # first epochs train weights only (PC-DARTS warm-up)
    batch_size: int = 32
    lr: float = 0.025             # weight SGD, cosine-annealed per epoch to lr_min
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 6e-4         # Adam for α
    arch_weight_decay: float = 1e-3
    unrolled: bool = False        # second-order DARTS (about 3x the cost of an α step)
    partial_channels: int = 2     # PC-DARTS K (1 = off); C must be divisible by K; 2 halves the cost
    proxy_size: int | None = 28   # search on (proxy, proxy) average-pooled spectrograms; None = full
    beta_decay: float = 0.0       # β-DARTS λ (collapse guard)
    max_skip: int | None = 2      # at most this many skip_connect in the derived normal cell
    channels_last: bool = True    # depthwise convs are ~3x faster in channels_last on CPU

    _free_fields = ("ops", "proxy_size", "max_skip")

    def __post_init__(self):
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError("cnn.search: need 0 <= warmup_epochs <= epochs")
        if self.ops is not None and (not isinstance(self.ops, list) or not all(isinstance(o, str) for o in self.ops)):
            raise ConfigError(f"cnn.search.ops: expected null or a list of op names, got {self.ops!r}")
        for name in ("proxy_size", "max_skip"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"cnn.search.{name}: expected null or a non-negative integer, got {v!r}")


@dataclass
class CNNConfig:
    C: int = 6                        # initial channels (paper: C=6)
    layers: int = 3                   # cells (paper: L=3)
    search: CNNSearchConfig = field(default_factory=CNNSearchConfig)


@dataclass
class RNNSearchConfig:
    """Recurrent-cell search in the NAS-Bench-NLP space (search/rnn/search.py)."""
    hidden: int = 64           # supernet state size: small, the found cell is retrained wider
    n_nodes: int = 5           # K nodes in the searched DAG
    n_states: int = 2          # the paper's cell: reads x_t, h1, h2 and writes h1', h2'
    epochs: int = 12
    warmup_epochs: int = 3     # weights only, so early alphas do not lock onto parameter-free ops
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    arch_lr: float = 1e-2
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    layer_mode: str = "weighted"
    dropout: float = 0.2
    class_weighted: bool = True

    def __post_init__(self):
        if self.n_states not in (1, 2) or self.n_nodes < 1 or self.epochs < 0:
            raise ConfigError("rnn.search: need n_states in (1, 2), n_nodes >= 1, epochs >= 0")


@dataclass
class RNNConfig:
    search: RNNSearchConfig = field(default_factory=RNNSearchConfig)
    recipe_path: str | None = None    # a user-supplied recipe JSON replaces the search

    _free_fields = ("recipe_path",)


@dataclass
class SpaceConfig:
    """The pipeline-wide space (space/pipeline.py). Each list holds the values the search
    may pick; a single value fixes that choice."""
    deep: list[str] = field(default_factory=lambda: ["linear", "mlp", "gru", "lstm", "cell"])
    layer_widths: list[int] = field(default_factory=lambda: [1, 2])
    layer_windows: int = 3            # the best windows by a linear probe on the search speakers
    layer_mix: bool = True            # also "all": a learned softmax mix of every layer
    frame_pool: list[int] = field(default_factory=lambda: [4])
    pooling: list[str] = field(default_factory=lambda: ["attention", "meanstd"])
    hidden: list[int] = field(default_factory=lambda: [128, 256])
    dropout: list[float] = field(default_factory=lambda: [0.2])
    # Sampled candidates read the deep stream only; the spectrogram CNNs enter the pool as the
    # ResNet* and ResNet* + LSTM baselines (add "darts", "emodarts", "resnet*" here to sample more).
    spectrogram: list[str] = field(default_factory=lambda: ["none"])
    fusion: list[str] = field(default_factory=lambda: ["concat"])
    # the standard fine-tuning recipe (the `fine-tuned Whisper` baseline) as a candidate of every
    # pool, scored like the others, so the search can only lose to it through its own choice (it
    # is one anyway when `deep` holds a family that tunes the encoder). On by default with the
    # `caruana` builder (docs/defaults.md: decided as a pair by nested inner CV on three corpora)
    finetune_in_pool: bool = True

    def __post_init__(self):
        # the family names (deep, spectrogram) are checked against space/families.py when the
        # space is enumerated (space.pipeline.check_space; the run checks them at its start)
        for name in ("deep", "spectrogram"):
            values = getattr(self, name)
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"space.{name}: expected a non-empty list of family names, got {values!r}")
        for name, allowed in (("pooling", POOLINGS), ("fusion", FUSIONS)):
            values = getattr(self, name)
            if not isinstance(values, list) or not values or any(v not in allowed for v in values):
                raise ConfigError(f"space.{name}: expected a non-empty list from {allowed}, got {values!r}")
        for name in ("layer_widths", "frame_pool", "hidden", "dropout"):
            values = getattr(self, name)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"space.{name}: expected a non-empty list, got {values!r}")
        if self.layer_windows < 1:
            raise ConfigError(f"space.layer_windows: expected >= 1, got {self.layer_windows}")


COMBINERS = ("mean", "stack", "auto")


@dataclass
class SelectionConfig:
    """How candidates are chosen inside a fold: inner speaker-grouped cross-validation over
    the search speakers (every one of them validated once), successive halving over the
    candidates, and an ensemble of the top k (k chosen on the same out-of-fold predictions)."""
    inner_folds: int = 3              # speaker groups of the inner cross-validation
    budget: int = 16                  # candidates in the pool, the 5 baselines included
    eta: int = 3                      # successive halving: keep the best 1/eta after the first rung
    first_rung_folds: int = 1         # inner folds every candidate is scored on before halving
    max_ensemble: int = 5             # ensembles of the top 1..max_ensemble candidates are scored
    smooth_epochs: int = 3            # the epoch curve is smoothed over this many epochs before its argmax
    # Variance reduction (issue 18): replicas of the top max_ensemble candidates after halving, each
    # trained with other seeds, scored on every inner fold and ranked with the rest (1 = none);
    # the ensemble may then hold up to max_ensemble * seeds members.
    seeds: int = 1
    combiner: str = "mean"            # mean | stack | auto (stack only if its cross-fitted inner UA beats mean)
    # a prior learned on other corpora fills the pool best-first (training/prior.py): "builtin"
    # (presets/prior.json), a path, or None (the pool is a random sample of the space)
    prior: str | None = None
    # speaker partitions of the inner CV: 2-3 = the candidates past the first rung are also scored on
    # other speaker groupings and their out-of-fold probabilities averaged (1 = one partition)
    partitions: int = 1
    strategy: str = "halving"         # which candidates are scored on which inner folds (training/strategies.py)
    ensemble: str = "caruana"         # which finalists the ensemble holds (training/ensembles.py;
                                      # with finetune_in_pool, decided as a pair: docs/defaults.md)

    def __post_init__(self):
        if self.inner_folds < 2:
            raise ConfigError(f"selection.inner_folds: expected >= 2, got {self.inner_folds}")
        if not 1 <= self.first_rung_folds <= self.inner_folds:
            raise ConfigError("selection.first_rung_folds: expected 1..inner_folds")
        if self.eta < 1 or self.budget < 1 or self.max_ensemble < 1 or self.smooth_epochs < 1:
            raise ConfigError("selection: budget, eta, max_ensemble and smooth_epochs must be >= 1")
        if not (isinstance(self.seeds, int) and 1 <= self.seeds <= 8):
            raise ConfigError(f"selection.seeds: expected 1..8, got {self.seeds!r}")
        if not (isinstance(self.partitions, int) and 1 <= self.partitions <= 3):
            raise ConfigError(f"selection.partitions: expected 1..3, got {self.partitions!r}")
        if self.combiner not in COMBINERS:
            raise ConfigError(f"selection.combiner: expected one of {COMBINERS}, got {self.combiner!r}")
        if self.prior is not None and not (isinstance(self.prior, str) and self.prior):
            raise ConfigError(f"selection.prior: expected 'builtin' or a path to a prior JSON, got {self.prior!r}")
