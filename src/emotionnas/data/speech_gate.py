"""No speech, no emotion: an energy and modulation gate in front of the recognizer.

A waveform passes when it has at least `min_active_seconds` of 25 ms frames louder than
`level_db` (dBFS, RMS) and the loudness of those frames moves like speech does (syllables:
standard deviation of the frame levels >= `min_modulation_db`). Digital silence, dither, a
single LSB, a short blip, steady noise and steady tones fail; every utterance of EmoDB and URDU
passes. The thresholds and their measurement on real speech, silence, noise and tones are in
docs/robustness.md ("Speech gate"), made by `benchmarks/speech_gate.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME, HOP = 400, 160  # 25 ms frames every 10 ms at 16 kHz


@dataclass(frozen=True)
class SpeechGate:
    level_db: float = -55.0          # a frame is active above this RMS level (dBFS, pre-emphasised)
    min_active_seconds: float = 0.2
    min_modulation_db: float = 1.5   # std of active frames' levels (steady noise and tones: < 0.5 dB)

    def measure(self, wave: np.ndarray, sr: int = 16000) -> dict:
        """{"active_seconds", "level_db" (median of active frames), "modulation_db"}."""
        db = frame_levels(wave)
        active = db[db > self.level_db]
        return {"active_seconds": round(len(active) * HOP / sr, 3),
                "level_db": round(float(np.median(active)), 1) if len(active) else None,
                "modulation_db": round(float(active.std()), 2) if len(active) > 1 else 0.0}

    def is_speech(self, wave: np.ndarray, sr: int = 16000) -> bool:
        m = self.measure(wave, sr)
        return m["active_seconds"] >= self.min_active_seconds and m["modulation_db"] >= self.min_modulation_db


def frame_levels(wave: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of 25 ms frames every 10 ms of the pre-emphasised signal (x[n] - 0.97
    x[n-1], as speech front ends: the slow swell of low-frequency noise is not syllables)."""
    x = np.asarray(wave, np.float64)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    n = 1 + (len(x) - FRAME) // HOP
    power = np.convolve(x * x, np.ones(FRAME) / FRAME, mode="valid")[::HOP][:n]
    return 10 * np.log10(np.maximum(power, 1e-12))


DEFAULT_GATE = SpeechGate()
