"""The pipeline-wide search space: one point (`Candidate`) is a whole model, as plain data.

A candidate names every discrete choice of a two-stream SER model:

  deep stream   deep:        none | linear | mlp | rnn | gru | lstm | cell (the searched
                             NAS-Bench-NLP recipe of its search group) | tune | tunenb |
                             tunelora (the encoder blocks above one layer L, fine-tuned)
                layers:      encoder hidden states read, e.g. (2, 3); "all" = learned mix of all
                frame_pool:  frames averaged per recurrent step (25 Hz cache / 4 = 6.25 Hz)
                pooling:     attention | mean | meanstd (frames -> one vector)
                hidden:      width; dropout
  spectrogram   spectrogram: none | darts (the group's searched DARTS cells) | emodarts | resnet*
  fusion        fusion:      ism | concat | sum | max | min (only when both streams are used)

The hand-designed baselines a researcher would build are points of this space
(`baselines`), so a search that selects honestly among them cannot lose to them by more
than selection noise. `enumerate_space` lists the points of a `SpaceConfig`; the search
strategy (training/selection.py) decides which of them to train.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass

from emotionnas.config import FUSIONS, POOLINGS
from emotionnas.errors import ConfigError
from emotionnas.space.families import family, names


@dataclass(frozen=True)
class Candidate:
    deep: str = "gru"
    layers: tuple[int, ...] | str = (2, 3)
    frame_pool: int = 4
    pooling: str = "attention"
    hidden: int = 256
    dropout: float = 0.2
    spectrogram: str = "none"
    fusion: str = "concat"
    replica: int = 0    # the same model trained with other seeds (selection.seeds); 0 is left out of
                        # to_dict, so a candidate's key, name and seeds are those of every earlier run

    def __post_init__(self):
        for stream in ("deep", "spectrogram"):
            if getattr(self, stream) not in names(stream):
                raise ConfigError(f"candidate.{stream}: {getattr(self, stream)!r} is not one of {names(stream)}")
        if self.deep == "none" and self.spectrogram == "none":
            raise ConfigError("candidate: needs at least one stream (deep or spectrogram)")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"candidate.pooling: {self.pooling!r} is not one of {POOLINGS}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"candidate.fusion: {self.fusion!r} is not one of {FUSIONS}")
        layers = self.layers
        if isinstance(layers, list):
            layers = tuple(layers)
            object.__setattr__(self, "layers", layers)
        if not (layers == "all" or (isinstance(layers, tuple) and 1 <= len(layers) <= 64 and all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 256 for i in layers))):
            raise ConfigError(f"candidate.layers: expected 'all' or a tuple of layer indices, got {layers!r}")
        if self.deep != "none" and family(self.deep).tunes_encoder and (layers == "all" or len(layers) != 1):
            raise ConfigError(f"candidate.layers: {self.deep!r} tunes the encoder blocks above one layer L; "
                              f"expected one layer, got {layers!r}")
        if not (isinstance(self.frame_pool, int) and 1 <= self.frame_pool <= 64):
            raise ConfigError(f"candidate.frame_pool: expected 1..64, got {self.frame_pool!r}")
        if not (isinstance(self.hidden, int) and 8 <= self.hidden <= 4096):
            raise ConfigError(f"candidate.hidden: expected 8..4096, got {self.hidden!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"candidate.dropout: expected [0, 1), got {self.dropout!r}")
        if not (isinstance(self.replica, int) and not isinstance(self.replica, bool) and 0 <= self.replica < 100):
            raise ConfigError(f"candidate.replica: expected 0..99, got {self.replica!r}")

    def with_replica(self, replica: int) -> "Candidate":
        """This model trained with other seeds: another key, hence other task seeds."""
        return dataclasses.replace(self, replica=replica)

    @property
    def streams(self) -> tuple[str, ...]:
        """The inputs the model reads, in call order."""
        return tuple(s for s, used in (("spectrogram", self.spectrogram != "none"), ("deep", self.deep != "none"))
                     if used)

    @property
    def expensive(self) -> bool:
        """Minutes on a CPU, not seconds (a family of cost class "expensive", e.g. a CNN)."""
        return any(name != "none" and family(name).cost == "expensive" for name in (self.deep, self.spectrogram))

    @property
    def name(self) -> str:
        """A short readable id, e.g. `gru256-L2.3-p4-attention` or `resnet*+lstm256-…-concat`."""
        parts = []
        if self.spectrogram != "none":
            parts.append(self.spectrogram)
        if self.deep != "none":
            layers = "all" if self.layers == "all" else ".".join(map(str, self.layers))
            width = str(self.hidden) if family(self.deep).width else ""
            deep = f"{self.deep}{width}-L{layers}-p{self.frame_pool}-{self.pooling}"
            if self.dropout != 0.2:
                deep += f"-d{self.dropout:g}"
            parts.append(deep)
        name = "+".join(parts)
        name = f"{name}-{self.fusion}" if len(parts) == 2 else name
        return f"{name}-s{self.replica}" if self.replica else name

    @property
    def key(self) -> str:
        """A stable id of all fields (names can collide after rounding; keys cannot)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = self.layers if self.layers == "all" else list(self.layers)
        if not self.replica:
            d.pop("replica")
        return d

    @classmethod
    def from_dict(cls, d, source: str = "candidate") -> "Candidate":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}")
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        except TypeError as e:
            raise ConfigError(f"{source}: {e}") from None


FINE_TUNED = "fine-tuned Whisper (2 blocks)"


def baselines(layers, tune_top: int | None = None) -> dict[str, Candidate]:
    """The hand-designed models of the SER literature as points of the space, reading
    `layers` (the encoder layers a linear probe picks on the search speakers). With
    `tune_top` (the encoder's top layer; a run gives it when its space fine-tunes encoder
    blocks) also the standard fine-tuning recipe: the 2 blocks above the probe's (last) layer
    tuned in full — above a lower layer if the top is nearer — and a mean-pooled linear head."""
    layers = tuple(layers) if layers != "all" else "all"
    out = {
        "linear probe": Candidate("linear", layers, 4, "mean", 256, 0.2),
        "GRU": Candidate("gru", layers, 4, "attention", 256, 0.2),
        "LSTM": Candidate("lstm", layers, 4, "attention", 256, 0.2),
        "ResNet*": Candidate("none", layers, 4, "attention", 256, 0.2, "resnet*"),
        "ResNet* + LSTM (concat)": Candidate("lstm", layers, 4, "attention", 256, 0.2, "resnet*", "concat"),
    }
    if tune_top is not None:
        last = tune_top - 1 if layers == "all" else layers[-1]
        out[FINE_TUNED] = Candidate("tune", (max(0, min(last, tune_top - 2)),), 4, "mean", 256, 0.2)
    return out


def layer_windows(scores, widths=(1, 2), top: int = 3) -> list[tuple[int, ...]]:
    """Windows of consecutive layers ranked by the mean probe score of their layers; the
    `top` best (ties: the lower layers first)."""
    n = len(scores)
    wins = [tuple(range(a, a + w)) for w in widths for a in range(0, n - w + 1)]
    wins.sort(key=lambda win: (-sum(scores[i] for i in win) / len(win), win))
    return wins[:top]


def check_space(space, speaker_norm: bool = False) -> None:
    """The families a `SpaceConfig` names are registered, each for its stream; a speaker-adaptive
    run (standardised hidden states) holds no family that feeds them to pretrained blocks."""
    for stream in ("deep", "spectrogram"):
        bad = [v for v in getattr(space, stream) if v not in names(stream)]
        if bad:
            raise ConfigError(f"space.{stream}: {bad} not among the registered families {names(stream)}")
    if speaker_norm and tunes_encoder(space):
        raise ConfigError("features.speaker_norm: the fine-tuning families read the encoder's own hidden "
                          "states; drop tune/tunenb/tunelora from space.deep or turn speaker_norm off")


def tunes_encoder(space) -> bool:
    """The space holds a family that fine-tunes encoder blocks (space/families.py)."""
    return any(d != "none" and family(d).tunes_encoder for d in space.deep)


def enumerate_space(space, windows, top: int | None = None) -> list[Candidate]:
    """Every candidate of a `SpaceConfig` over the given layer windows (plus "all" when the
    space allows a learned mix), in a fixed order. A family that tunes the encoder blocks above
    one layer reads each window's last layer that has blocks above it (below `top`, the
    encoder's top layer, when given)."""
    check_space(space)
    layer_options = list(windows) + (["all"] if space.layer_mix else [])
    out: dict[str, Candidate] = {}
    for deep, spec in itertools.product(space.deep, space.spectrogram):
        if deep == "none" and spec == "none":
            continue
        fusions = space.fusion if deep != "none" and spec != "none" else [space.fusion[0]]
        pools = space.pooling if deep != "none" else ["attention"]
        hiddens = space.hidden if deep != "none" and family(deep).width else [space.hidden[-1]]
        lays = layer_options if deep != "none" else [layer_options[0]]
        if deep != "none" and family(deep).tunes_encoder:
            below = [[i for i in w if top is None or i < top] for w in windows]
            lays = list(dict.fromkeys((b[-1],) for b in below if b))
        for layers, fp, pool, hid, drop, fusion in itertools.product(lays, space.frame_pool, pools, hiddens,
                                                                     space.dropout, fusions):
            if deep != "none" and not family(deep).frame_model and pool == "attention":
                pool = "mean"  # e.g. a linear probe: no frame model to attend with
            c = Candidate(deep, layers, fp, pool, hid, drop, spec, fusion)
            out.setdefault(c.key, c)
    return list(out.values())
