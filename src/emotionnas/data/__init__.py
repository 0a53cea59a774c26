"""Corpora -> utterance tables, speaker-independent folds, audio loading."""
from emotionnas.data.utterance import Utterance, CorpusTable

__all__ = ["Utterance", "CorpusTable"]
