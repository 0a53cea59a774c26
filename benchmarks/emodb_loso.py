"""EmotionNAS vs hand-designed baselines on EmoDB, leave-one-speaker-out, one run.

    .venv/bin/python benchmarks/emodb_loso.py --cache /work/cache --out runs/bench-emodb

Runs `run_crossval` (cross-fitted search, branches alone, every fusion strategy) and, on
the same folds, features and validation speakers: a linear probe and an LSTM on the deep
features, ResNet* on the spectrograms. Writes a section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EMODB, machine_line, write_section  # noqa: E402

from emotionnas.config import RunConfig  # noqa: E402
from emotionnas.data.folds import load_folds  # noqa: E402
from emotionnas.training.crossval import run_crossval, spectrogram_config  # noqa: E402
from emotionnas.metrics import mean_std  # noqa: E402
from emotionnas.training.stages import stage_seed, train_stage  # noqa: E402
from emotionnas.utils.seed import seed_everything  # noqa: E402


def emodb_config(args) -> RunConfig:
    cfg = RunConfig(corpus="emodb", root=str(args.root), protocol="loso", search_groups=2)
    cfg.features.cache_dir = args.cache
    cfg.features.spectrogram_size = args.spec_size
    cfg.cnn.C, cfg.cnn.layers = 6, 3
    cfg.cnn.search = {"epochs": args.cnn_epochs, "warmup_epochs": max(1, args.cnn_epochs // 3),
                      "proxy_size": 35, "batch_size": 32}
    cfg.rnn.search = {"epochs": args.rnn_epochs, "warmup_epochs": max(1, args.rnn_epochs // 4)}
    cfg.rnn.mean_skip = args.mean_skip
    cfg.train.epochs, cfg.train.patience = args.epochs, args.patience
    cfg.max_folds = args.max_folds
    return cfg


def fold_layers(cfg: RunConfig, run_dir: Path, fs, folds) -> list:
    """Each fold's encoder layers, as its (cross-fitted) search chose them: baselines get the same input."""
    from emotionnas.training.crossval import plan_searches
    from emotionnas.utils.io import read_json
    layers = [None] * len(folds)
    for search_fold, members in plan_searches(folds, cfg, sorted(set(fs.speakers))):
        done = run_dir / "searches" / search_fold.name / "search_done.json"
        while not done.exists():  # --part baselines in a second process waits for the run's searches
            time.sleep(10)
        for i in members:
            layers[i] = read_json(done)["deep_layers"]
    return layers


def baselines(cfg: RunConfig, run_dir: Path, fs, folds) -> dict:
    """Hand-designed models on the same folds, features and encoder layers (early stopping on the
    same validation speakers), and the two hand-designed branches fused by concatenation."""
    from emotionnas.models.resnet import resnet_star
    from emotionnas.models.rnn_branch import RNNBranch
    from emotionnas.training.stages import fusion_stage
    layers = fold_layers(cfg, run_dir, fs, folds)
    n_in = [len(x) if x else fs.deep_layers for x in layers]
    makers = {
        "Linear probe (deep)": ("linear", ("deep",), lambda i: RNNBranch(
            "linear_probe", fs.deep_dim, n_classes=fs.n_classes, n_layers_in=n_in[i])),
        "LSTM-H256L1 (deep)": ("lstm-h256l1", ("deep",), lambda i: RNNBranch(
            "lstm", fs.deep_dim, hidden=256, layers=1, n_classes=fs.n_classes, n_layers_in=n_in[i],
            frame_pool=cfg.rnn.frame_pool)),
        "ResNet* (spectrogram)": ("resnetstar", ("spectrogram",), lambda i: resnet_star(fs.n_classes)),
    }
    out, models = {}, {}
    for name, (key, inputs, make) in makers.items():
        rows, t0 = [], time.perf_counter()
        for i, fold in enumerate(folds):
            seed_everything(stage_seed(cfg.seed, i, name))
            fold_dir = run_dir / "baselines" / key / f"fold{i:02d}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            model = make(i)
            rows.append(train_stage("model", model, fs, fold, inputs, cfg, cfg.train, fold_dir,
                                    deep_layers=layers[i]))
            models[key, i] = model
        out[name] = {"rows": rows, "seconds": time.perf_counter() - t0}
        print(f"{name}: UA {np.mean([r['ua'] for r in rows]):.1f}", flush=True)
    name, rows, t0 = "ResNet* + LSTM, concat fusion", [], time.perf_counter()
    for i, fold in enumerate(folds):
        fold_dir = run_dir / "baselines" / "concat" / f"fold{i:02d}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        r = fusion_stage(["concat"], models["resnetstar", i], models["lstm-h256l1", i], fs, fold, cfg, cfg.train,
                         fold_dir, i, layers[i])["concat"]
        rows.append({**r, "train_seconds": 0.0})
    out[name] = {"rows": rows, "seconds": time.perf_counter() - t0}
    print(f"{name}: UA {np.mean([r['ua'] for r in rows]):.1f}", flush=True)
    return out


def run_baselines(cfg: RunConfig, run_dir: Path):
    from emotionnas.features.dataset import load_features
    fs = load_features("emodb", cfg.root, cfg.features.cache_dir, progress=False,
                       spec_cfg=spectrogram_config(cfg))
    folds = load_folds(run_dir / "folds.json")
    t1 = time.perf_counter()
    base = baselines(cfg, run_dir, fs, folds)
    return base, time.perf_counter() - t1


def predict_latency(run_dir: Path) -> dict:
    """Export the run's model; median wall time of Recognizer.predict on a 3 s array, warm."""
    from emotionnas.export import export_run
    from emotionnas.recognizer import Recognizer
    rec = Recognizer.load(export_run(run_dir, run_dir / "model"))
    wave = 0.1 * np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    for _ in range(3):
        rec.predict(wave)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        rec.predict(wave)
        times.append(time.perf_counter() - t)
    return {"median_ms": 1000 * float(np.median(times)), "p90_ms": 1000 * float(np.percentile(times, 90))}


def partial_report(args, cfg: RunConfig, run_dir: Path, header: str) -> int:
    """Write what an unfinished run has on disk: finished folds only, clearly labelled."""
    from emotionnas.utils.io import read_json
    folds = load_folds(run_dir / "folds.json")
    rows = {"EmotionNAS (ISM, frozen branches)": [], "spectrogram branch alone (searched CNN)": [],
            "deep branch alone (searched RNN)": []}
    for i in range(len(folds)):
        d = run_dir / "folds" / f"fold{i:02d}"
        if (d / "fusion.json").exists():
            fus = read_json(d / "fusion.json")
            rows["EmotionNAS (ISM, frozen branches)"].append(fus[cfg.fusion])
            rows["spectrogram branch alone (searched CNN)"].append(read_json(d / "spectrogram.json"))
            rows["deep branch alone (searched RNN)"].append(read_json(d / "deep.json"))
            for name, r in fus.items():
                rows.setdefault(f"fusion: {name}", []).append(r)
    for sub in sorted((run_dir / "baselines").glob("*")) if (run_dir / "baselines").exists() else []:
        done = sorted(sub.glob("fold*/model.json"))
        if done:
            rows[f"baseline: {sub.name}"] = [read_json(p) for p in done]
    lines = ["| model | folds done | UA | WA | macro-F1 |", "|---|---:|---:|---:|---:|"]
    for name, rs in rows.items():
        if rs:
            lines.append(f"| {name} | {len(rs)} | {fmt(rs, 'ua')} | {fmt(rs, 'wa')} | {fmt(rs, 'macro_f1')} |")
    searches = sorted(p.parent.name for p in run_dir.glob("searches/*/search_done.json"))
    body = f"""**Partial run (not the full protocol):** the session ended before all folds finished; only
finished folds are reported, each row over its own finished folds (mean ± std, percent).

Command: `.venv/bin/python benchmarks/emodb_loso.py {' '.join(sys.argv[1:])}` (reads what the running
benchmark had written to `{run_dir}`).

Machine: {header}. Every process here shared 2 cores with ~6 other benchmark jobs (load average 10-15),
so no wall time from this run is a speed figure.

EmoDB, leave-one-speaker-out (10 folds planned), cross-fitted search (2 groups; finished: {', '.join(searches) or 'none'}).
Validation speakers come from the training speakers; test speakers never reach search or early stopping.

{chr(10).join(lines)}
"""
    print(body)
    if not args.no_write:
        write_section("EmoDB leave-one-speaker-out (benchmarks/emodb_loso.py)", body)
    return 0


def fmt(rows, key) -> str:
    m, s = mean_std([r[key] for r in rows])
    return f"{m:.1f} ± {s:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=str(EMODB))
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--out", default="runs/bench-emodb")
    ap.add_argument("--spec-size", type=int, default=70)
    ap.add_argument("--cnn-epochs", type=int, default=12)
    ap.add_argument("--rnn-epochs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--mean-skip", action="store_true")
    ap.add_argument("--max-folds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of this process")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--part", choices=["all", "baselines", "partial", "latency"], default="all",
                    help="baselines: only the baseline rows (on the folds.json of a run started with the same "
                         "arguments), e.g. in a second process; every part resumes from disk")
    args = ap.parse_args()
    if not (Path(args.root) / "wav").is_dir():
        print(f"EmoDB not found at {args.root}; nothing measured")
        return 0
    torch.set_num_threads(args.threads)
    header = machine_line()
    cfg = emodb_config(args)
    cfg.threads = args.threads
    run_dir = Path(args.out)
    if args.part == "partial":
        return partial_report(args, cfg, run_dir, header)
    if args.part == "latency":  # re-measure `predict` on a finished run (e.g. on an idle machine)
        lat = predict_latency(run_dir)
        print(f"{header}\npredict, 3 s utterance, warm, features included: median {lat['median_ms']:.0f} ms, "
              f"p90 {lat['p90_ms']:.0f} ms ({args.threads} thread(s))")
        return 0
    if args.part == "baselines":
        while not (run_dir / "folds.json").exists():
            time.sleep(10)
        return run_baselines(cfg, run_dir)[1] and 0
    t0 = time.perf_counter()
    res = run_crossval(cfg, run_dir)
    t_run = time.perf_counter() - t0
    base, t_base = run_baselines(cfg, run_dir)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    latency = predict_latency(run_dir)
    timing = json.loads((run_dir / "timing.json").read_text())

    lines = ["| model | params | UA | WA | macro-F1 |", "|---|---:|---:|---:|---:|"]
    fold_rows = res["folds"]
    lines.append(f"| **EmotionNAS (searched CNN + searched RNN, ISM)** | {fold_rows[0]['n_params']:,} | "
                 f"**{res['ua']:.1f} ± {res['ua_std']:.1f}** | {res['wa']:.1f} ± {res['wa_std']:.1f} | "
                 f"{res['macro_f1']:.1f} ± {res['macro_f1_std']:.1f} |")
    for name, b in base.items():
        lines.append(f"| {name} | {b['rows'][0]['n_params']:,} | {fmt(b['rows'], 'ua')} | "
                     f"{fmt(b['rows'], 'wa')} | {fmt(b['rows'], 'macro_f1')} |")
    abl = res["ablations"]
    t4 = ["| branch (paper Table 4) | UA | WA |", "|---|---:|---:|"]
    for name, r in abl["branches"].items():
        t4.append(f"| {name} | {r['ua']:.1f} ± {r['ua_std']:.1f} | {r['wa']:.1f} ± {r['wa_std']:.1f} |")
    t5 = ["| fusion (paper Table 5, frozen branches) | UA | WA |", "|---|---:|---:|"]
    for name, r in abl.get("fusion", {}).items():
        t5.append(f"| {name} | {r['ua']:.1f} ± {r['ua_std']:.1f} | {r['wa']:.1f} ± {r['wa_std']:.1f} |")
    base_train = sum(r["train_seconds"] for b in base.values() for r in b["rows"])
    best_base = max(mean_std([r["ua"] for r in b["rows"]])[0] for b in base.values())
    n = len(fold_rows)
    layer_text = " or ".join(sorted({str(f["deep_layers"]) for f in fold_rows}))
    body = f"""Command: `.venv/bin/python benchmarks/emodb_loso.py {' '.join(sys.argv[1:])}`

Machine: {header}.

EmoDB (535 utterances, 7 classes, 10 speakers), leave-one-speaker-out, {n} folds; every fold's
validation speaker comes from its training speakers; searches are cross-fitted (2 searches, each
without the test speakers of the folds that use it). Deep features: Whisper-base hidden states
{layer_text}, chosen in each search by a per-layer linear probe on that search's speakers (the
baselines read the same layers); spectrogram {cfg.features.spectrogram_size}×{cfg.features.spectrogram_size}
(see the spectrogram-branch section for the 140×140 cost). Mean ± std over folds, percent.

{chr(10).join(lines)}

{chr(10).join(t4)}

{chr(10).join(t5)}

EmotionNAS UA minus the best baseline UA: {res['ua'] - best_base:+.1f} points (target ≥ +3; target UA ≥ 90).

Wall time with a warm feature cache: run {t_run / 60:.1f} min (searches {timing['search_seconds'] / 60:.1f} min,
fold training {timing['train_seconds'] / 60:.1f} min); baselines {base_train / 60:.1f} min of training
(summed over folds; this process: {t_base / 60:.1f} min); peak RSS of this process {peak:.0f} MB.

`predict` on a 3 s utterance (exported model, warm, features included): median
{latency['median_ms']:.0f} ms, p90 {latency['p90_ms']:.0f} ms (target ≤ 50 ms).
"""
    notes = Path(__file__).resolve().parent / "notes" / "emodb_loso.md"
    if notes.exists():  # the written analysis of the last measured run
        body += "\n" + notes.read_text()
    print(body)
    if not args.no_write:
        write_section("EmoDB leave-one-speaker-out (benchmarks/emodb_loso.py)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
