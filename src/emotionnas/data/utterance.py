"""The utterance table every corpus reader produces and every later stage reads."""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Utterance:
    path: str        # absolute path to the audio file
    label: str       # emotion label, lower-case English ("angry", "neutral", ...)
    speaker: str     # speaker id, unique within the corpus ("03", "Ses01F", ...)
    session: str     # recording session ("" when the corpus has none)
    corpus: str      # reader name ("emodb", "iemocap", "demo", ...)
    duration: float  # seconds; float("nan") when not known


@dataclass
class CorpusTable:
    """Utterances of one corpus plus the files the reader could not use."""

    name: str
    utterances: list[Utterance]
    errors: list[str] = field(default_factory=list)  # one line each: "path: reason"

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def labels(self) -> list[str]:
        return sorted({u.label for u in self.utterances})

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    def summary(self) -> dict:
        """Counts as printed by `emotionnas corpus --json`."""
        return {
            "corpus": self.name,
            "utterances": len(self.utterances),
            "labels": dict(sorted(Counter(u.label for u in self.utterances).items())),
            "speakers": dict(sorted(Counter(u.speaker for u in self.utterances).items())),
            "errors": list(self.errors),
        }

    def filter(self, keep) -> "CorpusTable":
        return CorpusTable(self.name, [u for u in self.utterances if keep(u)], list(self.errors))

    def write_csv(self, path: str | Path) -> None:
        from emotionnas.utils.io import atomic_write_text
        fields = list(Utterance.__dataclass_fields__)
        lines = [",".join(fields)]
        import io
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        for u in self.utterances:
            w.writerow(asdict(u))
        atomic_write_text(path, buf.getvalue())

    def to_json(self) -> str:
        return json.dumps(self.summary(), indent=2)
