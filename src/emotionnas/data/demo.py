"""Built-in SYNTHETIC demo corpus, made by code (no download).

It exists so that `make demo` and the tests run anywhere; it proves nothing
about accuracy on real speech. Four synthetic speakers (two low-, two
high-pitched) say voiced "syllables" in four classes that differ in prosody,
as the SER literature describes them:

| class   | pitch level | pitch range | tempo  | loudness | voice quality          |
|---------|-------------|-------------|--------|----------|------------------------|
| neutral | base        | narrow      | medium | medium   | modal                  |
| angry   | +30 %       | medium      | fast   | loud     | pressed (many harmonics)|
| happy   | +45 %       | wide        | fast   | medium   | modal, rising contours |
| sad     | -15 %       | very narrow | slow   | soft     | breathy (noise, dark)  |
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionnas.data.utterance import CorpusTable, Utterance

SR = 16000
CLASSES = ("neutral", "angry", "happy", "sad")
SPEAKERS = {"spk1": 110.0, "spk2": 125.0, "spk3": 205.0, "spk4": 230.0}  # base f0 in Hz
# pitch factor, pitch range (semitones), syllables/s, gain, harmonic tilt (dB/harmonic), noise
PROSODY = {
    "neutral": (1.00, 2.0, 4.0, 0.30, -3.0, 0.02),
    "angry":   (1.30, 4.0, 6.0, 0.70, -1.0, 0.03),
    "happy":   (1.45, 8.0, 5.5, 0.40, -2.5, 0.02),
    "sad":     (0.85, 0.8, 2.5, 0.12, -6.0, 0.10),
}
MANIFEST = "manifest.csv"


def synthesize(label: str, f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One synthetic utterance: harmonic syllables with an f0 contour, formant-ish colouring."""
    pf, rng_st, rate, gain, tilt, noise = PROSODY[label]
    n = int(seconds * SR)
    t = np.arange(n) / SR
    # f0 contour: slow declination + per-syllable excursions of +-range semitones
    n_syl = max(2, int(seconds * rate * rng.uniform(0.9, 1.1)))
    exc = rng.uniform(-1, 1, n_syl) * rng_st
    if label == "happy":
        exc = np.abs(exc)  # rising contours
    contour = np.interp(t, np.linspace(0, seconds, n_syl), exc) - 1.0 * t / seconds
    f0_t = f0 * pf * 2 ** (contour / 12) * (1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = 2 * np.pi * np.cumsum(f0_t) / SR
    n_harm = int(min(30, 3800 / (f0 * pf)))
    k = np.arange(1, n_harm + 1)
    amps = 10 ** (tilt * (k - 1) / 20)
    voiced = (amps[:, None] * np.sin(k[:, None] * phase[None, :])).sum(axis=0)
    # syllable envelope: voiced nuclei separated by short gaps
    syl = 0.5 - 0.5 * np.cos(2 * np.pi * rate * t * rng.uniform(0.95, 1.05))
    env = np.clip(syl * 1.4, 0, 1) ** 1.5
    wave = voiced * env + noise * rng.standard_normal(n) * (0.3 + env)
    wave = np.convolve(wave, np.hanning(9) / np.hanning(9).sum(), mode="same")  # soft low-pass
    wave *= gain * rng.uniform(0.85, 1.15) / (np.abs(wave).max() + 1e-9)
    edge = int(0.02 * SR)
    wave[:edge] *= np.linspace(0, 1, edge)
    wave[-edge:] *= np.linspace(1, 0, edge)
    return wave.astype(np.float32)


def make_demo_corpus(root: str | Path, per_class: int = 4, seed: int = 0) -> Path:
    """Write the synthetic corpus (wavs + manifest.csv) under `root`; returns the manifest path.

    4 speakers x 4 classes x `per_class` utterances of 1.2-2.0 s (default 64 files, ~100 s).
    """
    import soundfile as sf

    from emotionnas.utils.io import atomic_write_text

    root = Path(root)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["path,label,speaker,session"]
    for spk, f0 in SPEAKERS.items():
        for label in CLASSES:
            for i in range(per_class):
                rel = f"wav/{spk}_{label}_{i:02d}.wav"
                wave = synthesize(label, f0, rng.uniform(1.2, 2.0), rng)
                sf.write(str(root / rel), wave, SR, subtype="PCM_16")
                rows.append(f"{rel},{label},{spk},")
    atomic_write_text(root / MANIFEST, "\n".join(rows) + "\n")
    return root / MANIFEST


def demo_table(root: str | Path, per_class: int = 4, seed: int = 0) -> CorpusTable:
    """Read the demo corpus at `root`, generating it first when it is not there."""
    from emotionnas.data.audio import audio_duration

    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.exists():
        make_demo_corpus(root, per_class, seed)
    utts = []
    for line in manifest.read_text().splitlines()[1:]:
        rel, label, spk, sess = line.split(",")
        path = str((root / rel).resolve())
        utts.append(Utterance(path, label, spk, sess, "demo", audio_duration(path)))
    return CorpusTable("demo", utts)
