"""Build the shipped recognizers (`make models`): the toolkit's own `run` + `export`, nothing else.

Each model below is a recipe of `emotionnas` commands run with the defaults of this commit; the
script copies the exported folder into src/emotionnas/shipped/NAME/ and writes beside it
shipped.json (what `emotionnas models` lists: corpus, classes, language, scores, licence, the
commands and commit) and reference.json (the model's predictions on a few inputs, which
tests/test_shipped_models.py checks, so a change that breaks a shipped model fails CI).

    .venv/bin/python benchmarks/shipped_models.py --data ../shared/data --work runs/shipped
    .venv/bin/python benchmarks/shipped_models.py --only emodb+urdu ...

* `emodb`: every EmoDB utterance, 7 classes, leave-one-speaker-out with `--baselines`.
* `emodb+urdu`: EmoDB's four shared classes and all of URDU through one manifest (labels angry /
  happy / neutral / sad; speakers prefixed by corpus; the corpus is the manifest's session),
  speaker-group 3-fold (FOLDS_TWO_CORPORA); plus a leave-one-corpus-out run (`--protocol loso-session`: trained on one
  corpus, tested on the other) whose two scores the card gives so nobody mistakes the model for
  more than it is.

The runs are ordinary run folders under --work: an interrupted build resumes by running the script
again. TurEV-DB's licence forbids derivatives: no shipped model is built from it.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "src" / "emotionnas" / "shipped"
SHARED = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad"}  # both readers' label names
LICENSE = {"emodb": "research use (EmoDB: freely available for research)",
           "emodb+urdu": "research use only (EmoDB: freely available for research; URDU: research use only)"}
REFERENCE_CORPORA = {"emodb": ("emodb",), "emodb+urdu": ("emodb", "urdu")}  # whose files reference.json holds


def reference_files(data: Path, corpora) -> list[str]:
    """A handful of corpus files: the first (by name) of each label in each corpus, relative to `data`."""
    from emotionnas.data.corpora import read_corpus
    out = []
    for corpus in corpora:
        first: dict[str, str] = {}
        for u in sorted(read_corpus(corpus, data / corpus).utterances, key=lambda u: str(u.path)):
            first.setdefault(u.label, str(Path(u.path).resolve().relative_to(data)))
        out += [first[k] for k in sorted(first)]
    return out


PLACES: dict[str, str] = {}  # this machine's folders -> the names the card uses (DATA, WORK, CACHE)


def emotionnas(*args: str) -> str:
    """Run one `emotionnas` command (the installed entry point of this venv); the command line as
    the card shows it, with this machine's folders named DATA, WORK and CACHE."""
    cmd = [str(Path(sys.executable).parent / "emotionnas"), "--quiet", *args]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    shown = "emotionnas " + " ".join(args)
    for path, name in sorted(PLACES.items(), key=lambda kv: -len(kv[0])):
        shown = shown.replace(path, name)
    return shown


def git_revision() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True,
                           text=True).stdout.strip()
    return out + (" (with uncommitted changes under src/)" if dirty else "")


def two_corpus_manifest(data: Path, path: Path) -> Path:
    """EmoDB's four shared classes + URDU as one manifest (absolute paths; session = corpus)."""
    from emotionnas.data.corpora import read_corpus
    rows = []
    for corpus in ("emodb", "urdu"):
        for u in read_corpus(corpus, data / corpus).utterances:
            if u.label in SHARED:
                rows.append({"path": str(Path(u.path).resolve()), "label": SHARED[u.label],
                             "speaker": f"{corpus}-{u.speaker}", "session": corpus})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "speaker", "session"])
        w.writeheader()
        w.writerows(rows)
    os.replace(path.with_suffix(".tmp"), path)
    return path


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def reference(model_dir: Path, data: Path, files: list[str]) -> dict:
    """The model's predictions on the synthetic reference waves and on a few corpus files."""
    from emotionnas.recognizer import load
    from emotionnas.recognizer.shipped import reference_waves
    rec = load(model_dir)
    synthetic = [rec.predict(w)["probs"] for w in reference_waves()]
    corpus = {f: rec.predict(data / f)["probs"] for f in files if (data / f).is_file()}
    return {"synthetic": synthetic, "files": corpus, "tolerance": 0.02,
            "note": "probabilities; the synthetic waves are emotionnas.recognizer.shipped.reference_waves(), the "
                    "files are relative to the data folder (../shared/data in the tests)"}


def ship(name: str, model_dir: Path, info: dict, ref: dict) -> Path:
    """Copy the exported folder into src/emotionnas/shipped/NAME with shipped.json and reference.json."""
    dest, tmp = SHIPPED / name, SHIPPED / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("*.onnx", "onnx.json"))
    (tmp / "shipped.json").write_text(json.dumps(info, indent=2) + "\n")
    (tmp / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    card = (tmp / "README.md").read_text() if (tmp / "README.md").is_file() else ""
    if info.get("trained_on"):  # a manifest's card says "manifest"; say which corpora it joined
        card = card.replace("- **Trained on**: manifest;", f"- **Trained on**: {info['trained_on']};")
        card = card.replace("A model trained on one corpus\n", "A model trained on these corpora\n")
    (tmp / "README.md").write_text(card + shipped_section(name, info))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def shipped_section(name: str, info: dict) -> str:
    loco = "".join(f"\n- Trained on {k.split('->')[0]} only and tested on {k.split('->')[1]}: UA {v:.1f} "
                   "(leave-one-corpus-out; chance 25)." for k, v in (info.get("loco_ua") or {}).items())
    cmds = "\n".join(f"    {c}" for c in info["commands"])
    return f"""
## Shipped as `{name}`

Use it by name: `emotionnas predict --model {name} FILE.wav` (`serve --model {name}`,
`emotionnas.recognizer.load("{name}")`). Built by `make models` (benchmarks/shipped_models.py) at
commit {info['commit']} on {info['built']}, with the defaults of that commit (DATA: the folder
holding emodb/ and urdu/; WORK: the build's run folders; CACHE: the feature cache):

{cmds}

- Cross-validated UA {info['cv_ua']:.1f} ± {info['cv_ua_std']:.1f} ({info['protocol']}).{loco}
- Licence: {info['license']}. Not for judging people (above).
"""


def build_emodb(data: Path, work: Path, cache: str) -> tuple[Path, dict]:
    run = work / "emodb" / "run"
    cmds = [emotionnas("run", "emodb", str(data / "emodb"), "--out", str(run), "--baselines", "--cache", cache),
            emotionnas("export", str(run), "--out", str(work / "emodb" / "model"))]
    r = results(run)
    return work / "emodb" / "model", {
        "description": "EmoDB, acted German speech, 7 classes, trained on all 10 speakers",
        "corpus": "EmoDB", "language": "German (acted)", "classes": r["label_names"], "protocol": "loso, 10 folds",
        "cv_ua": r["ua"], "cv_ua_std": r["ua_std"], "baselines_ua": {k: v["ua"] for k, v in
                                                                     (r.get("baselines") or {}).items()},
        "license": LICENSE["emodb"], "commands": cmds}


def build_emodb_urdu(data: Path, work: Path, cache: str) -> tuple[Path, dict]:
    manifest = two_corpus_manifest(data, work / "emodb+urdu" / "manifest.csv")
    run, loco = work / "emodb+urdu" / "run", work / "emodb+urdu" / "loco"
    common = ["manifest", str(manifest), "--option", "allow_outside=true", "--cache", cache]
    cmds = [emotionnas("run", *common, "--out", str(run), "--protocol", "kfold", "--set", f"k={FOLDS_TWO_CORPORA}"),
            emotionnas("run", *common, "--out", str(loco), "--protocol", "loso-session", "--set", "final_model=false"),
            emotionnas("export", str(run), "--out", str(work / "emodb+urdu" / "model"))]
    r, lr = results(run), results(loco)
    other = {"emodb": "urdu", "urdu": "emodb"}
    loco_ua = {}
    for f in lr["folds"]:  # fold session-X: tested on corpus X, trained on the other
        tested = f["name"].removeprefix("session-")
        loco_ua[f"{other[tested]}->{tested}"] = f["ua"]
    return work / "emodb+urdu" / "model", {
        "description": "EmoDB (German, acted) + URDU (Urdu, talk shows), 4 shared classes",
        "trained_on": "EmoDB (acted German, its angry / happy / neutral / sad utterances; freely available for "
                      "research) and URDU (Urdu talk-show speech; research use only), joined by one manifest",
        "corpus": "EmoDB + URDU", "language": "German (acted) and Urdu (natural)", "classes": r["label_names"],
        "protocol": f"speaker-group {FOLDS_TWO_CORPORA}-fold over both corpora (39 speakers)", "cv_ua": r["ua"], "cv_ua_std": r["ua_std"],
        "loco_ua": loco_ua, "license": LICENSE["emodb+urdu"], "commands": cmds}


RECIPES = {"emodb": build_emodb, "emodb+urdu": build_emodb_urdu}
# 3 speaker-group folds, not URDU's usual 5: each fold is a selection group over ~2/3 of 739
# utterances, and the build (with its leave-one-corpus-out run) must fit a working session on 2 cores
FOLDS_TWO_CORPORA = 3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder holding emodb/ and urdu/")
    p.add_argument("--work", default=str(REPO / "runs" / "shipped"), help="run folders (resumable)")
    p.add_argument("--cache", default=None, help="feature cache (default: WORK/cache)")
    p.add_argument("--only", choices=list(RECIPES), action="append", help="build only these (repeatable)")
    a = p.parse_args(argv)
    data, work = Path(a.data).resolve(), Path(a.work).resolve()
    cache = a.cache or str(work / "cache")
    PLACES.update({str(data): "DATA", str(work): "WORK", str(Path(cache).resolve()): "CACHE"})
    for name in a.only or RECIPES:
        t0 = time.time()
        model_dir, info = RECIPES[name](data, work, cache)
        info |= {"commit": git_revision(), "built": time.strftime("%Y-%m-%d", time.gmtime()),
                 "build_minutes": round((time.time() - t0) / 60, 1)}
        dest = ship(name, model_dir, info, reference(model_dir, data, reference_files(data, REFERENCE_CORPORA[name])))
        size = sum(f.stat().st_size for f in dest.iterdir()) / 2 ** 20
        print(f"shipped {name}: {dest} ({size:.1f} MB, {info['build_minutes']} min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
