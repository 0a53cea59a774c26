"""CREMA-D (Cao et al., IEEE Trans. Affective Computing 2014).

Layout: `<root>/AudioWAV/1001_DFA_ANG_XX.wav` (any folder depth): actor id
(1001..1091), sentence code, emotion code, intensity (LO/MD/HI/XX).
Speaker = actor id ("1001"); no sessions. 6 classes.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.utterance import CorpusTable

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear",
            "HAP": "happy", "NEU": "neutral", "SAD": "sad"}

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")


def read_cremad(root: str | Path) -> CorpusTable:
    folder = check_root(root, "cremad")
    out = TableBuilder("cremad")
    for path in wav_files(folder):
        m = _NAME.match(path.name)
        if m is None:
            out.error(path, "name does not follow the CREMA-D scheme (e.g. 1001_DFA_ANG_XX.wav)")
            continue
        actor, _sentence, emotion, _level = m.groups()
        if emotion not in EMOTIONS:
            out.error(path, f"unknown CREMA-D emotion code {emotion!r}")
            continue
        out.add(path, EMOTIONS[emotion], actor, "")
    return out.table(folder)


def speaker_sexes(root: str | Path) -> dict[str, str]:
    """Actor -> 'f'/'m' from `VideoDemographics.csv` when the corpus folder has it, else {}."""
    # is_file asks os.stat: a FIFO or a folder of that name is passed over, never opened
    found = sorted(p for p in Path(root).glob("**/VideoDemographics.csv") if p.is_file())
    if not found:
        return {}
    sexes = {}
    with open(found[0], newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            actor, sex = (row.get("ActorID") or "").strip(), (row.get("Sex") or "").strip().lower()
            if actor and sex[:1] in ("f", "m"):
                sexes[actor] = sex[:1]
    return sexes
