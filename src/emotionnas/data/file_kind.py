"""What a path names, asked of `os.stat` without opening it.

Opening a FIFO blocks until some process writes to it (forever, for a stray named pipe); a
character device such as /dev/zero never ends; a socket or a directory cannot be read as a file.
So every reader of a file a user names (predict inputs and the entries of list files and folders,
corpus manifests and their rows, `--config`) asks here first and refuses anything but a regular
file, in one line naming it, before anything opens it. `os.stat` follows symlinks: a link to a
regular file is a regular file.
"""
from __future__ import annotations

import os
import stat

_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def kind_of(mode: int) -> str:
    """'regular file', 'directory', 'FIFO', 'character device', 'block device', 'socket' or
    'special file' for the `st_mode` of a stat result."""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def not_regular(mode: int) -> str:
    """The reason given for a path that is there but is not a regular file."""
    return f"not a regular file ({kind_of(mode)})"


def file_problem(path) -> str | None:
    """None when `path` is a regular file (symlinks followed); otherwise why it cannot be read as
    one: 'missing', 'not a regular file (FIFO)', or the system's reason ('Permission denied')."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        return f"cannot be inspected ({getattr(e, 'strerror', None) or type(e).__name__})"
    return None if stat.S_ISREG(mode) else not_regular(mode)
