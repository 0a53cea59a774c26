"""Is this folder a corpus's root? Checked before a run writes anything, with a hint when not.

A reader walks whatever folder it is given, so a slip in the root is accepted and shows up
late or never: `run emodb …/emodb/wav` reads the same files as `…/emodb` but records another
root (another config, so the folder cannot be resumed from the right one), and
`run ravdess …/Actor_01` "works" on one speaker. `check_layout(name, root)` asks only
`os.stat`-level questions (folder names, a bounded look at the parent and the children) and
raises one CorpusError line naming the root, what the reader expects there and, when a
folder nearby fits, "did you mean …?".

Readers that take audio at any depth (RAVDESS, TESS, SAVEE, CREMA-D) accept almost any
folder above the files, so only a root that is visibly *inside* such a corpus (one actor's or
one emotion's folder) is refused; the others expect a marker at the root itself.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emotionnas.errors import CorpusError

MAX_CHILDREN = 200  # folders looked at below a root for "did you mean": bounded time on a huge folder


def _has_dir(name: str) -> Callable[[Path], bool]:
    return lambda folder: (folder / name).is_dir()


def _has_dir_matching(pattern: str) -> Callable[[Path], bool]:
    rx = re.compile(pattern, re.IGNORECASE)
    return lambda folder: any(rx.fullmatch(p.name) and p.is_dir() for p in _children(folder))


def _named(pattern: str) -> Callable[[Path], bool]:
    rx = re.compile(pattern)
    return lambda folder: rx.fullmatch(folder.name) is not None


@dataclass(frozen=True)
class Layout:
    """What a reader expects at its root: `marker(folder)` true at a root (None: any folder
    will do), `part(folder)` true for a folder that is only a piece of the corpus."""
    expected: str
    marker: Callable[[Path], bool] | None = None
    part: Callable[[Path], bool] = lambda folder: False


LAYOUTS = {
    "emodb": Layout("the folder holding wav/", _has_dir("wav"), _named("wav")),
    "urdu": Layout("the folder holding wav/<Emotion>/", _has_dir("wav"), _named("wav")),
    "iemocap": Layout("the folder holding Session1 … Session5", _has_dir_matching(r"Session\d+"),
                      _named(r"Session\d+")),
    "msp-improv": Layout("the folder holding Evaluation.txt and session1 … session6",
                         lambda folder: (folder / "Evaluation.txt").is_file(), _named(r"(?i)session\d+")),
    "ravdess": Layout("the folder holding the Actor_01 … Actor_24 folders", None, _named(r"Actor_\d+")),
    "tess": Layout("the folder holding the OAF_* and YAF_* folders", None, _named(r"(?i)(OAF|YAF)_.+")),
    "savee": Layout("the folder holding AudioData/ (or ALL/)", None, _named(r"[A-Z]{2}")),
    "cremad": Layout("the folder holding AudioWAV/"),
}


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(itertools.islice(folder.iterdir(), MAX_CHILDREN))
    except OSError:
        return []


def _nearby_root(root: Path, layout: Layout) -> Path | None:
    """The parent, or one child folder, that has the layout's marker; None when none has."""
    if layout.marker is None:
        return root.parent if layout.part(root) else None
    if layout.marker(root.parent):
        return root.parent
    return next((c for c in _children(root) if c.is_dir() and layout.marker(c)), None)


def check_layout(name: str, root) -> None:
    """CorpusError (one line naming `root`) when `root` is missing or does not look like the root
    of corpus `name` (see the module docstring); nothing when it does or the reader has no layout
    (manifest, demo)."""
    from emotionnas.data.corpora import canonical_name
    key = canonical_name(name)
    layout = LAYOUTS.get(key)
    path = Path(root).expanduser()
    if key in ("manifest", "demo") or layout is None:
        return  # the manifest reader checks its file itself; the demo corpus is made where it is missing
    if not path.exists():
        raise CorpusError(f"{path}: {key} corpus folder not found")
    if not path.is_dir():
        raise CorpusError(f"{path}: {key} corpus root must be a folder ({layout.expected})")
    path = path.resolve()
    if layout.part(path) or (layout.marker is not None and not layout.marker(path)):
        near = _nearby_root(path, layout)
        hint = f" (did you mean {near}?)" if near is not None else ""
        raise CorpusError(f"{path}: not the {key} corpus root; expected {layout.expected}{hint}")
