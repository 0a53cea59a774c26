"""Corpus readers: a corpus folder -> `CorpusTable` of (path, label, speaker, session, corpus, duration).

An explicit registry (no import side effects): `CORPORA[name](root, **options)`.
Every reader
  * returns absolute paths sorted by path, lower-case English labels;
  * reads durations from the file header only (fast even for 10k files);
  * lists each file it cannot use in `table.errors` as "path: reason" and
    leaves it out, so a long run reports bad files instead of dying;
  * raises CorpusError (one line naming the folder) when the root is missing
    or holds no usable audio.
"""
from __future__ import annotations

import inspect
import math
from collections import Counter
from pathlib import Path
from typing import Callable

from emotionnas.data.corpora.cremad import read_cremad
from emotionnas.data.corpora.emodb import read_emodb
from emotionnas.data.corpora.urdu import read_urdu
from emotionnas.data.corpora.iemocap import read_iemocap
from emotionnas.data.corpora.manifest import read_manifest
from emotionnas.data.corpora.msp_improv import read_msp_improv
from emotionnas.data.corpora.ravdess import read_ravdess
from emotionnas.data.corpora.savee import read_savee
from emotionnas.data.corpora.tess import read_tess
from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import CorpusError


def read_demo(root, **options) -> CorpusTable:
    """The synthetic demo corpus; imported here so the registry works without it."""
    from emotionnas.data.demo import demo_table
    _check_options("demo", demo_table, options)
    return demo_table(root, **options)


CORPORA: dict[str, Callable[..., CorpusTable]] = {
    "emodb": read_emodb,
    "ravdess": read_ravdess,
    "cremad": read_cremad,
    "tess": read_tess,
    "savee": read_savee,
    "iemocap": read_iemocap,
    "msp-improv": read_msp_improv,
    "urdu": read_urdu,
    "manifest": read_manifest,
    "demo": read_demo,
}


def canonical_name(name: str) -> str:
    """The registry key of a corpus name as a user may write it ("MSP_IMPROV" -> "msp-improv");
    CorpusError (one line listing the known names) when no reader has it."""
    key = name.strip().lower().replace("_", "-")
    if key not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r} (known: {', '.join(CORPORA)})")
    return key


def read_corpus(name: str, root: str | Path, **options) -> CorpusTable:
    """Read corpus `name` from `root` (options are the reader's keyword arguments)."""
    key = canonical_name(name)
    reader = CORPORA[key]
    _check_options(key, reader, options)
    return reader(root, **options)


def check_reader_options(name: str, options: dict) -> None:
    """CorpusError (one line) when corpus `name` is unknown or its reader takes no such option:
    what `read_corpus` would refuse, asked without reading anything."""
    key = canonical_name(name)
    _check_options(key, CORPORA[key], options)


def _check_options(name: str, reader: Callable, options: dict) -> None:
    """CorpusError naming the option when `reader` (root first) does not take it."""
    params = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # a wrapper (demo) that checks against its target itself
    allowed = list(params)[1:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise CorpusError(f"corpus {name!r} has no option {unknown[0]!r} "
                          f"(options: {', '.join(allowed) or 'none'})")


def speaker_sexes(table: CorpusTable) -> dict[str, str]:
    """speaker -> 'f' / 'm' where the corpus documents it; speakers not known are absent.

    Used by `folds.make_folds` to give validation speakers of the other sex
    than the test speaker (as the IEMOCAP protocol does within a session).
    """
    from emotionnas.data.corpora import cremad, emodb, ravdess

    sexes: dict[str, str] = {}
    for u in table.utterances:
        if u.speaker in sexes:
            continue
        s = ""
        if u.corpus == "emodb":
            s = emodb.SPEAKER_SEX.get(u.speaker, "")
        elif u.corpus == "ravdess" and u.speaker.isdigit():
            s = ravdess.speaker_sex(u.speaker)
        elif u.corpus == "iemocap" and u.speaker[-1:] in ("F", "M"):
            s = u.speaker[-1].lower()
        elif u.corpus == "msp-improv" and u.speaker[:1] in ("F", "M"):
            s = u.speaker[0].lower()
        elif u.corpus == "tess":
            s = "f"
        elif u.corpus == "savee":
            s = "m"
        elif u.corpus == "urdu" and u.speaker[1:2] in ("M", "F"):
            s = u.speaker[1].lower()
        if s:
            sexes[u.speaker] = s
    if any(u.corpus == "cremad" for u in table.utterances):
        # VideoDemographics.csv sits at the corpus root, two levels above AudioWAV/x.wav.
        first = Path(table.utterances[0].path)
        for parent in list(first.parents)[:3]:
            found = cremad.speaker_sexes(parent) if (parent / "VideoDemographics.csv").is_file() else {}
            if found:
                sexes.update({k: v for k, v in found.items() if k in set(table.speakers)})
                break
    return sexes


def corpus_summary_text(table: CorpusTable, max_errors: int = 20) -> str:
    """Human-readable counts for `emotionnas corpus NAME ROOT`: utterances, labels, speakers, errors."""
    n = len(table.utterances)
    seconds = sum(u.duration for u in table.utterances if math.isfinite(u.duration))
    lines = [f"{table.name}: {n} utterances, {len(table.labels)} labels, "
             f"{len(table.speakers)} speakers, {seconds / 60:.1f} min of audio"]
    sessions = sorted({u.session for u in table.utterances if u.session})
    if sessions:
        lines.append(f"sessions: {', '.join(sessions)}")
    lines.append("labels:")
    for label, count in sorted(Counter(u.label for u in table.utterances).items()):
        lines.append(f"  {label:<12} {count:>6}  ({100.0 * count / max(n, 1):4.1f}%)")
    lines.append("speakers:")
    for speaker, count in sorted(Counter(u.speaker for u in table.utterances).items()):
        lines.append(f"  {speaker:<12} {count:>6}")
    lines.append(f"errors: {len(table.errors)}")
    lines.extend(f"  {e}" for e in table.errors[:max_errors])
    if len(table.errors) > max_errors:
        lines.append(f"  ... and {len(table.errors) - max_errors} more")
    return "\n".join(lines)


__all__ = ["CORPORA", "canonical_name", "check_reader_options", "read_corpus", "speaker_sexes", "corpus_summary_text"]
