"""EmoDB (Berlin Database of Emotional Speech; Burkhardt et al., Interspeech 2005).

Layout: `<root>/wav/03a01Fa.wav` (root may also be the `wav/` folder itself).
The name is speaker (2 digits) + text (`a01`..`b10`) + emotion letter + version:
`03a01Fa.wav` = speaker "03", text a01, emotion F (Freude, happy), version a.
10 speakers, 535 utterances, 7 classes; no sessions.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.utterance import CorpusTable

# German emotion initial -> English label (W = Wut/Ärger, L = Langeweile, E = Ekel,
# A = Angst, F = Freude, T = Trauer, N = neutral).
EMOTIONS = {"W": "angry", "L": "bored", "E": "disgust", "A": "fear",
            "F": "happy", "T": "sad", "N": "neutral"}

# From the corpus documentation (5 female, 5 male actors).
SPEAKER_SEX = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m",
               "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}

_NAME = re.compile(r"^(\d{2})([a-z]\d{2})([A-Z])([a-z])\.wav$")


def read_emodb(root: str | Path) -> CorpusTable:
    folder = check_root(root, "emodb")
    if (folder / "wav").is_dir():
        folder = folder / "wav"
    out = TableBuilder("emodb")
    for path in wav_files(folder, recursive=False):
        m = _NAME.match(path.name)
        if m is None:
            out.error(path, "name does not follow the EmoDB scheme (e.g. 03a01Fa.wav)")
            continue
        speaker, _text, letter, _version = m.groups()
        if letter not in EMOTIONS:
            out.error(path, f"unknown EmoDB emotion letter {letter!r} (expected one of {''.join(EMOTIONS)})")
            continue
        out.add(path, EMOTIONS[letter], speaker, "")
    return out.table(folder)
