"""Reader for CTranslate2 ``model.bin`` files (binary versions 4-6).

Layout, as written by ``ctranslate2.specs.model_spec.ModelSpec._serialize``
(all integers little-endian)::

    uint32 version; string spec_name; uint32 revision; uint32 n_variables
    n_variables x { string name; uint8 rank; uint32 dims[rank];
                    uint8 dtype; uint32 n_bytes; bytes data }
    uint32 n_aliases; n_aliases x { string alias; string target }

where ``string`` is a uint16 length (including a trailing NUL) then the bytes.
dtype ids follow ``include/ctranslate2/types.h``: float32, int8, int16,
int32, float16, bfloat16. Quantised weights come with a ``<name>_scale``
variable: int8 rows were stored as ``round(w * scale[:, None])`` and int16 as
``round(w * scale)``; we divide the scale back out so every float weight
returns as float32.

We parse the file ourselves because CTranslate2's ``Whisper.encode`` returns
only the last encoder layer, and the deep stream needs all of them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotionnas.features.encoders.base import EncoderError

_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, "bfloat16")
_SUPPORTED_VERSIONS = (4, 5, 6)


@dataclass
class CT2Model:
    """Variables of one CTranslate2 model (only those under the requested prefixes)."""

    spec: str
    revision: int
    version: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        try:
            return self.variables[name]
        except KeyError:
            raise EncoderError(f"CTranslate2 model ({self.spec}) has no variable {name!r}") from None


def read_ct2_model(path: str | Path, prefixes: tuple[str, ...] = ("",)) -> CT2Model:
    """Read the variables of `path` whose names start with one of `prefixes`.

    A first pass indexes the file with seeks; only wanted variables (plus
    the targets of wanted aliases, which the converter creates for equal
    tensors, e.g. all-zero biases, possibly in the decoder) are then read, so
    the Whisper decoder, half of the file, is skipped. Float weights are
    returned as float32, quantised ones dequantised; scalars as 0-d arrays of
    their stored type.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise EncoderError(f"{path}: cannot open CTranslate2 model ({e.strerror})") from None
    with f:
        try:
            model, index, aliases = _index(f)
            wanted = {n for n in index if n.startswith(prefixes)}
            wanted |= {t for a, t in aliases.items() if a.startswith(prefixes) and t in index}
            wanted |= {n + "_scale" for n in wanted if n + "_scale" in index}
            raw = {n: _load(f, n, *index[n]) for n in sorted(wanted, key=lambda n: index[n][0])}
        except (struct.error, EOFError, UnicodeDecodeError, ValueError) as e:
            raise EncoderError(f"{path}: truncated or malformed CTranslate2 model.bin ({e})") from None
    try:
        variables = _dequantise(raw)
    except (KeyError, ValueError) as e:
        raise EncoderError(f"{path}: inconsistent quantisation scales ({e})") from None
    for alias, target in aliases.items():
        if alias.startswith(prefixes) and target in variables:
            variables[alias] = variables[target]
    model.variables = {n: v for n, v in variables.items() if n.startswith(prefixes)}
    return model


def _index(f):
    """-> (CT2Model without variables, {name: (offset, dtype, shape, n_bytes)}, {alias: target})."""
    def take(fmt):
        n = struct.calcsize(fmt)
        b = f.read(n)
        if len(b) != n:
            raise EOFError("unexpected end of file")
        return struct.unpack("<" + fmt, b)[0]

    def string():
        n = take("H")
        b = f.read(n)
        if len(b) != n:
            raise EOFError("unexpected end of file")
        return b[:-1].decode("utf-8")

    version = take("I")
    if version not in _SUPPORTED_VERSIONS:
        raise ValueError(f"binary version {version} not supported (expected one of {_SUPPORTED_VERSIONS})")
    spec = string()
    revision = take("I")
    index = {}
    for _ in range(take("I")):
        name = string()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype_id = take("B")
        n_bytes = take("I")
        if dtype_id >= len(_DTYPES):
            raise ValueError(f"variable {name!r} has unknown dtype id {dtype_id}")
        index[name] = (f.tell(), _DTYPES[dtype_id], shape, n_bytes)
        f.seek(n_bytes, 1)
    aliases = {}
    for _ in range(take("I")):
        alias = string()
        aliases[alias] = string()
    return CT2Model(spec=spec, revision=revision, version=version), index, aliases


def _load(f, name: str, offset: int, dtype, shape: tuple[int, ...], n_bytes: int) -> np.ndarray:
    f.seek(offset)
    data = f.read(n_bytes)
    if len(data) != n_bytes:
        raise EOFError(f"unexpected end of file in {name!r}")
    return _decode(data, dtype, shape, name)


def _decode(data: bytes, dtype, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype == "bfloat16":
        # bfloat16 is the top half of a float32: shift it back into place.
        arr = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"variable {name!r}: {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def _dequantise(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue  # consumed with its weight below
        scale = raw.get(name + "_scale")
        if scale is None and arr.dtype in (np.int8, np.int16) and name.endswith("weight"):
            raise ValueError(f"quantised {name!r} has no {name}_scale")
        if scale is not None and arr.dtype in (np.int8, np.int16):
            scale = scale.astype(np.float32)
            if arr.dtype == np.int8:  # one scale per output row
                arr = arr.astype(np.float32) / scale.reshape(-1, *([1] * (arr.ndim - 1)))
            else:  # int16: one scale for the whole tensor
                arr = arr.astype(np.float32) / scale
        elif arr.dtype in (np.float16, np.float32) and arr.ndim > 0:
            arr = arr.astype(np.float32)
        out[name] = arr
    return out
