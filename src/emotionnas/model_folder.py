"""A model folder: its file names, its validated description (model.json as `ModelSpec`) and the
verbs every recognizer backend shares (predict, emotion over time). Imports no torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emotionnas.data.audio import TARGET_SR, load_audio, resample, validate_wave
from emotionnas.errors import ConfigError, EmotionNASError
from emotionnas.features.numpy_frontend import windows
from emotionnas.features.spectrogram import SpectrogramConfig
from emotionnas.space.model_spec import ModelSpec

MODEL_JSON, MODEL_WEIGHTS = "model.json", "model.safetensors"


def read_model_spec(model_dir) -> ModelSpec:
    """Validate `model_dir/model.json` as data (ConfigError naming the file and field)."""
    meta_path = Path(model_dir) / MODEL_JSON
    if not meta_path.exists():
        raise EmotionNASError(f"{model_dir}: not a model folder (needs {MODEL_JSON}; make one with "
                              "`emotionnas export`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{meta_path}: unreadable model description ({type(e).__name__})") from None
    return ModelSpec.from_meta(meta, str(meta_path))


class BaseRecognizer:
    """The verbs every backend shares; a backend implements `predict_proba(wave)`."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.labels = list(spec.label_names)
        self.spec_cfg = SpectrogramConfig(**spec.spectrogram)

    def max_layer(self) -> int | None:
        """The highest encoder layer any member reads (None: all)."""
        layers = [m.candidate.layers for m in self.spec.members if m.candidate.deep != "none"]
        if not layers or any(x == "all" for x in layers):
            return None
        return max(max(x) for x in layers)

    def uses_deep(self) -> bool:
        return any(m.candidate.deep != "none" for m in self.spec.members)

    @staticmethod
    def load_wave(audio, sample_rate: int | None = None) -> np.ndarray:
        """A file path or a waveform array -> validated mono 16 kHz float32 (AudioError otherwise)."""
        if isinstance(audio, (str, Path)):
            return load_audio(audio)
        sr = sample_rate or TARGET_SR
        return resample(validate_wave(np.asarray(audio), sr), sr)

    def predict_proba(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, audio, sample_rate: int | None = None) -> dict:
        """A file path or a waveform array -> {"label": str, "probs": {label: p}}."""
        p = self.predict_proba(self.load_wave(audio, sample_rate))
        return {"label": self.labels[int(p.argmax())],
                "probs": {lab: round(float(v), 4) for lab, v in zip(self.labels, p)}}

    classify_file = predict

    def windows(self, wave: np.ndarray, window: float = 3.0, hop: float = 1.0) -> list[tuple[float, float]]:
        """(start, end) seconds of the analysis windows (see `features.numpy_frontend.windows`)."""
        return windows(len(wave), window, hop)

    def predict_windows(self, wave: np.ndarray, window: float = 3.0, hop: float = 1.0) -> list[dict]:
        """Emotion over time: each window is recognised as an utterance of its own (its features
        computed exactly as for a whole utterance). -> [{"start", "end", "label", "probs"}]."""
        out = []
        for start, end in self.windows(wave, window, hop):
            piece = wave[int(round(start * TARGET_SR)): int(round(end * TARGET_SR))]
            p = self.predict_proba(piece)
            out.append({"start": start, "end": end, "label": self.labels[int(p.argmax())],
                        "probs": {lab: round(float(v), 4) for lab, v in zip(self.labels, p)}})
        return out
