import numpy as np
import pytest
import soundfile as sf

from conftest import write_wav
from emotionnas.data.audio import load_audio, validate_wave
from emotionnas.errors import AudioError


def tone(seconds=0.5, sr=16000, f=220.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_loads_mono_16k(tmp_path):
    p = write_wav(tmp_path / "a.wav", tone())
    w = load_audio(p)
    assert w.dtype == np.float32 and w.ndim == 1 and len(w) == 8000


def test_resamples_and_mixes_down_stereo(tmp_path):
    st = np.stack([tone(sr=44100), -0.5 * tone(sr=44100)], axis=1)
    p = write_wav(tmp_path / "s.flac", st, sr=44100)
    w = load_audio(p)
    assert w.ndim == 1 and abs(len(w) - 8000) <= 1
    # the mixdown is the mean of the channels: 0.25 * the tone's amplitude
    assert 0.06 < np.abs(w).max() < 0.09


@pytest.mark.parametrize("case,msg", [
    ("empty", "empty"), ("silent", "silent"), ("short", "too short"),
    ("garbage", "unreadable"), ("missing", "unreadable"), ("nan", "NaN"),
])
def test_bad_audio_one_line_error_names_file(tmp_path, case, msg):
    p = tmp_path / f"{case}.wav"
    if case == "empty":
        sf.write(str(p), np.zeros(0, np.float32), 16000)
    elif case == "silent":
        write_wav(p, np.zeros(16000, np.float32))
    elif case == "short":
        write_wav(p, tone(0.05))
    elif case == "garbage":
        p.write_bytes(b"RIFF not really a wav file")
    elif case == "nan":
        w = tone()
        w[100] = np.nan
        write_wav(p, w, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(p)
    text = str(e.value)
    assert str(p) in text and msg in text and "\n" not in text


def test_clipped_audio_is_accepted_and_bounded(tmp_path):
    w = np.clip(tone() * 10, -1, 1)
    p = write_wav(tmp_path / "clip.wav", w)
    out = load_audio(p)
    assert np.abs(out).max() <= 1.0 and np.abs(out).max() > 0.99


def test_validate_wave_rejects_3d():
    with pytest.raises(AudioError, match="shape"):
        validate_wave(np.zeros((2, 2, 2)), 16000)
