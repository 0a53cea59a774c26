"""A user's own corpus as a CSV or TSV manifest (SpeechBrain-style: prepare once, read many).

Header columns (any order, case-insensitive; extra columns ignored):
    path,label,speaker[,session]
Paths are relative to the manifest's folder (absolute paths allowed). Labels are
stripped and lower-cased. `root` is the manifest file, or a folder holding
`manifest.csv` / `manifest.tsv`. The delimiter follows the extension (.tsv = tab,
.csv = comma) and is sniffed otherwise.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder
from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import CorpusError

REQUIRED = ("path", "label", "speaker")


def _find_manifest(root: Path) -> Path:
    if root.is_file():
        return root
    if root.is_dir():
        for name in ("manifest.csv", "manifest.tsv"):
            if (root / name).is_file():
                return root / name
        raise CorpusError(f"{root}: no manifest.csv or manifest.tsv in this folder")
    raise CorpusError(f"{root}: manifest not found")


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


def read_manifest(root: str | Path) -> CorpusTable:
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
        if not audio.is_file():
            out.error(audio, f"listed in {path.name} line {line} but missing")
            continue
        out.add(audio, fields["label"].lower(), fields["speaker"],
                fields["session"] if has_session else "")
    return out.table(path)
