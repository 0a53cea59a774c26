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
