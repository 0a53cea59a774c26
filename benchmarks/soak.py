"""Soak test of `emotionnas serve`: a live server on 127.0.0.1 under a bounded hostile mix.

    .venv/bin/python benchmarks/soak.py --model runs/demo/model --speech ../shared/data/emodb/wav \
        [--idle 70] [--slow 10] [--hold 13] [--requests 300] [--concurrency 8] \
        [--out benchmarks/results/soak.json]

Starts the server as a subprocess (the CLI, default settings, an API key from
$EMOTIONNAS_API_KEY that every request below sends), then runs three phases, all on loopback,
each bounded in connections and seconds:

1. idle: `--idle` TCP connections opened and held `--hold` seconds without sending a byte;
2. slow headers: `--slow` connections that send a request's headers one byte a second for
   `--hold` seconds (never finishing them: "slowloris");
3. hostile mix: `--requests` POSTs from `--concurrency` threads, drawn (seeded) from: real
   speech files, FLAC bombs (8 channels, 96 kHz, 120 s of constant audio: ~100 KB that decode
   to 368 MB), WAV headers claiming 1 Hz, text files, oversized uploads (26 MB), and
   near-silence (1e-4 dither); clients honour 503 + Retry-After (up to 10 tries, latency
   counted from the first).

Throughout, one thread probes /health every 0.1 s and another sends a keyed /predict of a real
speech file every second; both are reported per phase (status codes, latency p50/p99/max).
For phases 1-2 it also reports how many of the held connections the server closed and how
long after opening (eviction by the connection limits is immediate, the header deadline
closes the rest). For phase 3: answers by kind and status code, latency p50/p99 of the good
requests and how many were lost (anything but 200). And the server's RSS after start-up and
its peak (VmHWM). Writes JSON; prints it.
"""
import argparse
import io
import json
import os
import random
import secrets
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

KEY = secrets.token_urlsafe(24)
AUTH = {"X-API-Key": KEY}


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


def ms_stats(seconds: list) -> dict:
    if not seconds:
        return {"n": 0}
    return {"n": len(seconds), "p50_ms": round(1000 * float(np.percentile(seconds, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(seconds, 99)), 1), "max_ms": round(1000 * max(seconds), 1)}


class Prober:
    """A thread that sends one request every `interval` seconds until stopped, recording
    (phase, status or exception name, seconds) under the phase current when it was sent."""

    def __init__(self, send, interval: float):
        self.send, self.interval, self.phase = send, interval, "start"
        self.records, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            phase, t0 = self.phase, time.perf_counter()
            try:
                code = self.send().status_code
            except requests.RequestException as e:
                code = type(e).__name__
            self.records.append((phase, code, time.perf_counter() - t0))
            self.stop.wait(self.interval)

    def summary(self, phase: str) -> dict:
        rows = [(c, t) for p, c, t in self.records if p == phase]
        return {"codes": dict(Counter(str(c) for c, _ in rows)), **ms_stats([t for _, t in rows])}


def hold_connections(port: int, n: int, seconds: float, trickle: bool) -> dict:
    """Open `n` connections and hold them `seconds`: silent, or (trickle) sending a request's
    headers a byte a second without ever finishing them. Records when the server closed each."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
    conns = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError as e:
            conns.append({"sock": None, "opened": time.monotonic(), "closed": 0.0, "error": type(e).__name__})
            continue
        s.setblocking(False)
        conns.append({"sock": s, "opened": time.monotonic(), "closed": None, "sent": 0})
    end, next_byte = time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < end:  # bounded by `seconds`
        now = time.monotonic()
        for c in conns:
            if c["closed"] is None and _closed_by_peer(c["sock"]):
                c["closed"] = now - c["opened"]
        if trickle and now >= next_byte:
            for c in conns:
                if c["closed"] is None and c["sent"] < len(head):
                    try:
                        c["sock"].send(head[c["sent"]:c["sent"] + 1])
                        c["sent"] += 1
                    except OSError:
                        c["closed"] = now - c["opened"]
            next_byte = now + 1.0
        time.sleep(0.05)
    for c in conns:
        if c["sock"] is not None:
            c["sock"].close()
    after = sorted(c["closed"] for c in conns if c["closed"] is not None)
    return {"connections": n, "closed_by_server": len(after), "closed_within_1s": sum(a < 1.0 for a in after),
            "open_at_end": n - len(after),
            "closed_after_s": {"min": round(after[0], 2), "median": round(float(np.median(after)), 2),
                               "max": round(after[-1], 2)} if after else None}


def _closed_by_peer(sock) -> bool:
    try:
        return sock.recv(4096) == b""  # a 408 or any bytes: read on; b"": closed
    except BlockingIOError:
        return False
    except OSError:
        return True


def start_server(model: str, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("emotionnas")
    server = subprocess.Popen([str(exe), "serve", "--model", model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "EMOTIONNAS_API_KEY": KEY})
    for _ in range(600):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", headers=AUTH, timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not start: " + server.stderr.read().decode()[-1000:])


def hostile_mix(url: str, speech: list, n_requests: int, concurrency: int, seed: int) -> dict:
    payloads = {"bomb": ("bomb.flac", flac_bomb()), "1 Hz header": ("hz.wav", one_hz_header()),
                "not audio": ("notes.txt", b"this is a text file, not audio\n" * 40),
                "oversized": ("big.wav", b"RIFF" + b"\0" * (26 * 2 ** 20)), "near-silence": ("dither.wav", dither())}
    rng = random.Random(seed)
    kinds = ["speech"] * 5 + list(payloads)
    plan = [rng.choice(kinds) for _ in range(n_requests)]
    retries = Counter()

    def one(i_kind):
        i, kind = i_kind
        name, data = (speech[i % len(speech)].name, speech[i % len(speech)].read_bytes()) if kind == "speech" \
            else payloads[kind]
        t0 = time.perf_counter()
        for _ in range(10):  # clients honour 503 + Retry-After (a full queue)
            try:
                r = requests.post(url + "/predict", files={"file": (name, data)}, headers=AUTH, timeout=120)
                code = r.status_code
            except requests.RequestException as e:
                code = type(e).__name__
                break
            if code != 503:
                break
            retries[kind] += 1
            time.sleep(float(r.headers.get("retry-after", 1)) / 4)
        return kind, code, time.perf_counter() - t0

    t_start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, enumerate(plan)))
    good = [t for k, c, t in results if k == "speech" and c == 200]
    return {"requests": n_requests, "concurrency": concurrency, "wall_seconds": round(time.perf_counter() - t_start, 1),
            "answers": {k: dict(Counter(str(c) for kk, c, _ in results if kk == k)) for k in kinds[4:]},
            "good_p50_ms": round(1000 * float(np.percentile(good, 50)), 1) if good else None,
            "good_p99_ms": round(1000 * float(np.percentile(good, 99)), 1) if good else None,
            "good_lost": sum(k == "speech" for k in plan) - len(good), "retries_after_503": dict(retries)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--speech", required=True, help="folder of real speech wavs")
    ap.add_argument("--idle", type=int, default=70, help="silent connections held in phase 1")
    ap.add_argument("--slow", type=int, default=10, help="one-byte-a-second connections held in phase 2")
    ap.add_argument("--hold", type=float, default=13.0, help="seconds each of phases 1 and 2 lasts")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/soak.json")
    args = ap.parse_args()
    if not (0 <= args.idle <= 500 and 0 <= args.slow <= 500 and 0 < args.hold <= 120):
        raise SystemExit("--idle and --slow: 0..500 connections; --hold: up to 120 s")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    server = start_server(args.model, port)
    speech = sorted(Path(args.speech).glob("*.wav"))
    requests.post(url + "/predict", files={"file": ("warm.wav", speech[0].read_bytes())}, headers=AUTH)  # warm-up
    rss_start = rss_mb(server.pid, "VmRSS")
    health = Prober(lambda: requests.get(url + "/health", headers=AUTH, timeout=10), 0.1)
    sample = speech[0].read_bytes()
    predict = Prober(lambda: requests.post(url + "/predict", files={"file": ("probe.wav", sample)}, headers=AUTH,
                                           timeout=60), 1.0)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model, "loadavg_before": load_before}
    try:
        for p in (health, predict):
            p.thread.start()
        phases = [("idle", lambda: hold_connections(port, args.idle, args.hold, trickle=False)),
                  ("slow headers", lambda: hold_connections(port, args.slow, args.hold, trickle=True)),
                  ("hostile mix", lambda: hostile_mix(url, speech, args.requests, args.concurrency, args.seed))]
        for name, run in phases:
            health.phase = predict.phase = name
            report[name] = run()
            report[name]["health"], report[name]["keyed_predict"] = health.summary(name), predict.summary(name)
    finally:
        for p in (health, predict):
            p.stop.set()
            p.thread.join(70)
        peak = rss_mb(server.pid, "VmHWM")
        server.terminate()
        server.wait(10)
    report.update({"rss_after_start_mb": round(rss_start, 1), "peak_rss_mb": round(peak, 1),
                   "peak_growth_mb": round(peak - rss_start, 1)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
