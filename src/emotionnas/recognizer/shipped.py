"""Shipped recognizers: model folders inside the package, used by name.

`emotionnas predict --model emodb file.wav`, `serve --model emodb`, `load("emodb")`: a name listed
by `emotionnas models` is the folder `emotionnas/shipped/<name>/` (model.json, model.safetensors,
its card README.md, shipped.json and reference.json), made by `make models`
(benchmarks/shipped_models.py: the toolkit's own `run` + `export`). The encoder they read
(Whisper-base) comes from its PyPI packages, as for every model: nothing is downloaded.

A name wins over a folder of the same name in the working directory, as a preset name does for
`--config`: the argument is a path when it looks like one (it holds a `/`), so `--model ./emodb`
reads your own folder `emodb`.

shipped.json (written by the build script, read here as bounded data) says what a user needs to
choose: corpus, classes, language, the cross-validated UA (and, for a multi-corpus model, its
leave-one-corpus-out UA), the licence, and the commands and commit that made it. reference.json
holds the model's predictions on a few inputs, checked by tests/test_shipped_models.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from emotionnas.errors import ConfigError

SHIPPED_ROOT = Path(__file__).resolve().parents[1] / "shipped"
SHIPPED_JSON, REFERENCE_JSON = "shipped.json", "reference.json"
MAX_SHIPPED_JSON_BYTES = 2 ** 20


def shipped_names() -> list[str]:
    """The names of the shipped models (folders of emotionnas/shipped/ with a shipped.json)."""
    if not SHIPPED_ROOT.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_ROOT.iterdir()  # a build in progress (.NAME.tmp) is no model
                  if not p.name.startswith((".", "_")) and (p / SHIPPED_JSON).is_file() and (p / "model.json").is_file())


def is_shipped_name(arg) -> bool:
    return isinstance(arg, str) and "/" not in arg and arg in shipped_names()


def model_folder(arg) -> Path:
    """The folder `arg` names: a shipped model's when `arg` is one of their names (and does not
    look like a path), else `arg` itself. A same-named folder here is mentioned on stderr."""
    if is_shipped_name(arg):
        if Path(arg).is_dir():
            print(f"note: --model {arg} is the shipped model {arg!r}; write ./{arg} for the folder here",
                  file=sys.stderr)
        return SHIPPED_ROOT / arg
    return Path(arg)


def read_shipped(name: str) -> dict:
    """shipped.json of one shipped model, as bounded data (ConfigError naming the file)."""
    path = SHIPPED_ROOT / name / SHIPPED_JSON
    try:
        if path.stat().st_size > MAX_SHIPPED_JSON_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_SHIPPED_JSON_BYTES} bytes")
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return info


def reference_waves(seconds: float = 2.5) -> list:
    """The synthetic inputs reference.json holds predictions for: one wave per demo class and pitch,
    made by code from a fixed seed (data/demo.py), so the check runs where no corpus is."""
    import numpy as np

    from emotionnas.data.demo import CLASSES, synthesize
    rng = np.random.default_rng(20261207)
    return [synthesize(label, f0, seconds, rng) for label in CLASSES for f0 in (120.0, 215.0)]


def catalog() -> list[dict]:
    """One row per shipped model: what `emotionnas models` prints."""
    rows = []
    for name in shipped_names():
        info = read_shipped(name)
        size = sum(f.stat().st_size for f in (SHIPPED_ROOT / name).iterdir() if f.is_file())
        rows.append({**info, "name": name, "size_mb": round(size / 2 ** 20, 1)})  # the folder names it
    return rows


def catalog_text(rows: list[dict]) -> str:
    """The human table of `emotionnas models`."""
    if not rows:
        return "no shipped models in this installation (make them with `make models`)"
    def ua(v) -> str:
        return f"{v:.1f}" if isinstance(v, (int, float)) else "?"

    lines = []
    for r in rows:
        loco = r.get("loco_ua") if isinstance(r.get("loco_ua"), dict) else {}
        lines += [f"{r['name']}: {r.get('description', '')}",
                  f"  corpus:   {r.get('corpus', '?')} ({r.get('language', '?')})",
                  f"  classes:  {', '.join(map(str, r.get('classes') or []))}",
                  f"  accuracy: UA {ua(r.get('cv_ua'))} by speaker-independent cross-validation "
                  f"({r.get('protocol', '?')})"
                  + "".join(f"; trained on {k.partition('->')[0]} only, tested on {k.partition('->')[2]}: UA {ua(v)}"
                            for k, v in loco.items()),
                  f"  licence:  {r.get('license', '?')}",
                  f"  size:     {r['size_mb']} MB (the Whisper-base encoder it reads comes from its PyPI packages)",
                  f"  use:      emotionnas predict --model {r['name']} FILE.wav", ""]
    return "\n".join(lines).rstrip()


__all__ = ["SHIPPED_ROOT", "catalog", "catalog_text", "is_shipped_name", "model_folder", "read_shipped",
           "reference_waves", "shipped_names"]
