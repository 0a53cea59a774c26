"""RAVDESS speech (Livingstone & Russo, PLoS ONE 2018).

Layout: `<root>/Actor_12/03-01-06-01-02-01-12.wav` (any folder depth). The seven
fields are modality (03 = audio-only), vocal channel (01 = speech, 02 = song),
emotion, intensity, statement, repetition, actor (01..24; odd = male, even = female).
Song files are skipped silently (this reader is for speech); speaker = actor ("12").

Option `calm`: "keep" (8 classes), "merge" (calm -> neutral, a common 7-class
setup) or "drop" (calm utterances left out).
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import CorpusError

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
            "05": "angry", "06": "fear", "07": "disgust", "08": "surprise"}

_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.wav$")
CALM_OPTIONS = ("keep", "merge", "drop")


def speaker_sex(speaker: str) -> str:
    """'m' for odd actors, 'f' for even ones (corpus documentation)."""
    return "m" if int(speaker) % 2 else "f"


def read_ravdess(root: str | Path, calm: str = "keep") -> CorpusTable:
    if calm not in CALM_OPTIONS:
        raise CorpusError(f"ravdess option calm={calm!r}: expected one of {', '.join(CALM_OPTIONS)}")
    folder = check_root(root, "ravdess")
    out = TableBuilder("ravdess")
    for path in wav_files(folder):
        m = _NAME.match(path.name)
        if m is None:
            out.error(path, "name does not follow the RAVDESS scheme (e.g. 03-01-06-01-02-01-12.wav)")
            continue
        modality, channel, emotion, _intensity, _statement, _rep, actor = m.groups()
        if channel == "02":
            continue  # song, not speech
        if modality != "03" or channel != "01" or emotion not in EMOTIONS:
            out.error(path, f"not a RAVDESS audio-only speech file (modality {modality}, "
                            f"channel {channel}, emotion {emotion})")
            continue
        label = EMOTIONS[emotion]
        if label == "calm":
            if calm == "drop":
                continue
            if calm == "merge":
                label = "neutral"
        out.add(path, label, actor, "")
    return out.table(folder)
