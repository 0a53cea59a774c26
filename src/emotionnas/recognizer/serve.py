"""`emotionnas serve --model M`: the recognizer as an HTTP service with a page.

    GET  /          a page (page.html + page.js + page.css): drop or record audio, see the
                    probabilities as bars and, for audio longer than one window, a timeline
    GET  /health    {"status", "labels", "members", "window", "hop", "limits"}; answers at once
    POST /predict   multipart upload (field `file`) -> {"file", "label", "probs", "speech",
                    "duration", "windows"}; no speech -> "label": null, "speech": false;
                    `?segments=vad` adds "segments": one row per spoken stretch (Silero VAD),
                    the rows of `emotionnas predict --segments vad`

Built to be attacked (docs/robustness.md, "Service"):
- uploads: Content-Length required and bounded before the body is read, and counted while it
  is read; decoding bounded by `AudioLimits` (rate, channels, seconds, decoded size) before
  anything is allocated; refusals are one-line 4xx naming the upload and the limit;
- decoding and inference run in one worker thread off the event loop, behind a bounded queue
  (full -> 503 with Retry-After); each request has a time limit (-> 503); /health never waits;
- Host header checked against an allow-list (loopback names by default; bound to all interfaces,
  this machine's own names and addresses too); no CORS unless asked; an API key
  (`Authorization: Bearer KEY` or `X-API-Key`, >= 16 characters, from a file, the environment
  or the command line: serve_access.py) when set, required off loopback;
- connections: a deadline for a request's headers and for its body, limits per client address
  and in all that evict the oldest connection still waiting for its headers, and a health lane
  when nothing can be evicted (serve_connections.py; uvicorn's `limit_concurrency`, which
  answered /health 503 while 65 silent sockets were open, is not used); refusals by `Guard`
  close the connection instead of reading the body they refused;
- the page inserts data only as text and is served with a Content-Security-Policy.
"""

import asyncio
import hmac
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources

from emotionnas.data.audio import AudioLimits
from emotionnas.errors import AudioError, ConfigError, EmotionNASError, scrub
from emotionnas.recognizer.folder import check_deadline
from emotionnas.recognizer.serve_access import API_KEY_ENV, LOOPBACK_HOSTS, check_api_key, hosts_for, resolve_api_key

SERVE_LIMITS = AudioLimits(max_seconds=300.0, max_bytes=25 * 1024 * 1024, max_decoded_mb=256.0)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "media-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store"),
                    (b"content-security-policy", CSP.encode())]
ASSETS = {"/": ("page.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript; charset=utf-8"),
          "/page.css": ("page.css", "text/css; charset=utf-8")}


@dataclass
class ServeSettings:
    """Everything the service bounds or checks; `emotionnas serve --help` shows the defaults."""
    limits: AudioLimits = SERVE_LIMITS
    window: float = 3.0               # timeline window (s) for audio longer than one window
    hop: float = 1.0
    queue: int = 8                    # requests decoding, running or waiting; more -> 503 (each holds its upload)
    timeout: float = 60.0             # seconds per request (decode + inference); more -> 503
    allow_hosts: tuple = LOOPBACK_HOSTS  # Host header names accepted ("*": any)
    api_key: str | None = None
    cors_origins: tuple = field(default_factory=tuple)
    header_timeout: float = 10.0      # seconds a connection has to send its request headers; later: closed
    max_per_client: int = 16          # open connections per client address (beyond: the oldest idle one closes)
    max_connections: int = 64         # open connections in all (the same)

    def describe(self) -> str:
        return (f"uploads <= {self.limits.max_bytes / 2 ** 20:g} MB, audio <= {self.limits.max_seconds:g} s, "
                f"{self.limits.min_rate}-{self.limits.max_rate} Hz, <= {self.limits.max_channels} channels, "
                f"<= {self.limits.max_decoded_mb:g} MB decoded; queue {self.queue}, {self.timeout:g} s per request "
                f"(body included); request headers within {self.header_timeout:g} s, <= {self.max_connections} "
                f"connections, <= {self.max_per_client} per client address")


def host_name(host_header: str) -> str:
    """`example.org:8000` -> example.org; `[::1]:8000` -> ::1."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class Guard:
    """Pure ASGI middleware: Host allow-list, API key, body size, security headers."""

    def __init__(self, app, settings: ServeSettings):
        self.app, self.s = app, settings
        self.hosts = {h.lower() for h in settings.allow_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        if "*" not in self.hosts and host_name(headers.get("host", "")) not in self.hosts:
            return await _reply(send_secured, 400, "host not allowed (add it with --allow-host)")
        if self.s.api_key and scope["path"] not in ASSETS and scope["method"] != "OPTIONS":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else "")
            if not hmac.compare_digest(given.encode("latin-1"), self.s.api_key.encode("utf-8")):
                return await _reply(send_secured, 401, "missing or wrong API key (Authorization: Bearer KEY)",
                                    [(b"www-authenticate", b"Bearer")])
        if scope["method"] == "POST":
            origin = headers.get("origin")
            if origin and origin not in self.s.cors_origins and host_name(origin.split("://")[-1]) not in self.hosts \
                    and "*" not in self.hosts:
                return await _reply(send_secured, 403, "cross-site request refused (add the origin with --cors-origin)")
            state = getattr(self.app, "state", None)
            if state is not None and getattr(state, "busy", 0) >= self.s.queue:  # before the body is read
                return await _reply(send_secured, 503, "busy: too many requests in progress, retry later",
                                    [(b"retry-after", b"2")])
            length, limit = headers.get("content-length"), self.s.limits.max_bytes
            if length is None:
                return await _reply(send_secured, 411, "send a Content-Length header")
            if not length.isdigit() or int(length) > limit + 64 * 1024:  # + multipart framing
                return await _reply(send_secured, 413, f"upload too big (limit {limit / 2 ** 20:g} MB)")
            receive = _counted(receive, int(length), time.monotonic() + self.s.timeout)
        await self.app(scope, receive, send_secured)


def _counted(receive, declared: int, deadline: float):
    """Stop reading a body that grows beyond its declared Content-Length or arrives too slowly
    (a body that takes longer than the request time limit: a slow-upload attack). Under
    `serve`, the connection layer drops such a body at the same deadline with a 408
    (serve_connections.py, armed when the headers arrived, so it fires first); this check
    is for the app run by another server."""
    seen = 0

    async def wrapped():
        nonlocal seen
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionError("upload slower than the request time limit")
        message = await asyncio.wait_for(receive(), remaining)
        seen += len(message.get("body", b""))
        if seen > declared:
            raise ConnectionError("body longer than its Content-Length")
        return message
    return wrapped


async def _reply(send, status: int, reason: str, extra=()):
    """A refusal by `Guard`, before any body is read: `connection: close`, so that the server
    closes the connection instead of reading (and discarding) the body it refused."""
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})


def upload_name(filename: str | None) -> str:
    """A printable, short name for an upload (it appears in error messages)."""
    name = "".join(ch for ch in (filename or "upload") if ch.isprintable())[:120].strip()
    return name or "upload"


def create_app(recognizer, settings: ServeSettings | None = None, **overrides):
    """The ASGI app. `overrides`: fields of ServeSettings, or `max_bytes` / `max_seconds`."""
    from fastapi import FastAPI

    s = _settings(settings or ServeSettings(), overrides)
    if s.api_key is not None:
        s = ServeSettings(**{**s.__dict__, "api_key": check_api_key(s.api_key, "the settings (api_key)")})
    recognizer.limits = s.limits
    app = FastAPI(title="emotionnas", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emotionnas-infer")  # not re-entrant
    app.state.busy = 0
    _add_assets(app)
    _add_health(app, recognizer, s)
    _add_predict(app, recognizer, s)
    if s.cors_origins:
        from starlette.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(s.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key"])
    return Guard(app, s)


def _settings(s: ServeSettings, overrides: dict) -> ServeSettings:
    limit_fields = {k: overrides.pop(k) for k in ("max_bytes", "max_seconds") if k in overrides}
    if limit_fields:
        s = ServeSettings(**{**s.__dict__, "limits": AudioLimits(**{**s.limits.__dict__, **limit_fields})})
    return ServeSettings(**{**s.__dict__, **overrides}) if overrides else s


def _error(status: int, reason: str, headers=None):
    from fastapi.responses import JSONResponse
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def _add_assets(app) -> None:
    from fastapi.responses import Response
    files = resources.files("emotionnas.recognizer")
    assets = {path: (files.joinpath(f).read_bytes(), kind) for path, (f, kind) in ASSETS.items()}
    def handler(body: bytes, kind: str):
        def asset():
            return Response(body, media_type=kind)
        return asset
    for path, (body, kind) in assets.items():
        app.add_api_route(path, handler(body, kind), methods=["GET"], include_in_schema=False)


def _add_health(app, recognizer, s: ServeSettings) -> None:
    @app.get("/health")
    async def health():  # on the event loop: never waits for inference
        return {"status": "ok", "labels": recognizer.labels, "members": [m.name for m in recognizer.spec.members],
                "model": recognizer.spec.card, "window": s.window, "hop": s.hop, "busy": app.state.busy,
                "limits": {"max_bytes": s.limits.max_bytes, "max_seconds": s.limits.max_seconds,
                           "min_rate": s.limits.min_rate, "max_rate": s.limits.max_rate,
                           "max_channels": s.limits.max_channels}}


def _add_predict(app, recognizer, s: ServeSettings) -> None:
    from fastapi import File, UploadFile

    def work(data: bytes, name: str, deadline: float, segments: str) -> dict:  # in the worker thread
        check_deadline(deadline)  # it may have waited in the queue past its limit: its client has a 503
        wave = recognizer.load_wave(io.BytesIO(data), name=name)
        check_deadline(deadline)
        duration = len(wave) / 16000
        out = {"file": name, "duration": round(duration, 3), **recognizer._result(wave)}
        out["windows"] = recognizer.predict_windows(wave, s.window, s.hop, deadline) if duration > s.window else []
        if segments == "vad":
            from emotionnas.recognizer.segments import predict_segments
            check_deadline(deadline)
            try:
                out["segments"] = predict_segments(recognizer, wave, "vad", deadline=deadline)
            except ConfigError:  # no voice-activity packages installed: the windows stand alone
                out["segments"] = None
        return out

    def finished(_):
        app.state.busy -= 1

    @app.post("/predict")
    async def predict(file: UploadFile = File(None), segments: str = "none"):
        if segments not in ("none", "vad"):
            return _error(400, "segments: expected 'none' or 'vad'")
        if file is None:
            return _error(400, "no audio: send the file as multipart field 'file'")
        name = upload_name(file.filename)
        data = await file.read(s.limits.max_bytes + 1)
        if len(data) > s.limits.max_bytes:
            return _error(413, f"{name}: upload too big (limit {s.limits.max_bytes / 2 ** 20:g} MB)")
        if not data:
            return _error(400, f"{name}: empty file")
        if app.state.busy >= s.queue:
            return _error(503, "busy: too many requests in progress, retry later", {"Retry-After": "2"})
        app.state.busy += 1
        future = asyncio.get_running_loop().run_in_executor(app.state.pool, work, data, name,
                                                            time.monotonic() + s.timeout, segments)
        future.add_done_callback(finished)
        try:
            return await asyncio.wait_for(asyncio.shield(future), s.timeout + 1)
        except (asyncio.TimeoutError, TimeoutError):
            return _error(503, f"{name}: took longer than the {s.timeout:g} s limit", {"Retry-After": "5"})
        except AudioError as e:
            return _error(413 if e.limit else 400, str(e))
        except EmotionNASError as e:
            return _error(400, scrub(str(e), name))


def check_exposure(host: str, api_key: str | None, no_auth: bool, allow_hosts=LOOPBACK_HOSTS) -> None:
    """Off loopback (bound elsewhere, or answering other Host names, e.g. behind a proxy), a
    key is required unless the user says --no-auth."""
    public = host not in LOOPBACK_HOSTS or any(h not in LOOPBACK_HOSTS for h in allow_hosts)
    if public and not api_key and not no_auth:
        raise ConfigError(f"serving on {host} with hosts {list(allow_hosts)} (not this machine only) needs an API "
                          f"key: --api-key-file PATH, {API_KEY_ENV}=KEY or --api-key KEY, or say --no-auth")


def settings_for(host: str, settings: ServeSettings | None = None, no_auth: bool = False,
                 environ=os.environ) -> ServeSettings:
    """The settings a server bound to `host` runs with: the key from $EMOTIONNAS_API_KEY when
    none is set (checked, as every key), a key required off loopback, and the Host names that
    reach it (serve_access.hosts_for: the bind address, or this machine's own addresses when
    bound to all interfaces)."""
    s = settings or ServeSettings()
    key = check_api_key(s.api_key, "the settings (api_key)") if s.api_key is not None else resolve_api_key(
        environ=environ)
    check_exposure(host, key, no_auth, s.allow_hosts)
    return ServeSettings(**{**s.__dict__, "api_key": key, "allow_hosts": hosts_for(host, s.allow_hosts)})


def server_config(app, host: str, port: int, s: ServeSettings, log_level: str = "info"):
    """uvicorn's configuration: the guarded h11 protocol (serve_connections.py) with this
    service's deadlines and limits, no WebSocket upgrades (they would leave the protocol's
    bookkeeping), a 5 s keep-alive and request headers of at most 16 KB."""
    import uvicorn

    from emotionnas.recognizer.serve_connections import ConnectionLimits, guarded_protocol
    if not (s.header_timeout > 0 and s.timeout > 0 and s.max_per_client >= 1 and s.max_connections >= 1):
        raise ConfigError("serve: header_timeout and timeout must be > 0, max_per_client and max_connections >= 1")
    limits = ConnectionLimits(header_timeout=s.header_timeout, body_timeout=s.timeout,
                              max_per_client=s.max_per_client, max_connections=s.max_connections)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False,
                          http=guarded_protocol(limits), ws="none", timeout_keep_alive=5,
                          h11_max_incomplete_event_size=16 * 1024)


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          no_auth: bool = False) -> None:
    import uvicorn

    from emotionnas.recognizer.torch_backend import Recognizer
    s = settings_for(host, settings, no_auth)
    rec = Recognizer.load(model_dir)
    rec.encoder  # load the encoder before the first request, not during it
    server = uvicorn.Server(server_config(create_app(rec, s), host, port, s))
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot listen, after logging why
        if server.started:
            raise
    if not server.started:
        raise ConfigError(f"could not listen on {host}:{port} (the log line above says why, e.g. the port is in use)")
