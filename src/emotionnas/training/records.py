"""The records a run keeps of finished work, and the one rule for reusing them.

An inner-CV record (`searches/<group>/selection/<candidate>-<k>.npz`) holds a candidate's
validation probabilities per epoch on one inner fold, the validation utterances they are for,
and the run identity it was made under (seed + config digest, `rundir.run_identity`). On resume:

    missing                        -> computed
    unreadable (truncated, broken) -> recomputed, and the log says so
    made by another run, or for other validation utterances (stale)
                                   -> refused: ConfigError naming the file, with the --restart hint

Every cached result of a run follows this one rule: JSON records through `cached_json` (the
layer probe, cell searches), refit and final-model records (training/refit.py, with the weights'
sha256, which a resume and `export` check).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from emotionnas.errors import ConfigError
from emotionnas.rundir import RESTART_HINT
from emotionnas.utils.io import atomic_write_bytes, read_json_or_none


def identity_text(identity: dict) -> str:
    """A run identity as an .npz stores it (strings, not dicts)."""
    return json.dumps(identity, sort_keys=True)


def load_inner_record(path: Path, val_idx: np.ndarray, identity: dict, log,
                      outside_idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(validation probabilities (epochs, n, classes), the outside utterances' probabilities or
    None) in `path`, or None to compute them. A record made before outside predictions were kept is
    reused as it is (None for them: that candidate has no bagged score)."""
    if not path.exists():
        return None
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
            probs, val = z["val_probs"], z["val_idx"]
            made_under = str(z["identity"]) if "identity" in z.files else None
            outside = (z["outside_probs"], z["outside_idx"]) if "outside_idx" in z.files else None
    except Exception:  # noqa: BLE001 - truncated or corrupt: recompute
        log(f"warning: {path}: unreadable record; recomputing it")
        return None
    if made_under != identity_text(identity):
        raise ConfigError(f"{path}: made by another run (seed or config differ, or an older emotionnas); "
                          f"{RESTART_HINT}")
    if not np.array_equal(val, val_idx):
        raise ConfigError(f"{path}: made for other validation utterances (stale); {RESTART_HINT}")
    if outside_idx is not None and len(outside_idx) and outside is not None:
        if not np.array_equal(outside[1], outside_idx):
            raise ConfigError(f"{path}: made for other held-out utterances (stale); {RESTART_HINT}")
        return probs, outside[0]
    return probs, None  # a record of an earlier release has no held-out predictions: no bag, no retraining


def save_inner_record(path: Path, result: dict, val_idx: np.ndarray, identity: dict,
                      outside_idx: np.ndarray | None = None) -> None:
    buf = io.BytesIO()
    extra = ({"outside_probs": result["outside_probs"], "outside_idx": outside_idx}
             if outside_idx is not None and len(outside_idx) else {})
    np.savez(buf, val_probs=result["val_probs"], val_idx=val_idx, seconds=np.array(result["seconds"]),
             identity=np.array(identity_text(identity)), **extra)
    atomic_write_bytes(path, buf.getvalue())


def cached_json(path: Path, must_match: dict, log, within: str | None = None) -> dict | None:
    """The JSON record in `path` if its fields equal `must_match` (e.g. the speakers it used and the
    run identity; with `within`, the fields of the record's sub-block of that name); None when
    missing or unreadable (recompute; the log says so); ConfigError naming the fields that differ
    when it was made for something else (stale)."""
    record = read_json_or_none(path, log)
    if record is None:
        return None
    fields = record.get(within) if within is not None and isinstance(record, dict) else record
    differ = [k for k, v in must_match.items() if not isinstance(fields, dict) or fields.get(k) != v]
    if within is not None and isinstance(fields, dict):  # a sub-block must equal `must_match` whole
        differ += sorted(set(fields) - set(must_match))
    if differ:
        raise ConfigError(f"{path}: made for other {', '.join(differ)} (stale); {RESTART_HINT}")
    return record
