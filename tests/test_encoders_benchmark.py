"""benchmarks/features.py: its BENCHMARKS.md section is replaced in place, other sections kept."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "features.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_features", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_section_replaced_between_headers(bench, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(f"# Benchmarks\n\n## Search\n\nkeep me\n\n{bench.SECTION}\n\nold table\n\n## Training\n\nkeep too\n")
    bench._write_section(md, "new table")
    text = md.read_text()
    assert "old table" not in text and "new table" in text
    assert text.index("keep me") < text.index("new table") < text.index("## Training") < text.index("keep too")
    bench._write_section(md, "newer")  # idempotent: still one section
    assert md.read_text().count(bench.SECTION) == 1 and "new table" not in md.read_text()


def test_section_appended_when_missing(bench, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    bench._write_section(md, "table")
    assert md.read_text().startswith("# Benchmarks\n") and md.read_text().rstrip().endswith("table")


def test_missing_data_is_a_clean_skip(bench, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "none"), "--no-write"]) == 0
    assert "skipped: EmoDB not found" in capsys.readouterr().out
