"""Fixed seeds for Python, NumPy and torch.

PYTHONHASHSEED is not set here: it only takes effect when a process starts, so
setting it inside the running process would promise a determinism it does not
give. Nothing in the pipeline depends on the iteration order of a set or on
``hash()`` of a string (sets are sorted before use); a test re-runs a run in a
fresh process and compares results bit for bit.
"""
from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
