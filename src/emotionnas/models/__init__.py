"""Branches (CNN on spectrograms, RNN on deep features), fusion, the two-stream model."""
