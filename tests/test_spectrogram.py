import pytest
import librosa
import numpy as np
import torch

from emotionnas.features.spectrogram import SpectrogramConfig, compute_spectrogram, compute_spectrograms, power_spectrogram


def test_paper_framing():
    cfg = SpectrogramConfig()
    assert (cfg.win_length, cfg.hop_length) == (400, 176)  # 25 ms window, 14 ms overlap at 16 kHz


def test_shape_and_padding_cut():
    rng = np.random.default_rng(0)
    short = rng.standard_normal(16000).astype(np.float32)
    long = rng.standard_normal(16000 * 10).astype(np.float32)
    s, l = compute_spectrogram(short), compute_spectrogram(long)
    assert s.shape == l.shape == (140, 140) and s.dtype == np.float32
    # the zero-padded tail of a 1 s clip sits at the power floor; a 10 s clip has no tail
    assert s[:, -1].max() < -20 and l[:, -1].min() > -20
    # audio beyond 8 s is cut: changing it does not change the spectrogram
    long2 = long.copy()
    long2[16000 * 9:] = 0
    assert np.allclose(compute_spectrogram(long2), l)


def test_matches_librosa_hamming_stft():
    cfg = SpectrogramConfig()
    wave = np.random.default_rng(1).standard_normal(128000).astype(np.float32)
    ours = power_spectrogram(wave.astype(np.float64), cfg)
    ref = np.abs(librosa.stft(wave, n_fft=400, hop_length=176, win_length=400,
                              window="hamming", center=False)) ** 2
    assert ours.shape == ref.shape == (201, 726)
    assert np.allclose(ours, ref, rtol=1e-3, atol=1e-3 * ref.max())


def test_numpy_pooling_matches_torch_adaptive_avg_pool():
    import torch.nn.functional as F
    from emotionnas.features.spectrogram import adaptive_avg_pool
    x = np.random.default_rng(2).standard_normal((2, 201, 726))
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x).unsqueeze(1), (70, 140)).squeeze(1).numpy()
    np.testing.assert_allclose(adaptive_avg_pool(x, 70, 140), ref, atol=1e-10)


def test_numpy_whisper_front_end_matches_torch():
    from emotionnas.features import numpy_frontend
    from emotionnas.features.encoders.mel import log_mel
    from emotionnas.features.inputs import pool_frames_np
    rng = np.random.default_rng(3)
    wave = (0.1 * rng.standard_normal(37000)).astype(np.float32)
    np.testing.assert_allclose(numpy_frontend.log_mel(wave), log_mel(wave).numpy(), atol=1e-5)
    x = rng.standard_normal((3, 17, 5)).astype(np.float32)
    np.testing.assert_allclose(numpy_frontend.pool_frames(x, 4), pool_frames_np(x, 4), atol=1e-6)


def test_log_mel_option():
    from emotionnas.features.spectrogram import SpectrogramConfig, compute_spectrograms
    wave = (0.1 * np.random.default_rng(4).standard_normal(48000)).astype(np.float32)
    lin = compute_spectrograms([wave], SpectrogramConfig(out_freq=32, out_time=32))
    mel = compute_spectrograms([wave], SpectrogramConfig(out_freq=32, out_time=32, mel_bins=64))
    assert mel.shape == lin.shape == (1, 32, 32) and np.all(np.isfinite(mel)) and not np.allclose(mel, lin)


def test_log_mel_run_config(tmp_path):
    from emotionnas.config import RunConfig
    from emotionnas.errors import ConfigError
    assert RunConfig.from_dict({"features": {"spectrogram_mel": 64}}).features.spectrogram_mel == 64
    import pytest
    with pytest.raises(ConfigError, match="spectrogram_mel"):
        RunConfig.from_dict({"features": {"spectrogram_mel": 1000}})


@pytest.mark.parametrize("n", [1, 175, 176, 401, 16000, 127999, 128000, 200000])
def test_padding_frames_skipped_exactly(n):
    """Only frames holding audio go through the FFT; the result equals the plain all-frames
    computation number for number, at the padding's edges too."""
    from emotionnas.features.spectrogram import adaptive_avg_pool, fit_length, power_spectrogram
    cfg = SpectrogramConfig(out_freq=70, out_time=70)
    wave = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    full = power_spectrogram(fit_length(wave, 128000).astype(np.float64)[None], cfg)
    want = adaptive_avg_pool(np.log(np.maximum(full, cfg.log_floor)), 70, 70).astype(np.float32)
    np.testing.assert_array_equal(compute_spectrograms([wave], cfg), want)
