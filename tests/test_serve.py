"""The HTTP service: the API in-process, and the page in a real headless browser."""
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow  # tiny_run (a real run_crossval) and a headless browser
from fastapi.testclient import TestClient  # noqa: E402

from emotionnas.recognizer import Recognizer  # noqa: E402
from emotionnas.recognizer.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def rec(tiny_run):
    return Recognizer.load(tiny_run[1])


@pytest.fixture(scope="module")
def client(rec):
    return TestClient(create_app(rec, max_bytes=2_000_000, max_seconds=60), base_url="http://127.0.0.1")


def wav_bytes(seconds: float, sr: int = 16000, demo_root=None) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_health(client, rec):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["labels"] == rec.labels


def test_predict_a_real_wav(client, rec, demo_root):
    wav = sorted((demo_root / "wav").glob("*.wav"))[0]
    r = client.post("/predict", files={"file": (wav.name, wav.read_bytes(), "audio/wav")})
    body = r.json()
    assert r.status_code == 200, body
    assert body["label"] in rec.labels and abs(sum(body["probs"].values()) - 1) < 1e-3
    assert body["windows"] == []  # shorter than one window
    expected = rec.predict(wav)
    assert body["label"] == expected["label"] and body["probs"] == expected["probs"]


def test_long_audio_gets_emotion_over_time(client, rec):
    r = client.post("/predict", files={"file": ("long.wav", wav_bytes(7.5), "audio/wav")})
    body = r.json()
    assert r.status_code == 200, body
    starts = [w["start"] for w in body["windows"]]
    assert starts == [0.0, 1.0, 2.0, 3.0, 4.0, 4.5] and body["windows"][-1]["end"] == pytest.approx(7.5, abs=1e-3)
    direct = rec.predict_windows(rec.load_wave(io.BytesIO(wav_bytes(7.5)), name="long.wav"))  # same as in-process
    assert [(w["start"], w["label"]) for w in body["windows"]] == [(w["start"], w["label"]) for w in direct]
    for w, d in zip(body["windows"], direct):
        assert w["probs"] == pytest.approx(d["probs"]) and sum(w["probs"].values()) == pytest.approx(1, abs=1e-3)


@pytest.mark.parametrize("name,data,status,words", [
    ("notes.txt", b"this is not audio at all", 400, "unreadable audio"),
    ("empty.wav", b"", 400, "empty"),
    ("silence.wav", None, 400, "silent"),
    ("long.wav", "long", 413, "too long"),
])
def test_bad_uploads_get_a_one_line_4xx_and_the_server_lives(client, name, data, status, words):
    if data is None:
        buf = io.BytesIO()
        sf.write(buf, np.zeros(16000, np.float32), 16000, format="WAV")
        data = buf.getvalue()
    elif data == "long":
        data = wav_bytes(61, sr=8000)
    r = client.post("/predict", files={"file": (name, data, "audio/wav")})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err and "\n" not in err
    assert client.get("/health").status_code == 200


def test_upload_size_limit_and_missing_file(client):
    big = b"RIFF" + b"\0" * 2_100_000
    r = client.post("/predict", files={"file": ("big.wav", big, "audio/wav")})
    assert r.status_code == 413 and "too big" in r.json()["error"]
    r = client.post("/predict", data={"x": "1"})
    assert r.status_code in (400, 422)


@pytest.fixture(scope="module")
def server(rec):
    from conftest import serve_in_thread
    yield from serve_in_thread(create_app(rec))


def _browser(extra_flags=()):
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or \
        "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver).exists()):
        pytest.skip("no chromium / chromedriver on this machine (CI installs them in .ci/run)")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", *extra_flags):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_page_in_a_real_browser_shows_the_bars_and_a_timeline(server, rec, demo_root, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    short = sorted((demo_root / "wav").glob("*.wav"))[0]
    long = tmp_path / "long.wav"
    long.write_bytes(wav_bytes(6.0))
    browser = _browser()
    try:
        browser.get(server + "/")
        wait = WebDriverWait(browser, 60)
        # drop the wav on the drop zone (a DataTransfer carrying the file, as a drag from the desktop)
        import base64
        browser.execute_script("""
            const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], arguments[1], {type: "audio/wav"}));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
        """, base64.b64encode(short.read_bytes()).decode(), short.name)
        wait.until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "#bars .bar")))
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
        assert [b.get_attribute("data-label") for b in bars] == rec.labels
        widths = [b.find_element(By.CSS_SELECTOR, ".fill").size["width"] for b in bars]
        expected = rec.predict(short)
        assert max(widths) > 0 and widths[rec.labels.index(expected["label"])] == max(widths)  # top class widest
        assert browser.find_element(By.ID, "label").text.startswith(expected["label"])
        browser.find_element(By.ID, "file").send_keys(str(long))
        wait.until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "#timeline rect.segment")))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline rect.segment")) == 4  # 0,1,2,3 s starts
        # a time axis under the 6 s timeline: ticks labelled in seconds from 0, none past the end
        ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#timeline .axis text")]
        assert ticks[0] == "0 s" and 4 <= len(ticks) <= 11 and float(ticks[-1].split()[0]) <= 6.0, ticks
        assert browser.find_elements(By.CSS_SELECTOR, "#timeline .axis line.tick")
        # the legend promises grey for no speech: it lists it, and grey is drawn under the segments
        legend = [x.text for x in browser.find_elements(By.CSS_SELECTOR, "#timeline .legend span")]
        assert legend == rec.labels + ["no speech"]
        track = browser.find_element(By.CSS_SELECTOR, "#timeline rect.track.nospeech")
        assert track.get_attribute("fill") == "#ccc" and track.get_attribute("width") == "1000"
        png = tmp_path / "page.png"
        browser.save_screenshot(str(png))
        assert png.stat().st_size > 1000
    finally:
        browser.quit()


def test_cli_emotion_over_time_and_timeline_plot(tiny_run, tmp_path, capsys):
    from emotionnas.cli import main
    wav = tmp_path / "long.wav"
    wav.write_bytes(wav_bytes(7.5))
    png = tmp_path / "timeline.png"
    assert main(["predict", "--model", str(tiny_run[1]), str(wav), "--windows", "3", "--hop", "1",
                 "--plot", str(png)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["start"] for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 4.5] and rows[-1]["end"] == 7.5
    assert png.stat().st_size > 5000


def test_page_streams_the_microphone_live(server, rec, tmp_path):
    """A fake microphone fed from real speech (EmoDB when present, else the demo corpus): the
    page sends a chunk every second and draws each answer on the live timeline."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from conftest import EMODB
    files = sorted((EMODB / "wav").glob("*.wav"))[:3]
    if not files:
        pytest.skip("no EmoDB for the fake microphone")
    speech = np.concatenate([sf.read(str(f), dtype="float32")[0] for f in files])
    mic = tmp_path / "mic.wav"
    sf.write(str(mic), speech, 16000, subtype="PCM_16")
    browser = _browser(("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                        f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"))
    try:
        browser.get(server + "/")
        wait = WebDriverWait(browser, 60)
        browser.find_element(By.ID, "record").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#live rect.live")) >= 3)
        live = browser.find_elements(By.CSS_SELECTOR, "#live rect.live")
        spoken = [r.get_attribute("data-label") for r in live if "speech" in r.get_attribute("class").split()]
        assert spoken and all(lab in rec.labels for lab in spoken), [r.get_attribute("class") for r in live]
        assert browser.find_element(By.ID, "livelabel").text.startswith("now: ")
        browser.find_element(By.ID, "record").click()  # stop: the whole recording is sent once
        wait.until(lambda b: b.find_element(By.ID, "label").text != "")
        assert browser.find_element(By.ID, "record").text == "Record"
    finally:
        browser.quit()
