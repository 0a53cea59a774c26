"""An hour of real speech through `predict --segments vad`: time and peak memory.

    .venv/bin/python benchmarks/long_audio.py --model M [--minutes 60] [--data ../shared/data/emodb/wav]

Builds a long 16 kHz WAV from EmoDB utterances separated by 0.5-2.5 s pauses of low noise
(seeded), then runs the real CLI (`emotionnas predict --model M FILE --segments vad --format csv`)
as a subprocess and reports its wall time, peak RSS (getrusage of the child), the real-time
factor and how many segments it wrote against how many utterances were placed.
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def build(path: Path, files, minutes: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    total, n = 0, 0
    with sf.SoundFile(str(path), "w", 16000, 1, subtype="PCM_16") as out:
        while True:
            gap = (3e-4 * rng.standard_normal(int(rng.uniform(0.5, 2.5) * 16000))).astype(np.float32)
            speech = sf.read(str(files[n % len(files)]), dtype="float32")[0]
            if total + len(gap) + len(speech) > minutes * 60 * 16000:  # at most `minutes`
                return n
            out.write(gap)
            out.write(speech)
            total += len(gap) + len(speech)
            n += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--data", default="../shared/data/emodb/wav")
    ap.add_argument("--wav", default="/tmp/emotionnas-long.wav")
    ap.add_argument("--out", default="benchmarks/results/long_audio.json")
    args = ap.parse_args()
    wav = Path(args.wav)
    placed = build(wav, sorted(Path(args.data).glob("*.wav")), args.minutes)
    exe = Path(sys.executable).with_name("emotionnas")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "--quiet", "predict", "--model", args.model, str(wav), "--segments", "vad",
                           "--format", "csv"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = proc.stdout.strip().splitlines()[1:]
    seconds = sf.info(str(wav)).duration
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model, "audio_seconds": round(seconds, 1),
              "file_mb": round(wav.stat().st_size / 2 ** 20, 1), "utterances_placed": placed, "segments": len(rows),
              "wall_seconds": round(wall, 1), "real_time_factor": round(seconds / wall, 1),
              "peak_rss_mb": round(peak_mb, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
