"""The torch backend: a trained ensemble as a recognizer with plain verbs.

    rec = Recognizer.load("model/")                    # torch (emotionnas.recognizer.load picks a backend)
    rec.predict("utt.wav")          # {"label": "angry", "probs": {"angry": 0.8, ...}}
    rec.predict(wave, sample_rate=44100)
    rec.predict_windows(wave, window=3.0, hop=1.0)     # emotion over time

A model folder holds `model.safetensors` (weights), `model.json` (members, their candidates and
searched cells, feature settings) and, after `export --onnx`, `onnx/` graphs: everything a fresh
process needs. model.json is validated as data (space/model_spec.py) before anything is built.
This module imports no torch; the torch backend imports it when it loads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionnas.errors import ConfigError, EmotionNASError
from emotionnas.utils.io import check_sha256
from emotionnas.recognizer.folder import (MAX_PARAMS, MODEL_JSON, MODEL_WEIGHTS, BaseRecognizer, read_model_spec,
                                     read_weights_header)
from emotionnas.space.model_spec import MODEL_FORMAT_VERSION, ModelSpec
from emotionnas.recognizer.shipped import model_folder

__all__ = ["MODEL_FORMAT_VERSION", "MODEL_JSON", "MODEL_WEIGHTS", "BaseRecognizer", "Recognizer", "read_model_spec"]


def check_size(spec: ModelSpec, weights: Path, max_params: int = MAX_PARAMS) -> None:
    """Before anything is allocated: the networks model.json describes are built on torch's meta
    device (no memory), their parameter count is checked against `max_params`, and their tensor
    names and shapes against the safetensors header. One-line ConfigError naming what differs."""
    import torch

    from emotionnas.models.build import build_ensemble
    with torch.device("meta"):
        ens = build_ensemble(spec)
    shapes = {p + k: tuple(v.shape) for net, p in zip(ens.nets, ens.prefixes) for k, v in net.state_dict().items()}
    total = sum(int(np.prod(s, dtype=np.float64)) for s in shapes.values())
    if total > max_params:
        raise ConfigError(f"{spec.source}: members describe {total:,} parameters > limit {max_params:,}")
    stored = read_weights_header(weights, max_params)
    for name in sorted(set(shapes) | set(stored)):
        if shapes.get(name) != stored.get(name):
            raise ConfigError(f"{weights}: weights do not match {MODEL_JSON} (tensor {name[:80]}: "
                              f"{stored.get(name, 'missing')} stored, {shapes.get(name, 'none')} described)")


class Recognizer(BaseRecognizer):
    """The torch backend (the networks exactly as trained)."""

    def __init__(self, model, spec: ModelSpec, encoder=None):
        super().__init__(spec)
        self.model = model.eval()
        self._encoder = encoder

    @classmethod
    def load(cls, model_dir, encoder=None, backend: str = "torch"):
        if backend != "torch":  # kept for callers of earlier releases: Recognizer.load(M, backend="onnx")
            from emotionnas.recognizer import load
            return load(model_dir, backend)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from emotionnas.models.build import build_ensemble

        model_dir = model_folder(model_dir)  # a shipped model's name, or a folder
        spec = read_model_spec(model_dir)
        weights = model_dir / MODEL_WEIGHTS
        if not weights.exists():
            raise EmotionNASError(f"{model_dir}: not a model folder (needs {MODEL_WEIGHTS}; make one with "
                                  "`emotionnas export`)")
        if spec.files:  # format 5 on: the weights are what export wrote
            check_sha256(weights, spec.files.get(MODEL_WEIGHTS))
        check_size(spec, weights)
        model = build_ensemble(spec)
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"{weights}: unreadable weights ({type(e).__name__}: {str(e)[:80]})") from None
        try:
            model.load_weights(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise ConfigError(f"{weights}: weights do not match {MODEL_JSON} "
                              f"({first[1].strip() if len(first) > 1 else first[0][:100]})") from None
        return cls(model, spec, encoder)

    @property
    def encoder(self):
        if self._encoder is None:
            from emotionnas.features.encoders import create_encoder
            self._encoder = create_encoder(self.spec.encoder)
        return self._encoder

    def features(self, wave: np.ndarray):
        """One utterance's features exactly as the cache computes them for training: the
        spectrogram of its first `seconds` (cut/pad) and the deep features of the whole
        utterance (`features.cache.deep_features`: same pooling and float16 rounding), reading
        only the encoder blocks up to the highest layer a member uses. Returns
        (spectrograms (1, F, T) or None, [deep (L', T, D)] or None): a stream no member reads is
        not computed."""
        from emotionnas.features.spectrogram import compute_spectrograms
        spec = compute_spectrograms([wave], self.spec_cfg) if self.uses_spectrogram() else None
        if not self.uses_deep():
            return spec, None
        return spec, [self.adapt(self.raw_deep(wave))]

    def raw_deep(self, wave: np.ndarray) -> np.ndarray:
        from emotionnas.features.cache import deep_features
        return deep_features(self.encoder, wave, self.spec.deep_pool, self.max_layer())

    def embeddings(self, wave: np.ndarray) -> np.ndarray:
        """The vectors the members classify, concatenated in member order: (sum of dims,)."""
        spec, deep = self.features(wave)
        return np.concatenate([e[0] for e in self.model.embeddings(spec, deep)]).astype(np.float32)

    def predict_proba(self, wave: np.ndarray) -> np.ndarray:
        """Mono 16 kHz float32 waveform -> class probabilities (n_classes,): the members' combined."""
        spec, deep = self.features(wave)
        return self.combine(self.model.member_probs(spec, deep)[:, 0])
