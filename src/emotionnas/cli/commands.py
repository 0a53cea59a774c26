"""The verbs of the command line: each `cmd_*` takes the parsed arguments and returns an exit code."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from emotionnas.errors import EmotionNASError
from emotionnas.rundir import RunDir
from emotionnas.space.families import family



def _corpus_options(items) -> dict:
    import yaml
    out = {}
    for item in items or ():
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def cmd_corpus(a) -> int:
    from emotionnas.data.corpora import corpus_summary_text, read_corpus
    table = read_corpus(a.name, a.root, **_corpus_options(a.option))
    print(json.dumps(table.summary(), indent=2) if a.json else corpus_summary_text(table))
    return 0


def cmd_features(a) -> int:
    from emotionnas.data.corpora import read_corpus
    from emotionnas.features.cache import FeatureCache, combined_line, deep_stream, spectrogram_stream
    table = read_corpus(a.name, a.root, **_corpus_options(a.option))
    cache = FeatureCache(a.cache)
    streams = ["spectrogram", "deep"] if a.stream == "both" else [a.stream]
    from emotionnas.features.spectrogram import SpectrogramConfig
    size = a.spectrogram_size
    made = [spectrogram_stream(SpectrogramConfig(out_freq=size, out_time=size)) if name == "spectrogram"
            else deep_stream(a.encoder, a.deep_pool, a.layers) for name in streams]
    t0 = time.perf_counter()
    reports = [r for _, r in cache.extract_streams(table.utterances, made, progress=not a.quiet)]
    print("\n".join([r.line() for r in reports] + ([combined_line(reports, time.perf_counter() - t0)]
                                                   if len(reports) > 1 else [])))
    errors = list(dict.fromkeys(list(table.errors) + [e for r in reports for e in r.errors]))
    if errors:
        print(f"skipped {len(errors)} file(s):", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
    return 0


def _config_file_or_preset(name: str):
    """--config: the name of a shipped preset (demo, paper), or a YAML file. A preset name wins over
    a file or folder of that name in the working directory (a folder `demo` made `--config demo`
    fail with "Is a directory"): the argument is a path only when it looks like one, with a `/` or
    ending in .yaml / .yml (`--config ./demo` reads the file `demo`). A path must be a regular file,
    asked of os.stat before it is opened (a FIFO would block the read)."""
    from emotionnas.config import PRESETS, RunConfig
    from emotionnas.data.file_kind import file_problem
    from emotionnas.errors import ConfigError
    looks_like_path = "/" in name or name.lower().endswith((".yaml", ".yml"))
    if name in PRESETS and not looks_like_path:
        return RunConfig.preset(name)
    problem = file_problem(name)
    if problem is not None:
        hint = "" if looks_like_path else f" (presets: {', '.join(PRESETS)})"
        raise ConfigError(f"--config {name}: {problem}{hint}")
    return RunConfig.from_yaml(name)


# Flags that are shorthand for a config setting. Each becomes a `KEY=VALUE` override, applied in
# one place (`_load_run_config`) before the `--set` ones: config file (or preset) < flags < --set.
FLAG_SETTINGS = {"protocol": "protocol", "search_per_fold": "search_per_fold", "cache": "features.cache_dir",
                 "encoder": "features.encoder", "baselines": "baselines", "workers": "workers",
                 "executor": "executor"}
PRECEDENCE = ("Settings: the config file or preset, then the flags that name a setting, then each --set in order "
              "(the later wins).")


def flag_overrides(a) -> list[str]:
    """The flags given on the command line as `KEY=VALUE` overrides (JSON values: YAML reads them)."""
    out = [f"{key}={json.dumps(getattr(a, flag))}" for flag, key in FLAG_SETTINGS.items()
           if getattr(a, flag, None) not in (None, False)]
    out += [f"corpus_options.{k}={json.dumps(v)}" for k, v in _corpus_options(getattr(a, "option", None)).items()]
    return out


def _load_run_config(a):
    from emotionnas.config import RunConfig, apply_overrides
    cfg = _config_file_or_preset(a.config) if a.config else RunConfig()
    cfg.corpus, cfg.root = a.name, str(Path(a.root).resolve())
    return apply_overrides(cfg, flag_overrides(a) + list(a.set or ()))


def cmd_run(a) -> int:
    from emotionnas.cli.run_plan import check_before_writing, plan_line, remove_if_untouched
    from emotionnas.training.crossval import run_crossval
    cfg = _load_run_config(a)
    check_before_writing(cfg)  # a refused run leaves no folder: nothing is written before this
    print(plan_line(cfg))
    existed = Path(a.out).exists()
    try:
        with RunDir(a.out).lock():  # held from the first write to the report: one writer per run folder
            run_crossval(cfg, a.out, progress=not a.quiet, restart=a.restart)
            _report(a.out)
    except EmotionNASError:  # refused by Run.start (e.g. no usable audio): no empty folder left behind
        if not existed:
            remove_if_untouched(a.out)
        raise
    return 0


def _report(run_dir, say: bool = True) -> None:
    from emotionnas.reports.report import write_report
    try:
        path = write_report(run_dir)
        if say:
            print(f"report: {path}")
    except Exception as e:  # noqa: BLE001 - a plotting problem must not turn a finished run into a failure
        print(f"warning: report not written ({type(e).__name__}: {e}); results.json is complete", file=sys.stderr)


def cmd_search(a) -> int:
    """One cell search (DARTS, emoDARTS or recipe) on fold K's training speakers."""
    from emotionnas.cli.run_plan import check_before_writing
    from emotionnas.data.folds import make_folds
    from emotionnas.search.layers import select_layers
    from emotionnas.space.pipeline import layer_windows
    from emotionnas.training.cell_search import SearchSettings, SearchTask, run_search_task
    from emotionnas.training.run_helpers import speaker_indices
    from emotionnas.training.tasks import DataRef
    from emotionnas.utils.io import atomic_write_json, atomic_write_text
    cfg = _load_run_config(a)
    check_before_writing(cfg)  # unknown corpus, wrong root: refused before --out is made
    data = DataRef.from_config(cfg)
    fs = data.load(progress=not a.quiet, fresh=True)  # the search task below reuses it
    folds = make_folds(fs.table, cfg.protocol, n_val=cfg.n_val, k=cfg.k, seed=cfg.seed)
    if not 0 <= a.fold < len(folds):
        raise EmotionNASError(f"--fold {a.fold}: the {cfg.protocol} protocol has folds 0..{len(folds) - 1}")
    fold, out = folds[a.fold], Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    layers = (2, 3)
    if (searched := family(SEARCH_ALIASES.get(a.kind, a.kind))).needs == "recipe":
        idx = np.concatenate([speaker_indices(fs.speakers, fold.train), speaker_indices(fs.speakers, fold.val)])
        layers = tuple(layer_windows(select_layers(fs, idx, 1, cfg.seed)["scores"], [2], 1)[0])
    task = SearchTask(data=data, fold=fold, settings=SearchSettings.from_config(cfg), out_dir=str(out),
                      cnn_kind=searched.search if searched.needs == "genotype" else None,
                      rnn=searched.needs == "recipe", layers=layers,
                      threads=cfg.threads)  # measured: a second thread does not speed the CNN search up
    t0 = time.perf_counter()
    record = run_search_task(task)
    atomic_write_json(out / "search_done.json", record)
    print(json.dumps({k: record[k] for k in ("genotype", "recipe", "layers")}, indent=2))
    print(f"search done in {time.perf_counter() - t0:.0f} s -> {out}", file=sys.stderr)
    return 0


def cmd_prior(a) -> int:
    from emotionnas.training.prior import write_prior
    return write_prior(a.runs, a.out)


def cmd_report(a) -> int:
    from emotionnas.reports.report import write_report
    run = RunDir(a.run_dir)
    run.read_results()  # not a finished run folder -> one line
    run.read_config()   # a garbage config.yaml -> one line naming it, not a report of defaults
    with run.lock():    # not while a run is writing the folder
        print(f"report: {write_report(a.run_dir)}")
    return 0


def cmd_export(a) -> int:
    from emotionnas.recognizer.export import export_run
    print(f"exported {export_run(a.run_dir, a.out, fold=a.fold)}")
    if a.onnx:
        from emotionnas.recognizer.onnx_export import describe_errors, export_onnx
        print("onnx: " + describe_errors(export_onnx(a.out)))
    return 0


def cmd_models(a) -> int:
    from emotionnas.recognizer.shipped import catalog, catalog_text
    rows = catalog()
    print(json.dumps(rows, indent=2) if a.json else catalog_text(rows))
    return 0


def cmd_serve(a) -> int:
    import os
    from dataclasses import replace
    from emotionnas.recognizer.serve import LOOPBACK_HOSTS, SERVE_LIMITS, ServeSettings, serve
    from emotionnas.recognizer.serve_access import resolve_api_key
    if not all(v > 0 for v in (a.max_seconds, a.max_mb, a.timeout, a.header_timeout)) or \
            min(a.queue, a.max_connections, a.max_per_client) < 1:  # `v > 0`: NaN is refused too
        raise EmotionNASError("--max-seconds, --max-mb, --timeout, --header-timeout must be > 0 and --queue, "
                              "--max-connections, --max-per-client >= 1")
    api_key = resolve_api_key(a.api_key, a.api_key_file, os.environ)
    if a.api_key is not None:
        print("warning: --api-key is visible to other users of this machine (process list); prefer "
              "--api-key-file PATH or $EMOTIONNAS_API_KEY", file=sys.stderr)
    if a.api_key_file is not None and os.stat(a.api_key_file).st_mode & 0o077:
        print(f"warning: {a.api_key_file} can be read by other users: chmod 600 it", file=sys.stderr)
    limits = replace(SERVE_LIMITS, max_seconds=a.max_seconds, max_bytes=int(a.max_mb * 2 ** 20))
    settings = ServeSettings(limits=limits, window=a.window, hop=a.hop, queue=a.queue, timeout=a.timeout,
                             allow_hosts=LOOPBACK_HOSTS + tuple(a.allow_host), api_key=api_key,
                             cors_origins=tuple(a.cors_origin), header_timeout=a.header_timeout,
                             max_per_client=a.max_per_client, max_connections=a.max_connections)
    if a.host not in LOOPBACK_HOSTS and a.no_auth:
        print(f"warning: serving on {a.host} without a key: anyone who can reach it can use the model",
              file=sys.stderr)
    serve(a.model, host=a.host, port=a.port, settings=settings, no_auth=a.no_auth)
    return 0


def cmd_evaluate(a) -> int:
    from emotionnas.recognizer.evaluate import evaluate_model
    mapping = dict(item.split("=", 1) for item in (a.map.split(",") if a.map else []) if "=" in item)
    res = evaluate_model(a.model, a.name, a.root, a.out, mapping=mapping, cache_dir=a.cache,
                         progress=not a.quiet, **_corpus_options(a.option))
    print("label mapping (corpus -> model): " + ", ".join(f"{k} -> {v}" for k, v in res["mapping"].items())
          + (f"; dropped: {res['dropped']}" if res["dropped"] else ""))
    print(f"UA {res['ua']:.1f}  WA {res['wa']:.1f}  macro-F1 {res['macro_f1']:.1f} on {res['n_utterances']} "
          f"utterances -> {a.out}")
    return 0


def cmd_demo(a) -> int:
    """Synthetic corpus -> run -> export -> predict, in a few minutes on a laptop CPU."""
    from emotionnas.config import apply_overrides
    from emotionnas.data.demo import make_demo_corpus
    from emotionnas.recognizer.export import export_run
    from emotionnas.recognizer import Recognizer
    from emotionnas.training.crossval import run_crossval
    t0, out = time.perf_counter(), Path(a.out)
    corpus = out / "corpus"
    if not (corpus / "manifest.csv").exists():
        make_demo_corpus(corpus)
    cfg = apply_overrides(demo_config(str(corpus.resolve()), str(out / "cache")), a.set)
    print("emotionnas demo: the corpus is SYNTHETIC (made by code); its scores prove nothing about real speech.")
    run_crossval(cfg, out / "run", progress=not a.quiet, restart=True)  # the demo always starts afresh
    _report(out / "run", say=False)  # named with the model below
    export_run(out / "run", out / "model")
    rec = Recognizer.load(out / "model")
    for f in sorted((corpus / "wav").glob("*_00.wav"))[:4]:
        print(json.dumps({"file": str(f), **rec.predict(f)}))
    print(f"\nreport: {out / 'run' / 'report.md'}\nmodel:  {out / 'model'}\n"
          f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def demo_config(root: str, cache_dir: str):
    """The demo preset (presets/demo.yaml) on the corpus at `root`, caching into `cache_dir`."""
    from emotionnas.config import RunConfig
    cfg = RunConfig.preset("demo")
    cfg.root, cfg.features.cache_dir = root, cache_dir
    return cfg


SEARCH_ALIASES = {"cnn": "darts", "rnn": "cell"}  # the names of earlier releases
