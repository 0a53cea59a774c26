"""An encoder reference: the run's `features.encoder` string, parsed once.

    ref = EncoderRef.parse("whisper-base@int8")
    ref.base          # "whisper-base": the weights (a registered name, "hf:<id>", a folder, "org/model")
    ref.dtype         # "int8": how it computes (None: as loaded), only for registered Whisper names
    ref.float_name    # "whisper-base": the same weights in float32 (fine-tuning, ONNX export start here)
    ref.has_whisper_blocks   # its blocks can be fine-tuned (space/pipeline.py `tune` families)

Features (create_encoder), fine-tuning (models/tune.py), ONNX export and the run's pool all read
these fields here instead of taking the string apart themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

from emotionnas.errors import EncoderError

REGISTERED = ("whisper-base", "whisper-tiny.en")   # features/encoders/__init__.py ENCODERS (a test checks)
DTYPES = ("float32", "bfloat16", "int8", "ort-int8")


@dataclass(frozen=True)
class EncoderRef:
    name: str
    base: str
    dtype: str | None = None

    @classmethod
    def parse(cls, name: str) -> "EncoderRef":
        if not isinstance(name, str) or not name.strip():
            raise EncoderError(f"encoder {name!r}: expected a name")
        base, _, dtype = name.partition("@")
        if dtype and (base not in REGISTERED or dtype not in DTYPES):
            raise EncoderError(f"encoder {name!r}: a dtype suffix needs a registered Whisper name and one of "
                               f"{', '.join(DTYPES)}")
        return cls(name, base, dtype or None)

    @property
    def registered(self) -> bool:
        return self.base in REGISTERED

    @property
    def float_name(self) -> str:
        return self.base

    @property
    def has_whisper_blocks(self) -> bool:
        """A Whisper encoder: a registered name, or Hugging Face / local Whisper weights by name."""
        return self.registered or "whisper" in self.base.lower()
