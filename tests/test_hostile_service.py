"""Issue 16's attacks, one test per class: decompression bombs and hostile headers, a service
that stays up (off the event loop, bounded queue, time limit), Host/API-key/CORS/page safety,
model folders sized before anything is built, no speech -> no emotion, arrays as files, and
errors without Python object reprs. Issue 31's (idle and slow connections, API keys, this
machine's own addresses as Host) are in test_hostile_connections.py. docs/robustness.md lists
them."""
import io
import json
import re
import resource
import struct
import threading
import time
from importlib import resources

import numpy as np
import pytest
import soundfile as sf

from emotionnas.data.audio import AudioLimits, load_audio, prepare_array
from emotionnas.errors import AudioError, ConfigError

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from emotionnas.recognizer import Recognizer  # noqa: E402
from emotionnas.recognizer.serve import ServeSettings, check_exposure, create_app, host_name  # noqa: E402

LOCAL = "http://127.0.0.1"


def speechlike(seconds: float, sr: int = 16000) -> np.ndarray:
    """Voiced 'syllables' at 4 Hz (passes the speech gate like real speech)."""
    t = np.arange(int(seconds * sr)) / sr
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, 1) ** 2
    return (0.3 * env * np.sin(2 * np.pi * 150 * t) * (1 + 0.3 * np.sin(2 * np.pi * 450 * t))).astype(np.float32)


def wav(x: np.ndarray, sr: int = 16000, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def wav_header(sr: int, channels: int, data_bytes: int, bits: int = 16) -> bytes:
    """A PCM WAV header whose fields say anything we like."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", min(36 + data_bytes, 2 ** 32 - 1)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr,
            sr * block, block, bits) + b"data" + struct.pack("<I", data_bytes))


def client_for(rec, **kw):
    return TestClient(create_app(rec, **kw), base_url=LOCAL)


# ------------------------------------------------------------ bounded decoding
def test_flac_bomb_is_refused_from_its_header_before_decoding(rec):
    """A small FLAC declaring 8 channels at 96 kHz: its decoded size is over the limit."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 96000, 8, format="FLAC", subtype="PCM_16") as f:
        block = np.full((96000, 8), 0.25, np.float32)
        for _ in range(20):
            f.write(block)
    data = buf.getvalue()
    assert len(data) < 200_000  # a few hundred KB that would decode to 61 MB of float32
    limits = AudioLimits(max_seconds=300, max_decoded_mb=32)
    with pytest.raises(AudioError, match="decodes to 59 MB > limit 32 MB") as e:
        load_audio(io.BytesIO(data), name="bomb.flac", limits=limits)
    assert e.value.limit and str(e.value).startswith("bomb.flac: ")
    r = client_for(rec, limits=limits).post("/predict", files={"file": ("bomb.flac", data, "audio/flac")})
    assert r.status_code == 413 and "decodes to" in r.json()["error"]


def test_lying_header_is_refused_and_limits_are_counted_while_decoding(tmp_path):
    """A WAV whose data size says 4 GB: refused by the limit, whatever the header claims; and
    the decoder counts the limits block by block (for formats whose header has no length)."""
    from emotionnas.data.audio import _decode
    x = (speechlike(4.0) * 32767).astype("<i2").tobytes()
    p = tmp_path / "liar.wav"
    p.write_bytes(wav_header(16000, 1, 0xFFFFFFF0) + x)
    with pytest.raises(AudioError, match="too long") as e:
        load_audio(p, limits=AudioLimits(max_seconds=2.0))
    assert e.value.limit
    seen = []

    def endless():
        while True:
            seen.append(1)
            yield np.full((16000, 2), 0.1, np.float32)
    with pytest.raises(AudioError, match="too long"):
        _decode(endless(), 16000, 2, "stream", AudioLimits(max_seconds=5.0), 16000)
    assert len(seen) == 6  # stopped at the first block over the limit


@pytest.mark.parametrize("sr,channels,match", [(1, 1, "sample rate 1 Hz"), (400_000, 1, "sample rate 400000"),
                                               (16000, 64, "64 channels")])
def test_hostile_header_fields_are_refused_before_allocation(rec, sr, channels, match):
    data = wav_header(sr, channels, 1200) + b"\x01\x00" * 600
    with pytest.raises(AudioError, match=match):
        load_audio(io.BytesIO(data), name="hdr.wav")
    r = client_for(rec).post("/predict", files={"file": ("hdr.wav", data, "audio/wav")})
    assert r.status_code == 413 and match in r.json()["error"]


def test_decoding_streams_in_blocks_and_matches_one_shot(tmp_path):
    """Stereo 44.1 kHz: block-wise mixdown + streaming resampler = the mean of the channels
    resampled in one go (to float32 rounding), and the result is the 16 kHz length."""
    import soxr
    x = np.stack([speechlike(9.0, 44100), 0.5 * speechlike(9.0, 44100)], axis=1)
    p = tmp_path / "st.flac"
    sf.write(str(p), x, 44100, subtype="PCM_24")
    got = load_audio(p)
    ref = soxr.resample(sf.read(str(p), dtype="float32")[0].mean(axis=1), 44100, 16000, quality="HQ")
    assert abs(len(got) - len(ref)) <= 1
    n = min(len(got), len(ref))
    assert np.abs(got[:n] - ref[:n]).max() < 1e-3


# ------------------------------------------------------------ arrays behave like files
def test_array_gives_the_same_probabilities_as_its_file(rec, tmp_path):
    x = speechlike(2.5)
    p = tmp_path / "utt.wav"
    sf.write(str(p), x, 16000, subtype="PCM_16")
    as_int16, _ = sf.read(str(p), dtype="int16")
    from_file = rec.predict(p)
    assert from_file["speech"] is True
    assert rec.predict(as_int16, sample_rate=16000) == from_file
    assert rec.predict(as_int16.astype(np.float32) / 32768, sample_rate=16000) == from_file
    stereo = np.stack([as_int16, as_int16])  # (2, N): channel-first
    assert rec.predict(stereo, sample_rate=16000) == from_file
    assert rec.predict(stereo.T.copy(), sample_rate=16000) == from_file


def test_arrays_are_scaled_mixed_down_and_clipped():
    x = np.array([0, 16384, -32768, 32767] * 1000, np.int16)
    y = prepare_array(x, 16000)
    assert y.dtype == np.float32 and y[1] == 0.5 and y[2] == -1.0
    u8 = prepare_array(np.array([128, 192, 0, 255] * 1000, np.uint8), 16000)
    assert u8[0] == 0 and u8[1] == 0.5 and u8[2] == -1.0
    loud = prepare_array(np.full(4000, 3.0, np.float32), 16000)
    assert loud.max() == 1.0
    with pytest.raises(AudioError, match="unsupported sample type"):
        prepare_array(np.array(["a"] * 4000), 16000)
    with pytest.raises(AudioError, match="sample rate 1 Hz"):
        prepare_array(x, 1)


# ------------------------------------------------------------ no speech, no emotion
@pytest.mark.parametrize("kind", ["one LSB", "dither", "short tone", "steady noise"])
def test_no_speech_gets_no_emotion(rec, kind):
    n = 32000
    rng = np.random.default_rng(0)
    if kind == "one LSB":
        x = np.zeros(n, np.int16)
        x[n // 2] = 1
    elif kind == "dither":
        x = (1e-4 * rng.standard_normal(n)).astype(np.float32)
    elif kind == "short tone":
        x = np.zeros(n, np.float32)
        x[8000:9600] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)
    else:
        x = (0.1 * rng.standard_normal(n)).astype(np.float32)
    out = rec.predict(x, sample_rate=16000)
    assert out == {"label": None, "probs": None, "speech": False}
    r = client_for(rec).post("/predict", files={"file": ("quiet.wav", wav(x), "audio/wav")})
    assert r.status_code == 200 and r.json()["label"] is None and r.json()["speech"] is False


def test_windows_without_speech_are_unlabelled(rec):
    x = np.concatenate([speechlike(3.0), np.zeros(48000, np.float32), speechlike(3.0)])
    rows = rec.predict_windows(x, 3.0, 3.0)
    assert [r["speech"] for r in rows] == [True, False, True]
    assert rows[1]["label"] is None and rows[0]["label"] in rec.labels


# ------------------------------------------------------------ errors name the input, never a repr
def test_text_upload_error_names_the_upload_not_an_object(rec):
    r = client_for(rec).post("/predict", files={"file": ("notes.txt", b"hello, not audio", "text/plain")})
    err = r.json()["error"]
    assert r.status_code == 400 and err.startswith("notes.txt: unreadable audio")
    assert not re.search(r"object at 0x|<_io", err)
    with pytest.raises(AudioError) as e:
        load_audio(io.BytesIO(b"hello"))
    assert "0x" not in str(e.value) and str(e.value).startswith("upload: ")


# ------------------------------------------------------------ Host, auth, CORS, page
def test_host_allow_list(rec):
    c = client_for(rec)
    assert c.get("/health", headers={"Host": "evil.example"}).status_code == 400
    assert c.get("/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert c.get("/health", headers={"Host": "[::1]:8000"}).status_code == 200
    assert c.get("/health", headers={"Host": "localhost"}).status_code == 200
    extra = client_for(rec, allow_hosts=("127.0.0.1", "emotions.example.org"))
    assert extra.get("/health", headers={"Host": "emotions.example.org:443"}).status_code == 200
    assert host_name("[::1]:80") == "::1" and host_name("Example.ORG:8000") == "example.org"


def test_no_cors_unless_asked(rec):
    r = client_for(rec).get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = client_for(rec, cors_origins=("http://app.example",)).get("/health", headers={"Origin": "http://app.example"})
    assert r.headers["access-control-allow-origin"] == "http://app.example"


def test_api_key_required_when_set_and_off_loopback(rec):
    c = client_for(rec, api_key="s3cret-s3cret-s3cret")
    assert c.get("/health").status_code == 401
    assert c.get("/health", headers={"X-API-Key": "wrong"}).status_code == 401
    assert c.get("/health", headers={"Authorization": "Bearer s3cret-s3cret-s3cret"}).status_code == 200
    assert c.get("/").status_code == 200  # the page itself holds no data; it asks for the key
    with pytest.raises(ConfigError, match="needs an API key"):
        check_exposure("0.0.0.0", None, no_auth=False)
    check_exposure("0.0.0.0", "k", no_auth=False)
    check_exposure("0.0.0.0", None, no_auth=True)
    check_exposure("127.0.0.1", None, no_auth=False)


def test_page_has_a_csp_and_inserts_data_only_as_text(rec):
    r = client_for(rec).get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and r.headers["x-content-type-options"] == "nosniff"
    page = resources.files("emotionnas.recognizer")
    for name in ("page.html", "page.js"):
        text = page.joinpath(name).read_text()
        assert not re.search(r"\.innerHTML\s*=|insertAdjacentHTML|outerHTML\s*=|document\.write", text), name
    assert "<script>" not in page.joinpath("page.html").read_text()  # no inline script for the CSP to allow


def test_markup_in_labels_is_refused(tmp_path):
    from test_hostile_input import _exported_meta
    meta = _exported_meta(tmp_path)
    meta["label_names"] = ["<img src=x onerror=alert(1)>", "b"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"label_names\[0\].*without markup"):
        Recognizer.load(tmp_path)


# ------------------------------------------------------------ model folders sized before building
def test_huge_model_json_is_refused_before_anything_is_allocated(tmp_path):
    from test_hostile_input import _exported_meta
    meta = _exported_meta(tmp_path)
    gru = meta["members"][1]
    gru["candidate"].update(deep="lstm", hidden=4096, layers=[1, 2])
    meta["members"] = [dict(gru, name=f"m{i}", weights_prefix=f"m{i}.") for i in range(32)]
    meta["dims"]["deep_dim"] = 8192
    (tmp_path / "model.json").write_text(json.dumps(meta))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="parameters > limit") as e:
        Recognizer.load(tmp_path)
    assert "model.json" in str(e.value) and time.perf_counter() - t0 < 30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KB: < 200 MB grown


def test_weights_header_is_checked_against_the_description(tmp_path):
    from safetensors.torch import load_file, save_file
    from test_hostile_input import _exported_meta
    _exported_meta(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    name = sorted(state)[0]
    state[name] = state[name].flatten()[:1].clone()
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match=f"tensor {re.escape(name)}"):
        Recognizer.load(tmp_path)
    huge = json.dumps({"w": {"dtype": "F32", "shape": [2 ** 20, 2 ** 20], "data_offsets": [0, 4]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(huge)) + huge + b"\0" * 4)
    with pytest.raises(ConfigError, match="parameters"):
        Recognizer.load(tmp_path)


# ------------------------------------------------------------ a service that stays up
@pytest.fixture(scope="module")
def live(rec):
    """A real uvicorn server on loopback with a queue of 1 and a short time limit."""
    from conftest import serve_in_thread
    yield from serve_in_thread(create_app(rec, ServeSettings(queue=1, timeout=20.0, hop=0.25)))


@pytest.mark.slow  # a real uvicorn server and a long inference
def test_health_answers_while_a_long_request_runs_and_a_full_queue_gets_503(live):
    import requests
    long_audio = wav(speechlike(40.0))
    done = {}

    def long_request():
        t0 = time.perf_counter()
        done["response"] = requests.post(live + "/predict", files={"file": ("long.wav", long_audio, "audio/wav")})
        done["seconds"] = time.perf_counter() - t0

    worker = threading.Thread(target=long_request)
    worker.start()
    deadline = time.monotonic() + 10
    while requests.get(live + "/health").json()["busy"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.perf_counter()
    health = requests.get(live + "/health")
    health_seconds = time.perf_counter() - t0
    busy = requests.post(live + "/predict", files={"file": ("more.wav", wav(speechlike(2.0)), "audio/wav")})
    still_running = worker.is_alive()
    worker.join(120)
    assert health.status_code == 200 and still_running, "the long request should still be running"
    assert health_seconds < done["seconds"] / 4  # answered while the inference ran, not after it
    assert busy.status_code == 503 and busy.headers["retry-after"]
    assert done["response"].status_code == 200 and len(done["response"].json()["windows"]) > 100


def test_request_time_is_bounded(rec):
    c = client_for(rec, timeout=0.5, hop=0.1)
    r = c.post("/predict", files={"file": ("long.wav", wav(speechlike(60.0)), "audio/wav")})
    assert r.status_code == 503 and "limit" in r.json()["error"] and "retry-after" in r.headers


# ------------------------------------------------------------ found by a review of the change
def test_truncated_file_decodes_what_it_holds_deterministically(tmp_path):
    """A file cut short (its header promises more frames) decodes to the frames it holds, the
    same every time (a block reader that pads short reads would return stale memory)."""
    p = tmp_path / "full.flac"
    sf.write(str(p), speechlike(4.0), 16000, subtype="PCM_16")
    data = p.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    try:
        first = load_audio(cut)
    except AudioError as e:  # a decoder may also refuse the broken tail: then it must say so in one line
        assert "cut.flac" in str(e) and "\n" not in str(e)
        return
    assert len(first) < 4 * 16000 and np.isfinite(first).all()
    for _ in range(3):
        assert np.array_equal(load_audio(cut), first)


def test_cross_site_posts_and_query_tricks_are_refused(rec):
    c = client_for(rec)
    files = {"file": ("a.wav", wav(speechlike(1.0)), "audio/wav")}
    r = c.post("/predict", files=files, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    assert c.post("/predict", files=files, headers={"Origin": "http://127.0.0.1:8000"}).status_code == 200
    assert client_for(rec, cors_origins=("http://app.example",)).post(
        "/predict", files=files, headers={"Origin": "http://app.example"}).status_code == 200
    assert c.get("/?path=nope").status_code == 200 and b"<html" in c.get("/?path=/page.js").content


def test_api_key_scheme_is_case_insensitive_and_public_hosts_need_a_key(rec):
    c = client_for(rec, api_key="k3y-k3y-k3y-k3y-k3y")
    assert c.get("/health", headers={"Authorization": "bearer k3y-k3y-k3y-k3y-k3y"}).status_code == 200
    assert c.get("/health", headers={"Authorization": "Basic k3y-k3y-k3y-k3y-k3y"}).status_code == 401
    with pytest.raises(ConfigError, match="needs an API key"):
        check_exposure("127.0.0.1", None, False, ("127.0.0.1", "emotions.example.org"))
    check_exposure("127.0.0.1", "k3y-k3y-k3y-k3y-k3y", False, ("127.0.0.1", "emotions.example.org"))


def test_padded_speech_stretches_never_overlap():
    from emotionnas.data.vad import VADSettings, speech_segments
    probs = [np.array([0.9] * 10 + [0.1] * 10 + [0.9] * 10, np.float32)]  # a 0.32 s pause
    wide = speech_segments(probs, VADSettings(min_silence=0.3, pad=0.2, min_speech=0.1))
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(wide, wide[1:]))
    assert len(wide) == 1  # the pads met: one stretch
    assert len(speech_segments(probs, VADSettings(min_silence=0.3, pad=0.01, min_speech=0.1))) == 2

