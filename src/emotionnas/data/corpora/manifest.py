"""A user's own corpus as a CSV or TSV manifest (SpeechBrain-style: prepare once, read many).

Header columns (any order, case-insensitive; extra columns ignored):
    path,label,speaker[,session]
Paths are relative to the manifest's folder; absolute paths are allowed inside it. Labels are
stripped and lower-cased. `root` is the manifest file, or a folder holding
`manifest.csv` / `manifest.tsv`. The delimiter follows the extension (.tsv = tab,
.csv = comma) and is sniffed otherwise.

A manifest is data, often from someone else: a row may name `/etc/shadow`, `../../x` or a
symlink leading out, and every file read goes into the feature cache and the run's fingerprint.
So each row's path, symlinks resolved, must lie inside the manifest's folder; the reader option
`allow_outside=true` (`--option allow_outside=true`) permits other paths, for corpora kept
elsewhere. Rows that are not regular files (FIFOs, devices, sockets, folders) are listed as
such, never opened, and left out like missing ones.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder
from emotionnas.data.file_kind import file_problem
from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import CorpusError

REQUIRED = ("path", "label", "speaker")


def _find_manifest(root: Path) -> Path:
    """The manifest file: `root`, or manifest.csv / manifest.tsv in the folder `root`; refused in
    one line when it is missing or not a regular file (a FIFO would block the read)."""
    if root.is_dir():
        found = [root / name for name in ("manifest.csv", "manifest.tsv") if (root / name).exists()]
        if not found:
            raise CorpusError(f"{root}: no manifest.csv or manifest.tsv in this folder")
        root = found[0]
    problem = file_problem(root)
    if problem == "missing":
        raise CorpusError(f"{root}: manifest not found")
    if problem is not None:
        raise CorpusError(f"{root}: cannot read manifest: {problem}")
    return root


def _delimiter(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",\t;").delimiter
    except csv.Error:
        return ","


def _row_problem(audio: Path, folder: Path, allow_outside: bool) -> str | None:
    """Why the file a row names is left out, or None: outside `folder` (symlinks resolved)
    unless allowed, missing, or not a regular file. Asked of the path and os.stat only."""
    try:
        real = audio.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
        return f"cannot be resolved ({getattr(e, 'strerror', None) or type(e).__name__})"
    if not allow_outside and not real.is_relative_to(folder):
        return f"outside the manifest's folder {folder} (reader option allow_outside=true permits it)"
    return file_problem(audio)


def read_manifest(root: str | Path, allow_outside: bool = False) -> CorpusTable:
    """The manifest at `root` as a table; `allow_outside`: accept rows naming files outside the
    manifest's folder (default: listed as errors and left out)."""
    if not isinstance(allow_outside, bool):
        raise CorpusError(f"manifest option allow_outside: expected true or false, got {allow_outside!r}")
    path = _find_manifest(Path(root).expanduser()).resolve()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: cannot read manifest ({type(e).__name__})") from None
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(path, text))
    header = [h.strip().lower() for h in next(reader, [])]
    for column in REQUIRED:
        if column not in header:
            raise CorpusError(f"{path}: missing column {column!r} (header: {','.join(header) or 'empty'})")
    col = {name: header.index(name) for name in header}
    has_session = "session" in col
    out = TableBuilder("manifest")
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) < len(header):
            out.error(f"{path}:{line}", f"expected {len(header)} fields, got {len(row)}")
            continue
        fields = {k: row[i].strip() for k, i in col.items()}
        empty = [k for k in REQUIRED if not fields[k]]
        if empty:
            out.error(f"{path}:{line}", f"empty {', '.join(empty)}")
            continue
        audio = Path(fields["path"]).expanduser()
        if not audio.is_absolute():
            audio = path.parent / audio
        problem = _row_problem(audio, path.parent, allow_outside)
        if problem is not None:
            out.error(audio, f"listed in {path.name} line {line} but {problem}")
            continue
        out.add(audio, fields["label"].lower(), fields["speaker"],
                fields["session"] if has_session else "")
    return out.table(path)
