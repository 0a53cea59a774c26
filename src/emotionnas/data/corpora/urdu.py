"""URDU (Latif et al., "Cross Lingual Speech Emotion Recognition: Urdu vs. Western Languages", FIT 2018).

Natural speech cut from Urdu television talk shows. Layout: `<root>/wav/<Emotion>/<file>.wav`
(root may also be the `wav/` folder itself); the folder names the emotion (Angry, Happy,
Neutral, Sad). `SM5_F12_A033.wav` = speaker `SM5` (S, sex M/F, number), the speaker's 12th
file, the 33rd file of emotion A. 400 utterances, 4 classes, 29 very unbalanced speakers:
use speaker-group k-fold (`--protocol kfold --set k=5`), not leave-one-speaker-out.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.utterance import CorpusTable

EMOTIONS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad"}
LETTERS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
_NAME = re.compile(r"^(S([MF])\d+)_F\d+_([AHNS])\d+\.wav$", re.IGNORECASE)


def read_urdu(root: str | Path) -> CorpusTable:
    folder = check_root(root, "urdu")
    if (folder / "wav").is_dir():
        folder = folder / "wav"
    out = TableBuilder("urdu")
    for path in wav_files(folder, recursive=True):
        rel = path.relative_to(folder).parts
        if len(rel) != 2:
            out.error(path, "expected wav/<Emotion>/<file>.wav")
            continue
        label = EMOTIONS.get(rel[0].lower())
        if label is None:
            out.error(path, f"unknown emotion folder {rel[0]!r} (expected one of Angry, Happy, Neutral, Sad)")
            continue
        m = _NAME.match(path.name)
        if m is None:
            out.error(path, "name does not follow the URDU scheme (e.g. SM5_F12_A033.wav)")
            continue
        if LETTERS[m.group(3).upper()] != label:
            out.error(path, f"emotion letter {m.group(3)!r} disagrees with its folder {rel[0]!r}")
            continue
        out.add(path, label, m.group(1).upper(), "")
    return out.table(folder)


def speaker_sexes(table: CorpusTable) -> dict[str, str]:
    """Speaker -> 'm' / 'f', from the id (SM.. / SF..)."""
    return {u.speaker: u.speaker[1].lower() for u in table.utterances}
