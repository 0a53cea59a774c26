"""What produced a result: versions, git revision, machine, seed, command."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def git_revision(cwd: str | Path | None = None) -> str:
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (rev + ("-dirty" if dirty else "")) if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(seed: int | None = None) -> dict:
    import emotionnas
    return {
        "emotionnas": emotionnas.__version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "torch": _version("torch"), "numpy": _version("numpy"), "librosa": _version("librosa"),
        "transformers": _version("transformers"), "ctranslate2": _version("ctranslate2"),
        "platform": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(),
        "command": " ".join(sys.argv), "seed": seed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def peak_rss_mb() -> float:
    """Peak resident memory (MB) of this process and of its finished worker processes, whichever
    is larger (Linux reports ru_maxrss in KiB)."""
    import resource
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished workers."""
    import resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
