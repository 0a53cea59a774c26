"""The speaker-adaptive mode (off by default, labelled): per-speaker standardisation in training,
enrolment in both recognizer backends, the label in results and report."""
import json
import shutil

import numpy as np
import pytest

from emotionnas.config import ConfigError, RunConfig
from emotionnas.features.speaker_norm import speaker_normalised, speaker_standardise, speaker_stats


def test_each_speaker_is_standardised_by_its_own_frames_only():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(3.0 if i < 3 else -2.0, 5.0 if i < 3 else 0.5, (2, 10 + i, 4)).astype(np.float16)
              for i in range(6)]
    speakers = np.array(["a", "a", "a", "b", "b", "b"])
    out = speaker_normalised(arrays, speakers)
    for spk in "ab":
        frames = np.concatenate([out[i].astype(np.float64) for i in np.flatnonzero(speakers == spk)], axis=1)
        assert np.allclose(frames.mean(axis=1), 0, atol=0.01) and np.allclose(frames.std(axis=1), 1, atol=0.01)
    alone = speaker_normalised(arrays[:3], speakers[:3])  # b's audio never changes a's features
    assert all(np.array_equal(x, y) for x, y in zip(alone, out[:3]))
    assert out[0].dtype == np.float16
    with pytest.raises(ConfigError, match="no utterances"):
        speaker_stats([])


def test_speaker_norm_refuses_fine_tuning_families_and_model_json_checks_the_flag(tmp_path):
    from emotionnas.space.model_spec import ModelSpec
    from emotionnas.space.pipeline import check_space
    cfg = RunConfig.from_dict({"features": {"speaker_norm": True}, "space": {"deep": ["gru", "tune"]}})
    with pytest.raises(ConfigError, match="speaker_norm"):
        check_space(cfg.space, cfg.features.speaker_norm)
    check_space(cfg.space, False)
    with pytest.raises(ConfigError, match="speaker_norm: expected true or false"):
        ModelSpec.from_meta({**_meta(tmp_path), "speaker_norm": "yes"})
    assert ModelSpec.from_meta({**_meta(tmp_path), "speaker_norm": True}).speaker_norm
    assert "speaker_norm" not in ModelSpec.from_meta(_meta(tmp_path)).to_dict()  # default models read as before


def _meta(folder):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hostile_input import _exported_meta
    _exported_meta(folder / "m")
    return json.loads((folder / "m" / "model.json").read_text())


def test_the_report_labels_a_speaker_adaptive_run():
    from emotionnas.reports.report import _summary_lines
    res = {"corpus": "emodb", "n_utterances": 10, "n_speakers": 2, "label_names": ["a", "b"], "protocol": "loso",
           "folds": [], "speaker_adaptive": True}
    assert any("Speaker-adaptive mode" in line for line in _summary_lines(res))
    assert not any("Speaker-adaptive" in line for line in _summary_lines({**res, "speaker_adaptive": False}))


@pytest.mark.slow  # tiny_run: a real run_crossval
def test_enrolled_recognizer_standardises_like_training_in_both_backends(tiny_run, demo_root, tmp_path, capsys):
    from emotionnas.cli import main
    from emotionnas.recognizer import Recognizer, load
    from emotionnas.recognizer.onnx_export import export_onnx
    assert "speaker_adaptive" not in json.loads((tiny_run[0] / "results.json").read_text())  # only when on
    model = tmp_path / "adaptive"
    shutil.copytree(tiny_run[1], model)
    meta = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**meta, "speaker_norm": True}))
    export_onnx(model)
    files = sorted((demo_root / "wav").glob("*.wav"))
    rec = Recognizer.load(model)
    with pytest.raises(ConfigError, match="enrol the speaker first"):
        rec.predict(files[0])
    assert rec.enroll(rec.load_wave(f) for f in files[:4]) == 4  # any iterable, arrays as their files
    first = rec.speaker
    assert rec.enroll(files[:4]) == 4 and all(np.array_equal(a, b) for a, b in zip(first, rec.speaker))
    raw = rec.raw_deep(rec.load_wave(files[0]))
    want = speaker_standardise(raw, speaker_stats([rec.raw_deep(rec.load_wave(f)) for f in files[:4]]))
    got = rec.features(rec.load_wave(files[0]))[1][0]
    assert np.allclose(got, want, atol=1e-2) and not np.allclose(got, raw, atol=0.1)
    onnx = load(model, backend="onnx")
    onnx.enroll(files[:4])
    p_t, p_o = rec.predict_proba(rec.load_wave(files[5])), onnx.predict_proba(onnx.load_wave(files[5]))
    assert np.abs(p_t - p_o).max() < 1e-3
    plain = Recognizer.load(tiny_run[1])
    with pytest.raises(ConfigError, match="not a speaker-adaptive model"):
        plain.enroll(files[:2])
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--enroll", str(files[0].parent), str(files[5])]) == 0
    cap = capsys.readouterr()
    assert f"enrolled {len(files)} utterance(s)" in cap.err and json.loads(cap.out.splitlines()[0])["speech"] in (True, False)
