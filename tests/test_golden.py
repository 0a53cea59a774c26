"""Behaviour unchanged: the demo run's results.json is byte-identical to the committed golden
one (made by this same run when the test was added). Float results depend on the CPU's
instruction set and the torch build, so the test runs only where those match the golden's
(tests/golden/demo_results.meta.json) and says so when it skips."""
import hashlib
import json
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"


def _cpu() -> tuple[str, str]:
    info = Path("/proc/cpuinfo").read_text().split("\n\n")[0] if Path("/proc/cpuinfo").exists() else ""
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info.splitlines())}
    flags = " ".join(sorted(field.get("flags", "").split()))
    return field.get("model name", ""), hashlib.sha256(flags.encode()).hexdigest()[:16]


def _differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from _differences(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: {str(a)[:60]} != {str(b)[:60]}"


@pytest.mark.slow
def test_demo_results_are_byte_identical_to_the_golden(demo_root, tmp_path):
    meta = json.loads((GOLDEN / "demo_results.meta.json").read_text())
    model, flags = _cpu()
    if (model, flags, torch.__version__) != (meta["cpu_model"], meta["cpu_flags_sha256"], meta["torch"]):
        pytest.skip(f"golden made on {meta['cpu_model']} / torch {meta['torch']}; this is {model} / {torch.__version__}")
    from emotionnas.cli import demo_config
    from emotionnas.training.crossval import run_crossval
    cfg = demo_config(str(demo_root), str(tmp_path / "cache"))
    cfg.max_folds, cfg.baselines, cfg.final_model = 2, True, False
    run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    got, want = (tmp_path / "run" / "results.json").read_bytes(), (GOLDEN / "demo_results.json").read_bytes()
    assert got == want, list(_differences(json.loads(want), json.loads(got)))[:10]
