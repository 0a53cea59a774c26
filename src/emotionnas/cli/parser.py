"""The argument parser: every verb, option and help text of `emotionnas`."""
from __future__ import annotations

import argparse

from emotionnas.cli.commands import (SEARCH_ALIASES, cmd_corpus, cmd_demo, cmd_evaluate, cmd_export, cmd_features,
                                     cmd_models, cmd_prior, cmd_report, cmd_run, cmd_search, cmd_serve)
from emotionnas.cli.commands import PRECEDENCE
from emotionnas.cli.predict import EXIT_CODES, cmd_predict
from emotionnas.config import FeatureConfig
from emotionnas.data.corpora import CORPORA
from emotionnas.data.folds import PROTOCOLS

from emotionnas.features.encoder_ref import DTYPES, REGISTERED
from emotionnas.space.families import FAMILIES
from emotionnas.training.strategies import STRATEGIES

MODEL_HELP = ("a shipped model's name (`emotionnas models` lists them, e.g. emodb) or a model folder made by "
              "`emotionnas export` (write ./NAME for a folder named like a shipped model)")


def _version() -> str:
    """The installed package's version (importlib.metadata), or a plain word when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("emotionnas")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emotionnas", description="NAS for speech emotion recognition")
    p.add_argument("--version", action="version", version=f"emotionnas {_version()}",
                   help="print the installed version and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    def corpus_args(sp):
        sp.add_argument("name", help=f"corpus reader: {', '.join(CORPORA)}")
        sp.add_argument("root", help="corpus folder (or manifest file)")
        sp.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="reader option, e.g. subset=all; manifest rows must lie in the manifest's "
                        "folder (symlinks resolved) unless allow_outside=true")

    def run_args(sp):
        corpus_args(sp)
        sp.add_argument("--config", help="a preset (demo, paper) or a YAML run config file; a preset name wins "
                        "over a file or folder of that name here unless written as a path (./demo, "
                        "or ending in .yaml/.yml)")
        sp.add_argument("--cache", help="feature cache folder (features.cache_dir)")
        sp.add_argument("--encoder", help=f"deep encoder (features.encoder): {', '.join(REGISTERED)} (optionally "
                        f"@{'/@'.join(DTYPES)}), hf:ID, an org/model id or a local folder")
        sp.add_argument("--protocol", choices=PROTOCOLS, help="speaker-independent folds (protocol)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help=f"config override, e.g. train.epochs=10 or selection.strategy={'|'.join(STRATEGIES)}. "
                        + PRECEDENCE)

    sp = sub.add_parser("corpus", help="count utterances, labels, speakers")
    corpus_args(sp)
    sp.add_argument("--json", action="store_true", help="print the counts as JSON instead of text")
    sp.set_defaults(func=cmd_corpus)

    sp = sub.add_parser("features", help="extract and cache both feature streams")
    corpus_args(sp)
    sp.add_argument("--cache", required=True, help="feature cache folder (created if missing; runs given the "
                    "same folder reuse what is there)")
    sp.add_argument("--stream", choices=["spectrogram", "deep", "both"], default="both",
                    help="which feature stream(s) to extract (default both)")
    sp.add_argument("--encoder", default=FeatureConfig.encoder,
                    help=f"deep encoder: {', '.join(REGISTERED)}, hf:ID or a local folder (default "
                    f"{FeatureConfig.encoder})")
    sp.add_argument("--deep-pool", type=int, default=2, help="average-pool encoder frames by this factor")
    sp.add_argument("--layers", type=int, nargs="+", help="keep only these hidden states (default: all, as runs read)")
    sp.add_argument("--spectrogram-size", type=int, default=70, help="side of the pooled spectrogram")
    sp.set_defaults(func=cmd_features)

    sp = sub.add_parser("search", help="architecture search on one fold's training speakers")
    sp.add_argument("kind", choices=[n for n, f in FAMILIES.items() if f.searched] + list(SEARCH_ALIASES),
                    help="a searched family (cnn = darts, rnn = cell)")
    run_args(sp)
    sp.add_argument("--fold", type=int, required=True, help="index of the fold whose training speakers are searched")
    sp.add_argument("--out", required=True, help="folder for the search log, checkpoint and the found cell")
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("run", help="search + cross-validated two-stream training + report")
    run_args(sp)
    sp.add_argument("--out", required=True, help="the run folder (results.json, report.md, models); nothing is "
                    "written to it before the config and the corpus are checked")
    sp.add_argument("--search-per-fold", action="store_true", help="one search per fold instead of cross-fitted")
    sp.add_argument("--baselines", action="store_true", help="also refit the hand-designed baselines, fold-paired")
    sp.add_argument("--workers", type=int, help="worker processes for independent tasks (default: config, 2)")
    sp.add_argument("--executor", help="'local' (default) or dask://HOST:PORT of a running Dask scheduler")
    sp.add_argument("--restart", action="store_true", help="delete the previous run in --out first "
                    "(default: resume it; refused if the config or corpus changed)")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("prior", help="a selection prior (JSON) from finished runs, for runs on other corpora")
    sp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders to learn the prior from")
    sp.add_argument("--out", required=True, help="the prior's JSON file (use with --set selection.prior=FILE)")
    sp.set_defaults(func=cmd_prior)

    sp = sub.add_parser("report", help="(re)write a run's report.md, figures and tables")
    sp.add_argument("run_dir", help="a finished run folder (holds results.json)")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("export", help="a run's model as a self-contained folder")
    sp.add_argument("run_dir", help="a finished run folder (holds results.json)")
    sp.add_argument("--out", required=True, help="the model folder to write (model.json, model.safetensors, "
                    "README.md model card)")
    sp.add_argument("--onnx", action="store_true", help="also write ONNX graphs (encoder + members), checked")
    sp.add_argument("--fold", type=int, help="fold F's refit ensemble instead of the final model (every speaker)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("models", help="list the shipped models (usable by name: predict --model NAME)")
    sp.add_argument("--json", action="store_true", help="one JSON array instead of the table")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("predict", help="one JSON line per audio file (or per window with --windows)",
                        description="One row per input (per segment with --segments/--windows), in input order. "
                        + EXIT_CODES + " docs/outputs.md has the schema of each format.")
    sp.add_argument("--model", required=True, help=MODEL_HELP)
    sp.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                    help="torch (default) or onnx (needs `export --onnx`; no torch import)")
    sp.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, or list files (.txt/.scp: "
                    "a path or `id path` per line)")
    sp.add_argument("--segments", choices=["vad", "fixed"], help="long audio: one row per spoken stretch (vad, "
                    "Silero VAD) or per window (fixed, see --windows/--hop)")
    sp.add_argument("--windows", type=float, metavar="SECONDS", help="fixed windows of this length (default 3)")
    sp.add_argument("--hop", type=float, default=1.0, help="seconds between window starts (default 1.0)")
    sp.add_argument("--plot", help="with --segments/--windows and one FILE: draw the timeline into this PNG")
    sp.add_argument("--format", choices=["jsonl", "csv", "hf"], default="jsonl",
                    help="jsonl (default), csv (file,start,end,label,score,<classes>,error), hf ({file, "
                    "predictions: [{label, score}, ...]})")
    sp.add_argument("--top-k", type=int, metavar="K", help="also list the K best classes with their scores "
                    "(hf: only those K)")
    sp.add_argument("--embeddings", metavar="OUT.npy", help="save the vectors the members classify (+ OUT.json)")
    sp.add_argument("--enroll", metavar="DIR", help="speaker-adaptive models: the speaker's audio (folder, list, file)")
    sp.set_defaults(func=cmd_predict)

    from emotionnas.recognizer.serve import SERVE_LIMITS as L, ServeSettings
    d = ServeSettings()
    sp = sub.add_parser("serve", help="HTTP service with a page: POST /predict, GET /health, GET /",
                        description=f"Limits (defaults): {d.describe()}. Refusals are one-line 4xx naming the "
                                    "limit; a full queue or a slow request gets 503 with Retry-After; /health is "
                                    "answered even when the queue and the connection limits are full.")
    sp.add_argument("--model", required=True, help=MODEL_HELP)
    sp.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only; any other "
                    "address needs a key or --no-auth; 0.0.0.0 or :: also accept this machine's own names and "
                    "addresses as Host)")
    sp.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    sp.add_argument("--window", type=float, default=d.window, help="timeline window (s) for long audio")
    sp.add_argument("--hop", type=float, default=d.hop, help=f"seconds between timeline windows (default {d.hop:g})")
    sp.add_argument("--max-seconds", type=float, default=L.max_seconds, help=f"audio per upload (default {L.max_seconds:g})")
    sp.add_argument("--max-mb", type=float, default=L.max_bytes / 2 ** 20,
                    help=f"upload size in MB (default {L.max_bytes / 2 ** 20:g})")
    sp.add_argument("--queue", type=int, default=d.queue, help=f"requests in progress before 503 (default {d.queue})")
    sp.add_argument("--timeout", type=float, default=d.timeout,
                    help=f"seconds per request; an upload's body must arrive within it too (default {d.timeout:g})")
    sp.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                    help="accept this Host header name too (default: loopback names only; '*' for any)")
    sp.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="allow cross-origin requests from this origin (default: none)")
    sp.add_argument("--header-timeout", type=float, default=d.header_timeout, metavar="SECONDS",
                    help="a connection that has not sent its request headers this long after opening (or after "
                    f"its previous response) is closed (default {d.header_timeout:g})")
    sp.add_argument("--max-connections", type=int, default=d.max_connections, metavar="N",
                    help="open connections in all; one more closes the oldest still waiting for its headers, "
                    f"so prompt requests are served (default {d.max_connections})")
    sp.add_argument("--max-per-client", type=int, default=d.max_per_client, metavar="N",
                    help=f"open connections per client address, the same way (default {d.max_per_client}; "
                    "behind a proxy, as many as --max-connections)")
    key = sp.add_mutually_exclusive_group()
    key.add_argument("--api-key-file", metavar="PATH", help="require the key on the first line of this file "
                     "(Authorization: Bearer KEY or X-API-Key; >= 16 characters; keep the file chmod 600)")
    key.add_argument("--api-key", metavar="KEY", help="require this key; VISIBLE to other users of this machine in "
                     "the process list: prefer --api-key-file or $EMOTIONNAS_API_KEY (the default source)")
    sp.add_argument("--no-auth", action="store_true", help="serve off loopback without a key (not advised)")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("evaluate", help="score an exported model on another corpus")
    sp.add_argument("--model", required=True, help=MODEL_HELP)
    corpus_args(sp)
    sp.add_argument("--out", required=True, help="folder for evaluation.json, report.md, confusion figure")
    sp.add_argument("--map", help="label renames corpus=model, comma-separated (e.g. anger=angry,joy=happy)")
    sp.add_argument("--cache", help="feature cache folder (reuses the training features when shared)")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("demo", help="synthetic corpus -> run -> export -> predict")
    sp.add_argument("--out", default="runs/demo", help="folder for the corpus, cache, run and model "
                    "(default runs/demo)")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override of the demo preset, "
                    "e.g. train.epochs=2")
    sp.set_defaults(func=cmd_demo)
    return p
