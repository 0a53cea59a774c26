"""Feature-extraction speed and memory on EmoDB (all 535 utterances, 24.8 min).

    .venv/bin/python benchmarks/features.py [--data ../shared/data/emodb] [--limit N] [--threads default,1]
                                            [--rows load,spectrogram,...] [--no-write]

Rows: audio loading alone; the spectrogram stream (load + compute_spectrogram);
whisper-tiny.en and whisper-base, every hidden layer (load + encode_many).
Each row runs in its own subprocess so its peak RSS (ru_maxrss) is its own;
model construction is timed separately and excluded from the real-time
factor. Encoder outputs are discarded after counting frames (a real run
writes them float16 and 2x-pooled to the feature cache).

Prints a Markdown table and replaces the section "## Features
(benchmarks/features.py)" in BENCHMARKS.md (other sections are kept).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/emodb"
SECTION = "## Features (benchmarks/features.py)"
ROWS = ("load", "spectrogram", "whisper-tiny.en", "whisper-base", "whisper-base@bfloat16")
GROUP = 32  # files loaded and encoded together: bounds memory, lets encode_many batch by length


def _files(data: Path, limit: int | None) -> list[Path]:
    files = sorted((data / "wav").glob("*.wav"))
    return files[:limit] if limit else files


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(row: str, data: Path, limit: int | None, threads: int | None = None) -> dict:
    """Run one measurement in this process; returns a JSON-able dict."""
    import numpy as np  # noqa: F401  (imported before timing, like every library below)
    import torch
    if threads:
        torch.set_num_threads(threads)

    from emotionnas.data.audio import load_audio
    files = _files(data, limit)
    setup = 0.0
    fn = None
    if row == "spectrogram":
        from emotionnas.features.spectrogram import compute_spectrogram
        fn = compute_spectrogram
    elif row != "load":
        from emotionnas.features.encoders import create_encoder
        t0 = time.perf_counter()
        name, _, dtype = row.partition("@")  # "whisper-base@bfloat16": opt-in bf16 compute
        encoder = create_encoder(name, **({"dtype": dtype} if dtype else {}))
        setup = time.perf_counter() - t0
    samples = frames = 0
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    for start in range(0, len(files), GROUP):
        waves = [load_audio(f) for f in files[start:start + GROUP]]
        samples += sum(w.size for w in waves)
        if row == "spectrogram":
            frames += sum(fn(w).shape[-1] for w in waves)
        elif row != "load":
            frames += sum(s.shape[1] for s in encoder.encode_many(waves))
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    return {"row": row, "files": len(files), "audio_s": samples / 16000, "wall_s": wall, "cpu_s": cpu,
            "setup_s": setup,
            "frames": frames, "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads()}


def _threads(text: str) -> int | None:
    text = str(text).strip()
    return None if text in ("", "default", "None") else int(text)


def _run_row(row: str, data: Path, limit: int | None, threads: int | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", row, "--data", str(data)]
    if limit:
        cmd += ["--limit", str(limit)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"row": row, "error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
        kb = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
        ram = f"{kb / 1024 ** 2:.1f} GiB"
    except (OSError, AttributeError):
        ram = "unknown"
    import torch
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram": ram, "torch": torch.__version__,
            "python": platform.python_version(), "load1": load,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _table(results: list[dict]) -> str:
    lines = ["| stage | threads | files | audio (min) | wall (s) | x real time | CPU (s) | peak RSS (MB) "
             "| model setup (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"load": "audio loading (soundfile + checks)", "spectrogram": "spectrogram stream (load + 140x140)",
             "whisper-tiny.en": "whisper-tiny.en, all 5 hidden states (load + encode)",
             "whisper-base": "whisper-base, all 7 hidden states (load + encode)",
             "whisper-base@bfloat16": "whisper-base, bfloat16 compute (opt-in), all 7 (load + encode)"}
    for r in results:
        name = names.get(r["row"], r["row"])
        if "error" in r:
            lines.append(f"| {name} | - | - | - | - | - | - | - | not measured: {r['error'][:120]} |")
            continue
        lines.append(f"| {name} | {r['threads']} | {r['files']} | {r['audio_s'] / 60:.1f} | {r['wall_s']:.1f} | "
                     f"{r['audio_s'] / r['wall_s']:.0f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['setup_s']:.1f} |")
    return "\n".join(lines)


def _write_section(path: Path, body: str) -> None:
    from emotionnas.utils.io import atomic_write_text
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = re.search(r"^## ", text[start + len(SECTION):], re.M)
        end = start + len(SECTION) + nxt.start() if nxt else len(text)
        text = text[:start] + section + text[end:]
    atomic_write_text(path, text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="EmoDB folder with wav/")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files (quick check)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {ROWS}")
    ap.add_argument("--threads", default="default",
                    help="comma-separated torch thread counts to run every row with; 'default' = torch's own")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.limit, _threads(args.threads))))
        return 0
    if not (args.data / "wav").is_dir():
        print(f"skipped: EmoDB not found at {args.data} (expected {args.data / 'wav'}/*.wav)")
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    machine = _machine()
    results = []
    settings = [_threads(t) for t in args.threads.split(",") if t.strip()]
    for threads in settings:
        for row in rows:
            print(f"running {row} (threads: {threads or 'default'}) ...", file=sys.stderr, flush=True)
            results.append(_run_row(row, args.data, args.limit, threads))
    table = _table(results)
    cmd = "cd <repo> && .venv/bin/python benchmarks/features.py" + (f" --limit {args.limit}" if args.limit else "") \
        + (f" --threads {args.threads}" if args.threads != "default" else "")
    body = (f"Command: `{cmd}` (each row in its own subprocess; peak RSS = ru_maxrss of that process;\n"
            f"x real time = audio duration / wall time, model construction excluded and listed separately;\n"
            f"CPU = user + system seconds of the process, which shows how much of the wall time it actually ran).\n\n"
            f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram']} RAM, torch {machine['torch']} "
            f"(threads per row in the table), Python {machine['python']}; {machine['date']}; 1-min load average at start "
            f"{machine['load1']:.1f} (the machine was shared with other jobs: numbers are contended, not best case).\n\n"
            f"{table}\n\n"
            "Reading the numbers: whisper-base costs ~2.1 GFLOP per second of audio in float32 (~41 MFLOP per\n"
            "20 ms frame: 6 blocks of ~6.3 MFLOP plus convolutions and attention); its matrix products reached\n"
            "~190 GFLOPS on both cores in a quieter moment, so float32 tops out near 90x real time here. The\n"
            "opt-in bfloat16 path (`create_encoder('whisper-base', dtype='bfloat16')`, ~1 % mean relative\n"
            "difference from float32) runs the matrix products ~4x faster on this CPU (AVX512-BF16); its rows\n"
            "show the end-to-end gain.\n"
            "Alone on the machine a run shows CPU (s) close to threads x wall (s); a lower ratio shows how much\n"
            "of the machine the process got while others were running; on a shared machine compare the rows\n"
            "run with 1 and 2 threads (2 threads must wait for each other at every operation).\n")
    print(body)
    if not args.no_write:
        _write_section(REPO / "BENCHMARKS.md", body)
        print(f"wrote section {SECTION!r} to {REPO / 'BENCHMARKS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
