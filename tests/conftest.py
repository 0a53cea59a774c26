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
    """A finished 2-fold demo run (with baselines), its report and an exported model."""
    from emotionnas.cli import demo_config
    from emotionnas.recognizer.export import export_run
    from emotionnas.reports.report import write_report
    from emotionnas.training.crossval import run_crossval
    tmp = tmp_path_factory.mktemp("tiny_run")
    cfg = demo_config(str(demo_root), str(tmp / "cache"))
    cfg.max_folds, cfg.baselines = 2, True
    cfg.selection.budget = 6
    run_crossval(cfg, tmp / "run", progress=False, log=lambda *a: None)
    write_report(tmp / "run")
    export_run(tmp / "run", tmp / "model")
    return tmp / "run", tmp / "model"


def check_search_outputs(out_dir, cell, warmup_epochs: int) -> dict:
    """The outputs both cell searches share (search/loop.py): the log and record format, the
    checkpoint, and the derive rule (the result is the last epoch's cell). Returns the log."""
    import json

    import torch

    from emotionnas.search.loop import FORMAT, LOG, LOG_KEYS, RECORD_KEYS, RULE, STATE
    out_dir = Path(out_dir)
    log = json.loads((out_dir / LOG).read_text())
    assert tuple(log) == LOG_KEYS and log["format"] == FORMAT and log["rule"] == RULE == "last epoch"
    records = log["epochs"]
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
    for r in records:
        assert tuple(r) == RECORD_KEYS
        assert r["alpha_step"] == (r["epoch"] > warmup_epochs)
        assert (r["alpha_loss"] is None) == (not r["alpha_step"])
        assert 0 <= r["val_ua"] <= 100 and 0 <= r["val_wa"] <= 100 and r["val_loss"] >= 0
        assert isinstance(r["arch"], dict) and isinstance(r["cell"], dict)
        json.dumps(r["cell"])  # plain data
    assert log["result_epoch"] == len(records)
    if records:
        assert records[-1]["cell"] == cell  # the derive rule: the last epoch's cell
    state = torch.load(out_dir / STATE, weights_only=True)
    assert state["format"] == FORMAT and state["epoch"] == len(records)
    assert json.loads(state["log"]) == records
    return log
