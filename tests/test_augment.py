"""Augmented copies (features/augment.py): what a copy is, that it is cached like a stream, and
that only training utterances are ever trained on in their copies."""
import numpy as np
import pytest
import torch

from emotionnas.config import ConfigError, FeatureConfig, RunConfig, TrainConfig
from emotionnas.features.augment import perturb

SR = 16000


def tone(freq=200.0, seconds=1.0, amp=0.3):
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave):
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.fft.rfftfreq(len(wave), 1 / SR)[spec.argmax()]


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_tempo_and_pitch_by_the_factor(factor):
    w = tone()
    out = perturb(w, f"speed{factor}")
    assert out.dtype == np.float32 and abs(len(out) - len(w) / factor) <= 2
    assert abs(peak_hz(out) - 200.0 * factor) < 3.0


def test_noise_copy_is_at_a_drawn_snr_in_range_and_a_pure_function_of_the_audio():
    rng = np.random.default_rng(0)
    snrs = []
    for i in range(8):
        w = tone(150 + 30 * i) * rng.uniform(0.2, 1.0)
        out = perturb(w, "noise5-20")
        assert np.array_equal(out, perturb(w, "noise5-20"))  # same audio -> same copy, any process
        noise = out.astype(np.float64) - w
        snrs.append(10 * np.log10(np.mean(w.astype(np.float64) ** 2) / np.mean(noise ** 2)))
    assert all(4.8 < s < 20.2 for s in snrs) and np.std(snrs) > 1.0  # drawn per utterance


@pytest.mark.parametrize("bad", ["speed1", "speed3", "noise20-5", "pitch2", "speed0.9x"])
def test_bad_copy_names_are_refused_by_the_config(bad):
    with pytest.raises(ConfigError, match="features.augment"):
        FeatureConfig(augment=[bad])
    with pytest.raises(ConfigError, match="twice"):  # distinct copies
        FeatureConfig(augment=["speed0.9", "speed0.9"])
    assert RunConfig.from_dict({"features": {"augment": ["speed0.9", "noise5-20"]}}).features.augment == [
        "speed0.9", "noise5-20"]


def test_copies_are_extracted_cached_and_aligned(demo_root, tmp_path):
    from emotionnas.features.dataset import load_features
    fs = load_features("demo", demo_root, tmp_path, streams=("spectrogram", "deep"), encoder="whisper-tiny.en",
                       progress=False, augment=["speed1.1"])
    copy = fs.copies["speed1.1"]
    assert len(copy["deep"]) == len(fs) and copy["spectrograms"].shape == fs.spectrograms.shape
    shorter = [c.shape[1] < d.shape[1] for c, d in zip(copy["deep"], fs.deep)]
    assert all(shorter)  # 1.1x as fast: fewer frames, for every utterance
    again = load_features("demo", demo_root, tmp_path, streams=("spectrogram", "deep"), encoder="whisper-tiny.en",
                          progress=False, augment=["speed1.1"])
    copy_reports = [r for r in again.reports if "+speed1.1" in r.stream]
    assert len(copy_reports) == 2 and all(r.computed == 0 and r.cached == len(fs) for r in copy_reports)
    sub = fs.subset([2, 0])
    assert np.array_equal(sub.copies["speed1.1"]["deep"][0], copy["deep"][2])


def test_tasks_train_on_the_copies_of_training_utterances_only(demo_root, tmp_path):
    from emotionnas.models.build import input_spec
    from emotionnas.space.pipeline import Candidate
    from emotionnas.training.tasks import DataRef, split_inputs, training_inputs
    cfg = RunConfig(corpus="demo", root=str(demo_root))
    cfg.features.cache_dir, cfg.features.encoder = str(tmp_path), "whisper-tiny.en"
    cfg.features.augment = ["speed0.9", "noise5-20"]
    data = DataRef.from_config(cfg)
    fs = data.load()
    spec = input_spec(Candidate(deep="gru", layers=(1,), frame_pool=1), (0.0, 1.0))
    idx = np.array([0, 3, 5])
    (x, lengths), y = training_inputs(data, fs, spec, idx)
    assert len(x) == 9 and np.array_equal(y, np.tile(fs.labels[idx], 3))
    slow = split_inputs(data, fs, spec, idx, "speed0.9")
    assert torch.equal(lengths[3:6], slow[1]) and (slow[1] > lengths[:3]).all()  # 0.9x: longer
    assert x.shape[2] >= int(lengths.max())  # padded to the longest part
    plain = DataRef.from_config(RunConfig(corpus="demo", root=str(demo_root),
                                          features=FeatureConfig(cache_dir=str(tmp_path), encoder="whisper-tiny.en")))
    (x0, _), y0 = training_inputs(plain, plain.load(), spec, idx)
    assert len(x0) == 3 and torch.equal(x0, x[:3, :, : x0.shape[2]])
    assert TrainConfig().mixup == 0.4 and FeatureConfig().augment == []  # mixup on, copies off by default
