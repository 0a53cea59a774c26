"""IEMOCAP (Busso et al., Language Resources and Evaluation 2008), 4-class setup.

Layout (the release as unpacked):
    <root>/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    <root>/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
Each EmoEvaluation file has one summary line per utterance,
    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
whose third field is the majority label. Five sessions, two actors each (one
female, one male). The speaker of an utterance is the session prefix plus the
gender letter opening the id's last token: `Ses01F_impro01_M000` -> "Ses01M".
session = the folder ("Session1"), so that loso-session / iemocap-paper folds
can group the two actors of a session.

Options:
  * subset: "improvised" (dialogs with "impro" in their name; the EmotionNAS
    setting, Sun et al. 2023 Sec. 3.1), "scripted" or "all".
  * merge_excited: map `exc` to "happy" (a common alternative 4-class setup).
Labels kept: neu -> neutral, ang -> angry, hap -> happy, sad -> sad; every other
label (fru, sur, xxx, ...) is dropped silently, as the 4-class protocol does.

An EmoEvaluation file or a labelled wav that is not a regular file (a FIFO would block the read,
a device never end) is listed as such, asked of os.stat, and never opened.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root
from emotionnas.data.file_kind import file_problem
from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import CorpusError

LABELS = {"neu": "neutral", "ang": "angry", "hap": "happy", "sad": "sad"}
SUBSETS = ("improvised", "scripted", "all")

_LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\t(\S+)\t(\S+)\t")
_SESSION = re.compile(r"^Session(\d+)$")


def _in_subset(dialog: str, subset: str) -> bool:
    improvised = "impro" in dialog
    return subset == "all" or (subset == "improvised") == improvised


def speaker_of(utt_id: str) -> str:
    """`Ses01F_impro01_M000` -> "Ses01M" (session prefix + gender of the speaking actor)."""
    last = utt_id.rsplit("_", 1)[-1]
    if len(utt_id) < 5 or not last or last[0] not in "FM":
        raise ValueError(f"not an IEMOCAP utterance id: {utt_id!r}")
    return utt_id[:5] + last[0]


def _read_labels(txt: Path) -> dict[str, str]:
    labels = {}
    with open(txt, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _LINE.match(line)
            if m:
                labels[m.group(1)] = m.group(2)
    return labels


def read_iemocap(root: str | Path, subset: str = "improvised",
                 merge_excited: bool = False) -> CorpusTable:
    if subset not in SUBSETS:
        raise CorpusError(f"iemocap option subset={subset!r}: expected one of {', '.join(SUBSETS)}")
    folder = check_root(root, "iemocap")
    keep = dict(LABELS, **({"exc": "happy"} if merge_excited else {}))
    sessions = sorted(p for p in folder.iterdir() if p.is_dir() and _SESSION.match(p.name))
    if not sessions:
        raise CorpusError(f"{folder}: no Session1..Session5 folders (expected the IEMOCAP release layout)")
    out = TableBuilder("iemocap")
    for session in sessions:
        eval_dir = session / "dialog" / "EmoEvaluation"
        wav_dir = session / "sentences" / "wav"
        for txt in sorted(eval_dir.glob("*.txt")) if eval_dir.is_dir() else []:
            dialog = txt.stem
            if dialog.startswith(".") or not _in_subset(dialog, subset):
                continue
            if (problem := file_problem(txt)) is not None:
                out.error(txt, f"label file {problem}")
                continue
            for utt_id, code in sorted(_read_labels(txt).items()):
                if code not in keep:
                    continue
                wav = wav_dir / dialog / f"{utt_id}.wav"
                if (problem := file_problem(wav)) is not None:  # "missing", "not a regular file (FIFO)"
                    out.error(wav, f"labelled in {txt.name} but the wav file is {problem}")
                    continue
                try:
                    speaker = speaker_of(utt_id)
                except ValueError as e:
                    out.error(wav, str(e))
                    continue
                out.add(wav, keep[code], speaker, session.name)
    return out.table(folder)
