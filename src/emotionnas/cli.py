"""Command line: thin verbs over the Python API.

  emotionnas corpus NAME ROOT [--json]
  emotionnas features NAME ROOT --cache DIR [--stream both] [--encoder whisper-base]
  emotionnas search {cnn,emodarts,rnn} NAME ROOT --fold K --out DIR
  emotionnas run NAME ROOT --out DIR [--config cfg.yaml] [--protocol loso] [--set key=value ...]
  emotionnas prior RUN_DIR ... --out prior.json
  emotionnas export RUN_DIR --out MODEL_DIR
  emotionnas predict --model MODEL_DIR FILE_OR_DIR ... [--windows 3.0 --hop 1.0 --plot out.png]
  emotionnas serve --model MODEL_DIR [--host 127.0.0.1 --port 8000]
  emotionnas evaluate --model MODEL_DIR NAME ROOT --out DIR [--map anger=angry,...]
  emotionnas demo [--out runs/demo]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from emotionnas.config import FeatureConfig
from emotionnas.errors import EmotionNASError
from emotionnas.space.families import FAMILIES, family



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
    """--config: a YAML file, or the name of a shipped preset (demo, paper)."""
    from emotionnas.config import PRESETS, RunConfig
    if name in PRESETS and not Path(name).exists():
        return RunConfig.preset(name)
    return RunConfig.from_yaml(name)


def _load_run_config(a):
    from emotionnas.config import RunConfig, apply_overrides
    cfg = _config_file_or_preset(a.config) if a.config else RunConfig()
    cfg.corpus, cfg.root = a.name, str(Path(a.root).resolve())
    if getattr(a, "protocol", None):
        cfg.protocol = a.protocol
    if getattr(a, "search_per_fold", False):
        cfg.search_per_fold = True
    if getattr(a, "cache", None):
        cfg.features.cache_dir = a.cache
    if getattr(a, "encoder", None):
        cfg.features.encoder = a.encoder
    cfg.corpus_options.update(_corpus_options(getattr(a, "option", None)))
    return apply_overrides(cfg, a.set)


def cmd_run(a) -> int:
    from emotionnas.training.crossval import run_crossval
    cfg = _load_run_config(a)
    cfg.baselines = cfg.baselines or a.baselines
    cfg.workers, cfg.executor = a.workers or cfg.workers, a.executor or cfg.executor
    run_crossval(cfg, a.out, progress=not a.quiet, restart=a.restart)
    _report(a.out)
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
    from emotionnas.data.folds import make_folds
    from emotionnas.search.layers import select_layers
    from emotionnas.space.pipeline import layer_windows
    from emotionnas.training.cell_search import SearchSettings, SearchTask, run_search_task
    from emotionnas.training.run_helpers import speaker_indices
    from emotionnas.training.tasks import DataRef
    from emotionnas.utils.io import atomic_write_json, atomic_write_text
    cfg = _load_run_config(a)
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
    print(f"report: {write_report(a.run_dir)}")
    return 0


def cmd_export(a) -> int:
    from emotionnas.recognizer.export import export_run
    print(f"exported {export_run(a.run_dir, a.out, fold=a.fold)}")
    if a.onnx:
        from emotionnas.recognizer.onnx_export import describe_errors, export_onnx
        print("onnx: " + describe_errors(export_onnx(a.out)))
    return 0


def cmd_predict(a) -> int:
    from emotionnas.recognizer import load
    from emotionnas.recognizer.outputs import Writer, expand_inputs
    from emotionnas.recognizer.segments import predict_segments
    rec = load(a.model, backend=a.backend)  # model.json validated as data: bad -> one line
    if a.enroll:  # a speaker-adaptive model: this speaker's unlabelled audio standardises the features
        print(f"enrolled {rec.enroll([a.enroll])} utterance(s) from {a.enroll}", file=sys.stderr)
    items = expand_inputs(a.inputs)
    mode = a.segments or ("fixed" if a.windows else None)
    if a.plot and (len(items) != 1 or not mode):
        raise EmotionNASError("--plot draws the timeline of one file: give one FILE and --segments or --windows")
    out, bad, vectors = Writer(a.format, rec.labels, sys.stdout), 0, []
    for uid, path in items:
        try:
            if mode:
                rows = predict_segments(rec, path, mode, a.windows or 3.0, a.hop, top_k=a.top_k)
                for r in rows:
                    out.row(uid, {k: v for k, v in r.items() if k not in ("start", "end")}, r["start"], r["end"])
                if a.plot:
                    from emotionnas.reports.plots import plot_timeline
                    print(f"timeline: {plot_timeline(rows, rec.labels, a.plot, title=path.name)}", file=sys.stderr)
                continue
            res = rec.predict(path, top_k=a.top_k)
            if a.embeddings:
                vectors.append((uid, rec.embeddings(rec.load_wave(path))))
        except EmotionNASError as e:
            print(f"skipped: {e}", file=sys.stderr)
            bad += 1
            continue
        out.row(uid, res)
    if a.embeddings:
        from emotionnas.recognizer.outputs import save_embeddings
        print(f"embeddings: {save_embeddings(a.embeddings, vectors, rec)}", file=sys.stderr)
    return 1 if bad and bad == len(items) else 0


def cmd_serve(a) -> int:
    from dataclasses import replace
    from emotionnas.recognizer.serve import LOOPBACK_HOSTS, SERVE_LIMITS, ServeSettings, serve
    if a.max_seconds <= 0 or a.max_mb <= 0 or a.queue < 1 or a.timeout <= 0:
        raise EmotionNASError("--max-seconds, --max-mb, --timeout must be > 0 and --queue >= 1")
    limits = replace(SERVE_LIMITS, max_seconds=a.max_seconds, max_bytes=int(a.max_mb * 2 ** 20))
    settings = ServeSettings(limits=limits, window=a.window, hop=a.hop, queue=a.queue, timeout=a.timeout,
                             allow_hosts=LOOPBACK_HOSTS + tuple(a.allow_host), api_key=a.api_key,
                             cors_origins=tuple(a.cors_origin))
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emotionnas", description="NAS for speech emotion recognition")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    def corpus_args(sp):
        sp.add_argument("name", help="corpus reader: emodb, ravdess, cremad, tess, savee, iemocap, "
                                     "msp-improv, manifest, demo")
        sp.add_argument("root", help="corpus folder (or manifest file)")
        sp.add_argument("--option", action="append", metavar="KEY=VALUE", help="reader option, e.g. subset=all")

    def run_args(sp):
        corpus_args(sp)
        sp.add_argument("--config", help="YAML run config")
        sp.add_argument("--cache", help="feature cache folder")
        sp.add_argument("--encoder", help="deep encoder: whisper-base, whisper-tiny.en, HF id or local path")
        sp.add_argument("--protocol", choices=["loso", "loso-session", "iemocap-paper", "kfold"])
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. train.epochs=10")

    sp = sub.add_parser("corpus", help="count utterances, labels, speakers")
    corpus_args(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_corpus)

    sp = sub.add_parser("features", help="extract and cache both feature streams")
    corpus_args(sp)
    sp.add_argument("--cache", required=True)
    sp.add_argument("--stream", choices=["spectrogram", "deep", "both"], default="both")
    sp.add_argument("--encoder", default=FeatureConfig.encoder)
    sp.add_argument("--deep-pool", type=int, default=2, help="average-pool encoder frames by this factor")
    sp.add_argument("--layers", type=int, nargs="+", help="keep only these hidden states (default: all, as runs read)")
    sp.add_argument("--spectrogram-size", type=int, default=70, help="side of the pooled spectrogram")
    sp.set_defaults(func=cmd_features)

    sp = sub.add_parser("search", help="architecture search on one fold's training speakers")
    sp.add_argument("kind", choices=[n for n, f in FAMILIES.items() if f.searched] + list(SEARCH_ALIASES),
                    help="a searched family (cnn = darts, rnn = cell)")
    run_args(sp)
    sp.add_argument("--fold", type=int, required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("run", help="search + cross-validated two-stream training + report")
    run_args(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--search-per-fold", action="store_true", help="one search per fold instead of cross-fitted")
    sp.add_argument("--baselines", action="store_true", help="also refit the hand-designed baselines, fold-paired")
    sp.add_argument("--workers", type=int, help="worker processes for independent tasks (default: config, 2)")
    sp.add_argument("--executor", help="'local' (default) or dask://HOST:PORT of a running Dask scheduler")
    sp.add_argument("--restart", action="store_true", help="delete the previous run in --out first "
                    "(default: resume it; refused if the config or corpus changed)")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("prior", help="a selection prior (JSON) from finished runs, for runs on other corpora")
    sp.add_argument("runs", nargs="+", metavar="RUN_DIR")
    sp.add_argument("--out", required=True, help="the prior's JSON file (use with --set selection.prior=FILE)")
    sp.set_defaults(func=cmd_prior)

    sp = sub.add_parser("report", help="(re)write a run's report.md, figures and tables")
    sp.add_argument("run_dir")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("export", help="a run's model as a self-contained folder")
    sp.add_argument("run_dir")
    sp.add_argument("--out", required=True)
    sp.add_argument("--onnx", action="store_true", help="also write ONNX graphs (encoder + members), checked")
    sp.add_argument("--fold", type=int, help="fold F's refit ensemble instead of the final model (every speaker)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("predict", help="one JSON line per audio file (or per window with --windows)")
    sp.add_argument("--model", required=True)
    sp.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    sp.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, or list files (.txt/.scp: "
                    "a path or `id path` per line)")
    sp.add_argument("--segments", choices=["vad", "fixed"], help="long audio: one row per spoken stretch (vad, "
                    "Silero VAD) or per window (fixed, see --windows/--hop)")
    sp.add_argument("--windows", type=float, metavar="SECONDS", help="fixed windows of this length (default 3)")
    sp.add_argument("--hop", type=float, default=1.0, help="seconds between window starts (default 1.0)")
    sp.add_argument("--plot", help="with --segments/--windows and one FILE: draw the timeline into this PNG")
    sp.add_argument("--format", choices=["jsonl", "csv", "hf"], default="jsonl",
                    help="jsonl (default), csv (file,start,end,label,score,<classes>), hf ([{label, score}])")
    sp.add_argument("--top-k", type=int, metavar="K", help="also list the K best classes with their scores")
    sp.add_argument("--embeddings", metavar="OUT.npy", help="save the vectors the members classify (+ OUT.json)")
    sp.add_argument("--enroll", metavar="DIR", help="speaker-adaptive models: the speaker's audio (folder, list, file)")
    sp.set_defaults(func=cmd_predict)

    from emotionnas.recognizer.serve import SERVE_LIMITS as L, ServeSettings
    d = ServeSettings()
    sp = sub.add_parser("serve", help="HTTP service with a page: POST /predict, GET /health, GET /",
                        description=f"Limits (defaults): {d.describe()}. Refusals are one-line 4xx naming the "
                                    "limit; a full queue or a slow request gets 503 with Retry-After.")
    sp.add_argument("--model", required=True)
    sp.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only; any other "
                    "address needs --api-key or --no-auth)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--window", type=float, default=d.window, help="timeline window (s) for long audio")
    sp.add_argument("--hop", type=float, default=d.hop)
    sp.add_argument("--max-seconds", type=float, default=L.max_seconds, help=f"audio per upload (default {L.max_seconds:g})")
    sp.add_argument("--max-mb", type=float, default=L.max_bytes / 2 ** 20,
                    help=f"upload size in MB (default {L.max_bytes / 2 ** 20:g})")
    sp.add_argument("--queue", type=int, default=d.queue, help=f"requests in progress before 503 (default {d.queue})")
    sp.add_argument("--timeout", type=float, default=d.timeout, help=f"seconds per request (default {d.timeout:g})")
    sp.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                    help="accept this Host header name too (default: loopback names only; '*' for any)")
    sp.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="allow cross-origin requests from this origin (default: none)")
    sp.add_argument("--api-key", help="require this key (Authorization: Bearer KEY or X-API-Key); "
                    "default: $EMOTIONNAS_API_KEY")
    sp.add_argument("--no-auth", action="store_true", help="serve off loopback without a key (not advised)")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("evaluate", help="score an exported model on another corpus")
    sp.add_argument("--model", required=True)
    corpus_args(sp)
    sp.add_argument("--out", required=True, help="folder for evaluation.json, report.md, confusion figure")
    sp.add_argument("--map", help="label renames corpus=model, comma-separated (e.g. anger=angry,joy=happy)")
    sp.add_argument("--cache", help="feature cache folder (reuses the training features when shared)")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("demo", help="synthetic corpus -> run -> export -> predict")
    sp.add_argument("--out", default="runs/demo")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmotionNASError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
