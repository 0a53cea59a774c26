"""The command line on small data the tests make."""
import json
import shutil

import numpy as np
import pytest

from conftest import write_wav
from emotionnas.cli import main


def test_corpus_json_counts(demo_root, capsys):
    assert main(["corpus", "manifest", str(demo_root / "manifest.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["utterances"] == 32 and len(out["labels"]) == 4 and len(out["speakers"]) == 4
    assert out["errors"] == []


def test_corpus_emodb_real(emodb_root, capsys):
    assert main(["corpus", "emodb", str(emodb_root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["utterances"], len(out["speakers"]), len(out["labels"])) == (535, 10, 7)


def test_features_lists_and_skips_bad_files_then_hits_cache(demo_root, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_root, corpus)
    (corpus / "wav" / "spk1_angry_00.wav").write_bytes(b"")                     # empty / corrupt
    write_wav(corpus / "wav" / "spk2_sad_00.wav", np.zeros(16000, np.float32))  # silent
    args = ["--quiet", "features", "manifest", str(corpus / "manifest.csv"), "--cache", str(tmp_path / "c"),
            "--stream", "spectrogram"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    # the corrupt file is already listed by the corpus reader; the silent one by the extractor
    assert "31 files, 30 computed" in out and "1 skipped" in out
    assert "skipped 2 file(s)" in err and "spk1_angry_00.wav" in err and "spk2_sad_00.wav" in err and "silent" in err
    assert main(args) == 0
    assert "0 computed, 30 cached" in capsys.readouterr().out


def test_bad_corpus_and_config_are_one_line_errors(tmp_path, capsys):
    assert main(["corpus", "emodb", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope" in err and "\n" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: lots\n")
    assert main(["run", "demo", str(tmp_path / "d"), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.yaml" in err and "epochs" in err


def test_features_layers_option_validates(demo_root, tmp_path, capsys):
    args = ["--quiet", "features", "manifest", str(demo_root / "manifest.csv"), "--cache", str(tmp_path / "c"),
            "--stream", "deep", "--encoder", "whisper-tiny.en", "--layers", "9"]
    assert main(args) == 2
    assert "0..4" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-cache")


@pytest.mark.slow  # extracts features and trains a cell search
@pytest.mark.parametrize("kind", ["cnn", "rnn"])
def test_search_command_writes_architecture(demo_root, tmp_path, shared_cache, capsys, kind):
    out = tmp_path / kind
    args = ["--quiet", "search", kind, "manifest", str(demo_root / "manifest.csv"), "--fold", "0",
            "--out", str(out), "--cache", str(shared_cache), "--encoder", "whisper-tiny.en",
            "--set", "cnn.search={epochs: 1, warmup_epochs: 0, proxy_size: 16}", "--set", "cnn.C=4",
            "--set", "rnn.search={epochs: 1, warmup_epochs: 0, hidden: 16}"]
    assert main(args) == 0
    arch = json.loads(capsys.readouterr().out)
    if kind == "cnn":
        assert arch["genotype"]["normal"] and (out / "cnn" / "genotype.json").exists()
    else:
        assert arch["recipe"] and (out / "rnn" / "recipe.json").exists()
    used = json.loads((out / "search_done.json").read_text())["speakers"]
    assert not set(used["excluded"]) & (set(used["train"]) | set(used["val"]))
