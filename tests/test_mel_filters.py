"""The NumPy Slaney mel bank equals librosa's, number for number (the cache keys assume it)."""
import numpy as np
import pytest

from emotionnas.features.mel_filters import hz_to_mel, mel_to_hz, slaney_mel

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize("sr,n_fft,n_mels", [(16000, 400, 80), (16000, 400, 128), (16000, 512, 40),
                                             (22050, 2048, 128), (8000, 256, 23)])
def test_equals_librosa(sr, n_fft, n_mels):
    ours = slaney_mel(sr, n_fft, n_mels)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_scale_round_trip_and_knee():
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)  # the linear part ends at 15 mel


def test_bank_is_read_only():
    with pytest.raises(ValueError):
        slaney_mel(16000, 400, 80)[0, 0] = 1.0
