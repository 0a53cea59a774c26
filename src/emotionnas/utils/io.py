"""Atomic writes: a file is either the old one or the complete new one, never half.

The data goes to a temp file in the target folder, is fsynced, gets the mode a plain
``open(path, "w")`` would give (0666 minus the user's umask: a shared feature cache
or an exported model stays readable by colleagues), is renamed over the target, and
the folder is fsynced so the rename itself survives a power cut.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(tmp: str | Path, path: str | Path) -> None:
    """Give `tmp` the default file mode, rename it to `path` and fsync the folder."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def _atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace_atomically(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _atomic_write_bytes(path, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | Path, obj) -> None:
    """torch.save to a temp file then rename (checkpoints survive an interrupt)."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | Path, log=None):
    """`torch.load(path, weights_only=True)`, or None when the file is missing, truncated or
    corrupt (the caller then recomputes it; `log` is told why)."""
    import torch
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle opcode, disallowed global: rebuild
        if log:
            log(f"warning: {path}: unreadable checkpoint ({type(e).__name__}); recomputing it")
        return None


def read_json_or_none(path: str | Path, log=None):
    """The JSON in `path`, or None when missing or unreadable (truncated, not JSON)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        if log:
            log(f"warning: {path}: unreadable JSON ({type(e).__name__}); recomputing it")
        return None
