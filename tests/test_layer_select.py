"""Encoder-layer selection on search speakers (emotionnas.search.layers)."""
import numpy as np
import pytest

from emotionnas.config import RunConfig
from emotionnas.errors import ConfigError
from emotionnas.features.dataset import FeatureSet
from emotionnas.search.layers import best_window, select_layers


def test_best_window_picks_highest_mean_and_lowest_on_ties():
    assert best_window([10, 50, 60, 20], 2) == [1, 2]
    assert best_window([10, 50, 60, 20], 1) == [2]
    assert best_window([5, 5, 5], 2) == [0, 1]
    assert best_window([1, 2], 5) == [0, 1]  # k larger than the encoder: all layers


def _fake_features(informative: int, n_layers=5, n_speakers=4, per=24, dim=16, seed=0) -> FeatureSet:
    """Labels are visible in layer `informative` only; the other layers are noise."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(3), n_speakers * per // 3)
    speakers = np.repeat([f"s{i}" for i in range(n_speakers)], per)
    centres = rng.standard_normal((3, dim)) * 2
    deep = []
    for y in labels:
        x = rng.standard_normal((n_layers, 7, dim)).astype(np.float16)
        x[informative] += centres[y].astype(np.float16)
        deep.append(x)
    return FeatureSet(table=None, label_names=["a", "b", "c"], labels=labels, speakers=speakers, deep=deep)


@pytest.mark.parametrize("informative", [0, 3])
def test_select_layers_finds_the_informative_layer(informative):
    fs = _fake_features(informative)
    choice = select_layers(fs, np.arange(len(fs)), k=1)
    assert choice["layers"] == [informative]
    assert np.argmax(choice["scores"]) == informative and max(choice["scores"]) > 90
    assert len(choice["scores"]) == 5


def test_select_layers_reads_only_the_given_utterances():
    fs = _fake_features(2)
    keep = np.flatnonzero(fs.speakers != "s3")
    fs.deep = [d if i in set(keep) else None for i, d in enumerate(fs.deep)]  # touching s3 would fail
    choice = select_layers(fs, keep, k=2)
    assert "s3" not in choice["speakers"] and 2 in choice["layers"]


def test_layer_windows_rank_by_mean_probe_score():
    from emotionnas.space.pipeline import layer_windows
    scores = [50, 60, 90, 80, 40]
    assert layer_windows(scores, (1, 2), 3) == [(2,), (2, 3), (3,)]
    assert layer_windows(scores, (2,), 1) == [(2, 3)]


def test_single_speaker_falls_back_to_utterance_folds():
    fs = _fake_features(1, n_speakers=1, per=60)
    choice = select_layers(fs, np.arange(len(fs)), k=1)
    assert choice["layers"] == [1] and choice["speakers"] == ["s0"]
