"""MSP-IMPROV (Busso et al., IEEE Trans. Affective Computing 2017), 4-class setup.

Layout (the release as unpacked):
    <root>/Evaluation.txt
    <root>/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav   (any depth under session*/)
Name fields: `S01A` = target sentence 01 with target emotion A, `F01` = the
speaking actor (female of session 1), `P` = scenario type (P natural
interaction, R read, S/T improvisations), `FM01` = dialog id.
Speaker = that actor token ("F01"); session = "session" + its number
("F01" -> "session1"); six sessions of two actors each.
Note: the session comes from the actor token, not from `S01` (which numbers the
target sentence) — e.g. `MSP-IMPROV-S08A-F05-S-FM02.wav` is session5.

Labels: `Evaluation.txt` summary lines
    UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:3.0; V:...
give the consensus letter: A angry, H happy, S sad, N neutral. Other letters
(O other, X no agreement) are dropped silently; wavs with no label line are
errors. An Evaluation.txt that is not a regular file (a FIFO would block the read) is refused
in one line, asked of os.stat before it is opened.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotionnas.data.corpora._common import TableBuilder, check_root, wav_files
from emotionnas.data.file_kind import file_problem
from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import CorpusError

LABELS = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral"}

_EVAL = re.compile(r"^UTD-IMPROV-([A-Za-z0-9-]+)\.avi\s*;\s*([A-Z])\s*;")
_NAME = re.compile(r"^MSP-IMPROV-(S\d{2}[A-Z])-([FM])(\d{2})-([A-Z])-([A-Z0-9]+)\.wav$")


def _read_evaluation(path: Path) -> dict[str, str]:
    labels = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _EVAL.match(line.strip())
            if m:
                labels[m.group(1)] = m.group(2)
    return labels


def read_msp_improv(root: str | Path) -> CorpusTable:
    folder = check_root(root, "msp-improv")
    found = sorted(folder.glob("**/Evaluation.txt"))
    if not found:
        raise CorpusError(f"{folder}: Evaluation.txt not found (MSP-IMPROV labels)")
    if (problem := file_problem(found[0])) is not None:
        raise CorpusError(f"{found[0]}: cannot read the MSP-IMPROV labels: {problem}")
    labels = _read_evaluation(found[0])
    out = TableBuilder("msp-improv")
    for path in wav_files(folder):
        if not any(part.lower().startswith("session") for part in path.relative_to(folder).parts[:-1]):
            continue  # outside session*/ (e.g. converted copies elsewhere in the tree)
        m = _NAME.match(path.name)
        if m is None:
            out.error(path, "name does not follow the MSP-IMPROV scheme (e.g. MSP-IMPROV-S01A-F01-P-FM01.wav)")
            continue
        sex, number = m.group(2), m.group(3)
        utt_id = path.stem[len("MSP-IMPROV-"):]
        letter = labels.get(utt_id)
        if letter is None:
            out.error(path, f"no label line in {found[0].name}")
            continue
        if letter not in LABELS:
            continue
        out.add(path, LABELS[letter], f"{sex}{number}", f"session{int(number)}")
    return out.table(folder)
