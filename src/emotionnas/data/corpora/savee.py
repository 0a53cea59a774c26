"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson, 2009).

Two layouts are read, at any folder depth:
  * `<root>/AudioData/DC/a01.wav`  (speaker = the parent folder, two capitals)
  * `<root>/ALL/DC_a01.wav`        (speaker = the name prefix)
Speakers DC, JE, JK, KL (all male). Emotion prefix: a angry, d disgust, f fear,
h happy, n neutral, sa sad, su surprise; 7 classes.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.utterance import CorpusTable

EMOTIONS = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy",
            "n": "neutral", "sa": "sad", "su": "surprise"}

# "sa"/"su" first so that "sa01" is not read as "s" + "a01".
_CODE = r"(sa|su|a|d|f|h|n)(\d+)"
_FLAT = re.compile(rf"^([A-Z]{{2}})_{_CODE}\.wav$")
_NESTED = re.compile(rf"^{_CODE}\.wav$")
_SPEAKER = re.compile(r"^[A-Z]{2}$")


def read_savee(root: str | Path) -> CorpusTable:
    folder = check_root(root, "savee")
    out = TableBuilder("savee")
    for path in wav_files(folder):
        flat, nested = _FLAT.match(path.name), _NESTED.match(path.name)
        if flat is not None:
            speaker, code = flat.group(1), flat.group(2)
        elif nested is not None and _SPEAKER.match(path.parent.name):
            speaker, code = path.parent.name, nested.group(1)
        else:
            out.error(path, "name does not follow the SAVEE scheme (DC/a01.wav or DC_a01.wav)")
            continue
        out.add(path, EMOTIONS[code], speaker, "")
    return out.table(folder)
