import shutil

import numpy as np
import pytest

from conftest import write_wav
from emotionnas.data.demo import demo_table
from emotionnas.data.utterance import CorpusTable, Utterance
from emotionnas.features.cache import FeatureCache, deep_stream, spectrogram_stream
from emotionnas.features.inputs import pool_frames_np as pool_frames
from emotionnas.features.dataset import build_feature_set


class CountingEncoder:
    """A stand-in encoder with the registry contract; counts its calls."""
    calls = 0
    num_layers, dim = 2, 8

    def config_dict(self):
        return {"name": "counting", "layers": 2}

    def encode(self, wave):
        CountingEncoder.calls += 1
        T = int(np.ceil(len(wave) / 320))
        return np.tile(np.linspace(0, 1, T, dtype=np.float32)[None, :, None], (3, 1, 8))


def small_table(tmp_path, n=4):
    utts = []
    for i in range(n):
        rng = np.random.default_rng(i)
        p = write_wav(tmp_path / "c" / f"u{i}.wav", 0.1 * rng.standard_normal(8000).astype(np.float32))
        utts.append(Utterance(str(p), "a" if i % 2 else "b", f"s{i}", "", "t", 0.5))
    return CorpusTable("t", utts)


def test_second_call_is_cache_hit(tmp_path):
    table = small_table(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    _, r1 = cache.extract(table.utterances, spectrogram_stream(), progress=False)
    out, r2 = cache.extract(table.utterances, spectrogram_stream(), progress=False)
    assert (r1.computed, r1.cached) == (4, 0) and (r2.computed, r2.cached) == (0, 4)
    assert all(a.shape == (140, 140) for a in out.values())


def test_interrupted_extraction_resumes(tmp_path):
    table = small_table(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    cache.extract(table.utterances[:2], spectrogram_stream(), progress=False)  # "interrupted" after 2
    _, r = cache.extract(table.utterances, spectrogram_stream(), progress=False)
    assert (r.computed, r.cached) == (2, 2)


def test_corrupt_entry_is_rebuilt(tmp_path):
    table = small_table(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    ref, _ = cache.extract(table.utterances, spectrogram_stream(), progress=False)
    entry = cache.entry_path(spectrogram_stream(), table.utterances[0].path)
    entry.write_bytes(b"\x93NUMPY garbage")
    out, r = cache.extract(table.utterances, spectrogram_stream(), progress=False)
    assert r.rebuilt == 1 and r.computed == 1
    assert np.array_equal(out[table.utterances[0].path], ref[table.utterances[0].path])


def test_key_is_content_not_path(tmp_path):
    table = small_table(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    cache.extract(table.utterances, spectrogram_stream(), progress=False)
    shutil.copytree(tmp_path / "c", tmp_path / "copy")
    moved = [Utterance(u.path.replace("/c/", "/copy/"), u.label, u.speaker, "", "t", 0.5) for u in table.utterances]
    _, r = cache.extract(moved, spectrogram_stream(), progress=False)
    assert r.cached == 4


def test_bad_files_are_skipped_and_listed(tmp_path):
    table = small_table(tmp_path)
    bad = tmp_path / "c" / "bad.wav"
    bad.write_bytes(b"")
    silent = write_wav(tmp_path / "c" / "silent.wav", np.zeros(8000, np.float32))
    utts = table.utterances + [Utterance(str(bad), "a", "x", "", "t", 0.0),
                               Utterance(str(silent), "b", "y", "", "t", 0.5)]
    fs = build_feature_set(CorpusTable("t", utts), tmp_path / "cache", streams=("spectrogram",), progress=False)
    assert len(fs) == 4
    assert any(str(bad) in e for e in fs.table.errors) and any(str(silent) in e for e in fs.table.errors)


def test_deep_stream_pooled_and_cached(tmp_path):
    table = small_table(tmp_path)
    CountingEncoder.calls = 0
    fs = build_feature_set(table, tmp_path / "cache", streams=("deep",), encoder=CountingEncoder(),
                           deep_pool=2, progress=False)
    assert CountingEncoder.calls == 4
    assert fs.deep[0].shape == (3, 13, 8) and fs.deep[0].dtype == np.float16  # 25 frames -> 13
    x, lengths = fs.deep_batch([0, 1], layers=[1, 2])
    assert x.shape == (2, 2, 13, 8) and lengths.tolist() == [13, 13]
    build_feature_set(table, tmp_path / "cache", streams=("deep",), encoder=CountingEncoder(), progress=False)
    assert CountingEncoder.calls == 4  # all cached


def test_pool_frames_keeps_partial_window_mean():
    x = np.arange(5, dtype=np.float32).reshape(1, 5, 1)
    assert pool_frames(x, 2)[0, :, 0].tolist() == [0.5, 2.5, 4.0]


def test_demo_corpus_features(tmp_path):
    table = demo_table(tmp_path / "demo", per_class=1)
    assert len(table) == 16 and table.labels == ["angry", "happy", "neutral", "sad"]
    fs = build_feature_set(table, tmp_path / "cache", streams=("spectrogram",), progress=False)
    assert fs.spectrograms.shape == (16, 140, 140) and np.isfinite(fs.spectrograms).all()


def test_streams_extracted_together_equal_one_at_a_time(tmp_path):
    """extract_streams runs the NumPy stream beside the encoder: same arrays, same reports,
    results in the order asked, every entry on disk."""
    table = small_table(tmp_path, n=5)
    streams = [spectrogram_stream(), deep_stream(CountingEncoder(), deep_pool=2)]
    together = FeatureCache(tmp_path / "together").extract_streams(table.utterances, streams, progress=False)
    alone = FeatureCache(tmp_path / "alone")
    for (got, report), stream in zip(together, streams):
        want, ref = alone.extract(table.utterances, stream, progress=False)
        assert report.stream == stream.name and (report.computed, report.cached) == (ref.computed, 0) == (5, 0)
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[k], want[k]) for k in want)
    again = FeatureCache(tmp_path / "together").extract_streams(table.utterances, streams, progress=False)
    assert [r.cached for _, r in again] == [5, 5]


def test_failed_background_write_is_raised(tmp_path, monkeypatch):
    """Entries are written by a background thread; a write that fails is not lost silently."""
    import emotionnas.features.cache as cache_mod
    table = small_table(tmp_path, n=3)

    def refuse(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cache_mod, "atomic_write_bytes", refuse)
    with pytest.raises(OSError, match="No space"):
        FeatureCache(tmp_path / "cache").extract(table.utterances, spectrogram_stream(), progress=False)
