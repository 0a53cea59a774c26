"""Long audio as a table of segments: one row per spoken stretch (voice activity) or per
fixed window, each recognised as an utterance of its own.

    rows = predict_segments(rec, "call.wav", mode="vad")             # Silero VAD stretches
    rows = predict_segments(rec, "call.wav", mode="fixed", window=3, hop=1)

With `vad`, a file is read twice as a stream (voice activity, then the stretches it found), so
an hour of audio runs in bounded memory: one block and one segment (<= 30 s) at a time; `fixed`
holds the file's 16 kHz samples in memory (4 bytes a sample). Rows:
{"start", "end", "label", "score", "probs", "speech"} (label/score/probs None without speech).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionnas.data.audio import BLOCK_FRAMES, TARGET_SR, stream_audio
from emotionnas.data.vad import SileroVAD, VADSettings, speech_segments
from emotionnas.errors import ConfigError
from emotionnas.recognizer.folder import check_deadline

MODES = ("vad", "fixed")
_VAD = {}


def vad() -> SileroVAD:
    if "model" not in _VAD:
        _VAD["model"] = SileroVAD()
    return _VAD["model"]


def _blocks(rec, audio, sample_rate):
    """A fresh iterator of 16 kHz mono blocks of `audio` (a path is streamed from disk)."""
    if isinstance(audio, (str, Path)):
        return stream_audio(audio, limits=rec.limits)
    wave = rec.load_wave(audio, sample_rate)
    return (wave[i:i + BLOCK_FRAMES] for i in range(0, len(wave), BLOCK_FRAMES))


def cut(blocks, spans):
    """Blocks + sorted, non-overlapping (start, end) seconds -> (start, end, samples) in order,
    holding only the current span."""
    i, buf, pos = 0, [], 0
    bounds = [(int(round(a * TARGET_SR)), int(round(b * TARGET_SR))) for a, b in spans]
    for block in blocks:
        b0, b1 = pos, pos + len(block)
        pos = b1
        while i < len(bounds):
            s0, s1 = bounds[i]
            if s0 >= b1:
                break
            lo, hi = max(s0, b0), min(s1, b1)
            if hi > lo:
                buf.append(block[lo - b0:hi - b0])
            if s1 > b1:
                break
            yield spans[i][0], spans[i][1], np.concatenate(buf) if buf else np.zeros(0, np.float32)
            buf, i = [], i + 1
    if i < len(bounds) and buf:  # the last span ran past the end
        yield spans[i][0], round(pos / TARGET_SR, 3), np.concatenate(buf)


def _row(rec, start, end, piece, top_k=None) -> dict:
    res = rec._result(piece, top_k) if len(piece) >= 0.1 * TARGET_SR else {"label": None, "probs": None,
                                                                           "speech": False}
    return _scored({"start": start, "end": end, **res})


def _scored(row: dict) -> dict:
    """A row with "score" (the probability of its label, None without speech) after "label"."""
    score = row["probs"][row["label"]] if row["label"] is not None else None
    return {"start": row["start"], "end": row["end"], "label": row["label"], "score": score, "probs": row["probs"],
            "speech": row["speech"], **({"top_k": row["top_k"]} if "top_k" in row else {})}


def predict_segments(rec, audio, mode: str = "vad", window: float = 3.0, hop: float = 1.0,
                     sample_rate: int | None = None, settings: VADSettings = VADSettings(), top_k=None,
                     deadline: float | None = None) -> list[dict]:
    """Rows of `audio` (see the module docstring); `deadline` (time.monotonic()): TimeoutError
    once it has passed, checked between segments."""
    if mode not in MODES:
        raise ConfigError(f"--segments: expected one of {MODES}, got {mode!r}")
    if mode == "fixed":  # the recognizer's own windows: the file in memory
        wave = np.concatenate(list(_blocks(rec, audio, sample_rate)))
        return [_scored(w) for w in rec.predict_windows(wave, window, hop, deadline, top_k)]
    spans = speech_segments(vad().frame_probs(_blocks(rec, audio, sample_rate)), settings)
    rows = []
    for a, b, piece in cut(_blocks(rec, audio, sample_rate), spans):
        check_deadline(deadline)
        rows.append(_row(rec, a, b, piece, top_k))
    return rows
