"""Helpers shared by the corpus readers: folder checks, file walks, header durations."""
from __future__ import annotations

import math
from pathlib import Path

from emotionnas.data.audio import audio_duration
from emotionnas.data.file_kind import file_problem
from emotionnas.data.utterance import CorpusTable, Utterance
from emotionnas.errors import CorpusError


def check_root(root: str | Path, corpus: str) -> Path:
    """The corpus folder as an absolute path; CorpusError (one line) when it is missing."""
    path = Path(root).expanduser()
    if not path.exists():
        raise CorpusError(f"{path}: {corpus} corpus folder not found")
    if not path.is_dir():
        raise CorpusError(f"{path}: {corpus} corpus root must be a folder")
    return path.resolve()


def wav_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Every `*.wav` (any case) under `folder`, sorted, skipping hidden files and folders.

    Hidden files matter: archives unpacked on macOS carry `._name.wav`
    resource forks that are not audio and would otherwise flood the errors.
    A FIFO, device or socket named `*.wav` is kept: `TableBuilder.add` lists it as
    "not a regular file" (is_dir asks os.stat, which never blocks on a FIFO).
    """
    pattern = "**/*.[wW][aA][vV]" if recursive else "*.[wW][aA][vV]"
    found = [p for p in folder.glob(pattern)
             if not p.is_dir()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found)


def header_duration(path: Path) -> tuple[float, str | None]:
    """(seconds, None) from the file header, or (nan, reason) when it cannot be used."""
    seconds = audio_duration(path)
    if not math.isfinite(seconds):
        return seconds, "unreadable audio header"
    if seconds <= 0:
        return seconds, "empty audio (0 samples)"
    return seconds, None


class TableBuilder:
    """Collects utterances and "path: reason" errors; reads each duration once."""

    def __init__(self, corpus: str):
        self.corpus = corpus
        self.utterances: list[Utterance] = []
        self.errors: list[str] = []

    def error(self, path: Path | str, reason: str) -> None:
        self.errors.append(f"{path}: {reason}")

    def add(self, path: Path, label: str, speaker: str, session: str = "") -> bool:
        """Add one utterance unless it is not a regular file (a FIFO would block the header read)
        or its header is unreadable; then it is listed in errors."""
        problem = file_problem(path)
        if problem is not None:
            self.error(path, problem)
            return False
        seconds, problem = header_duration(path)
        if problem is not None:
            self.error(path, problem)
            return False
        self.utterances.append(Utterance(str(Path(path).resolve()), label, speaker,
                                         session, self.corpus, float(seconds)))
        return True

    def table(self, folder: Path | str) -> CorpusTable:
        """The finished table; CorpusError naming `folder` when nothing usable was found."""
        if not self.utterances:
            hint = f" ({len(self.errors)} unusable files, first: {self.errors[0]})" if self.errors else ""
            raise CorpusError(f"{folder}: no usable {self.corpus} audio found{hint}")
        utts = sorted(self.utterances, key=lambda u: u.path)
        return CorpusTable(self.corpus, utts, list(self.errors))
