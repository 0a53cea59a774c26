"""What `emotionnas predict` prints, and the inputs it accepts.

Inputs: files, folders (every audio file below, sorted) and list files (`.txt`, `.scp`,
`.list`: one path per line, or `id path` lines as Kaldi's wav.scp; relative paths are relative
to the list; `#` comments). Nothing here opens an input that is not a regular file: a FIFO,
device or socket (given, inside a folder or listed) becomes an item that `load_audio` refuses
from os.stat alone ("x.wav: not a regular file (FIFO)"), so predict gives it an error row and
goes on instead of blocking on it.

Every input gets exactly one row (one per segment with --segments), in input order, so a
reader can zip the output with its inputs: an input that cannot be used gets an error row
("error": one line naming it, "label" null) instead of a gap. `input_problem` gives the reasons
that need no decoding: "no such file or folder" and "empty folder (no audio files in it)";
decoding problems say "unreadable audio (...)", "silent", ... (data/audio.py).

Formats (docs/outputs.md has the JSON schema of each):
    jsonl  one JSON object per file (or per segment): {"file", "label", "probs", "speech", ...}
    csv    file,start,end,label,score,<one column per class>,error   (audinterface-style segment table)
    hf     one JSON line per file: {"file", "predictions": [{"label", "score"}, ...]} with the list
           best first as Hugging Face's pipeline("audio-classification") returns it (every class,
           or the --top-k best; empty without speech); "start"/"end" with segments
"""
from __future__ import annotations

import csv
import io
import json
import os
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
    listed when read); a folder with none is an item itself, so that it gets its own error row
    (`input_problem`: "empty folder") instead of vanishing. A list file is read only when it is
    a regular file, otherwise it is an item like any other and refused when read."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTS and not f.is_dir())
            out += [(str(f), f) for f in found] if found else [(str(p), p)]
        elif p.suffix.lower() in LIST_EXTS and p.is_file():  # is_file asks os.stat: False for a FIFO
            out += _read_list(p)
        else:
            out.append((str(p), p))
    return out


def input_problem(path: Path) -> str | None:
    """Why an input cannot be used, when that is known without reading it: a path that names
    nothing, or a folder holding no audio file (`expand_inputs` keeps such a folder as an item).
    None otherwise; decoding problems come from `load_audio`."""
    path = Path(path)
    if not os.path.lexists(path):
        return f"{path}: no such file or folder"
    if path.is_dir():
        return f"{path}: empty folder (no audio files in it: {', '.join(sorted(AUDIO_EXTS))})"
    return None


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
    """Prints rows in one format; `labels` gives the csv columns, `top_k` the length of an hf row's
    list (None: every class)."""

    def __init__(self, fmt: str, labels, out, top_k: int | None = None):
        if fmt not in FORMATS:
            raise EmotionNASError(f"--format: expected one of {FORMATS}, got {fmt!r}")
        self.fmt, self.labels, self.out, self.top_k = fmt, list(labels), out, top_k
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["file", "start", "end", "label", "score", *self.labels, "error"])

    def row(self, file: str, res: dict, start=None, end=None) -> None:
        """One input's (or one segment's) row; `res` is a result of `predict`, or {"error": line}."""
        where = {"start": start, "end": end} if start is not None else {}
        if self.fmt == "jsonl":
            self.out.write(json.dumps({"file": file, **where, **res}) + "\n")
        elif self.fmt == "hf":
            self.out.write(json.dumps({"file": file, **where, **self._hf(res)}) + "\n")
        else:
            probs = res.get("probs")
            score = probs[res["label"]] if probs and res.get("label") is not None else ""
            self.csv.writerow([file, "" if start is None else start, "" if end is None else end,
                               res.get("label") or "", score, *[(probs or {}).get(lab, "") for lab in self.labels],
                               res.get("error", "")])
        self.out.flush()

    def error(self, file: str, message: str) -> None:
        """The row of an input that could not be used: label null, the reason in one line."""
        self.row(file, {"label": None, "probs": None, "error": message})

    def _hf(self, res: dict) -> dict:
        """{"predictions": [{"label", "score"}, ...]} best first (the --top-k best when given),
        as Hugging Face's audio-classification pipeline; `[]` without speech; + "error"."""
        if "error" in res:
            return {"predictions": [], "error": res["error"]}
        pairs = sorted((res.get("probs") or {}).items(), key=lambda kv: -kv[1])
        return {"predictions": [{"label": k, "score": v} for k, v in pairs[:self.top_k]]}


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
