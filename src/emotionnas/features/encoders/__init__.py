"""Deep-feature encoders: a registry and one ``create_encoder(name)`` entry.

    encoder = create_encoder("whisper-base")          # offline default
    states = encoder.encode(wave16k)                   # (num_layers + 1, T, dim) float32

Names:
* registered: ``whisper-base`` (default, 6 blocks x 512), ``whisper-tiny.en`` (4 x 384), each
  optionally with a compute dtype: ``whisper-base@bfloat16``, ``whisper-base@int8`` (torch's
  dynamic int8), ``whisper-base@ort-int8`` (ONNX Runtime's, features/encoders/ort_whisper.py);
* ``hf:<id-or-path>``, a local directory, or an ``org/model`` id: a Hugging Face
  model already on disk (never downloaded);
* a local directory holding a CTranslate2 Whisper ``model.bin`` is read directly.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from emotionnas.features.encoders.base import Encoder, EncoderError
from emotionnas.features.encoder_ref import DTYPES, EncoderRef  # noqa: F401  (DTYPES: the API of earlier releases)
from emotionnas.features.encoders.whisper import WhisperEncoder, load_ct2_whisper, whisper_base, whisper_tiny_en

DEFAULT_ENCODER = "whisper-base"

ENCODERS: dict[str, Callable[..., Encoder]] = {
    "whisper-base": whisper_base,
    "whisper-tiny.en": whisper_tiny_en,
}

_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def create_encoder(name: str = DEFAULT_ENCODER, device: str = "cpu", **kw) -> Encoder:
    """Build the encoder called `name` (see module docstring); EncoderError if unknown or missing.
    A registered name may carry a compute dtype: `whisper-base@bfloat16`, `whisper-base@int8`."""
    ref = EncoderRef.parse(name)
    base, dtype = ref.base, ref.dtype
    if dtype:
        if dtype == "ort-int8":  # the same weights, run by ONNX Runtime's int8 (ort_whisper.py)
            from emotionnas.features.encoders.ort_whisper import OrtWhisperEncoder
            return OrtWhisperEncoder(ENCODERS[base](device=device, **kw))
        return ENCODERS[base](device=device, dtype=dtype, **kw)
    if name in ENCODERS:
        return ENCODERS[name](device=device, **kw)
    from emotionnas.features.encoders.hf import load_hf_encoder
    if name.startswith("hf:"):
        return load_hf_encoder(name[3:], device=device, **kw)
    path = Path(name).expanduser()
    if path.is_dir():
        if _is_ct2(path):
            return load_ct2_whisper(path, str(path), device=device, **kw)
        return load_hf_encoder(str(path), device=device, **kw)
    if _HF_ID.match(name):
        return load_hf_encoder(name, device=device, **kw)
    raise EncoderError(f"unknown encoder {name!r}: choose one of {sorted(ENCODERS)}, 'hf:<id-or-path>', "
                       f"a local model directory or an 'org/model' id")


def _is_ct2(path: Path) -> bool:
    """A CTranslate2 directory has model.bin whose header starts with a small binary version."""
    try:
        with open(path / "model.bin", "rb") as f:
            return int.from_bytes(f.read(4), "little") in (4, 5, 6)
    except OSError:
        return False


__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "EncoderError", "WhisperEncoder", "create_encoder"]
