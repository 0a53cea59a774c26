"""Shared helpers of the benchmark scripts: machine line, BENCHMARKS.md section writer."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "data" / "emodb"


def machine_line() -> str:
    import torch

    from emotionnas.utils.provenance import cpu_model
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu_model()}), {mem:.1f} GiB RAM, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"1-min load average at start {os.getloadavg()[0]:.1f}")


def write_section(title: str, body: str, path: Path = REPO / "BENCHMARKS.md") -> None:
    """Replace the `## title` section of BENCHMARKS.md (or append it); other sections stay."""
    from emotionnas.utils.io import atomic_write_text
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    atomic_write_text(path, text)
