"""Atomic writes: a file is either the old one or the complete new one, never half.

The data goes to a temp file in the target folder, is fsynced, gets the mode a plain
``open(path, "w")`` would give (0666 minus the user's umask: a shared feature cache
or an exported model stays readable by colleagues), is renamed over the target, and
the folder is fsynced so the rename itself survives a power cut.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path

from emotionnas.errors import IntegrityError, disk_error

# errors of the disk, not of the program: one line naming the path (errors.DiskError)
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
TEMP_SUFFIX = ".tmp"  # every temp file of an atomic write: `.<name>.<random>.tmp` beside its target


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
    """The temp file is removed on any failure or interrupt (SIGINT, and SIGTERM, which the CLI
    turns into the same KeyboardInterrupt); a disk that refuses the write is a DiskError."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace_atomically(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            raise disk_error(path, e) from None
        raise


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temp files that a killed writer (SIGKILL, power cut) left below `folder`;
    only names this module makes (`.<name>.<random>.tmp`). Returns how many."""
    n = 0
    for tmp in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _atomic_write_bytes(path, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | Path, obj) -> str:
    """torch.save to a temp file then rename (checkpoints survive an interrupt). Returns the
    sha256 of what was written, for the record that lists the file."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    _atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


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


def _check_digest(path: Path, expected: str | None, actual: str) -> None:
    if not isinstance(expected, str) or actual != expected:
        raise IntegrityError(f"{path}: content does not match its recorded sha256 "
                             f"({'none recorded' if not isinstance(expected, str) else expected[:12] + '...'}, "
                             f"file {actual[:12]}...): corrupted or replaced")


def check_sha256(path: str | Path, expected: str | None) -> None:
    """IntegrityError naming the file when its content's sha256 is not `expected` (None: the
    record lists no checksum, which is refused as well: every weights file has one). Streams the
    file (model weights, ONNX graphs); `read_verified` when the bytes are wanted too."""
    path = Path(path)
    try:
        actual = file_sha256(path)
    except OSError as e:
        raise IntegrityError(f"{path}: unreadable ({e.strerror or type(e).__name__})") from None
    _check_digest(path, expected, actual)


def read_verified(path: str | Path, expected: str | None) -> bytes:
    """The bytes of `path`, read once, checked against `expected` as `check_sha256` checks them."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IntegrityError(f"{path}: unreadable ({e.strerror or type(e).__name__})") from None
    _check_digest(path, expected, hashlib.sha256(data).hexdigest())
    return data


def load_checkpoint(path: str | Path, log=None, sha256: str | None = None, verify: bool = False):
    """`torch.load(path, weights_only=True)`, or None when the file is missing, truncated or
    corrupt, or (`verify`) its sha256 is not `sha256` (the caller then recomputes it; `log` is
    told why). Verified files are read once: the checked bytes are the loaded ones."""
    import io

    import torch
    path = Path(path)
    if not path.exists():
        return None
    source = path
    if verify:
        try:
            source = io.BytesIO(read_verified(path, sha256))
        except IntegrityError as e:
            if log:
                log(f"warning: {e}; recomputing it")
            return None
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
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
