"""A model folder: its file names, its validated description (model.json as `ModelSpec`) and the
verbs every recognizer backend shares (predict, emotion over time). Imports no torch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from emotionnas.data.audio import DEFAULT_LIMITS, TARGET_SR, AudioLimits, load_audio, prepare_array
from emotionnas.data.file_kind import file_problem
from emotionnas.data.speech_gate import DEFAULT_GATE, SpeechGate
from emotionnas.errors import ConfigError, EmotionNASError
from emotionnas.features.numpy_frontend import windows
from emotionnas.features.spectrogram import SpectrogramConfig
from emotionnas.metrics import temperature_scale
from emotionnas.space.model_spec import ModelSpec

MODEL_JSON, MODEL_WEIGHTS = "model.json", "model.safetensors"
MAX_PARAMS = 50_000_000             # a model folder's networks (the pretrained encoder not counted)
MAX_MODEL_JSON_BYTES = 4 * 2 ** 20
MAX_HEADER_BYTES = 16 * 2 ** 20     # safetensors header (JSON) of model.safetensors


def read_model_spec(model_dir) -> ModelSpec:
    """Validate `model_dir/model.json` as data (ConfigError naming the file and field)."""
    meta_path = Path(model_dir) / MODEL_JSON
    if not meta_path.exists():
        raise EmotionNASError(f"{model_dir}: not a model folder (needs {MODEL_JSON}; make one with "
                              "`emotionnas export`)")
    problem = file_problem(meta_path)  # a FIFO would block the read
    if problem is not None:
        raise ConfigError(f"{meta_path}: {problem}")
    if meta_path.stat().st_size > MAX_MODEL_JSON_BYTES:
        raise ConfigError(f"{meta_path}: {meta_path.stat().st_size} bytes > limit {MAX_MODEL_JSON_BYTES}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{meta_path}: unreadable model description ({type(e).__name__})") from None
    return ModelSpec.from_meta(meta, str(meta_path))


def read_weights_header(path, max_params: int = MAX_PARAMS) -> dict[str, tuple]:
    """{tensor name: shape} from a safetensors file's header, read with bounds (header size,
    shapes, offsets within the file, total elements <= `max_params`) and nothing else loaded."""
    path = Path(path)
    problem = file_problem(path)  # a FIFO would block the open
    if problem is not None:
        raise ConfigError(f"{path}: unreadable weights ({problem})")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise ConfigError(f"{path}: unreadable weights (not a safetensors file: header length {n})")
            header = json.loads(f.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: unreadable weights ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise ConfigError(f"{path}: unreadable weights (header is not a mapping)")
    shapes, total = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(shape, list) or len(shape) > 8 or not all(isinstance(d, int) and 0 <= d < 2 ** 40 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and 0 <= o <= size - 8 - n for o in offsets)
                or offsets[0] > offsets[1]):
            raise ConfigError(f"{path}: tensor {name[:60]!r}: malformed shape or offsets")
        count = int(np.prod(shape, dtype=np.float64))
        total += count
        if total > max_params:
            raise ConfigError(f"{path}: more than {max_params:,} parameters (limit)")
        shapes[name] = tuple(shape)
    return shapes


def check_deadline(deadline: float | None) -> None:
    """TimeoutError once `deadline` (time.monotonic()) has passed; None: no deadline."""
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError("request took longer than its time limit")


class BaseRecognizer:
    """The verbs every backend shares; a backend implements `predict_proba(wave)`."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.labels = list(spec.label_names)
        self.spec_cfg = SpectrogramConfig(**spec.spectrogram)
        self.speaker = None  # a speaker-adaptive model's enrolled stats (features/inputs.speaker_stats)

    def raw_deep(self, wave: np.ndarray) -> np.ndarray:
        """(L'+1, T, D) deep features of one utterance as the cache stores them (each backend)."""
        raise NotImplementedError

    def enroll(self, inputs, sample_rate: int | None = None) -> int:
        """Speaker-adaptive models (model.json `speaker_norm`): the speaker's unlabelled audio
        (files, folders, list files and/or arrays; labels are never read) gives the per-layer mean and std that
        standardise every later prediction, as training standardised each speaker. Returns the
        number of utterances enrolled; replaces an earlier enrolment."""
        from emotionnas.features.speaker_norm import speaker_stats
        if not self.spec.speaker_norm:
            raise ConfigError(f"{self.spec.source}: not a speaker-adaptive model (nothing to enrol)")
        from emotionnas.recognizer.outputs import expand_inputs, input_problem
        inputs = list(inputs)  # read twice below: a generator would lose its items to the first pass
        named = [x for x in inputs if isinstance(x, (str, Path))]
        paths = [p for _, p in expand_inputs(named)]  # files, and the files of folders and list files
        for p in paths:  # a missing path or an empty folder: said as such, before any audio is read
            if (problem := input_problem(p)) is not None:
                raise ConfigError(f"enroll: {problem}")
        arrays = [x for x in inputs if not isinstance(x, (str, Path))]
        deeps = [self.raw_deep(self.load_wave(x, sample_rate)) for x in arrays]  # one wave held at a time
        deeps += [self.raw_deep(self.load_wave(p)) for p in paths]
        if not deeps:
            raise ConfigError("enroll: no audio given")
        self.speaker = speaker_stats(deeps)
        return len(deeps)

    def adapt(self, deep: np.ndarray) -> np.ndarray:
        """Deep features as the members were trained on them: standardised by the enrolled
        speaker (speaker-adaptive models; float16-rounded as the training cache), else unchanged."""
        if not self.spec.speaker_norm:
            return deep
        if self.speaker is None:
            raise ConfigError(f"{self.spec.source}: a speaker-adaptive model: enrol the speaker first "
                              "(Recognizer.enroll(files), `predict --enroll DIR`)")
        from emotionnas.features.speaker_norm import speaker_standardise
        return speaker_standardise(deep, self.speaker).astype(np.float16).astype(np.float32)

    def max_layer(self) -> int | None:
        """The highest encoder layer any member reads (None: all)."""
        layers = [m.candidate.layers for m in self.spec.members if m.candidate.deep != "none"]
        if not layers or any(x == "all" for x in layers):
            return None
        return max(max(x) for x in layers)

    def uses_deep(self) -> bool:
        return any(m.candidate.deep != "none" for m in self.spec.members)

    def uses_spectrogram(self) -> bool:
        return any(m.candidate.spectrogram != "none" for m in self.spec.members)

    limits: AudioLimits = DEFAULT_LIMITS
    gate: SpeechGate | None = DEFAULT_GATE  # None: classify whatever is given

    def load_wave(self, audio, sample_rate: int | None = None, name: str | None = None) -> np.ndarray:
        """A file path, a binary file object or a waveform array (any int/float dtype, mono,
        channel-last or channel-first, at `sample_rate`, default 16 kHz) -> validated mono 16 kHz
        float32, exactly as training read its files (AudioError otherwise)."""
        if isinstance(audio, (str, Path)) or hasattr(audio, "read"):
            return load_audio(audio, limits=self.limits, name=name)
        return prepare_array(audio, TARGET_SR if sample_rate is None else sample_rate, name or "<array>", self.limits)

    def predict_proba(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def combine(self, member_probs) -> np.ndarray:
        """(M, C) member probabilities of one utterance -> (C,): model.json's combiner (mean or
        stacker, space/combiner.py), then its temperature. Every backend ends here."""
        p = self.spec.combiner.apply(np.asarray(member_probs)[:, None])[0]
        return temperature_scale(p, self.spec.temperature)

    def is_speech(self, wave: np.ndarray) -> bool:
        return self.gate is None or self.gate.is_speech(wave)

    def _result(self, wave: np.ndarray, top_k: int | None = None) -> dict:
        """{"label", "probs", "speech"} (+ "top_k": [{"label", "score"}] best first); no speech
        (see data/speech_gate.py) -> label and probs None."""
        if not self.is_speech(wave):
            out = {"label": None, "probs": None, "speech": False}
            return {**out, "top_k": []} if top_k else out
        p = self.predict_proba(wave)
        out = {"label": self.labels[int(p.argmax())],
               "probs": {lab: round(float(v), 4) for lab, v in zip(self.labels, p)}, "speech": True}
        if top_k:
            order = np.argsort(-p, kind="stable")[:top_k]
            out["top_k"] = [{"label": self.labels[i], "score": round(float(p[i]), 4)} for i in order]
        return out

    def predict(self, audio, sample_rate: int | None = None, top_k: int | None = None) -> dict:
        """A file path or a waveform array -> {"label": str | None, "probs": {label: p} | None,
        "speech": bool} (+ "top_k" when asked)."""
        return self._result(self.load_wave(audio, sample_rate), top_k)

    def predict_batch(self, inputs, sample_rate: int | None = None, top_k: int | None = None) -> list[dict]:
        """Paths and/or arrays -> one result per input, in order: {"input", ...predict()} or,
        for an input that cannot be used, {"input", "error"} (a batch never stops at one bad file)."""
        out = []
        for i, item in enumerate(inputs):
            name = str(item) if isinstance(item, (str, Path)) else f"<array {i}>"
            try:
                out.append({"input": name, **self.predict(item, sample_rate, top_k)})
            except EmotionNASError as e:
                out.append({"input": name, "error": str(e)})
        return out

    def predict_proba_batch(self, inputs, sample_rate: int | None = None, progress: bool = False):
        """Paths and/or arrays -> (probabilities (N, C) with NaN rows for unusable inputs,
        [error lines]); no speech gate (for scoring a corpus: every utterance is classified)."""
        from tqdm import tqdm
        probs = np.full((len(inputs), len(self.labels)), np.nan, np.float32)
        errors = []
        for i, item in enumerate(tqdm(inputs, desc="predict", unit="file", disable=not progress)):
            try:
                probs[i] = self.predict_proba(self.load_wave(item, sample_rate))
            except EmotionNASError as e:
                errors.append(str(e))
        return probs, errors

    classify_file = predict

    def windows(self, wave: np.ndarray, window: float = 3.0, hop: float = 1.0) -> list[tuple[float, float]]:
        """(start, end) seconds of the analysis windows (see `features.numpy_frontend.windows`)."""
        return windows(len(wave), window, hop)

    def predict_windows(self, wave: np.ndarray, window: float = 3.0, hop: float = 1.0,
                        deadline: float | None = None, top_k: int | None = None) -> list[dict]:
        """Emotion over time: each window is recognised as an utterance of its own (its features
        computed exactly as for a whole utterance); a window without speech gets label None.
        `deadline` (time.monotonic()): raise TimeoutError once it has passed.
        -> [{"start", "end", "label", "probs", "speech"}] (+ "top_k")."""
        out = []
        for start, end in self.windows(wave, window, hop):
            check_deadline(deadline)
            piece = wave[int(round(start * TARGET_SR)): int(round(end * TARGET_SR))]
            out.append({"start": start, "end": end, **self._result(piece, top_k)})
        return out
