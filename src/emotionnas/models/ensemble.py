"""An ensemble of trained networks: the mean of their class probabilities.

Each member reads its own inputs (`InputSpec`: streams, encoder layers, frame pooling,
spectrogram statistics), prepared by features/inputs.py from one utterance's features.
Weights are stored under `m<i>.` prefixes in one safetensors file.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emotionnas.features.inputs import InputSpec, model_inputs


class Ensemble(nn.Module):
    def __init__(self, nets, specs: list[InputSpec], prefixes: list[str]):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.specs = list(specs)
        self.prefixes = list(prefixes)

    def member_state(self, state: dict, i: int) -> dict:
        p = self.prefixes[i]
        return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}

    def load_weights(self, state: dict) -> None:
        """Load `m<i>.`-prefixed weights; every key must be used and every parameter filled."""
        used = set()
        for i, net in enumerate(self.nets):
            sub = self.member_state(state, i)
            net.load_state_dict(sub)
            used |= {self.prefixes[i] + k for k in sub}
        extra = sorted(set(state) - used)
        if extra:
            raise RuntimeError(f"unexpected weights\n{extra[:3]}")

    @torch.no_grad()
    def embeddings(self, spectrograms: np.ndarray | None, deep_arrays) -> list[np.ndarray]:
        """Per member, the (N, d) vectors its classifier reads (`net.embed`)."""
        out = []
        for net, spec in zip(self.nets, self.specs):
            net.eval()
            out.append(net.embed(*model_inputs(spec, spectrograms, deep_arrays)).numpy())
        return out

    @torch.no_grad()
    def member_probs(self, spectrograms: np.ndarray | None, deep_arrays) -> np.ndarray:
        """(M, N, n_classes): each member's probabilities for N utterances' features."""
        probs = []
        for net, spec in zip(self.nets, self.specs):
            net.eval()
            inputs = model_inputs(spec, spectrograms, deep_arrays)
            probs.append(torch.softmax(net(*inputs), dim=-1).numpy())
        return np.stack(probs)

    def predict_proba(self, spectrograms: np.ndarray | None, deep_arrays) -> np.ndarray:
        """(N, n_classes) mean probabilities over members (model.json's combiner: recognizer.folder)."""
        return self.member_probs(spectrograms, deep_arrays).mean(axis=0)
