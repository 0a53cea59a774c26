"""What `emotionnas predict` prints, and the inputs it accepts.

Inputs: files, folders (every audio file below, sorted) and list files (`.txt`, `.scp`,
`.list`: one path per line, or `id path` lines as Kaldi's wav.scp; relative paths are relative
to the list; `#` comments). Nothing here opens an input that is not a regular file: a FIFO,
device or socket (given, inside a folder or listed) becomes an item that `load_audio` refuses
from os.stat alone ("x.wav: not a regular file (FIFO)"), so predict lists it as skipped and
goes on instead of blocking on it.

Formats (docs/outputs.md has the JSON schema of each):
    jsonl  one JSON object per file (or per segment): {"file", "label", "probs", "speech", ...}
    csv    file,start,end,label,score,<one column per class>   (audinterface-style segment table)
    hf     one JSON line per file: [{"label", "score"}, ...] best first, as Hugging Face's
           pipeline("audio-classification") returns (empty list without speech)
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from emotionnas.data.file_kind import file_problem
from emotionnas.errors import EmotionNASError

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au"}
LIST_EXTS = {".txt", ".scp", ".list"}
FORMATS = ("jsonl", "csv", "hf")
MAX_LIST_LINES = 1_000_000


def expand_inputs(paths) -> list[tuple[str, Path]]:
    """[(id, path)] for files, folders and list files. A folder gives every path below it with an
    audio extension that is not itself a folder (FIFOs and devices included, to be refused and
    listed when read); a list file is read only when it is a regular file, otherwise it is an
    item like any other and refused when read."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [(str(f), f) for f in sorted(f for f in p.rglob("*")
                                                if f.suffix.lower() in AUDIO_EXTS and not f.is_dir())]
        elif p.suffix.lower() in LIST_EXTS and p.is_file():  # is_file asks os.stat: False for a FIFO
            out += _read_list(p)
        else:
            out.append((str(p), p))
    return out


def _read_list(path: Path) -> list[tuple[str, Path]]:
    """The (id, path) entries of a list file; refused in one line when it is not a regular file."""
    problem = file_problem(path)
    if problem is not None:
        raise EmotionNASError(f"{path}: list file {problem}")
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if n > MAX_LIST_LINES:
                raise EmotionNASError(f"{path}: more than {MAX_LIST_LINES} lines")
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(maxsplit=1)
            uid, rel = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[0])
            p = Path(rel) if Path(rel).is_absolute() else path.parent / rel
            out.append((uid, p))
    return out


class Writer:
    """Prints rows in one format; `labels` gives the csv columns."""

    def __init__(self, fmt: str, labels, out):
        if fmt not in FORMATS:
            raise EmotionNASError(f"--format: expected one of {FORMATS}, got {fmt!r}")
        self.fmt, self.labels, self.out = fmt, list(labels), out
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["file", "start", "end", "label", "score", *self.labels])

    def row(self, file: str, res: dict, start=None, end=None) -> None:
        probs = res.get("probs")
        if self.fmt == "jsonl":
            self.out.write(json.dumps({"file": file, **({"start": start, "end": end} if start is not None else {}),
                                       **res}) + "\n")
        elif self.fmt == "hf":
            pairs = sorted(probs.items(), key=lambda kv: -kv[1]) if probs else []
            self.out.write(json.dumps([{"label": k, "score": v} for k, v in pairs]) + "\n")
        else:
            score = probs[res["label"]] if probs and res.get("label") is not None else ""
            self.csv.writerow([file, "" if start is None else start, "" if end is None else end,
                               res.get("label") or "", score, *[(probs or {}).get(lab, "") for lab in self.labels]])
        self.out.flush()


def to_csv_text(rows: list[dict], labels, file: str) -> str:
    """A segment table as CSV text (for the service)."""
    buf = io.StringIO()
    w = Writer("csv", labels, buf)
    for r in rows:
        w.row(file, r, r["start"], r["end"])
    return buf.getvalue()


def save_embeddings(path, vectors: list[tuple[str, "object"]], rec) -> Path:
    """(N, D) float32 at `path` (.npy) and, beside it, .json naming the rows and the members."""
    import numpy as np

    from emotionnas.utils.io import atomic_write_bytes, atomic_write_json
    if not hasattr(rec, "embeddings"):
        raise EmotionNASError("--embeddings needs the torch backend (the ONNX graphs output logits only)")
    path = Path(path).with_suffix(".npy")
    buf = io.BytesIO()
    np.save(buf, np.stack([v for _, v in vectors]) if vectors else np.zeros((0, 0), np.float32))
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_json(path.with_suffix(".json"), {"rows": [uid for uid, _ in vectors],
                                                  "members": [m.name for m in rec.spec.members]})
    return path
