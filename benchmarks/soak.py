"""Soak test of `emotionnas serve`: a live server on 127.0.0.1 under a bounded hostile mix.

    .venv/bin/python benchmarks/soak.py --model runs/demo/model --speech ../shared/data/emodb/wav \
        [--requests 300] [--concurrency 8] [--out benchmarks/results/soak.json]

Starts the server as a subprocess (the CLI, default settings), then sends `--requests` POSTs
from `--concurrency` threads, drawn (seeded) from: real speech files, FLAC bombs (8 channels,
96 kHz, 120 s of constant audio: ~100 KB that decode to 368 MB), WAV headers claiming 1 Hz,
text files, oversized uploads (26 MB), and near-silence (1e-4 dither); clients honour 503 +
Retry-After (up to 10 tries, latency counted from the first). A second thread probes
/health every 0.1 s throughout. Reports answers by kind and status code, latency p50/p99 of the
good requests, /health latency p50/p99/max, the server's RSS after start-up and its peak
(VmHWM), and how many good requests were lost (anything but 200). Writes JSON; prints a table.
"""
import argparse
import io
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import soundfile as sf


def flac_bomb() -> bytes:
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 96000, 8, format="FLAC", subtype="PCM_16") as f:
        block = np.full((96000, 8), 0.25, np.float32)
        for _ in range(120):
            f.write(block)
    return buf.getvalue()


def one_hz_header() -> bytes:
    data = 1200
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)
            + b"data" + struct.pack("<I", data) + np.random.default_rng(1).bytes(data))


def dither() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (1e-4 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32), 16000,
             format="WAV", subtype="FLOAT")
    return buf.getvalue()


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--speech", required=True, help="folder of real speech wavs")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/soak.json")
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("emotionnas")
    server = subprocess.Popen([str(exe), "serve", "--model", args.model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        server.kill()
        raise SystemExit("server did not start: " + server.stderr.read().decode()[-1000:])
    speech = sorted(Path(args.speech).glob("*.wav"))
    payloads = {"bomb": ("bomb.flac", flac_bomb()), "1 Hz header": ("hz.wav", one_hz_header()),
                "not audio": ("notes.txt", b"this is a text file, not audio\n" * 40),
                "oversized": ("big.wav", b"RIFF" + b"\0" * (26 * 2 ** 20)), "near-silence": ("dither.wav", dither())}
    rng = random.Random(args.seed)
    kinds = ["speech"] * 5 + list(payloads)
    plan = [rng.choice(kinds) for _ in range(args.requests)]
    requests.post(url + "/predict", files={"file": ("warm.wav", speech[0].read_bytes())})  # warm-up, not counted
    rss_start = rss_mb(server.pid, "VmRSS")

    health, stop, retries = [], threading.Event(), Counter()

    def probe():
        while not stop.is_set():
            t0 = time.perf_counter()
            code = requests.get(url + "/health", timeout=30).status_code
            health.append((time.perf_counter() - t0, code))
            time.sleep(0.1)

    def one(i_kind):
        i, kind = i_kind
        name, data = (speech[i % len(speech)].name, speech[i % len(speech)].read_bytes()) if kind == "speech" \
            else payloads[kind]
        t0 = time.perf_counter()
        for _ in range(10):  # clients honour 503 + Retry-After (a full queue)
            try:
                r = requests.post(url + "/predict", files={"file": (name, data)}, timeout=120)
                code = r.status_code
            except requests.RequestException as e:
                code = type(e).__name__
                break
            if code != 503:
                break
            retries[kind] += 1
            time.sleep(float(r.headers.get("retry-after", 1)) / 4)
        return kind, code, time.perf_counter() - t0

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t_start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(one, enumerate(plan)))
    wall = time.perf_counter() - t_start
    stop.set()
    prober.join(30)
    peak = rss_mb(server.pid, "VmHWM")
    server.terminate()
    server.wait(10)

    by_kind = {k: dict(Counter(str(c) for kk, c, _ in results if kk == k)) for k in kinds[4:]}
    good = [t for k, c, t in results if k == "speech" and c == 200]
    n_speech = sum(k == "speech" for k in plan)
    h = [t for t, _ in health]
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model, "requests": args.requests,
              "concurrency": args.concurrency, "wall_seconds": round(wall, 1), "answers": by_kind,
              "good_p50_ms": round(1000 * float(np.percentile(good, 50)), 1) if good else None,
              "good_p99_ms": round(1000 * float(np.percentile(good, 99)), 1) if good else None,
              "good_lost": n_speech - len(good), "retries_after_503": dict(retries),
              "health": {"n": len(h), "non_200": sum(c != 200 for _, c in health),
                         "p50_ms": round(1000 * float(np.percentile(h, 50)), 1),
                         "p99_ms": round(1000 * float(np.percentile(h, 99)), 1), "max_ms": round(1000 * max(h), 1)},
              "rss_after_start_mb": round(rss_start, 1), "peak_rss_mb": round(peak, 1),
              "peak_growth_mb": round(peak - rss_start, 1), "loadavg_before": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
