"""The recognizer on onnxruntime, without torch: `Recognizer.load(M, backend="onnx")`.

Features are computed in NumPy exactly as the torch path computes them (spectrogram.py,
numpy_frontend.py: Whisper log-mel, 30 s chunks, frame pooling, float16 rounding), the encoder
and the members run as the ONNX graphs `emotionnas export --onnx` wrote and checked. Each graph
file is checked before onnxruntime reads it and its session allocates from a capped arena
(onnx_guard.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emotionnas.data.file_kind import file_problem
from emotionnas.errors import ConfigError
from emotionnas.features import numpy_frontend as fe
from emotionnas.features.spectrogram import compute_spectrograms
from emotionnas.recognizer.folder import BaseRecognizer, read_model_spec
from emotionnas.recognizer.onnx_guard import checked_session, run_session
from emotionnas.recognizer.shipped import model_folder
from emotionnas.utils.io import check_sha256

ONNX_JSON = "onnx.json"


def read_onnx_info(model_dir, n_members: int) -> dict:
    """onnx.json, validated as data: only the file names the exporter writes are accepted."""
    path = Path(model_dir) / ONNX_JSON
    problem = file_problem(path)  # a FIFO would block the read
    if problem not in (None, "missing"):
        raise ConfigError(f"{path}: {problem}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: no readable ONNX export ({type(e).__name__}); run "
                          "`emotionnas export RUN --out MODEL --onnx`") from None
    members = info.get("members") if isinstance(info, dict) else None
    if not isinstance(members, list) or len(members) != n_members or any(
            not isinstance(m, dict) or m.get("file") != f"onnx/member{i}.onnx" for i, m in enumerate(members)):
        raise ConfigError(f"{path}: members: expected onnx/member0.onnx … for the {n_members} members")
    enc = info.get("encoder")
    if enc is not None and (not isinstance(enc, dict) or enc.get("file") != "onnx/encoder.onnx"
                            or not isinstance(enc.get("layers"), int) or not isinstance(enc.get("n_mels"), int)):
        raise ConfigError(f"{path}: encoder: expected onnx/encoder.onnx with integer layers and n_mels")
    return info


class OnnxRecognizer(BaseRecognizer):
    def __init__(self, spec, sessions: list, encoder, info: dict):
        super().__init__(spec)
        self.sessions, self.encoder_session, self.info = sessions, encoder, info

    @classmethod
    def load(cls, model_dir, threads: int | None = None) -> "OnnxRecognizer":
        """`threads`: onnxruntime's threads per graph (None: its default, one per physical core,
        as torch's)."""
        import onnxruntime as ort
        model_dir = model_folder(model_dir)  # a shipped model's name, or a folder
        spec = read_model_spec(model_dir)
        info = read_onnx_info(model_dir, len(spec.members))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 0 if threads is None else max(1, int(threads))
        # idle threads sleep instead of spinning: a spinning pool starves the NumPy front end and the
        # next graph on 2 cores (measured: 3-member EmoDB predict 78.7 -> 18.2 ms, 2 threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # shape-inference notes of the recurrent Loop are not errors

        def session(entry):
            made = checked_session(Path(model_dir) / entry["file"], opts)  # bounded and walked first
            if "sha256" in entry:  # exports since the checksums: the graph is what export wrote
                check_sha256(Path(model_dir) / entry["file"], entry["sha256"])
            return made
        members = [session(m) for m in info["members"]]
        enc = session(info["encoder"]) if info.get("encoder") else None
        return cls(spec, members, enc, info)

    def raw_deep(self, wave: np.ndarray) -> np.ndarray:
        return self.deep_features(wave)

    def deep_features(self, wave: np.ndarray) -> np.ndarray:
        """(L'+1, T, D) float32, as the cache stores them (pooled by deep_pool, float16-rounded)."""
        mel = fe.log_mel(wave, self.info["encoder"]["n_mels"])
        parts = []
        for s in range(0, mel.shape[1], fe.CHUNK_FRAMES):
            chunk = mel[:, s:s + fe.CHUNK_FRAMES][None]
            parts.append(run_session(self.encoder_session, {"mel": chunk}, self.info["encoder"]["file"])[0][:, 0])
        states = np.concatenate(parts, axis=1)
        return fe.as_stored(fe.pool_frames(states, self.spec.deep_pool)).astype(np.float32)

    def predict_proba(self, wave: np.ndarray) -> np.ndarray:
        spec = compute_spectrograms([wave], self.spec_cfg) if self.uses_spectrogram() else None
        deep = self.adapt(self.deep_features(wave)) if self.uses_deep() else None
        probs = []
        for m, sess, graph in zip(self.spec.members, self.sessions, self.info["members"]):
            c, feeds = m.candidate, {}
            if c.spectrogram != "none":
                mean, std = m.spec_stats
                feeds["spectrogram"] = ((spec - mean) / std).astype(np.float32)[:, None]
            if c.deep != "none":
                x = deep if c.layers == "all" else deep[list(c.layers)]
                x = fe.pool_frames(x, c.frame_pool)
                feeds["deep"] = x[None].astype(np.float32)
                feeds["lengths"] = np.array([x.shape[1]], dtype=np.int64)
            logits = run_session(sess, feeds, graph["file"])[0][0].astype(np.float64)
            e = np.exp(logits - logits.max())
            probs.append(e / e.sum())
        return self.combine(probs)
