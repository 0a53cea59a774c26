"""The records a run keeps of finished work, and the one rule for reusing them.

An inner-CV record (`searches/<group>/selection/<candidate>-<k>.npz`) holds a candidate's
validation probabilities per epoch on one inner fold, the validation utterances they are for,
and the run identity it was made under (seed + config digest, `rundir.run_identity`). On resume:

    missing                        -> computed
    unreadable (truncated, broken) -> recomputed, and the log says so
    made by another run, or for other validation utterances (stale)
                                   -> refused: ConfigError naming the file, with the --restart hint

Refit and final-model records (JSON beside their `.pt` weights) follow the same rule
(training/refit.py, training/final.py) and list the weights' sha256, which a resume and
`export` check.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from emotionnas.errors import ConfigError
from emotionnas.rundir import RESTART_HINT
from emotionnas.utils.io import atomic_write_bytes


def identity_text(identity: dict) -> str:
    """A run identity as an .npz stores it (strings, not dicts)."""
    return json.dumps(identity, sort_keys=True)


def load_inner_record(path: Path, val_idx: np.ndarray, identity: dict, log) -> np.ndarray | None:
    """The validation probabilities (epochs, n, classes) in `path`, or None to compute them."""
    if not path.exists():
        return None
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
            probs, val = z["val_probs"], z["val_idx"]
            made_under = str(z["identity"]) if "identity" in z.files else None
    except Exception:  # noqa: BLE001 - truncated or corrupt: recompute
        log(f"warning: {path}: unreadable record; recomputing it")
        return None
    if made_under != identity_text(identity):
        raise ConfigError(f"{path}: made by another run (seed or config differ, or an older emotionnas); "
                          f"{RESTART_HINT}")
    if not np.array_equal(val, val_idx):
        raise ConfigError(f"{path}: made for other validation utterances (stale); {RESTART_HINT}")
    return probs


def save_inner_record(path: Path, result: dict, val_idx: np.ndarray, identity: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, val_probs=result["val_probs"], val_idx=val_idx, seconds=np.array(result["seconds"]),
             identity=np.array(identity_text(identity)))
    atomic_write_bytes(path, buf.getvalue())
