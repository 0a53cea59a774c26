import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "data" / "emodb"


@pytest.fixture
def emodb_root():
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"EmoDB not found at {EMODB}")
    return EMODB


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    from emotionnas.data.demo import make_demo_corpus
    root = tmp_path_factory.mktemp("demo")
    make_demo_corpus(root, per_class=2)
    return root


def write_wav(path, wave, sr=16000, subtype="PCM_16"):
    import soundfile as sf
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave), sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, demo_root):
    """A finished 2-fold demo run (with baselines), its report and an exported model (its log in
    log.txt beside them)."""
    from emotionnas.cli import demo_config
    from emotionnas.recognizer.export import export_run
    from emotionnas.reports.report import write_report
    from emotionnas.training.crossval import run_crossval
    tmp = tmp_path_factory.mktemp("tiny_run")
    cfg = demo_config(str(demo_root), str(tmp / "cache"))
    cfg.max_folds, cfg.baselines = 2, True
    cfg.selection.budget = 6
    lines = []
    run_crossval(cfg, tmp / "run", progress=False, log=lines.append)
    (tmp / "log.txt").write_text("\n".join(map(str, lines)))  # what a user saw (tests/test_progress.py)
    write_report(tmp / "run")
    export_run(tmp / "run", tmp / "model")
    return tmp / "run", tmp / "model"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained hand-made two-member model folder (test_hostile_input._exported_meta), one per
    test module: the attacks of test_hostile_service and test_hostile_connections are on decoding,
    the speech gate, the service and the model folder, and need no trained run (so they stay in
    `make test-fast`). A module that wants a trained model defines its own `rec` (test_serve)."""
    from test_hostile_input import _exported_meta
    folder = tmp_path_factory.mktemp("model")
    _exported_meta(folder)
    return folder


@pytest.fixture(scope="module")
def rec(model_dir):
    """The recognizer of `model_dir`."""
    from emotionnas.recognizer import Recognizer
    return Recognizer.load(model_dir)


def scores_possible(y_val, ua: float, wa: float) -> bool:
    """Whether some prediction vector on labels `y_val` scores exactly this UA and WA (percent):
    WA is hits/n and UA the mean over the classes present of hits_c/n_c, for whole hit counts."""
    import itertools
    counts = np.bincount(np.asarray(y_val, int))
    counts = counts[counts > 0]
    return any(abs(100 * sum(h) / counts.sum() - wa) < 1e-6 and abs(100 * np.mean(np.divide(h, counts)) - ua) < 1e-6
               for h in itertools.product(*(range(c + 1) for c in counts)))


def check_fold_scores(run_dir, results: dict) -> None:
    """Every fold's scores are emotionnas.metrics on its saved test predictions, which are the
    argmax of the mean of its members' saved refit probabilities; the run's UA is their mean."""
    import json

    from emotionnas.metrics import mean_std, scores
    from emotionnas.rundir import RunDir
    rd, n = RunDir(run_dir), len(results["label_names"])
    assert results["folds"]
    for i, f in enumerate(results["folds"]):
        probs = [np.asarray(json.loads(rd.refit_json(i, m["key"]).read_text())["test_probs"], np.float32)
                 for m in f["members"]]
        assert np.mean(probs, axis=0).argmax(1).tolist() == f["test_pred"]
        sc = scores(f["test_true"], f["test_pred"], n)
        assert f["confusion"] == sc["confusion"] and sum(map(sum, f["confusion"])) == len(f["test_true"])
        assert [f[k] for k in ("ua", "wa", "macro_f1")] == pytest.approx([sc[k] for k in ("ua", "wa", "macro_f1")])
        assert [m["ua"] for m in f["members"]] == pytest.approx([scores(f["test_true"], p.argmax(1), n)["ua"]
                                                                 for p in probs])
    assert [results["ua"], results["ua_std"]] == pytest.approx(list(mean_std([f["ua"] for f in results["folds"]])))


def check_search_outputs(out_dir, cell, warmup_epochs: int, *, epochs: int, y_val) -> dict:
    """The outputs both cell searches share (search/loop.py): the log and record format, the
    checkpoint, and the derive rule (the result is the last epoch's cell). Every epoch's UA/WA
    is a score some prediction on `y_val` reaches. Returns the log."""
    import json

    import torch

    from emotionnas.search.loop import FORMAT, LOG, LOG_KEYS, RECORD_KEYS, RULE, STATE
    out_dir = Path(out_dir)
    log = json.loads((out_dir / LOG).read_text())
    assert tuple(log) == LOG_KEYS and log["format"] == FORMAT and log["rule"] == RULE == "last epoch"
    records = log["epochs"]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    for r in records:
        assert tuple(r) == RECORD_KEYS
        assert r["alpha_step"] == (r["epoch"] > warmup_epochs)
        assert (r["alpha_loss"] is None) == (not r["alpha_step"])
        assert scores_possible(y_val, r["val_ua"], r["val_wa"]), (r["val_ua"], r["val_wa"])
        assert np.isfinite(r["val_loss"]) and r["val_loss"] > 0  # cross-entropy of softmax outputs
        assert isinstance(r["arch"], dict) and isinstance(r["cell"], dict)
        json.dumps(r["cell"])  # plain data
    assert log["result_epoch"] == len(records)
    if epochs:
        assert records[-1]["cell"] == cell  # the derive rule: the last epoch's cell
    state = torch.load(out_dir / STATE, weights_only=True)
    assert state["format"] == FORMAT and state["epoch"] == len(records)
    assert json.loads(state["log"]) == records
    return log


def serve_in_thread(app, timeout: float = 10.0):
    """A real uvicorn server for `app` on a free loopback port, in a daemon thread: yields its
    URL, then stops it (use from a fixture: `yield from serve_in_thread(app)`)."""
    import socket
    import threading
    import time

    import uvicorn
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout)


class Interrupt(Exception):
    """Raised by `stop_after` to interrupt a search after an epoch (resume tests)."""


def stop_after(n):
    def hook(done, record):
        if done == n:
            raise Interrupt
    return hook


def without_time(log):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in log["epochs"]]
