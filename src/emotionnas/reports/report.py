"""``write_report(run_dir)``: turn a cross-validated run into figures, tables and a Markdown results section.

Reads ``RUN/results.json`` (required; written by ``training/crossval.py``) and,
when present, ``RUN/config.yaml`` and ``RUN/environment.json``. Writes

    RUN/figures/  confusion_counts.png, confusion_normalized.png (pooled over folds),
                  training_curves.png, fold_scores.png, group<g>_cnn_{normal,reduce}.png,
                  group<g>_rnn.png (cell drawings, unless the search already drew them)
    RUN/tables/   folds.md, confusion.md, ablation_branches.{json,md}, ablation_fusion.{json,md}
    RUN/report.md

Partial runs (no ablations, no histories, no searches, one fold) give a shorter
report, never an exception; only a missing or malformed results.json is an error.
Every write is atomic.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import yaml

from emotionnas.errors import EmotionNASError
from emotionnas.reports import plots, tables
from emotionnas.reports.tables import DASH, fmt, markdown_table
from emotionnas.utils.io import atomic_write_json, atomic_write_text

# Protocol names of data/folds.py, as a sentence can say them.
PROTOCOLS = {"loso": "leave-one-speaker-out",
             "loso-session": "leave-one-session-out",
             "iemocap-paper": "the EmotionNAS IEMOCAP protocol: four sessions train; of the held-out "
                              "session one speaker validates and the other is tested, both ways",
             "kfold": "speaker-independent k-fold over speaker groups"}


def _load_results(path: Path) -> dict:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmotionNASError(f"{path}: no results.json in the run directory") from None
    except (OSError, ValueError) as e:
        raise EmotionNASError(f"{path}: cannot read results ({type(e).__name__}: {e})") from None
    if not isinstance(results, dict) or not isinstance(results.get("folds", []), list):
        raise EmotionNASError(f"{path}: expected an object with a 'folds' list")
    return results


def _load_optional(path: Path, notes: list[str]):
    """config.yaml / environment.json: absent -> None; unreadable -> None plus a note in the report."""
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as e:
        notes.append(f"`{path.name}` could not be read ({type(e).__name__}); its details are missing here.")
        return None
    return data if isinstance(data, dict) else None


def _flatten(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _find(flat: dict, *names):
    """First config value whose dotted key is, or ends with, one of ``names``."""
    for name in names:
        for key, v in flat.items():
            if (key == name or key.endswith("." + name)) and v not in (None, "", [], {}):
                return v
    return None


def _short(v) -> str:
    return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


# ---------------------------------------------------------------- figures


def _figures(results: dict, fig_dir: Path) -> list[tuple[str, Path]]:
    folds = results.get("folds") or []
    out = []
    cm = tables.pooled_confusion(results)
    labels = results.get("label_names") or []
    if cm is not None:
        if len(labels) != len(cm):
            labels = [f"class {i}" for i in range(len(cm))]
        out.append(("Confusion matrix pooled over folds (counts)",
                    plots.plot_confusion(cm, labels, fig_dir / "confusion_counts.png")))
        out.append(("Confusion matrix pooled over folds (row-normalised %, diagonal = recall)",
                    plots.plot_confusion(cm, labels, fig_dir / "confusion_normalized.png", normalize=True)))
    curves = plots.plot_training_curves(folds, fig_dir / "training_curves.png")
    if curves:
        out.append(("Training curves per fold", curves))
    bars = plots.plot_fold_scores(folds, fig_dir / "fold_scores.png")
    if bars:
        out.append(("Test UA and WA per fold", bars))
    return out


def _draw_module(name: str, notes: list[str]):
    try:
        return importlib.import_module(f"emotionnas.reports.{name}")
    except ImportError as e:
        notes.append(f"Cell drawings skipped: `emotionnas.reports.{name}` is not available ({e}).")
        return None


def _as_genotype(g: dict):
    """A ``Genotype`` object for the drawing code when it validates, else the plain dict."""
    try:
        from emotionnas.space.genotype import Genotype
        return Genotype(g["normal"], g["normal_concat"], g["reduce"], g["reduce_concat"])
    except Exception:  # noqa: BLE001 - drawing a slightly odd genotype beats refusing to
        return g


def _existing(*paths: Path) -> list[Path] | None:
    return list(paths) if all(p.is_file() for p in paths) else None


def _slug(group) -> str:
    """File-name stem for a search group: ``0`` -> ``group0``; ``"group0"`` stays."""
    text = str(group)
    text = text if text.startswith("group") else f"group{text}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


# Where a search may already have drawn its cells (the CNN search draws ``cnn/cell_*.png``).
_CNN_DRAWN = ("cnn", "cnn/cell", "cell")
_RNN_DRAWN = ("rnn.png", "recipe.png", "rnn/cell.png", "rnn/recipe.png", "rnn/rnn.png")


def _drawings(kind: str, arch, search_dir: Path | None, fig_dir: Path, group, notes, cache) -> list[Path]:
    """PNG drawings of one searched cell: reuse the search's own, else draw into figures/."""
    if search_dir is not None:
        if kind == "cnn":
            candidates = [[search_dir / f"{p}_normal.png", search_dir / f"{p}_reduce.png"] for p in _CNN_DRAWN]
        else:
            candidates = [[search_dir / p] for p in _RNN_DRAWN]
        for paths in candidates:
            if _existing(*paths):
                return paths
    prefix = fig_dir / f"{_slug(group)}_{kind}"
    mine = [Path(f"{prefix}_normal.png"), Path(f"{prefix}_reduce.png")] if kind == "cnn" else [Path(f"{prefix}.png")]
    if _existing(*mine):
        return mine
    module_name = {"cnn": "draw_cnn", "rnn": "draw_rnn"}[kind]
    if module_name not in cache:
        cache[module_name] = _draw_module(module_name, notes)
    module = cache[module_name]
    if module is None:
        return []
    try:
        if kind == "cnn":
            module.draw_genotype(_as_genotype(arch), prefix)
        else:
            module.draw_recipe(arch, prefix)
    except Exception as e:  # noqa: BLE001 - a failed drawing must not lose the rest of the report
        notes.append(f"Drawing the {kind.upper()} cell of search group {group} failed "
                     f"({type(e).__name__}: {e}).")
        return []
    return _existing(*mine) or []


def _read_arch(search_dir: Path | None, key: str):
    """The group's genotype / recipe from its search folder, wherever the search stored it."""
    if search_dir is None:
        return None
    sub = {"genotype": "cnn", "recipe": "rnn"}[key]
    for path in (search_dir / f"{key}.json", search_dir / sub / f"{key}.json", search_dir / "search_done.json"):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if path.name == "search_done.json":
            data = data.get(key) if isinstance(data, dict) else None
        if isinstance(data, dict) and data:
            return data
    return None


def _architectures(results: dict, run_dir: Path, fig_dir: Path, notes: list[str]) -> list[str]:
    folds = results.get("folds") or []
    searches = list(results.get("searches") or [])
    known = {s.get("group") for s in searches}
    # A run without a `searches` list still shows the cells its folds carry.
    for g in dict.fromkeys(f.get("search_group") for f in folds):
        if g not in known and any(f.get("genotype") or f.get("recipe") for f in folds if f.get("search_group") == g):
            searches.append({"group": g})
    lines, cache = [], {}
    for s in searches:
        g = s.get("group")
        sdir = None
        if s.get("dir"):
            sdir = Path(s["dir"]) if os.path.isabs(s["dir"]) else run_dir / s["dir"]
        users = [f for f in folds if f.get("search_group") == g]
        genotype = _read_arch(sdir, "genotype") or next((f["genotype"] for f in users if f.get("genotype")), None)
        recipe = _read_arch(sdir, "recipe") or next((f["recipe"] for f in users if f.get("recipe")), None)
        lines.append(f"### Search {_slug(g)}\n")
        held = s.get("held_out_speakers")
        lines.append(f"Speakers held out of this search: {_short(held) if held else DASH}. "
                     f"Used by folds: {', '.join(str(f.get('name')) for f in users) or DASH}.\n")
        choice = _read_layers(sdir)
        if choice:
            scores = ", ".join(f"{i}: {v:.1f}" for i, v in enumerate(choice["scores"]))
            lines.append(f"**Encoder layers** {_short(choice['layers'])}, chosen by a linear probe per layer "
                         f"(leave-one-speaker-out UA over this search's speakers {_short(choice['speakers'])}; "
                         f"layer: UA %) {scores}.\n")
        if genotype is None and recipe is None:
            lines.append("No genotype or recipe was recorded for this group.\n")
        for kind, arch, title in (("cnn", genotype, "CNN cells (spectrogram branch)"),
                                  ("rnn", recipe, "Recurrent cell (deep-feature branch)")):
            if arch is None:
                continue
            lines.append(f"**{title}**\n")
            lines.append(tables.genotype_table(arch) if kind == "cnn" else tables.recipe_table(arch))
            for p in _drawings(kind, arch, sdir, fig_dir, g, notes, cache):
                lines.append(f"![{kind.upper()} cell, search group {g}: {p.stem}]({_rel(p, run_dir)})\n")
    return lines


def _read_layers(search_dir: Path | None):
    path = search_dir / "layers.json" if search_dir else None
    try:
        d = json.loads(path.read_text()) if path and path.exists() else None
        return d if isinstance(d, dict) and d.get("layers") and d.get("scores") else None
    except (OSError, ValueError):
        return None


def _rel(path: Path, run_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return Path(os.path.relpath(Path(path).resolve(), run_dir.resolve())).as_posix()


# ---------------------------------------------------------------- text


def _setup(results: dict, flat: dict, cm) -> str:
    folds = results.get("folds") or []
    labels = results.get("label_names") or []
    speakers = sorted({str(s) for f in folds for s in f.get("test_speakers") or []})
    protocol = str(results.get("protocol", DASH))
    parts = [f"We evaluate on **{results.get('corpus', 'an unnamed corpus')}** with the "
             f"**{protocol}** protocol ({PROTOCOLS.get(protocol.lower(), 'speaker-independent')}): "
             f"{len(folds)} fold{'s' * (len(folds) != 1)}, whose test sets together cover "
             f"{len(speakers)} speaker{'s' * (len(speakers) != 1)}"
             + (f" and {int(cm.sum())} test utterances" if cm is not None else "")
             + (f" (the corpus has {results['n_speakers']} speakers and {results['n_utterances']} usable "
                "utterances)" if results.get("n_speakers") and results.get("n_utterances") else "") + "."]
    if labels:
        parts.append(f"There are {len(labels)} classes ({', '.join(map(str, labels))}); "
                     f"chance-level UA is {100 / len(labels):.1f} %.")
    if folds and all(f.get("val_speakers") for f in folds) and not any(
            set(map(str, f["val_speakers"])) & set(map(str, f.get("test_speakers") or [])) for f in folds):
        parts.append("In every fold, model selection (early stopping) uses validation speakers "
                     "disjoint from the test speakers (checked from results.json).")
    # results["features"] is what the run actually used; the config is the fallback.
    feats = results.get("features") if isinstance(results.get("features"), dict) else {}
    enc = feats.get("encoder") or _find(flat, "features.encoder", "encoder")
    if enc is not None:
        layers = feats.get("deep_layers") or _find(flat, "features.deep_layers", "deep_layers")
        total = feats.get("deep_layers_total")
        chosen = sorted({tuple(f["deep_layers"]) for f in folds if f.get("deep_layers")})
        if layers == "auto" and chosen:
            which = ("hidden states " + " or ".join(_short(list(c)) for c in chosen) +
                     ", chosen in each search by a linear probe on the search speakers")
        else:
            which = (f"hidden states {_short(layers)}" if layers and layers != "auto" else
                     f"all {total} hidden states, mixed by learned weights" if total else "the hidden states")
        spec = feats.get("spectrogram") or {}
        size = f"{spec.get('out_freq', 140)} x {spec.get('out_time', 140)}"
        parts.append(f"The deep-feature branch (a searched recurrent cell) reads **{enc}** ({which}); "
                     f"the other branch (searched CNN cells) reads a {size} log-spectrogram.")
    fusion = _find(flat, "fusion")
    if fusion is not None and not isinstance(fusion, dict):
        parts.append(f"The two branch embeddings are fused with **{fusion}**.")
    n_params = [f["n_params"] for f in folds if isinstance(f.get("n_params"), (int, float))]
    if n_params:
        parts.append(f"The fused model has {np.mean(n_params) / 1e3:.1f} k parameters"
                     + (" (mean over folds)." if len(set(n_params)) > 1 else "."))
    searches = results.get("searches") or []
    if searches:
        held = {s.get("group"): set(map(str, s.get("held_out_speakers") or [])) for s in searches}
        clean = all(f.get("search_group") in held and set(map(str, f.get("test_speakers") or []))
                    <= held[f.get("search_group")] for f in folds)
        leaked = any(f.get("search_group") in held and not set(map(str, f.get("test_speakers") or []))
                     <= held[f.get("search_group")] for f in folds)
        parts.append(f"Architectures were searched {len(searches)} time{'s' * (len(searches) != 1)}" + (
            " (cross-fitted: each fold uses cells from a search that held out its test speakers; "
            "checked from results.json)." if clean and folds else
            "; some folds use cells from a search that saw their test speakers (see the checks below)."
            if leaked else "; which search each fold used is not fully recorded, so this was not checked."))
    sched = {k: v for k, v in flat.items()
             if any("search" in part for part in k.split(".")) and not isinstance(v, (list, dict))}
    if sched:
        items = [f"`{k}={v}`" for k, v in list(sched.items())[:16]]
        parts.append("Search schedule: " + ", ".join(items) + (" …" if len(sched) > 16 else "") + ".")
    epochs = _find(flat, "train.epochs")
    if epochs is not None:
        parts.append(f"Final models train for at most {epochs} epochs"
                     + (f" (patience {p})" if (p := _find(flat, "train.patience")) is not None else "") + ".")
    return " ".join(parts) + "\n"


def _main_result(results: dict, cm) -> str:
    s = tables.summary(results)
    n = len(results.get("folds") or [])
    if n == 0:
        return "results.json holds no fold results yet.\n"
    text = (f"Across {n} fold{'s' * (n != 1)} the model reaches **UA {fmt(s['ua'], s['ua_std'])} %**, "
            f"WA {fmt(s['wa'], s['wa_std'])} % and macro-F1 {fmt(s['macro_f1'], s['macro_f1_std'])} % "
            f"(mean ± standard deviation over folds; UA, the mean per-class recall, is the primary metric).")
    labels = results.get("label_names") or []
    if cm is not None and len(labels) == len(cm):
        recall = plots.row_normalise(cm).diagonal()
        order = np.argsort(recall)
        text += (f" Pooled over folds, recall is highest for *{labels[order[-1]]}* ({recall[order[-1]]:.1f} %) "
                 f"and lowest for *{labels[order[0]]}* ({recall[order[0]]:.1f} %).")
    return text + "\n"


def _fused_vs_fusion(ablations: dict, results: dict) -> list[str]:
    """Explain when the fusion table's row for the run's own fusion differs from the main result."""
    rows = {r["setting"]: r for r in ablations.get("fusion", {}).get("rows", [])}
    main = tables.summary(results).get("ua")
    for name, row in rows.items():
        if f"({name})" in " ".join(r["setting"] for r in ablations.get("branches", {}).get("rows", [])):
            if row["ua"] is not None and main is not None and abs(row["ua"] - main) >= 0.05:
                return [f"The *{name}* row of the fusion table (UA {row['ua']:.1f}) and the fused model of the "
                        f"main result (UA {main:.1f}) come from separate trainings (the fusion ablation "
                        "trains each strategy on its own), so they need not agree.\n"]
    return []


def _command(env) -> str | None:
    """The command line that produced the run, with the script path shortened to ``emotionnas``."""
    cmd = (env or {}).get("command") or (env or {}).get("argv")
    if not cmd:
        return None
    words = cmd if isinstance(cmd, list) else str(cmd).split()
    if words and (Path(str(words[0])).name == "emotionnas" or str(words[0]).endswith("__main__.py")):
        words = ["emotionnas"] + list(words[1:])
    return " ".join(map(str, words))


def _reproduce(config, env, results: dict) -> list[str]:
    lines = []
    cmd = _command(env)
    if cmd:
        lines += ["Command that produced this run:\n", "```bash", cmd, "```\n"]
    if config is not None:
        corpus = config.get("corpus", results.get("corpus", "CORPUS"))
        root = config.get("root", "CORPUS_ROOT")
        lines += ["The resolved configuration is saved beside this report as `config.yaml`; "
                  "from this folder, the same run into a new folder is:\n", "```bash",
                  f"emotionnas run {corpus} {root} --config config.yaml --out NEW_RUN_DIR", "```\n"]
    if not lines:
        lines.append("Neither the command nor the configuration was saved with this run.\n")
    if env:
        lines.append("Environment:\n")
        lines += [f"- `{k}`: {_short(v)}" for k, v in _flatten(env).items()]
        lines.append("")
    return lines


def _limitations(results: dict, has_ablations: bool) -> str:
    folds = results.get("folds") or []
    speakers = {str(s) for f in folds for s in f.get("test_speakers") or []}
    items = []
    if results.get("synthetic"):
        items.append("the data are synthetic, so these numbers say nothing about emotion recognition")
    if not folds:
        items.append("there are no fold results to judge")
    elif len(folds) == 1:
        items.append("a single fold gives no estimate of the spread across speakers")
    else:
        items.append(f"with {len(speakers)} test speakers the ± over folds is wide and is itself "
                     "a rough estimate; no significance test was run")
    if not has_ablations:
        items.append("no ablations were recorded, so the contribution of each branch is not shown")
    items.append("wall-clock times were measured on a shared CPU and are indicative only")
    items.append("UA from other papers is comparable only under the same corpus, label set and folds")
    text = "; ".join(items)
    return "**Limitations.** " + text[0].upper() + text[1:] + ".\n"


def write_report(run_dir) -> Path:
    """Write figures, tables and ``report.md`` for the run in ``run_dir``; returns the report path."""
    run_dir = Path(run_dir)
    results = _load_results(run_dir / "results.json")
    notes: list[str] = []
    config = _load_optional(run_dir / "config.yaml", notes)
    env = _load_optional(run_dir / "environment.json", notes)
    flat = _flatten(config)
    fig_dir, tab_dir = run_dir / "figures", run_dir / "tables"
    cm = tables.pooled_confusion(results)
    labels = results.get("label_names") or [f"class {i}" for i in range(0 if cm is None else len(cm))]

    figures = _figures(results, fig_dir)
    atomic_write_text(tab_dir / "folds.md", tables.folds_table(results))
    if cm is not None and len(labels) == len(cm):
        conf_md = markdown_table([[name] + list(map(int, row)) for name, row in zip(labels, cm)],
                                 ["true \\ predicted"] + list(labels))
        atomic_write_text(tab_dir / "confusion.md", conf_md)
    ablations = tables.ablation_tables(results)
    for name, table in ablations.items():
        atomic_write_json(tab_dir / f"ablation_{name}.json", {k: v for k, v in table.items() if k != "markdown"})
        atomic_write_text(tab_dir / f"ablation_{name}.md", f"{table['title']}\n\n{table['markdown']}")
    arch_lines = _architectures(results, run_dir, fig_dir, notes)
    notes = tables.check_results(results) + notes

    title = f"# Results: {results.get('corpus', 'run')} ({results.get('protocol', DASH)})\n"
    out = [title]
    if results.get("synthetic"):
        out.append("> **WARNING: SYNTHETIC DATA.** This run used the built-in synthetic demo corpus. "
                   "It checks that the pipeline runs end to end; its scores prove nothing about "
                   "emotion-recognition accuracy on real speech.\n")
    out += ["## Setup\n", _setup(results, flat, cm), "## Main result\n", _main_result(results, cm)]
    out += ["Per-fold test scores:\n", tables.folds_table(results)]
    if figures:
        out.append("## Figures\n")
        out += [f"![{caption}]({_rel(path, run_dir)})\n\n*{caption}.*\n" for caption, path in figures]
    out.append("## Ablations\n")
    if ablations:
        for table in ablations.values():
            out += [f"{table['title']} (mean ± std over folds; best UA in bold):\n", table["markdown"]]
        out += _fused_vs_fusion(ablations, results)
    else:
        out.append("No ablations were recorded in this run.\n")
    if arch_lines:
        out += ["## Searched architectures\n"] + arch_lines
    timing = results.get("timing") or _load_optional(run_dir / "timing.json", notes) or {}
    if timing:
        out += ["## Time\n", "Wall-clock: " + ", ".join(
            f"{k.replace('_seconds', '')} {float(v) / 60:.1f} min" for k, v in timing.items()
            if isinstance(v, (int, float))) + " (shared CPU; indicative only).\n"]
    if notes:
        out += ["## Checks and notes\n"] + [f"- {n}" for n in notes] + [""]
    out += ["## Reproduce\n"] + _reproduce(config, env, results)
    if config is not None:
        out += ["<details><summary>Resolved configuration</summary>\n", "```yaml",
                yaml.safe_dump(config, sort_keys=False).rstrip(), "```\n", "</details>\n"]
    out.append(_limitations(results, bool(ablations)))
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out))
    return path
