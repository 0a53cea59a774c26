"""One writer per folder: an exclusive lock file holding its owner's pid, host and start time.

    with FolderLock(run_dir / ".lock", what="run folder"):   # ConfigError if another process holds it
        ...                                                  # write

The lock is `fcntl.flock` on the file, so the kernel releases it the moment its owner dies,
however it dies (SIGKILL included): a lock file left by a dead process is *stale*, and the next
writer takes it over and says whose it was. A live holder is refused in one line naming its pid,
host and start time. The file is never deleted (deleting it while another process waits on it
would let two writers in); its content is informative only, the kernel lock is the truth.

Within one process the lock is re-entrant by path (a run that writes its report takes the lock
it already holds). Local file systems only: flock over NFS may not exclude other hosts, which
the message on a stale lock from another host says.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from emotionnas.errors import ConfigError

_HELD: dict[str, "FolderLock"] = {}  # resolved lock path -> the lock this process holds
MAX_LOCK_BYTES = 4096


def _holder(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_LOCK_BYTES).decode("utf-8", "replace") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    if not holder:
        return "another process"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (since {when})"


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class FolderLock:
    """An exclusive, non-blocking lock on `path` (created if missing). `log` hears about a
    stale lock taken over."""

    def __init__(self, path, what: str = "folder", log=print):
        self.path, self.what, self.log = Path(path), what, log
        self.fd: int | None = None
        self.depth = 0
        self.delegate: FolderLock | None = None  # the lock this process already held on the same path

    def acquire(self) -> "FolderLock":
        key = str(self.path.resolve())
        if key in _HELD:  # this process holds it already
            self.delegate = _HELD[key]
            self.delegate.depth += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"{self.path.parent}: this {self.what} is in use by {describe(_holder(self.path))}; "
                              "wait for it to finish or stop it (another --out runs in parallel)") from None
        previous = _holder(self.path)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time(), 3)}
        if previous and previous.get("pid") != me["pid"]:
            state = ("no longer running" if previous.get("host") == me["host"] and not pid_alive(previous.get("pid"))
                     else "its lock was released")
            self.log(f"note: {self.path.parent}: taking over the lock of {describe(previous)}: {state}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self.fd, self.depth = fd, 1
        _HELD[key] = self
        return self

    def release(self) -> None:
        if self.delegate is not None:
            self.delegate, delegate = None, self.delegate
            return delegate.release()
        self.depth -= 1
        if self.depth > 0 or self.fd is None:
            return
        _HELD.pop(str(self.path.resolve()), None)
        try:
            os.ftruncate(self.fd, 0)  # an empty lock file: released cleanly, nothing to take over
        except OSError:
            pass
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self) -> "FolderLock":
        if self.fd is not None or self.delegate is not None:  # `with rundir.lock():` -- taken already
            return self
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
