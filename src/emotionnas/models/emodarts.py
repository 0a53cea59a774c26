"""emoDARTS (Rajapakshe et al. 2023): a DARTS-searched CNN followed by an LSTM.

DARTS chooses the CNN ops (a cell stack over the spectrogram, no fixed layer order);
the final feature map ``(B, C', F', T')`` (frequency x time) becomes a sequence over
time ``(B, T', C' * F_bins)``, runs through an LSTM **with batch_first=True** — one public
implementation feeds the batch axis as time, so samples of a batch leak into each
other; here each sample is its own sequence (tested: permuting the batch permutes the
outputs) — then attention pooling and a linear head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.models.cnn_branch import CellStack
from emotionnas.models.pooling import AttentionPooling
from emotionnas.space.genotype import Genotype


class SequenceHead(nn.Module):
    """``(B, C, F, T)`` feature map -> ``(B, hidden)``.

    Frequency is average-pooled to ``freq_bins`` first so the LSTM input size does not
    depend on the spectrogram resolution (search runs on a reduced-resolution proxy,
    retraining at 140x140) and stays small on CPU.
    """

    def __init__(self, channels: int, hidden: int = 64, freq_bins: int = 4):
        super().__init__()
        self.freq_bins = freq_bins
        self.lstm = nn.LSTM(channels * freq_bins, hidden, batch_first=True)
        self.pool = AttentionPooling(hidden)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        b, c, _, t = fmap.shape
        fmap = F.adaptive_avg_pool2d(fmap, (self.freq_bins, t))
        seq = fmap.permute(0, 3, 1, 2).reshape(b, t, c * self.freq_bins).contiguous()
        out, _ = self.lstm(seq)  # (B, T', hidden), one sequence per sample
        return self.pool(out)


class EmoDARTS(nn.Module):
    """Discrete emoDARTS network from a Genotype; branch contract of ARCHITECTURE.md."""

    def __init__(self, genotype: Genotype, C: int, layers: int, n_classes: int, in_channels: int = 1,
                 lstm_hidden: int = 64, freq_bins: int = 4, drop_path_prob: float = 0.0,
                 dropout: float = 0.0):
        super().__init__()
        self.genotype = genotype
        self.features = CellStack(genotype, C, layers, in_channels, drop_path_prob=drop_path_prob)
        self.head = SequenceHead(self.features.out_channels, lstm_hidden, freq_bins)
        self.out_dim = lstm_hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(lstm_hidden, n_classes)

    def embed(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """x ``(B, in_channels, H, W)`` -> ``(B, lstm_hidden)``; lengths ignored."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))
