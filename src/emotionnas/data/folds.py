"""Speaker-independent folds: who trains, who validates, who is tested — checked in code.

A `Fold` names speakers, never utterances, so it is a small data file that can
be committed and reused (s3prl keeps its cross-validation folds as data too).
Every fold has validation speakers drawn from the non-test speakers, so that
architecture search and early stopping never see a test speaker.

Protocols (`make_folds`):
  * "loso"          leave one speaker out (EmoDB: 10 folds).
  * "loso-session"  leave one session out (IEMOCAP: 5 folds, MSP-IMPROV: 6).
  * "iemocap-paper" EmotionNAS (Sun et al., Interspeech 2023, Sec. 3.1): train on
                    the four other sessions; of the held-out session one speaker
                    validates and the other is tested, both ways -> 10 folds.
  * "kfold"         k speaker groups (seeded shuffle), one group tested per fold.
Cross-fitted search (`search_fold_for_group`): the speakers
are split into G groups and the architecture used to test group g is searched
on the other groups' speakers only (its own validation speakers included).

Validation speakers are drawn deterministically from a seeded generator. When
speaker sexes are known (`corpora.speaker_sexes`, or the `sex` argument), the
first validation speaker is of a sex absent from the test set and further ones
alternate, so that early stopping is not tuned on one sex only.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from emotionnas.data.utterance import CorpusTable
from emotionnas.errors import ConfigError, CorpusError, LeakageError
from emotionnas.utils.io import atomic_write_json

PROTOCOLS = ("loso", "loso-session", "iemocap-paper", "kfold")
_FORMAT = "emotionnas-folds"


FINAL = "final"  # the one fold without test speakers: the deployable model's (every speaker searched)


@dataclass(frozen=True)
class Fold:
    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self):
        for part in ("train", "val", "test"):
            value = getattr(self, part)
            if isinstance(value, str):  # a bare string would silently become characters
                raise LeakageError(f"fold {self.name}: {part} must be a list of speakers, got the string {value!r}")
            speakers = tuple(str(s) for s in value)
            if not speakers and not (part == "test" and self.name == FINAL):
                raise LeakageError(f"fold {self.name}: empty {part} speaker set")
            if len(set(speakers)) != len(speakers):
                raise LeakageError(f"fold {self.name}: a speaker is listed twice in {part}")
            object.__setattr__(self, part, speakers)
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if shared:
                raise LeakageError(f"fold {self.name}: speaker(s) {', '.join(shared)} in both {a} and {b}")

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.train + self.val + self.test

    def to_dict(self) -> dict:
        return {"name": self.name, "train": list(self.train), "val": list(self.val), "test": list(self.test)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Fold":
        missing = [k for k in ("name", "train", "val", "test") if k not in d]
        if missing:
            raise ConfigError(f"fold entry lacks {', '.join(missing)}")
        return cls(str(d["name"]), tuple(d["train"]), tuple(d["val"]), tuple(d["test"]))


# ---------------------------------------------------------------- inputs

def _speaker_info(source, sex: Mapping[str, str] | None):
    """(sorted speakers, speaker->session or None, speaker->sex) from a table, mapping or list."""
    sessions = None
    if isinstance(source, CorpusTable):
        speakers = source.speakers
        sessions = {}
        for u in source.utterances:
            if sessions.setdefault(u.speaker, u.session) != u.session:
                sessions[u.speaker] = None  # a speaker in two sessions: no session grouping
        if sex is None:
            from emotionnas.data.corpora import speaker_sexes
            sex = speaker_sexes(source)
    elif isinstance(source, Mapping):  # speaker -> session
        speakers = sorted(str(s) for s in source)
        sessions = {str(k): str(v) for k, v in source.items()}
    elif isinstance(source, str):
        raise ConfigError(f"expected a table or a list of speakers, got the string {source!r}")
    else:
        speakers = sorted({str(s) for s in source})
    if not speakers:
        raise ConfigError("no speakers to make folds from")
    return speakers, sessions, dict(sex or {})


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def _pick_val(candidates: Iterable[str], test: Iterable[str], n_val: int,
              rng: np.random.Generator, sex: Mapping[str, str]) -> tuple[str, ...]:
    """`n_val` speakers from `candidates`, seeded; sexes absent from `test` first, then alternating."""
    pool = sorted(candidates)
    if n_val < 1:
        raise ConfigError(f"n_val must be >= 1 (every fold needs validation speakers), got {n_val}")
    if len(pool) <= n_val:
        raise ConfigError(f"need more than n_val={n_val} non-test speakers to keep a training set, "
                          f"have {len(pool)}")
    shuffled = [pool[i] for i in rng.permutation(len(pool))]
    test_sexes = {sex.get(s, "") for s in test}
    groups: dict[str, list[str]] = {}
    for s in shuffled:
        groups.setdefault(sex.get(s, ""), []).append(s)
    # Order: known sexes missing from the test set, then known ones present, then unknown.
    order = sorted(groups, key=lambda g: (g == "", g in test_sexes, g))
    chosen: list[str] = []
    while len(chosen) < n_val:
        for g in order:
            if groups[g] and len(chosen) < n_val:
                chosen.append(groups[g].pop(0))
    return tuple(sorted(chosen))


def _fold(name: str, everyone: Iterable[str], test: Iterable[str], val: Iterable[str]) -> Fold:
    test, val = tuple(sorted(test)), tuple(sorted(val))
    train = tuple(s for s in sorted(everyone) if s not in set(test) | set(val))
    return Fold(name, train, val, test)


def _by_session(speakers, sessions, protocol) -> dict[str, list[str]]:
    if sessions is None:
        raise ConfigError(f"protocol {protocol!r} needs sessions: pass a CorpusTable or a speaker->session mapping")
    bad = [s for s in speakers if not sessions.get(s)]
    if bad:
        raise ConfigError(f"protocol {protocol!r}: speaker(s) {', '.join(bad[:5])} have no session (or more than one)")
    grouped: dict[str, list[str]] = {}
    for s in speakers:
        grouped.setdefault(sessions[s], []).append(s)
    if len(grouped) < 2:
        raise ConfigError(f"protocol {protocol!r} needs at least 2 sessions, got {len(grouped)}")
    return dict(sorted(grouped.items()))


# ---------------------------------------------------------------- protocols

def make_folds(table_or_speakers, protocol: str, *, n_val: int = 1, k: int = 5, seed: int = 0,
               sex: Mapping[str, str] | None = None) -> list[Fold]:
    """Speaker-independent folds for `protocol` (see module docstring).

    `table_or_speakers`: a CorpusTable (sessions and known sexes are taken from
    it), a speaker->session mapping, or a list of speaker ids. Deterministic for
    a given seed. `n_val` is ignored by "iemocap-paper" (its validation speaker
    is the held-out session's other actor); `k` is used by "kfold" only.
    """
    speakers, sessions, sexes = _speaker_info(table_or_speakers, sex)
    if protocol == "loso":
        if len(speakers) < n_val + 2:
            raise ConfigError(f"loso with n_val={n_val} needs at least {n_val + 2} speakers, got {len(speakers)}")
        return [_fold(f"loso-{s}", speakers, [s],
                      _pick_val([o for o in speakers if o != s], [s], n_val, _rng(seed, i), sexes))
                for i, s in enumerate(speakers)]
    if protocol == "loso-session":
        folds = []
        for i, (session, test) in enumerate(_by_session(speakers, sessions, protocol).items()):
            rest = [s for s in speakers if s not in test]
            folds.append(_fold(f"session-{session}", speakers, test,
                               _pick_val(rest, test, n_val, _rng(seed, i), sexes)))
        return folds
    if protocol == "iemocap-paper":
        folds = []
        for session, pair in _by_session(speakers, sessions, protocol).items():
            if len(pair) != 2:
                raise ConfigError(f"iemocap-paper: session {session} has {len(pair)} speakers "
                                  f"({', '.join(pair)}), expected exactly 2")
            a, b = pair
            folds.append(_fold(f"{session}-test-{a}", speakers, [a], [b]))
            folds.append(_fold(f"{session}-test-{b}", speakers, [b], [a]))
        return folds
    if protocol == "kfold":
        if not 2 <= k <= len(speakers):
            raise ConfigError(f"kfold needs 2 <= k <= number of speakers ({len(speakers)}), got k={k}")
        order = [speakers[i] for i in np.random.default_rng(int(seed)).permutation(len(speakers))]
        groups = [sorted(g.tolist()) for g in np.array_split(np.array(order, dtype=object), k)]
        return [_fold(f"kfold{k}-{i}", speakers, g,
                      _pick_val([s for s in speakers if s not in g], g, n_val, _rng(seed, i), sexes))
                for i, g in enumerate(groups)]
    raise ConfigError(f"unknown fold protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")


# ---------------------------------------------------------------- cross-fitted search

def search_fold_for_group(all_speakers, group: Iterable[str], n_val: int = 1, seed: int = 0,
                          sex: Mapping[str, str] | None = None) -> Fold:
    """The search split for cross-fitting: test = `group` (never seen by search), train/val = the others."""
    spk, _sessions, sexes = _speaker_info(all_speakers, sex)
    group = tuple(sorted({str(s) for s in group}))
    unknown = sorted(set(group) - set(spk))
    if not group:
        raise ConfigError("search_fold_for_group: empty group")
    if unknown:
        raise ConfigError(f"group speaker(s) {', '.join(unknown)} not among the speakers")
    rest = [s for s in spk if s not in group]
    val = _pick_val(rest, group, n_val, _rng(seed, spk.index(group[0])), sexes)
    return _fold(f"search-without-{'+'.join(group)}", spk, group, val)


def final_search_fold(all_speakers, n_val: int = 1, seed: int = 0, sex: Mapping[str, str] | None = None) -> Fold:
    """The final model's split: every speaker searched (train/val), none held out."""
    spk, _sessions, sexes = _speaker_info(all_speakers, sex)
    val = _pick_val(spk, (), n_val, _rng(seed, len(spk)), sexes)
    return Fold(FINAL, tuple(s for s in spk if s not in val), val, ())


# ---------------------------------------------------------------- files and indices

def save_folds(folds: Iterable[Fold], path) -> None:
    """Write folds as JSON (atomic), one entry per fold."""
    atomic_write_json(path, {"format": _FORMAT, "version": 1, "folds": [f.to_dict() for f in folds]})


def load_folds(path) -> list[Fold]:
    """Read folds written by `save_folds` (or a bare JSON list of fold dicts); re-checks leakage."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: fold file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON fold file ({type(e).__name__})") from None
    entries = data.get("folds") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no folds (expected {{\"folds\": [...]}})")
    try:
        return [Fold.from_dict(d) for d in entries]
    except LeakageError as e:
        raise LeakageError(f"{path}: {e}") from None
    except (ConfigError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path}: malformed fold entry ({e})") from None


def split_indices(table: CorpusTable, fold: Fold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train_idx, val_idx, test_idx): int64 indices into `table.utterances`, re-checked disjoint.

    Every speaker the fold names must be in the table (a fold file made for a
    different corpus fails loudly). Utterances of speakers the fold does not
    name are left out of all three.
    """
    speakers = np.array([u.speaker for u in table.utterances], dtype=object)
    missing = sorted(set(fold.speakers) - set(speakers.tolist()))
    if missing:
        raise CorpusError(f"fold {fold.name}: speaker(s) {', '.join(missing[:5])} not in table {table.name}")
    parts = tuple(np.flatnonzero(np.isin(speakers, list(names))).astype(np.int64)
                  for names in (fold.train, fold.val, fold.test))
    seen = np.concatenate(parts)
    if len(np.unique(seen)) != len(seen):
        raise LeakageError(f"fold {fold.name}: an utterance falls in two of train/val/test")
    for part, idx in zip(("train", "val", "test"), parts):
        if not set(speakers[idx].tolist()) <= set(getattr(fold, part)):
            raise LeakageError(f"fold {fold.name}: {part} indices hold speakers outside its {part} set")
    return parts
