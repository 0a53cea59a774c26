"""Speaker-independent folds: disjointness, coverage, determinism, JSON round trip, leakage errors."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emotionnas.data.folds import (Fold, load_folds, make_folds, save_folds,
                                   search_fold_for_group, split_indices)
from emotionnas.data.utterance import CorpusTable, Utterance
from emotionnas.errors import ConfigError, CorpusError, LeakageError

EMODB = Path(__file__).resolve().parents[1].parent / "shared/data/emodb"
SPEAKERS = [f"s{i:02d}" for i in range(11)]
# IEMOCAP-like: 5 sessions x (F, M)
IEMOCAP = {f"Ses0{i}{g}": f"Session{i}" for i in range(1, 6) for g in "FM"}


def table_of(sessions: dict[str, str], per_speaker: int = 3) -> CorpusTable:
    utts = [Utterance(f"/x/{spk}_{j}.wav", ["angry", "sad"][j % 2], spk, sess, "iemocap", 1.0)
            for spk, sess in sessions.items() for j in range(per_speaker)]
    return CorpusTable("iemocap", utts)


def check_fold(fold: Fold, everyone) -> None:
    train, val, test = set(fold.train), set(fold.val), set(fold.test)
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(everyone)


@pytest.mark.parametrize("protocol,kw", [("loso", {}), ("loso", {"n_val": 3}), ("kfold", {"k": 4}),
                                         ("kfold", {"k": 11})])
def test_every_speaker_tested_once(protocol, kw):
    folds = make_folds(SPEAKERS, protocol, seed=3, **kw)
    assert len(folds) == (len(SPEAKERS) if protocol == "loso" else kw["k"])
    assert Counter(s for f in folds for s in f.test) == Counter(SPEAKERS)
    for f in folds:
        check_fold(f, SPEAKERS)
        assert len(f.val) == kw.get("n_val", 1)
    assert len({f.name for f in folds}) == len(folds)


def test_deterministic_for_a_seed_and_varies_with_it():
    for protocol in ("loso", "kfold"):
        a = make_folds(SPEAKERS, protocol, seed=7)
        assert a == make_folds(list(reversed(SPEAKERS)), protocol, seed=7)
        assert any(make_folds(SPEAKERS, protocol, seed=s) != a for s in range(8, 12))


def test_validation_prefers_the_other_sex():
    sexes = {s: "f" if i % 2 else "m" for i, s in enumerate(SPEAKERS)}
    for f in make_folds(SPEAKERS, "loso", sex=sexes, seed=1):
        assert sexes[f.val[0]] != sexes[f.test[0]]
    for f in make_folds(SPEAKERS, "loso", n_val=2, sex=sexes, seed=1):
        assert {sexes[s] for s in f.val} == {"f", "m"}


def test_loso_session_from_table():
    table = table_of(IEMOCAP)
    folds = make_folds(table, "loso-session", n_val=2)
    assert [f.test for f in folds] == [(f"Ses0{i}F", f"Ses0{i}M") for i in range(1, 6)]
    for f in folds:
        check_fold(f, IEMOCAP)
        assert {IEMOCAP[s] for s in f.val}.isdisjoint({IEMOCAP[s] for s in f.test})
        assert {s[-1] for s in f.val} == {"F", "M"}  # sexes known from the iemocap speaker ids


def test_iemocap_paper_ten_swapped_folds():
    folds = make_folds(IEMOCAP, "iemocap-paper")
    assert len(folds) == 10
    for a, b in zip(folds[::2], folds[1::2]):
        assert a.val == b.test and a.test == b.val
        assert IEMOCAP[a.test[0]] == IEMOCAP[a.val[0]]
        assert a.train == b.train and len(a.train) == 8
        assert IEMOCAP[a.test[0]] not in {IEMOCAP[s] for s in a.train}
        check_fold(a, IEMOCAP)
    assert Counter(s for f in folds for s in f.test) == Counter(list(IEMOCAP))
    odd = dict(IEMOCAP, Ses05X="Session5")
    with pytest.raises(ConfigError, match="session Session5 has 3 speakers"):
        make_folds(odd, "iemocap-paper")
    with pytest.raises(ConfigError, match="needs sessions"):
        make_folds(list(IEMOCAP), "iemocap-paper")


def test_leakage_and_empty_sets_rejected():
    with pytest.raises(LeakageError, match="s1 in both train and test"):
        Fold("f", ("s1", "s2"), ("s3",), ("s1",))
    with pytest.raises(LeakageError, match="in both val and test"):
        Fold("f", ("s2",), ("s1",), ("s1",))
    with pytest.raises(LeakageError, match="empty val"):
        Fold("f", ("s2",), (), ("s1",))
    with pytest.raises(LeakageError, match="string"):
        Fold("f", "s2", ("s3",), ("s1",))
    with pytest.raises(ConfigError, match="unknown fold protocol"):
        make_folds(SPEAKERS, "random")
    with pytest.raises(ConfigError, match="needs at least 3 speakers"):
        make_folds(["a", "b"], "loso")
    with pytest.raises(ConfigError, match="n_val must be >= 1"):
        make_folds(SPEAKERS, "loso", n_val=0)


def test_json_round_trip_and_bad_files(tmp_path):
    folds = make_folds(IEMOCAP, "iemocap-paper")
    path = tmp_path / "folds" / "iemocap.json"
    save_folds(folds, path)
    assert load_folds(path) == folds
    assert Fold.from_dict(json.loads(json.dumps(folds[0].to_dict()))) == folds[0]
    data = json.loads(path.read_text())
    data["folds"][3]["val"] = data["folds"][3]["test"]
    path.write_text(json.dumps(data))
    with pytest.raises(LeakageError, match=f"^{path}: fold .* in both val and test"):
        load_folds(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"^{path}: not a readable JSON"):
        load_folds(path)
    with pytest.raises(ConfigError, match="fold file not found"):
        load_folds(tmp_path / "none.json")


def test_split_indices():
    table = table_of(IEMOCAP, per_speaker=4)
    fold = make_folds(table, "iemocap-paper")[3]
    tr, va, te = split_indices(table, fold)
    assert tr.dtype == np.int64 and len(tr) == 32 and len(va) == 4 and len(te) == 4
    assert len(set(tr) | set(va) | set(te)) == 40
    assert {table.utterances[i].speaker for i in te} == set(fold.test)
    assert {table.utterances[i].speaker for i in va} == set(fold.val)
    with pytest.raises(CorpusError, match="not in table"):
        split_indices(table, Fold("x", ("Ses01F",), ("Ses01M",), ("nobody",)))


@pytest.mark.emodb
def test_emodb_loso():
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"{EMODB} not present")
    from emotionnas.data.corpora import read_corpus, speaker_sexes
    table = read_corpus("emodb", EMODB)
    folds = make_folds(table, "loso")
    assert len(folds) == 10
    sexes = speaker_sexes(table)
    for f in folds:
        check_fold(f, table.speakers)
        assert sexes[f.val[0]] != sexes[f.test[0]]
        tr, va, te = split_indices(table, f)
        assert len(tr) + len(va) + len(te) == 535
