"""The command line's edges (issue 30): one row per predict input in every format, exit codes,
a closed pipe, the demo model's warning, help on every option, --version, and `run` refusing a
bad corpus before it writes anything. Predictions use the untrained hand-made model folder of
test_hostile_input (these tests are about the CLI, not the model), in real subprocesses where
the process boundary matters (exit codes, pipes)."""
import argparse
import csv
import io
import json
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pytest

from conftest import write_wav
from emotionnas.cli import main
from emotionnas.cli.parser import build_parser
from emotionnas.errors import CorpusError

EMOTIONNAS = [sys.executable, "-m", "emotionnas"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from test_hostile_input import _exported_meta
    folder = tmp_path_factory.mktemp("model")
    _exported_meta(folder)
    return folder


def _speech(path, seed=0):
    """Voiced 'syllables' at 4 Hz for 1 s (as test_hostile_service.speechlike): the speech gate
    lets them through, so the model gives a label."""
    t = np.arange(16000) / 16000
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, 1) ** 2
    wave = 0.3 * env * np.sin(2 * np.pi * 150 * t) * (1 + 0.3 * np.sin(2 * np.pi * 450 * t))
    return write_wav(path, wave + np.random.default_rng(seed).normal(0, 0.002, len(t)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A good file, a missing one, an empty folder, a corrupt file, a silent file, a good file:
    (paths as given, the word each bad one's error must hold, None for a good one)."""
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "empty").mkdir()
    (tmp / "corrupt.wav").write_bytes(b"RIFF not really a wav file")
    write_wav(tmp / "silent.wav", np.zeros(16000, np.float32))
    given = [(_speech(tmp / "a.wav"), None), (tmp / "missing.wav", "no such file or folder"),
             (tmp / "empty", "empty folder"), (tmp / "corrupt.wav", "unreadable audio"),
             (tmp / "silent.wav", "silent"), (_speech(tmp / "b.wav", seed=1), None)]
    return [(str(p), word) for p, word in given]


def _predict(model, args, **kw):
    return subprocess.run(EMOTIONNAS + ["predict", "--model", str(model), *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_every_input_gets_one_row_in_order_in_every_format(model, inputs):
    paths = [p for p, _ in inputs]
    for fmt in ("jsonl", "hf", "csv"):
        proc = _predict(model, ["--format", fmt, *paths])
        assert proc.returncode == 0, proc.stderr  # some inputs were recognised
        if fmt == "csv":
            table = list(csv.DictReader(io.StringIO(proc.stdout)))
            rows = [{"file": r["file"], "label": r["label"] or None, "error": r["error"] or None} for r in table]
        else:
            rows = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [r["file"] for r in rows] == paths, fmt
        for row, (path, word) in zip(rows, inputs):
            if word is None:
                assert not row.get("error") and (row.get("label") in ("a", "b") or row.get("predictions"))
            else:
                assert word in row["error"] and path in row["error"] and "\n" not in row["error"], (fmt, row)
                assert row.get("label") is None and not row.get("predictions")
        assert sum(line.startswith("failed: ") for line in proc.stderr.splitlines()) == 4


def test_exit_code_is_1_only_when_every_input_failed(model, inputs):
    bad = [p for p, word in inputs if word is not None]
    proc = _predict(model, bad)
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == len(bad)


def test_hf_honours_top_k_and_names_the_file(model, inputs):
    good = inputs[0][0]
    one = json.loads(_predict(model, ["--format", "hf", "--top-k", "1", good]).stdout)
    every = json.loads(_predict(model, ["--format", "hf", good]).stdout)
    assert one["file"] == every["file"] == good
    assert len(one["predictions"]) == 1 and len(every["predictions"]) == 2
    assert one["predictions"][0] == every["predictions"][0]  # the best class, best first
    assert every["predictions"][0]["score"] >= every["predictions"][1]["score"]


def test_hf_segments_carry_start_and_end(model, inputs, capsys):
    assert main(["predict", "--model", str(model), "--format", "hf", "--windows", "0.5", "--hop", "0.5",
                 inputs[0][0]]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 0.5), (0.5, 1.0)]


def test_a_closed_pipe_ends_quietly_with_exit_0(model, inputs):
    good = inputs[0][0]
    command = " ".join(EMOTIONNAS + ["predict", "--model", str(model)] + [good] * 6)
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and json.loads(proc.stdout)["file"] == good
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_the_demo_model_says_what_it_is(model, inputs, tmp_path):
    import shutil
    demo = tmp_path / "demo-model"
    shutil.copytree(model, demo)
    meta = json.loads((demo / "model.json").read_text())
    meta["source"] = {"corpus": "demo", "synthetic": True}
    (demo / "model.json").write_text(json.dumps(meta))
    warned = _predict(demo, [inputs[0][0]])
    assert warned.returncode == 0
    lines = [x for x in warned.stderr.splitlines() if x.startswith("warning:")]
    assert len(lines) == 1 and "SYNTHETIC" in lines[0] and str(demo) in lines[0]
    assert "warning" not in _predict(model, [inputs[0][0]]).stderr  # a model of real speech says nothing


def test_every_option_has_help_and_version_is_the_installed_one():
    missing = []

    def walk(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{where} {name}")
            elif not action.help:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    walk(build_parser(), "emotionnas")
    assert missing == []
    proc = subprocess.run(EMOTIONNAS + ["--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"emotionnas {version('emotionnas')}"
    text = subprocess.run(EMOTIONNAS + ["predict", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "every input failed" in " ".join(text.split())


def test_run_refuses_an_unknown_corpus_or_wrong_root_before_writing(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(EMOTIONNAS + ["run", "dem", str(tmp_path), "--out", str(out)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown corpus 'dem'")
    assert len(proc.stderr.splitlines()) == 1 and not out.exists()
    (tmp_path / "emodb" / "wav").mkdir(parents=True)
    proc = subprocess.run(EMOTIONNAS + ["run", "emodb", str(tmp_path / "emodb" / "wav"), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"did you mean {tmp_path / 'emodb'}?" in proc.stderr and not out.exists()


def test_run_prints_its_plan_and_a_refusal_after_the_lock_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "tess").mkdir()  # a folder, but no audio in it: refused when the corpus is read
    out = tmp_path / "run"
    assert main(["run", "tess", str(tmp_path / "tess"), "--out", str(out), "--set", "search_groups=3",
                 "--baselines", "--set", "final_model=false", "--set", "selection.budget=7"]) == 2
    captured = capsys.readouterr()
    plan = [x for x in captured.out.splitlines() if x.startswith("plan: ")]
    assert len(plan) == 1
    for words in ("3 selection groups", "up to 7 candidates", "3-fold inner CV", "baselines on", "final model off",
                  "3 stages"):
        assert words in plan[0], plan[0]
    assert "no usable tess audio" in captured.err and not out.exists()


@pytest.mark.parametrize("name,make,given,hint", [
    ("emodb", "emodb/wav", "emodb/wav", "emodb"),
    ("emodb", "data/emodb/wav", "data", "data/emodb"),
    ("iemocap", "IEMOCAP/Session1", "IEMOCAP/Session1", "IEMOCAP"),
    ("ravdess", "ravdess/Actor_01", "ravdess/Actor_01", "ravdess"),
    ("msp-improv", "msp/session1", "msp/session1", None),
])
def test_corpus_root_layout_hints(tmp_path, name, make, given, hint):
    from emotionnas.data.corpora.layout import check_layout
    (tmp_path / make).mkdir(parents=True)
    with pytest.raises(CorpusError) as e:
        check_layout(name, tmp_path / given)
    assert str(tmp_path / given) in str(e.value) and "\n" not in str(e.value)
    if hint is not None:
        assert str(e.value).endswith(f"(did you mean {tmp_path / hint}?)")
    if hint is not None:
        check_layout(name.upper(), tmp_path / hint)  # the root it suggests is accepted (any spelling of the name)


@pytest.mark.slow  # starts a real demo run (features and the first search epoch) before stopping it
def test_sigterm_of_a_run_says_how_to_resume_and_leaks_nothing(demo_root, tmp_path):
    """SIGTERM while worker processes search: exit 143, one line saying how to resume, and no
    "leaked semaphore objects" warning from multiprocessing's resource tracker (its output would
    arrive on the same stderr, which is read to the end, after every holder has closed it)."""
    import signal
    import time

    from emotionnas.cli import demo_config
    cfg = demo_config(str(demo_root), str(tmp_path / "cache"))
    cfg.max_folds, cfg.threads, cfg.workers = 2, 1, 2
    (tmp_path / "cfg.yaml").write_text(cfg.to_yaml())
    run = tmp_path / "run"
    proc = subprocess.Popen(EMOTIONNAS + ["--quiet", "run", "demo", str(demo_root), "--out", str(run), "--config",
                                          str(tmp_path / "cfg.yaml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        while proc.poll() is None and next(run.glob("searches/*/*/search_log.json"), None) is None:
            time.sleep(0.2)  # polling for a file, not timing anything
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines() == ["interrupted: finished work is saved; run the same command again to resume"]
    assert "leaked semaphore" not in err and out.startswith("plan: first 2 folds of loso")


def test_enrolling_an_empty_or_missing_folder_says_so(model, inputs, tmp_path):
    import shutil
    adaptive = tmp_path / "adaptive"
    shutil.copytree(model, adaptive)
    meta = json.loads((adaptive / "model.json").read_text())
    (adaptive / "model.json").write_text(json.dumps({**meta, "speaker_norm": True}))
    (tmp_path / "nothing").mkdir()
    for folder, words in ((tmp_path / "nothing", "empty folder"), (tmp_path / "gone", "no such file or folder")):
        proc = _predict(adaptive, ["--enroll", str(folder), inputs[0][0]])
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith(f"error: enroll: {folder}: {words}") and len(proc.stderr.splitlines()) == 1
