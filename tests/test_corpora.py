"""Corpus readers on tiny fake trees that follow each corpus's real naming scheme, plus real EmoDB."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotionnas.data.corpora import CORPORA, corpus_summary_text, read_corpus, speaker_sexes
from emotionnas.errors import CorpusError

EMODB = Path(__file__).resolve().parents[1].parent / "shared/data/emodb"


def wav(path: Path, seconds: float = 0.2, sr: int = 16000) -> Path:
    """A tiny real wav of noise (deterministic per file name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    sf.write(str(path), (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)
    return path


def broken(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a RIFF header at all")
    return path


# ------------------------------------------------------------------ fake trees

def emodb_tree(root: Path) -> Path:
    for name in ["03a01Fa.wav", "03a02Wb.wav", "08b01La.wav", "08b02Ea.wav", "10a04Aa.wav",
                 "10a05Ta.wav", "10a07Na.wav"]:
        wav(root / "wav" / name)
    return root


def ravdess_tree(root: Path) -> Path:
    for name in ["03-01-01-01-01-01-01.wav", "03-01-02-01-01-01-01.wav", "03-01-05-02-02-01-12.wav",
                 "03-01-06-01-01-02-12.wav", "03-01-08-02-01-01-12.wav"]:
        wav(root / f"Actor_{name[-6:-4]}" / name)
    wav(root / "Actor_12" / "03-02-03-01-01-01-12.wav")  # song: skipped
    return root


def cremad_tree(root: Path) -> Path:
    for name in ["1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1002_TIE_SAD_LO.wav", "1002_ITS_NEU_XX.wav"]:
        wav(root / "AudioWAV" / name)
    return root


def tess_tree(root: Path) -> Path:
    wav(root / "OAF_angry" / "OAF_back_angry.wav")
    wav(root / "OAF_Fear" / "OAF_bath_fear.wav")
    wav(root / "YAF_pleasant_surprised" / "YAF_back_ps.wav")
    wav(root / "YAF_neutral" / "YAF_dog_neutral.wav")
    return root


def savee_tree(root: Path) -> Path:
    wav(root / "AudioData" / "DC" / "a01.wav")
    wav(root / "AudioData" / "DC" / "sa02.wav")
    wav(root / "AudioData" / "JE" / "su03.wav")
    wav(root / "ALL" / "KL_n01.wav")
    wav(root / "ALL" / "JK_d05.wav")
    return root


def iemocap_tree(root: Path) -> Path:
    dialogs = {
        "Session1": {"Ses01F_impro01": [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "ang"),
                                        ("Ses01F_impro01_F001", "exc"), ("Ses01F_impro01_M001", "fru")],
                     "Ses01M_script01_1": [("Ses01M_script01_1_F000", "sad"), ("Ses01M_script01_1_M000", "hap")]},
        "Session2": {"Ses02M_impro03": [("Ses02M_impro03_F000", "sad"), ("Ses02M_impro03_M000", "hap")]},
    }
    for session, by_dialog in dialogs.items():
        for dialog, utts in by_dialog.items():
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for i, (utt, code) in enumerate(utts):
                wav(root / session / "sentences" / "wav" / dialog / f"{utt}.wav")
                lines += [f"[{i}.2901 - {i}.9357]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]",
                          "C-E1:\tNeutral state;\t()", ""]
            txt = root / session / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("\n".join(lines))
    return root


MSP_LABELS = {"S01A-F01-P-FM01": "A", "S01H-M01-R-MF01": "H", "S08S-F05-S-FM02": "S",
              "S08N-M05-T-MF03": "N", "S02A-F01-P-FM02": "X"}


def msp_tree(root: Path) -> Path:
    lines = []
    for utt, letter in MSP_LABELS.items():
        session = "session" + str(int(utt.split("-")[1][1:]))
        wav(root / session / utt.split("-")[0] / utt.split("-")[2] / f"MSP-IMPROV-{utt}.wav")
        lines += [f"UTD-IMPROV-{utt}.avi; {letter}; A:3.000000; V:2.500000; D:3.000000; N:4.000000;",
                  "rater1; Angry; ; A:3.0; V:2.0; D:3.0; N:4.0;", ""]
    (root / "Evaluation.txt").write_text("\n".join(lines))
    return root


def urdu_tree(root: Path) -> Path:
    for folder, name in (("Angry", "SM5_F12_A033.wav"), ("Happy", "SF1_F3_H002.wav"), ("Neutral", "SM5_F1_N010.wav"),
                         ("Sad", "SM24_F7_S091.wav")):
        wav(root / "wav" / folder / name)
    (root / "wav" / "Sad" / "notes.txt").write_text("ignored")
    wav(root / "wav" / "Angry" / "SM5_F13_H034.wav")  # letter disagrees with the folder: listed, left out
    return root


def manifest_tree(root: Path) -> Path:
    wav(root / "audio" / "a.wav")
    wav(root / "audio" / "b.wav")
    absolute = wav(root / "elsewhere" / "c.wav").resolve()
    (root / "manifest.csv").write_text(
        "path,label,speaker,session\n"
        "audio/a.wav,Angry,spk1,s1\n"
        "audio/b.wav,neutral,spk2,s1\n"
        f"{absolute},sad,spk3,s2\n")
    return root


# name -> (tree builder, expected Counter of (label, speaker, session))
CASES = {
    "emodb": (emodb_tree, Counter({("happy", "03", ""): 1, ("angry", "03", ""): 1, ("bored", "08", ""): 1,
                                   ("disgust", "08", ""): 1, ("fear", "10", ""): 1, ("sad", "10", ""): 1,
                                   ("neutral", "10", ""): 1})),
    "ravdess": (ravdess_tree, Counter({("neutral", "01", ""): 1, ("calm", "01", ""): 1, ("angry", "12", ""): 1,
                                       ("fear", "12", ""): 1, ("surprise", "12", ""): 1})),
    "cremad": (cremad_tree, Counter({("angry", "1001", ""): 1, ("happy", "1001", ""): 1,
                                     ("sad", "1002", ""): 1, ("neutral", "1002", ""): 1})),
    "tess": (tess_tree, Counter({("angry", "OAF", ""): 1, ("fear", "OAF", ""): 1,
                                 ("surprise", "YAF", ""): 1, ("neutral", "YAF", ""): 1})),
    "savee": (savee_tree, Counter({("angry", "DC", ""): 1, ("sad", "DC", ""): 1, ("surprise", "JE", ""): 1,
                                   ("neutral", "KL", ""): 1, ("disgust", "JK", ""): 1})),
    "iemocap": (iemocap_tree, Counter({("neutral", "Ses01F", "Session1"): 1, ("angry", "Ses01M", "Session1"): 1,
                                       ("sad", "Ses02F", "Session2"): 1, ("happy", "Ses02M", "Session2"): 1})),
    "msp-improv": (msp_tree, Counter({("angry", "F01", "session1"): 1, ("happy", "M01", "session1"): 1,
                                      ("sad", "F05", "session5"): 1, ("neutral", "M05", "session5"): 1})),
    "urdu": (urdu_tree, Counter({("angry", "SM5", ""): 1, ("happy", "SF1", ""): 1, ("neutral", "SM5", ""): 1,
                                 ("sad", "SM24", ""): 1})),
    "manifest": (manifest_tree, Counter({("angry", "spk1", "s1"): 1, ("neutral", "spk2", "s1"): 1,
                                         ("sad", "spk3", "s2"): 1})),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_contract(tmp_path, name):
    build, expected = CASES[name]
    table = read_corpus(name, build(tmp_path / name))
    assert table.name == name and table.errors == ([] if name != "urdu" else [
        f"{tmp_path / name / 'wav' / 'Angry' / 'SM5_F13_H034.wav'}: emotion letter 'H' disagrees with its folder 'Angry'"])
    assert Counter((u.label, u.speaker, u.session) for u in table.utterances) == expected
    for u in table.utterances:
        assert Path(u.path).is_absolute() and Path(u.path).is_file()
        assert u.corpus == name and u.label == u.label.lower()
        assert math.isclose(u.duration, 0.2, abs_tol=1e-3)
    assert [u.path for u in table.utterances] == sorted(u.path for u in table.utterances)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unreadable_file_is_listed_not_fatal(tmp_path, name):
    build, expected = CASES[name]
    root = build(tmp_path / name)
    victim = Path(sorted(read_corpus(name, root).utterances, key=lambda u: u.path)[0].path)
    broken(victim)
    table = read_corpus(name, root)
    assert len(table) == sum(expected.values()) - 1
    assert f"{victim}: unreadable audio header" in table.errors


def test_registry_and_errors(tmp_path):
    assert set(CASES) | {"demo"} == set(CORPORA)
    with pytest.raises(CorpusError, match="unknown corpus 'nope'.*emodb.*msp-improv"):
        read_corpus("nope", tmp_path)
    with pytest.raises(CorpusError, match="no option 'calm'"):
        read_corpus("emodb", tmp_path, calm="drop")
    missing = tmp_path / "absent"
    with pytest.raises(CorpusError, match=f"^{missing}: emodb corpus folder not found$"):
        read_corpus("emodb", missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="empty: no usable tess audio found"):
        read_corpus("tess", tmp_path / "empty")
    assert read_corpus("MSP_IMPROV", msp_tree(tmp_path / "m")).name == "msp-improv"


def test_emodb_names_and_wav_root(tmp_path):
    root = emodb_tree(tmp_path / "emodb")
    wav(root / "wav" / "notes.wav")            # not the naming scheme
    wav(root / "wav" / "03a01Xa.wav")          # unknown emotion letter
    (root / "wav" / "._03a01Fa.wav").write_bytes(b"mac resource fork")  # hidden: ignored
    table = read_corpus("emodb", root / "wav")
    assert len(table) == 7
    assert len(table.errors) == 2
    assert any("notes.wav: name does not follow" in e for e in table.errors)
    assert any("03a01Xa.wav: unknown EmoDB emotion letter 'X'" in e for e in table.errors)
    assert read_corpus("emodb", root).summary() == table.summary()


def test_ravdess_calm_options(tmp_path):
    root = ravdess_tree(tmp_path)
    wav(root / "Actor_01" / "03-01-09-01-01-01-01.wav")
    labels = {opt: Counter(u.label for u in read_corpus("ravdess", root, calm=opt).utterances)
              for opt in ("keep", "merge", "drop")}
    assert labels["keep"]["calm"] == 1 and labels["keep"]["neutral"] == 1
    assert labels["merge"]["neutral"] == 2 and "calm" not in labels["merge"]
    assert labels["drop"]["neutral"] == 1 and "calm" not in labels["drop"]
    assert sum(labels["drop"].values()) == 4
    errors = read_corpus("ravdess", root).errors
    assert len(errors) == 1 and "03-01-09-01-01-01-01.wav: not a RAVDESS audio-only speech file" in errors[0]
    with pytest.raises(CorpusError, match="calm='maybe'"):
        read_corpus("ravdess", root, calm="maybe")


def test_iemocap_subsets_and_excited(tmp_path):
    root = iemocap_tree(tmp_path)
    def count(**kw):
        return Counter((u.label, u.speaker) for u in read_corpus("iemocap", root, **kw).utterances)
    assert count(subset="scripted") == Counter({("sad", "Ses01F"): 1, ("happy", "Ses01M"): 1})
    assert sum(count(subset="all").values()) == 6
    merged = count(merge_excited=True)
    assert merged[("happy", "Ses01F")] == 1 and sum(merged.values()) == 5
    # A labelled utterance whose wav is missing is reported, not fatal.
    (root / "Session2/sentences/wav/Ses02M_impro03/Ses02M_impro03_M000.wav").unlink()
    table = read_corpus("iemocap", root)
    assert len(table) == 3 and "labelled in Ses02M_impro03.txt but the wav file is missing" in table.errors[0]
    with pytest.raises(CorpusError, match="subset='some'"):
        read_corpus("iemocap", root, subset="some")
    with pytest.raises(CorpusError, match="no Session1..Session5 folders"):
        read_corpus("iemocap", root / "Session1")


def test_msp_improv_missing_label_and_evaluation(tmp_path):
    root = msp_tree(tmp_path)
    unlabelled = wav(root / "session2" / "S03A" / "P" / "MSP-IMPROV-S03A-F02-P-FM01.wav")
    table = read_corpus("msp-improv", root)
    assert table.errors == [f"{unlabelled.resolve()}: no label line in Evaluation.txt"]
    (root / "Evaluation.txt").unlink()
    with pytest.raises(CorpusError, match="Evaluation.txt not found"):
        read_corpus("msp-improv", root)


def test_manifest_tsv_missing_rows_and_columns(tmp_path):
    wav(tmp_path / "x.wav")
    tsv = tmp_path / "list.tsv"
    tsv.write_text("speaker\tpath\tlabel\nA\tx.wav\t HAPPY \nB\tgone.wav\tsad\nC\t\tsad\n")
    table = read_corpus("manifest", tsv)
    assert [(u.label, u.speaker, u.session) for u in table.utterances] == [("happy", "A", "")]
    assert len(table.errors) == 2
    assert table.errors[0] == f"{tmp_path / 'gone.wav'}: listed in list.tsv line 3 but missing"
    assert table.errors[1] == f"{tsv}:4: empty path"
    sniffed = tmp_path / "list.txt"
    sniffed.write_text(tsv.read_text())
    assert len(read_corpus("manifest", sniffed)) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.wav,sad\n")
    with pytest.raises(CorpusError, match=f"^{bad}: missing column 'speaker'"):
        read_corpus("manifest", bad)
    with pytest.raises(CorpusError, match="no manifest.csv or manifest.tsv"):
        read_corpus("manifest", tmp_path)


def test_summary_text_and_sexes(tmp_path):
    root = iemocap_tree(tmp_path)
    broken(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    table = read_corpus("iemocap", root)
    text = corpus_summary_text(table)
    assert text.splitlines()[0].startswith("iemocap: 3 utterances, 3 labels, 3 speakers")
    assert "sessions: Session1, Session2" in text
    assert "  sad               1  (33.3%)" in text
    assert "errors: 1" in text and "Ses01F_impro01_F000.wav: unreadable audio header" in text
    assert speaker_sexes(table) == {"Ses01M": "m", "Ses02F": "f", "Ses02M": "m"}


@pytest.mark.emodb
def test_real_emodb():
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"{EMODB} not present")
    table = read_corpus("emodb", EMODB)
    assert len(table) == 535 and table.errors == []
    assert Counter(u.label for u in table.utterances) == {
        "angry": 127, "bored": 81, "disgust": 46, "fear": 69, "happy": 71, "sad": 62, "neutral": 79}
    assert Counter(u.speaker for u in table.utterances) == {
        "03": 49, "08": 58, "09": 43, "10": 38, "11": 55, "12": 35, "13": 61, "14": 69, "15": 56, "16": 71}
    durations = [u.duration for u in table.utterances]
    assert 1.2 <= min(durations) and max(durations) <= 9.1
    assert abs(sum(durations) / 60 - 24.8) < 0.1
    assert sorted(speaker_sexes(table).values()) == ["f"] * 5 + ["m"] * 5


def test_demo_is_registered_lazily(tmp_path):
    pytest.importorskip("emotionnas.data.demo")
    with pytest.raises(CorpusError, match="corpus 'demo' has no option 'calm'"):
        read_corpus("demo", tmp_path / "demo", calm="keep")
    table = read_corpus("demo", tmp_path / "demo", per_class=1)
    assert table.name == "demo" and len(table) == 16  # 4 speakers x 4 classes x per_class
    assert set(Counter((u.speaker, u.label) for u in table.utterances).values()) == {1}


URDU = EMODB.parent / "urdu"
TUREV = EMODB.parent / "turev"


@pytest.mark.emodb
def test_real_urdu_and_turev():
    """The other two development corpora read as their READMEs describe them (TurEV-DB through its
    manifest, as a user would); skipped where ../shared/data does not hold them."""
    if not (URDU / "wav").is_dir() or not (TUREV / "manifest.csv").is_file():
        pytest.skip(f"{URDU} or {TUREV} not present")
    urdu = read_corpus("urdu", URDU)
    assert len(urdu) == 400 and urdu.errors == []
    assert Counter(u.label for u in urdu.utterances) == {"angry": 100, "happy": 100, "neutral": 100, "sad": 100}
    speakers = Counter(u.speaker for u in urdu.utterances)
    assert len(speakers) == 29 and speakers["SM5"] == 80 and speakers["SM4"] == 48
    turev = read_corpus("manifest", TUREV / "manifest.csv")
    assert len(turev) == 1735 and turev.errors == []
    assert Counter(u.label for u in turev.utterances) == {"angry": 487, "calm": 408, "happy": 357, "sad": 483}
    by_speaker = Counter(u.speaker for u in turev.utterances)
    assert len(by_speaker) == 6 and by_speaker["1157"] == 77 + 73 and by_speaker["1234"] == 4 * 82
