"""Cross-corpus evaluation: label mapping, dropped classes, scores and report."""
import json
import shutil

import numpy as np
import pytest

from emotionnas.cli import main
from emotionnas.errors import ConfigError
from emotionnas.metrics import unweighted_accuracy
from emotionnas.recognizer.evaluate import label_mapping


def test_label_mapping_renames_and_drops():
    m = label_mapping(["anger", "joy", "sad", "surprise"], ["angry", "happy", "neutral", "sad"],
                      {"anger": "angry", "joy": "happy"})
    assert m == {"anger": "angry", "joy": "happy", "sad": "sad"}  # surprise: unknown to the model, dropped
    with pytest.raises(ConfigError, match="not labels of this corpus"):
        label_mapping(["a"], ["a", "b"], {"x": "a"})
    with pytest.raises(ConfigError, match="not labels of the model"):
        label_mapping(["a"], ["a", "b"], {"a": "zzz"})


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_evaluate_on_another_corpus_with_a_mapping(tiny_run, demo_root, tmp_path, capsys):
    # the demo corpus as a manifest corpus whose labels are spelled differently and with a class the
    # model does not know
    corpus = tmp_path / "other"
    shutil.copytree(demo_root / "wav", corpus / "wav")
    rows = ["path,label,speaker"]
    for wav in sorted((corpus / "wav").glob("*.wav")):
        spk, label, _ = wav.stem.split("_")
        label = {"angry": "anger", "happy": "joy"}.get(label, label)
        rows.append(f"wav/{wav.name},{label},{spk}")
    rows.append(f"wav/{sorted((corpus / 'wav').glob('*.wav'))[0].name},surprise,spk9")
    (corpus / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "eval"
    assert main(["--quiet", "evaluate", "--model", str(tiny_run[1]), "manifest", str(corpus), "--out", str(out),
                 "--map", "anger=angry,joy=happy", "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "anger -> angry" in printed and "dropped: {'surprise': 1}" in printed
    res = json.loads((out / "evaluation.json").read_text())
    assert res["n_utterances"] == 32 and res["classes_present"] == ["angry", "happy", "neutral", "sad"]
    cm = np.array(res["confusion"])
    assert cm.sum() == 32 and cm.sum(0).tolist() == [res["predicted_counts"][c] for c in res["classes_present"]]
    y_true, y_pred = np.repeat(np.arange(len(cm)), cm.sum(1)), np.concatenate([np.repeat(np.arange(len(cm)), r) for r in cm])
    assert res["ua"] == pytest.approx(unweighted_accuracy(y_true, y_pred, len(cm)))  # over the classes present
    assert res["ua"] == pytest.approx(np.mean(list(res["per_class_recall"].values())))
    assert (out / "report.md").exists() and (out / "confusion_normalized.png").exists()
