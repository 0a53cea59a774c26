"""Fault tests: a run killed with SIGKILL in every stage, or left with truncated and corrupt
files, finishes on re-run with a results.json identical to an uninterrupted run.

The run is a real `emotionnas run` subprocess on the synthetic demo corpus (2 folds, two
cross-fitted searches). A watcher kills it a random moment after a stage's first file
appears; the kill points and delays come from a seeded RNG, printed on failure.
See docs/robustness.md for the table of fault classes.
"""
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emotionnas.cli import demo_config

pytestmark = pytest.mark.slow

# (stage, a file that appears once the stage is under way)
KILL_POINTS = [
    ("cnn search", "searches/*/cnn/search_log.json"),
    ("rnn search", "searches/*/rnn/search_log.json"),
    ("inner cross-validation", "searches/*/selection/*.npz"),
    ("second rung", "searches/*/selection.json"),
    ("refits", "folds/fold0*/*.json"),
    ("report", "results.json"),
    ("final model's inner CV", "searches/final/selection/*.npz"),
    ("final model's refit", "final/*.pt"),
]


def _command(corpus, out, cfg_path):
    return [sys.executable, "-m", "emotionnas", "--quiet", "run", "demo", str(corpus), "--out", str(out),
            "--config", str(cfg_path)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_root):
    tmp = tmp_path_factory.mktemp("faults")
    cfg = demo_config(str(demo_root), str(tmp / "cache"))
    cfg.max_folds, cfg.threads, cfg.workers = 2, 1, 2  # worker processes are killed with the run
    cfg_path = tmp / "cfg.yaml"
    cfg_path.write_text(cfg.to_yaml())
    base = tmp / "uninterrupted"
    subprocess.run(_command(demo_root, base, cfg_path), check=True, capture_output=True)
    assert (base / "final" / "final.json").exists()
    return tmp, cfg_path, (base / "results.json").read_bytes()


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_when(proc, run: Path, pattern: str, delay: float, timeout: float = 300) -> bool:
    """SIGKILL `proc` `delay` s after a file matching `pattern` appears; False if it ended first.
    Its worker processes must then exit on their own (they watch their parent)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            return False
        if next(run.glob(pattern), None) is not None:
            time.sleep(delay)
            if proc.poll() is not None:
                return False
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            t_gone = time.monotonic() + 10
            while any(_alive(w) for w in workers) and time.monotonic() < t_gone:
                time.sleep(0.1)
            assert not any(_alive(w) for w in workers), f"orphan workers after a kill at {pattern}"
            return True
        time.sleep(0.01)
    proc.kill()
    raise TimeoutError(pattern)


def test_sigkill_in_every_stage_then_resume_gives_identical_results(setup, demo_root):
    tmp, cfg_path, expected = setup
    rng = random.Random(20261201)
    run = tmp / "killed"
    log = []
    for stage, pattern in KILL_POINTS:
        delay = rng.uniform(0.0, 0.4)
        proc = subprocess.Popen(_command(demo_root, run, cfg_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        killed = _kill_when(proc, run, pattern, delay)
        log.append((stage, round(delay, 3), "killed" if killed else f"finished (rc {proc.returncode})"))
        if not killed:
            assert proc.returncode == 0, (log, proc.stderr.read().decode()[-2000:])
    assert sum(entry[2] == "killed" for entry in log) >= len(KILL_POINTS) - 1, log
    print("kill log:", log)
    done = subprocess.run(_command(demo_root, run, cfg_path), capture_output=True, text=True)
    assert done.returncode == 0, (log, done.stderr[-2000:])
    assert (run / "results.json").read_bytes() == expected, log
    assert (run / "report.md").exists()
    # the final model too: same members, calibration and weights as the uninterrupted run's
    base = tmp / "uninterrupted"
    assert (run / "final" / "final.json").read_bytes() == (base / "final" / "final.json").read_bytes(), log
    import torch
    for pt in sorted((base / "final").glob("*.pt")):
        a, b = torch.load(pt, weights_only=True), torch.load(run / "final" / pt.name, weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), pt.name


def test_resume_with_other_workers_and_cache_gives_identical_results(setup, demo_root):
    """How a run is carried out is not part of its identity: started with --workers 1, killed
    mid inner cross-validation, resumed with --workers 2 and another cache folder."""
    tmp, cfg_path, expected = setup
    run = tmp / "other-how"
    proc = subprocess.Popen(_command(demo_root, run, cfg_path) + ["--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert _kill_when(proc, run, "searches/*/selection/*.npz", 0.2), "the run ended before the kill"
    done = subprocess.run(_command(demo_root, run, cfg_path) + ["--workers", "2", "--cache", str(tmp / "cache2")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run / "results.json").read_bytes() == expected
    assert "workers: 2" in (run / "config.yaml").read_text()  # config.yaml: the latest start's config


def _truncate(path: Path, keep: int = 17):
    path.write_bytes(path.read_bytes()[:keep])


def test_truncated_and_corrupt_files_are_rebuilt(setup, demo_root):
    from emotionnas.rundir import RunDir
    tmp, cfg_path, expected = setup
    run = tmp / "corrupt"
    shutil.copytree(tmp / "uninterrupted", run)
    rd = RunDir(run)
    results = json.loads(rd.results.read_text())
    group = results["folds"][0]["search_group"]
    member = results["folds"][0]["members"][0]["key"]
    member1 = results["folds"][1]["members"][0]["key"]
    _truncate(rd.refit_weights(0, member))                           # checkpoint cut short
    rd.refit_json(1, member1).write_text("{not json")                # JSON garbage
    record = sorted((rd.search_dir(group) / "selection").glob("*.npz"))[0]
    record.write_bytes(b"PK\x03\x04" + b"\x00" * 64)                  # a broken zip
    _truncate(rd.search_record(group))                               # search result cut short
    _truncate(rd.search_dir(group) / "rnn" / "search_state.pt")     # and its search checkpoint
    entry = next((tmp / "cache").rglob("*.npy"))
    _truncate(entry, 40)                                             # a feature-cache entry
    rd.results.unlink()
    proc = subprocess.run(_command(demo_root, run, cfg_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert rd.results.read_bytes() == expected
    assert (proc.stdout + proc.stderr).count("unreadable") >= 4  # each rebuild is reported, not silent


def test_changed_corpus_between_runs_is_refused(setup, demo_root, tmp_path):
    tmp, cfg_path, _ = setup
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_root, corpus)
    run = tmp_path / "run"
    shutil.copytree(tmp / "uninterrupted", run)
    # the copied run was made from demo_root: same content hashes, same ids -> accepted
    cfg = demo_config(str(corpus), str(tmp / "cache"))
    cfg.max_folds, cfg.threads, cfg.workers = 2, 1, 2
    cfg_path2 = tmp_path / "cfg.yaml"
    cfg_path2.write_text(cfg.to_yaml())
    (run / "config.yaml").write_text(cfg.to_yaml())
    ok = subprocess.run(_command(corpus, run, cfg_path2), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    (corpus / "wav" / "spk3_sad_01.wav").unlink()
    lines = [x for x in (corpus / "manifest.csv").read_text().splitlines() if "spk3_sad_01" not in x]
    (corpus / "manifest.csv").write_text("\n".join(lines) + "\n")
    bad = subprocess.run(_command(corpus, run, cfg_path2), capture_output=True, text=True)
    assert bad.returncode == 2
    err = bad.stderr.strip().splitlines()
    assert len(err) == 1 and "spk3" in err[0] and "--restart" in err[0], bad.stderr


# ---------------------------------------------------------------- issue 31: runs that survive
def _one_line(proc) -> str:
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("error: "), proc.stderr[-2000:]
    return err[0]


def _wait_for(path_check, proc, timeout: float = 120.0) -> None:
    t_end = time.monotonic() + timeout
    while not path_check():
        assert proc.poll() is None, "the run ended before the check"
        assert time.monotonic() < t_end, "timed out waiting for the run"
        time.sleep(0.02)


def test_a_second_run_on_a_live_folder_is_refused_while_the_first_finishes(setup, demo_root):
    tmp, cfg_path, expected = setup
    run = tmp / "locked"
    first = subprocess.Popen(_command(demo_root, run, cfg_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: (run / "config.yaml").exists(), first)
    second = subprocess.run(_command(demo_root, run, cfg_path) + ["--set", "seed=1", "--restart"],
                            capture_output=True, text=True)
    line = _one_line(second)
    assert "in use by" in line and f"pid {first.pid}" in line, line
    report = subprocess.run([sys.executable, "-m", "emotionnas", "report", str(run)], capture_output=True, text=True)
    assert report.returncode == 2  # no report of a folder in progress either (not finished, or locked)
    assert first.wait(timeout=600) == 0, first.stderr.read().decode()[-2000:]
    assert (run / "results.json").read_bytes() == expected  # the first run's results, untouched
    assert "seed: 0" in (run / "config.yaml").read_text()
    # a lock left by a killed run is stale: the next run takes it over and says so
    killed = subprocess.Popen(_command(demo_root, run, cfg_path) + ["--restart"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    _wait_for(lambda: f'"pid": {killed.pid}' in (run / ".lock").read_text(), killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run(_command(demo_root, run, cfg_path), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"taking over the lock of pid {killed.pid}" in resumed.stdout + resumed.stderr
    assert "no longer running" in resumed.stdout + resumed.stderr
    assert (run / "results.json").read_bytes() == expected


def _flip(path: Path, n: int = 1000, seed: int = 0) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for i in rng.sample(range(len(data)), min(n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_weights_are_refused_at_export_and_load_and_rebuilt_on_resume(setup, demo_root, tmp_path):
    from emotionnas.rundir import RunDir
    tmp, cfg_path, expected = setup
    run = tmp_path / "run"
    shutil.copytree(tmp / "uninterrupted", run)
    emotionnas = [sys.executable, "-m", "emotionnas"]
    # a clean export lists the weights' sha256 in model.json, and the model loads
    ok = subprocess.run(emotionnas + ["export", str(run), "--out", str(tmp_path / "model")], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert set(meta["files"]) == {"model.safetensors"} and len(meta["files"]["model.safetensors"]) == 64
    wav = next((Path(demo_root) / "wav").glob("*.wav"))
    # flipped bytes in the final model's weights: export refuses, naming the file
    final_pt = sorted((run / "final").glob("*.pt"))[0]
    original = final_pt.read_bytes()
    _flip(final_pt)
    bad = subprocess.run(emotionnas + ["export", str(run), "--out", str(tmp_path / "bad")], capture_output=True,
                         text=True)
    line = _one_line(bad)
    assert str(final_pt) in line and "sha256" in line, line
    assert not (tmp_path / "bad" / "model.safetensors").exists()
    final_pt.write_bytes(original[:100])  # truncated: the same one line
    assert str(final_pt) in _one_line(subprocess.run(emotionnas + ["export", str(run), "--out", str(tmp_path / "b2")],
                                                     capture_output=True, text=True))
    final_pt.write_bytes(original)
    # flipped bytes in an exported model: predict refuses, naming the file
    _flip(tmp_path / "model" / "model.safetensors", n=50)
    line = _one_line(subprocess.run(emotionnas + ["predict", "--model", str(tmp_path / "model"), str(wav)],
                                    capture_output=True, text=True))
    assert "model.safetensors" in line and "sha256" in line, line
    # flipped bytes in a fold member's weights: the resumed run notices, recomputes, same results
    rd = RunDir(run)
    member = json.loads(rd.results.read_text())["folds"][0]["members"][0]["key"]
    _flip(rd.refit_weights(0, member))
    rd.results.unlink()
    resumed = subprocess.run(_command(demo_root, run, cfg_path), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{rd.refit_weights(0, member)}: content does not match its recorded sha256" in resumed.stdout + resumed.stderr
    assert rd.results.read_bytes() == expected


def test_records_of_another_run_are_never_reused(setup, demo_root, tmp_path):
    import numpy as np

    from emotionnas.rundir import RunDir
    tmp, cfg_path, _ = setup
    run = tmp_path / "run"
    shutil.copytree(tmp / "uninterrupted", run)
    rd = RunDir(run)
    group = json.loads(rd.results.read_text())["folds"][0]["search_group"]
    record = sorted((rd.search_dir(group) / "selection").glob("*.npz"))[0]
    with np.load(record) as z:
        fields = {k: z[k] for k in z.files}
    made = json.loads(str(fields["identity"]))
    assert made["seed"] == 0 and len(made["config"]) == 16
    fields["identity"] = np.array(json.dumps({**made, "seed": 1}, sort_keys=True))  # as run seed 1 made it
    with open(record, "wb") as f:
        np.savez(f, **fields)
    rd.results.unlink()
    line = _one_line(subprocess.run(_command(demo_root, run, cfg_path), capture_output=True, text=True))
    assert str(record) in line and "another run" in line and "--restart" in line, line


def test_sigterm_leaves_no_temp_files_and_the_run_resumes(setup, demo_root):
    tmp, cfg_path, expected = setup
    run = tmp / "terminated"
    proc = subprocess.Popen(_command(demo_root, run, cfg_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: next(run.glob("searches/*/selection/*.npz"), None) is not None, proc, timeout=300)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "interrupted" in proc.stderr.read().decode()
    assert list(run.rglob("*.tmp")) == []
    (run / "searches" / ".results.json.Zx1.tmp").write_text("{")  # as a SIGKILL mid-write would leave
    done = subprocess.run(_command(demo_root, run, cfg_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed 1 temporary file" in done.stdout + done.stderr
    assert list(run.rglob("*.tmp")) == [] and (run / "results.json").read_bytes() == expected


def test_report_refuses_a_garbage_config(setup, tmp_path):
    tmp, _, _ = setup
    run = tmp_path / "run"
    shutil.copytree(tmp / "uninterrupted", run)
    report = [sys.executable, "-m", "emotionnas", "report", str(run)]
    for garbage in ("{{{ not: yaml", "", "just a string\n", "seed: 3\n"):
        (run / "config.yaml").write_text(garbage)
        line = _one_line(subprocess.run(report, capture_output=True, text=True))
        assert "config.yaml" in line, line


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("where", ["run folder", "feature cache"])
def test_a_full_disk_gives_one_line_naming_the_path_and_the_run_resumes(setup, demo_root, tmp_path, where):
    """A real full disk: a small tmpfs (needs root, as CI has; skipped elsewhere), grown after
    the failure with `mount -o remount` as a user would free space."""
    tmp, cfg_path, expected = setup
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "300k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        run, extra = (disk / "run", []) if where == "run folder" else (tmp_path / "run", ["--cache", str(disk / "c")])
        line = _one_line(subprocess.run(_command(demo_root, run, cfg_path) + extra, capture_output=True, text=True))
        assert str(disk) in line and "No space left on device" in line, line
        assert subprocess.run(["mount", "-o", "remount,size=512m", str(disk)]).returncode == 0
        done = subprocess.run(_command(demo_root, run, cfg_path) + extra, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (run / "results.json").read_bytes() == expected
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
