"""`emotionnas serve --model M`: the recognizer as an HTTP service with a page.

    GET  /          a page: drop or record audio, see the probabilities as bars and, for audio
                    longer than one window, a timeline of emotion over time
    GET  /health    {"status": "ok", "labels": [...], "members": [...]}
    POST /predict   multipart upload (field `file`) -> {"label", "probs", "duration", "windows"}

Uploads are size-limited (the body is refused before it is read when Content-Length says it
is too big, and reading stops at the limit otherwise); audio that is not audio, empty, silent
or too long gets a 4xx with a one-line reason. The server binds to 127.0.0.1 unless told
otherwise. Inference runs one request at a time (the model is not re-entrant).
"""
import io
import threading
from importlib import resources

from emotionnas.errors import AudioError, EmotionNASError

MAX_BYTES = 25 * 1024 * 1024     # ~13 min of 16 kHz 16-bit mono WAV
MAX_SECONDS = 600.0


def create_app(recognizer, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS,
               window: float = 3.0, hop: float = 1.0):
    from fastapi import FastAPI, File, Request, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="emotionnas", docs_url=None, redoc_url=None)
    lock = threading.Lock()
    page = resources.files("emotionnas").joinpath("page.html").read_text(encoding="utf-8")

    def error(status: int, reason: str):
        return JSONResponse({"error": reason}, status_code=status)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return error(411, "send a Content-Length header")
            if not length.isdigit() or int(length) > max_bytes:
                return error(413, f"upload too big (limit {max_bytes // (1024 * 1024)} MB)")
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return page

    @app.get("/health")
    def health():
        return {"status": "ok", "labels": recognizer.labels,
                "members": [m.name for m in recognizer.spec.members], "window": window, "hop": hop}

    @app.post("/predict")
    async def predict(file: UploadFile = File(None)):
        if file is None:
            return error(400, "no audio: send the file as multipart field 'file'")
        data = await file.read(max_bytes + 1)
        if len(data) > max_bytes:
            return error(413, f"upload too big (limit {max_bytes // (1024 * 1024)} MB)")
        if not data:
            return error(400, f"{file.filename or 'upload'}: empty file")
        name = (file.filename or "upload")[:200]
        try:
            from emotionnas.data.audio import load_audio
            wave = load_audio(io.BytesIO(data), max_seconds=max_seconds, name=name)
            with lock:
                p = recognizer.predict_proba(wave)
                duration = len(wave) / 16000
                windows = recognizer.predict_windows(wave, window, hop) if duration > window else []
        except AudioError as e:
            status = 413 if "too long" in e.reason else 400
            return error(status, str(e))
        except EmotionNASError as e:
            return error(400, str(e))
        labels = recognizer.labels
        return {"file": name, "label": labels[int(p.argmax())], "duration": round(duration, 3),
                "probs": {lab: round(float(v), 4) for lab, v in zip(labels, p)}, "windows": windows}

    return app


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, **kw) -> None:
    import uvicorn

    from emotionnas.recognizer import Recognizer
    rec = Recognizer.load(model_dir)
    rec.encoder  # load the encoder before the first request, not during it
    uvicorn.run(create_app(rec, **kw), host=host, port=port, log_level="info")
