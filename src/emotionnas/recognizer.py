"""A trained two-stream model as a recognizer with plain verbs.

    rec = Recognizer.load("model/")
    rec.predict("utt.wav")          # {"label": "angry", "probs": {"angry": 0.8, ...}}
    rec.predict(wave, sample_rate=44100)

A model folder holds `model.safetensors` (weights) and `model.json` (genotype,
recipe, feature and label config): everything a fresh process needs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from emotionnas.data.audio import TARGET_SR, load_audio, resample, validate_wave
from emotionnas.errors import EmotionNASError
from emotionnas.features.cache import pool_frames
from emotionnas.features.spectrogram import SpectrogramConfig, compute_spectrograms

MODEL_JSON, MODEL_WEIGHTS = "model.json", "model.safetensors"


def build_model(meta: dict):
    """The TwoStreamModel described by model.json (weights not loaded)."""
    from types import SimpleNamespace

    from emotionnas.models.two_stream import TwoStreamModel
    from emotionnas.training.stages import build_deep_branch, build_spec_branch

    cfg = SimpleNamespace(cnn=SimpleNamespace(**meta["cnn"]), rnn=SimpleNamespace(**meta["rnn"]),
                          features=SimpleNamespace(deep_layers=meta["deep_layers"]))
    fs = SimpleNamespace(deep_layers=meta["deep_layers_total"], deep_dim=meta["deep_dim"])
    arch = {"genotype": meta["genotype"], "recipe": meta["recipe"], "deep_layers": meta["deep_layers"]}
    n = len(meta["label_names"])
    return TwoStreamModel(build_spec_branch(arch, cfg, n), build_deep_branch(arch, cfg, fs, n), n,
                          fusion=meta["fusion"], dominant=meta["dominant"])


class Recognizer:
    def __init__(self, model, meta: dict, encoder=None):
        self.model, self.meta = model.eval(), meta
        self.labels = list(meta["label_names"])
        self.spec_cfg = SpectrogramConfig(**meta["spectrogram"])
        self._encoder = encoder

    @classmethod
    def load(cls, model_dir, encoder=None) -> "Recognizer":
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        meta_path, weights = model_dir / MODEL_JSON, model_dir / MODEL_WEIGHTS
        if not meta_path.exists() or not weights.exists():
            raise EmotionNASError(f"{model_dir}: not a model folder (needs {MODEL_JSON} and {MODEL_WEIGHTS}; "
                                  "make one with `emotionnas export`)")
        meta = json.loads(meta_path.read_text())
        model = build_model(meta)
        model.load_state_dict(load_file(str(weights)))
        return cls(model, meta, encoder)

    @property
    def encoder(self):
        if self._encoder is None:
            from emotionnas.features.encoders import create_encoder
            self._encoder = create_encoder(self.meta["encoder"])
        return self._encoder

    def _windows(self, wave: np.ndarray) -> list[np.ndarray]:
        """Audio longer than the spectrogram length is cut into half-overlapping windows."""
        n = int(self.spec_cfg.seconds * TARGET_SR)
        if len(wave) <= n:
            return [wave]
        starts = list(range(0, len(wave) - n + 1, n // 2))
        if starts[-1] + n < len(wave):
            starts.append(len(wave) - n)
        return [wave[s:s + n] for s in starts]

    @torch.no_grad()
    def predict_proba(self, wave: np.ndarray) -> np.ndarray:
        """Mono 16 kHz float32 waveform -> class probabilities (n_classes,), mean over windows."""
        windows = self._windows(wave)
        m, s = self.meta["spec_stats"]
        spec = (torch.from_numpy(compute_spectrograms(windows, self.spec_cfg)).unsqueeze(1) - m) / s
        layers = self.meta["deep_layers"]
        deep = []
        for w in windows:  # only the encoder blocks up to the highest layer the model reads
            states = self.encoder.encode(w) if layers is None else self.encoder.encode_upto(w, max(layers))
            f = pool_frames(states, self.meta["deep_pool"])
            deep.append(f if layers is None else f[layers])
        lengths = torch.tensor([d.shape[1] for d in deep])
        x = torch.zeros(len(deep), deep[0].shape[0], int(lengths.max()), deep[0].shape[2])
        for i, d in enumerate(deep):
            x[i, :, : d.shape[1]] = torch.from_numpy(np.asarray(d, np.float32))
        probs = torch.softmax(self.model(spec, x, lengths), dim=-1).mean(0)
        return probs.numpy()

    def predict(self, audio, sample_rate: int | None = None) -> dict:
        """A file path or a waveform array -> {"label": str, "probs": {label: p}}."""
        if isinstance(audio, (str, Path)):
            wave = load_audio(audio)
        else:
            sr = sample_rate or TARGET_SR
            wave = resample(validate_wave(np.asarray(audio), sr), sr)
        p = self.predict_proba(wave)
        return {"label": self.labels[int(p.argmax())],
                "probs": {lab: round(float(v), 4) for lab, v in zip(self.labels, p)}}

    classify_file = predict
