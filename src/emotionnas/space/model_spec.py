"""What an exported `model.json` holds, as data: `ModelSpec` (the ensemble's members, their
candidates, searched cells and input statistics; the encoder and feature settings).

Torch-free, so that a model folder can be validated (and served through ONNX) without torch.
A model.json from elsewhere is validated field by field: types, ranges, each member's
candidate, genotype (against the op names) and recipe (against its validator). A bad file gets
a one-line ConfigError naming the file and the field; nothing in it is ever executed.
"""
from __future__ import annotations

import re

import math
from dataclasses import dataclass, field

from emotionnas.errors import ConfigError
from emotionnas.space.combiner import Combiner
from emotionnas.space.families import family
from emotionnas.space.genotype import Genotype
from emotionnas.space.pipeline import Candidate
from emotionnas.space.recipe import validate_recipe

MODEL_FORMAT_VERSION = 5       # 4: `combiner` (space/combiner.py); members may be replicas; 5: `files`
READABLE_FORMATS = (3, 4, 5)   # a version-3 model.json averages its members; before 5, no checksums
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
FILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Dims:
    """Sizes a network needs besides its candidate: classes, encoder width and layer count,
    and the CNN cell network's C and layers (cnn.C, cnn.layers). `encoder`: the encoder whose
    pretrained weights initialise families that tune its blocks (space/families.py
    `tunes_encoder`) — the run's encoder in training; "" in a model folder (not in model.json:
    its safetensors hold the tuned weights)."""
    n_classes: int
    deep_dim: int = 512
    deep_layers_total: int = 7
    cnn_C: int = 6
    cnn_layers: int = 3
    encoder: str = ""


def needs_genotype(c: Candidate) -> bool:
    """Reads a searched DARTS genotype (its spectrogram family needs one)."""
    return c.spectrogram != "none" and family(c.spectrogram).needs == "genotype"


def needs_recipe(c: Candidate) -> bool:
    """Reads a searched recurrent-cell recipe (its deep family needs one)."""
    return c.deep != "none" and family(c.deep).needs == "recipe"


MAX_LABEL_CHARS = 64
_MARKUP = set("<>&\"'`\\")


def check_label(label, where: str) -> str:
    """A class name is shown to people (pages, tables, plots): printable, short, no markup."""
    if (not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL_CHARS or not label.isprintable()
            or _MARKUP & set(label) or label != label.strip()):
        raise ConfigError(f"{where}: expected a printable label of 1-{MAX_LABEL_CHARS} characters without "
                          f"markup (<>&\"'`\\) or edge spaces, got {_short(label)}")
    return label


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


_SPEC_FIELDS = {"sample_rate", "seconds", "win_ms", "overlap_ms", "n_fft", "out_freq", "out_time", "log_floor",
                "mel_bins"}


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
    if spec_cfg.get("mel_bins") is not None:
        _int(spec_cfg, "mel_bins", 8, 201, f"{w}: spectrogram")
    return dict(spec_cfg)


def _card(src, w: str) -> dict:
    """The model card fields a page or /health may show, validated as data (others dropped):
    corpus, synthetic, expected_ua/expected_wa (the run's cross-validated scores), the number
    of speakers trained on."""
    if not isinstance(src, dict):
        return {}
    out = {}
    if isinstance(src.get("corpus"), str):
        out["corpus"] = check_label(src["corpus"], f"{w}: source.corpus")
    if isinstance(src.get("synthetic"), bool):
        out["synthetic"] = src["synthetic"]
    for key, name in (("cv_ua", "expected_ua"), ("cv_wa", "expected_wa")):
        if src.get(key) is not None:
            out[name] = _num(src[key], f"{w}: source.{key}", 0.0, 100.0)
    speakers = src.get("trained_speakers")
    if speakers is not None:
        if not isinstance(speakers, list) or len(speakers) > 100_000 or not all(isinstance(x, str) for x in speakers):
            raise ConfigError(f"{w}: source.trained_speakers: expected a list of speaker ids")
        out["trained_speakers"] = len(speakers)
    return out


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


def _member(m, i: int, dims: Dims, w: str) -> Member:
    """members[i] of a model.json, validated field by field."""
    where = f"{w}: members[{i}]"
    if not isinstance(m, dict):
        raise ConfigError(f"{where}: expected a mapping")
    cand = Candidate.from_dict(m.get("candidate"), f"{where}.candidate")
    if cand.layers != "all" and max(cand.layers) >= dims.deep_layers_total:
        raise ConfigError(f"{where}.candidate.layers: layer {max(cand.layers)} beyond the encoder's "
                          f"{dims.deep_layers_total} hidden states")
    if cand.deep != "none" and family(cand.deep).tunes_encoder and cand.layers[0] >= dims.deep_layers_total - 1:
        raise ConfigError(f"{where}.candidate.layers: {cand.deep!r} tunes the blocks above layer "
                          f"{cand.layers[0]}, and the encoder has none above it")
    genotype = m.get("genotype")
    if genotype is not None:
        Genotype.from_dict(genotype, f"{where}.genotype")
    elif needs_genotype(cand):
        raise ConfigError(f"{where}.genotype: {cand.spectrogram} needs a genotype")
    recipe = m.get("recipe")
    if recipe is not None:
        validate_recipe(recipe, f"{where}.recipe")
    elif needs_recipe(cand):
        raise ConfigError(f"{where}.recipe: a {cand.deep!r} member needs a recipe")
    stats = m.get("spec_stats")
    if not isinstance(stats, list) or len(stats) != 2:
        raise ConfigError(f"{where}.spec_stats: expected [mean, std]")
    stats = (_num(stats[0], f"{where}.spec_stats[0]", -1e6, 1e6),
             _num(stats[1], f"{where}.spec_stats[1]", 1e-12, 1e6))
    prefix = m.get("weights_prefix")
    if not isinstance(prefix, str) or prefix != f"m{i}.":
        raise ConfigError(f"{where}.weights_prefix: expected 'm{i}.'")
    return Member(_str(m, "name", where), cand, genotype, recipe, stats, prefix)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an exported recognizer (the content of model.json):
    the members of the ensemble (their probabilities averaged or stacked: `combiner`) and the features."""
    label_names: tuple
    members: tuple
    dims: Dims
    encoder: str
    deep_pool: int
    spectrogram: dict
    source: str = "model.json"
    temperature: float = 1.0          # calibration: probabilities -> softmax(log p / T) (metrics.temperature_scale)
    card: dict = field(default_factory=dict)  # what the model is (from model.json "source"), validated
    combiner: Combiner = Combiner()   # how member probabilities are combined (before the temperature)
    speaker_norm: bool = False        # speaker-adaptive: deep features standardised by an enrolled speaker's stats
    files: dict = field(default_factory=dict)  # weights file name -> sha256 (format 5); loading checks them

    def to_dict(self) -> dict:
        return {"format_version": MODEL_FORMAT_VERSION, "label_names": list(self.label_names),
                "members": [m.to_dict() for m in self.members],
                "dims": {"deep_dim": self.dims.deep_dim, "deep_layers_total": self.dims.deep_layers_total,
                         "cnn_C": self.dims.cnn_C, "cnn_layers": self.dims.cnn_layers},
                "encoder": self.encoder, "deep_pool": self.deep_pool, "spectrogram": self.spectrogram,
                "temperature": self.temperature, "combiner": self.combiner.to_dict(),
                **({"speaker_norm": True} if self.speaker_norm else {}),
                **({"files": dict(self.files)} if self.files else {})}

    @classmethod
    def from_meta(cls, meta, source: str = "model.json") -> "ModelSpec":
        w = source
        if not isinstance(meta, dict):
            raise ConfigError(f"{w}: expected a JSON object, got {type(meta).__name__}")
        version = meta.get("format_version", 1)
        if version not in READABLE_FORMATS or isinstance(version, bool):
            raise ConfigError(f"{w}: model format {_short(version)}, this emotionnas reads "
                              f"{' and '.join(map(str, READABLE_FORMATS))}; re-export the model with `emotionnas export`")
        if version < 4 and "combiner" in meta:
            raise ConfigError(f"{w}: combiner: needs model format 4, the file says {version}")
        labels = meta.get("label_names")
        if (not isinstance(labels, list) or not 2 <= len(labels) <= 1000 or len(set(map(str, labels))) != len(labels)
                or not all(isinstance(x, str) for x in labels)):
            raise ConfigError(f"{w}: label_names: expected 2-1000 distinct strings")
        for i, x in enumerate(labels):
            check_label(x, f"{w}: label_names[{i}]")
        d = _dict(meta, "dims", w)
        dims = Dims(len(labels), _int(d, "deep_dim", 1, 8192, f"{w}: dims"),
                    _int(d, "deep_layers_total", 1, 200, f"{w}: dims"), _int(d, "cnn_C", 1, 256, f"{w}: dims"),
                    _int(d, "cnn_layers", 1, 32, f"{w}: dims"))
        raw = meta.get("members")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 32:
            raise ConfigError(f"{w}: members: expected a list of 1-32 members")
        members = [_member(m, i, dims, w) for i, m in enumerate(raw)]
        deep_pool = _int(meta, "deep_pool", 1, 64, w)
        spec_cfg = _check_spectrogram(_dict(meta, "spectrogram", w), w)
        temperature = _num(meta.get("temperature", 1.0), f"{w}: temperature", 0.05, 20.0)
        combiner = Combiner.from_dict(meta.get("combiner"), len(members), len(labels), f"{w}: combiner")
        speaker_norm = meta.get("speaker_norm", False)
        if not isinstance(speaker_norm, bool):
            raise ConfigError(f"{w}: speaker_norm: expected true or false, got {_short(speaker_norm)}")
        return cls(tuple(labels), tuple(members), dims, _str(meta, "encoder", w), deep_pool, spec_cfg, source,
                   temperature, _card(meta.get("source"), w), combiner, speaker_norm, _files(meta, version, w))


def _files(meta: dict, version: int, where: str) -> dict:
    """`files`: {weights file name: sha256} (format 5; `emotionnas export` always writes it and a
    loader checks each listed file before reading it). Folders written by hand may leave it out."""
    if version < 5 or "files" not in meta:
        return {}
    files = _dict(meta, "files", where)
    if not 1 <= len(files) <= 64 or not all(isinstance(k, str) and FILE_NAME.fullmatch(k) and isinstance(v, str)
                                           and SHA256_HEX.fullmatch(v) for k, v in files.items()):
        raise ConfigError(f"{where}.files: expected 1-64 plain file names, each with its sha256 (64 hex digits)")
    return dict(files)


__all__ = ["check_label", "Dims", "MODEL_FORMAT_VERSION", "Member", "ModelSpec", "needs_genotype", "needs_recipe"]
