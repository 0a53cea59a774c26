"""Voice activity: where the speech is in long audio, in bounded memory.

`SileroVAD` runs the Silero VAD network (v6, ONNX) that ships inside the `silero-vad` wheel
(nothing is downloaded; onnxruntime, no torch) on 32 ms frames of 16 kHz audio, carrying its
recurrent state across blocks, so an hour of audio streams through it block by block.
`speech_segments` turns the frame probabilities into spoken stretches with hysteresis:

    a stretch starts at a frame >= `threshold` and ends after `min_silence` s below
    `neg_threshold`; stretches shorter than `min_speech` are dropped, each is padded by `pad`
    s on both sides, and one longer than `max_segment` is cut into pieces of at most that.

The defaults are Silero's own recommended ones, except `min_silence` (0.3 s: a pause
between utterances, not between words); measured on real speech with pauses in
BENCHMARKS.md ("Speech segments").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionnas.errors import ConfigError

SR, FRAME, CONTEXT = 16000, 512, 64


@dataclass(frozen=True)
class VADSettings:
    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech: float = 0.25      # s
    min_silence: float = 0.3      # s
    pad: float = 0.05             # s
    max_segment: float = 30.0     # s


class SileroVAD:
    def __init__(self):
        try:
            import onnxruntime as ort
            from importlib import resources
            path = resources.files("silero_vad").joinpath("data/silero_vad.onnx")
        except ImportError as e:
            raise ConfigError(f"voice activity needs the packages silero-vad and onnxruntime ({e.name} missing): "
                              "pip install silero-vad onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])

    def frame_probs(self, blocks):
        """16 kHz mono float32 blocks (any sizes) -> speech probability per 32 ms frame,
        yielded as arrays while the blocks stream in (the tail shorter than a frame is padded)."""
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros(CONTEXT, np.float32)
        rest = np.zeros(0, np.float32)
        sr = np.array(SR, dtype=np.int64)
        for block in _with_tail(blocks):
            if block is None:  # end: pad the remainder to one frame
                if not len(rest):
                    return
                block, rest = np.pad(rest, (0, FRAME - len(rest))), np.zeros(0, np.float32)
            else:
                block = np.concatenate([rest, np.asarray(block, np.float32)])
                n = len(block) // FRAME * FRAME
                block, rest = block[:n], block[n:]
            out = np.empty(len(block) // FRAME, np.float32)
            for i in range(len(out)):
                x = np.concatenate([context, block[i * FRAME:(i + 1) * FRAME]])[None]
                prob, state = self.session.run(None, {"input": x, "state": state, "sr": sr})
                out[i] = float(prob.reshape(-1)[0])
                context = x[0, -CONTEXT:]
            if len(out):
                yield out


def _with_tail(blocks):
    yield from blocks
    yield None


def speech_segments(probs, settings: VADSettings = VADSettings(), duration: float | None = None) -> list[tuple]:
    """Frame probabilities (an iterable of arrays, 32 ms frames) -> [(start, end)] seconds."""
    s, hop = settings, FRAME / SR
    raw, start, silent, t = [], None, 0, 0
    for chunk in probs:
        for p in chunk:
            if start is None:
                if p >= s.threshold:
                    start, silent = t, 0
            elif p < s.neg_threshold:
                silent += 1
                if silent * hop >= s.min_silence:
                    raw.append((start, t - silent + 1))
                    start = None
            else:
                silent = 0
            t += 1
    if start is not None:
        raw.append((start, t - silent))
    end_of_audio = duration if duration is not None else t * hop
    out = []
    for a, b in raw:
        if (b - a) * hop < s.min_speech:
            continue
        lo, hi = max(0.0, a * hop - s.pad), min(end_of_audio, b * hop + s.pad)
        if out and lo < out[-1][1]:  # padding reached into the previous stretch: one stretch
            lo = out.pop()[0]
        while hi - lo > s.max_segment:
            out.append((round(lo, 3), round(lo + s.max_segment, 3)))
            lo += s.max_segment
        out.append((round(lo, 3), round(hi, 3)))
    return out
