"""TESS, Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, 2010).

Layout: `<root>/OAF_angry/OAF_back_angry.wav`, `<root>/YAF_pleasant_surprised/YAF_back_ps.wav`
(any folder depth): speaker (OAF = older, YAF = younger female talker), the
carrier word, emotion. Both speakers are female; 7 classes, `ps` = pleasant
surprise -> "surprise". Names are matched case-insensitively (the release mixes cases).
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.utterance import CorpusTable

EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
            "neutral": "neutral", "ps": "surprise", "sad": "sad"}

_NAME = re.compile(r"^(OAF|YAF)_(.+)_([a-z]+)\.wav$", re.IGNORECASE)


def read_tess(root: str | Path) -> CorpusTable:
    folder = check_root(root, "tess")
    out = TableBuilder("tess")
    for path in wav_files(folder):
        m = _NAME.match(path.name)
        if m is None:
            out.error(path, "name does not follow the TESS scheme (e.g. OAF_back_angry.wav)")
            continue
        speaker, _word, emotion = m.group(1).upper(), m.group(2), m.group(3).lower()
        if emotion not in EMOTIONS:
            out.error(path, f"unknown TESS emotion {emotion!r}")
            continue
        out.add(path, EMOTIONS[emotion], speaker, "")
    return out.table(folder)
