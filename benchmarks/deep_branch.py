"""Deep-feature branch on EmoDB, leave-one-speaker-out: a Table-3 analogue of EmotionNAS.

    .venv/bin/python benchmarks/deep_branch.py --cache /work/cache [--layers 2,3] [--folds 10]
        [--rows RNN-H512L2,...,NAS-H256L1] [--frame-pool 4] [--out runs/bench_deep] [--no-write]
    .venv/bin/python benchmarks/deep_branch.py --cache /work/cache --tradeoff 1,2,4,8 --folds 3

Rows (Sun et al., Interspeech 2023, Table 3): vanilla RNN and LSTM at H=512 with
1 and 2 layers, GRU (H=512, 1 layer), a linear probe (masked mean + linear), and
the searched cell retrained at H=512 and H=256 (1 layer). All rows read the same
cached Whisper-base states (layers given by --layers, mixed by learned softmax
weights), with LayerNorm + dropout on the input and attention pooling.

Leak-free: per fold, the search sees only the fold's training and validation
speakers (tensors), training uses the training speakers, the validation speaker
picks the epoch, the test speaker is scored once. Per-fold results are written
to --out as they finish, so an interrupted run resumes. Prints a Markdown table
and replaces "## Deep branch (benchmarks/deep_branch.py)" in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/emodb"
SECTION = "## Deep branch (benchmarks/deep_branch.py)"
ROWS = ("RNN-H512L2", "RNN-H512L1", "LSTM-H512L2", "LSTM-H512L1", "GRU-H512L1", "LinearProbe",
        "NAS-H512L1", "NAS-H256L1")


def _row_spec(row: str):
    """'LSTM-H512L2' -> ('lstm', 512, 2); 'LinearProbe' -> ('linear_probe', 0, 0)."""
    if row == "LinearProbe":
        return "linear_probe", 0, 0
    m = re.fullmatch(r"(RNN|LSTM|GRU|NAS|RecipeGRU|RecipeLSTM)-H(\d+)L(\d+)", row)
    if not m:
        raise SystemExit(f"unknown row {row!r}")
    kind = m.group(1).lower().replace("recipe", "recipe:")  # RecipeGRU: GRU run by the recipe executor
    return kind, int(m.group(2)), int(m.group(3))


def _train_eval(model, data, n_classes, args, probe: bool = False):
    from emotionnas.training.loop import ArraySplit, TrainConfig, fit, predict_proba
    from emotionnas.metrics import unweighted_accuracy, weighted_accuracy
    (xtr, ltr, ytr), (xva, lva, yva), (xte, lte, yte) = data
    # the probe has 4.6 k weights and no recurrence: a larger step and more epochs (cheap), so
    # the baseline is not under-trained
    cfg = TrainConfig(epochs=3 * args.epochs if probe else args.epochs, patience=2 * args.patience if probe
                      else args.patience, lr=args.probe_lr if probe else args.lr, batch_size=32)
    t0 = time.perf_counter()
    res = fit(model, ArraySplit((xtr, ltr), ytr), ArraySplit((xva, lva), yva), cfg, n_classes, seed=args.seed)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict_proba(model, ArraySplit((xte, lte), yte)).argmax(1)
    infer_s = time.perf_counter() - t0
    return {"ua": unweighted_accuracy(yte, pred, n_classes), "wa": weighted_accuracy(yte, pred),
            "best_epoch": res.best_epoch, "val_ua": res.best_val_ua, "train_s": train_s,
            "test_infer_s": infer_s, "params": sum(p.numel() for p in model.parameters()),
            "epochs_run": len(res.history)}


def run_fold(k, fold, fs, args, rows, out: Path, frame_pool: int) -> dict:
    from emotionnas.data.folds import split_indices
    from emotionnas.models.rnn_branch import RNNBranch
    from emotionnas.search.rnn.search import RNNSearchConfig, deep_tensors, search_rnn
    from emotionnas.utils.io import atomic_write_json, read_json
    from emotionnas.utils.seed import seed_everything

    path = out / f"fold{k}_pool{frame_pool}.json"
    result = read_json(path) if path.exists() else {"fold": fold.name, "test": list(fold.test), "rows": {}}
    todo = [r for r in rows if r not in result["rows"]]
    if not todo:
        return result
    tr, va, te = split_indices(fs.table, fold)
    layers = args.layers
    data = [(*deep_tensors(fs, idx, layers, frame_pool), fs.labels[idx]) for idx in (tr, va, te)]
    n_classes, D, L = fs.n_classes, data[0][0].shape[-1], data[0][0].shape[1]
    recipe = result.get("recipe")
    if any(r.startswith("NAS") for r in todo) and recipe is None:
        scfg = RNNSearchConfig(epochs=args.search_epochs, hidden=args.search_hidden, n_nodes=args.nodes,
                               n_states=args.states, frame_pool=1, seed=args.seed)  # data already pooled
        t0 = time.perf_counter()
        (xtr, ltr, ytr), (xva, lva, yva) = data[0], data[1]
        recipe = search_rnn(xtr, ltr, torch.as_tensor(ytr), xva, lva, torch.as_tensor(yva), scfg,
                            out / f"search_fold{k}_pool{frame_pool}", progress=False)
        result["recipe"], result["search_s"] = recipe, time.perf_counter() - t0
        atomic_write_json(path, result)
    for row in todo:
        kind, H, nl = _row_spec(row)
        seed_everything(args.seed)
        spec = recipe if kind == "nas" else kind
        model = RNNBranch(spec, D, hidden=H or 256, layers=nl or 1, n_classes=n_classes, n_layers_in=L,
                          layer_mode="weighted", frame_pool=1, dropout=args.dropout,
                          mean_skip=args.mean_skip)
        r = _train_eval(model, data, n_classes, args, probe=kind == "linear_probe")
        result["rows"][row] = r
        atomic_write_json(path, result)
        print(f"  fold {k} ({fold.name}) pool {frame_pool} {row:12s} UA {r['ua']:5.1f} WA {r['wa']:5.1f} "
              f"train {r['train_s']:.0f}s", flush=True)
    return result


def _fmt(vals):
    return f"{np.mean(vals):.1f} ± {np.std(vals):.1f}"


def table(results: list[dict], rows) -> str:
    lines = ["| model | params | UA % | WA % | search s/fold | train s/fold |", "|---|---|---|---|---|---|"]
    for row in rows:
        rs = [r["rows"][row] for r in results if row in r["rows"]]
        if not rs:
            continue
        search = (f"{np.mean([r['search_s'] for r in results if 'search_s' in r]):.0f}"
                  if row.startswith("NAS") else "–")
        n = float(np.mean([r["params"] for r in rs]))  # NAS cells differ per fold: mean
        size = f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"
        lines.append(f"| {row} | {size} | {_fmt([r['ua'] for r in rs])} | {_fmt([r['wa'] for r in rs])} | "
                     f"{search} | {np.mean([r['train_s'] for r in rs]):.0f} |")
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace this script's section of BENCHMARKS.md (one writer for every benchmark)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import write_section as replace_section
    replace_section(SECTION.removeprefix("## "), text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=REPO / "cache")
    ap.add_argument("--encoder", default="whisper-base")
    ap.add_argument("--layers", default="2,3", help="encoder layers (indices into L+1), or 'all'")
    ap.add_argument("--folds", type=int, default=10, help="run the first N LOSO folds")
    ap.add_argument("--fold-ids", default="", help="run only these fold indices (e.g. 0,2,4), to split "
                    "the folds over processes; without --no-write the table covers every finished fold")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--frame-pool", type=int, default=4, help="average this many 25 Hz frames")
    ap.add_argument("--tradeoff", default="", help="comma list of frame pools: speed/UA table for --tradeoff-row")
    ap.add_argument("--tradeoff-row", default="RecipeGRU-H256L1",
                    help="row for --tradeoff (NAS-H256L1 searches once per pool; RecipeGRU-H256L1 does not)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--probe-lr", type=float, default=5e-3)
    ap.add_argument("--mean-skip", action="store_true", help="recurrent rows also see the mean of the "
                    "input frames (RNNBranch(mean_skip=True))")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--search-epochs", type=int, default=30)
    ap.add_argument("--search-hidden", type=int, default=64)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--states", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "runs/bench_deep")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--table-only", action="store_true", help="run nothing: tabulate the finished folds in --out")
    ap.add_argument("--notes", type=Path, help="Markdown file appended to the section (analysis, extra tables)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.layers = None if args.layers == "all" else [int(i) for i in args.layers.split(",")]

    from emotionnas.data.folds import make_folds
    from emotionnas.features.dataset import load_features
    if args.table_only:  # no features needed: the fold files hold everything
        fs, folds = None, range(args.folds)
    else:
        fs = load_features("emodb", args.data, args.cache, streams=("deep",), encoder=args.encoder,
                           progress=False)
        folds = make_folds(fs.table, "loso")[: args.folds]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tradeoff:
        pools, row = [int(p) for p in args.tradeoff.split(",")], args.tradeoff_row
        res = {p: [run_fold(k, folds[k], fs, args, [row], args.out, p) for k in
                   ([int(i) for i in args.fold_ids.split(",")] if args.fold_ids else range(len(folds)))]
               for p in pools}
        lines = [f"| frame pool | step rate | {row} UA % | train s/fold | s/epoch | test inference s/fold |",
                 "|---|---|---|---|---|---|"]
        for p, rs in res.items():
            rr = [r["rows"][row] for r in rs]
            lines.append(f"| {p} | {25 / p:.2f} Hz | {_fmt([r['ua'] for r in rr])} | "
                         f"{np.mean([r['train_s'] for r in rr]):.0f} | "
                         f"{np.mean([r['train_s'] / r['epochs_run'] for r in rr]):.1f} | "
                         f"{np.mean([r['test_infer_s'] for r in rr]):.2f} |")
        print("\n".join(lines))
        return
    rows = args.rows.split(",")
    ids = [int(i) for i in args.fold_ids.split(",")] if args.fold_ids else range(len(folds))
    if args.table_only:
        ids = []
    for k in ids:
        fold = folds[k]
        print(f"fold {k + 1}/{len(folds)} {fold.name}: train {len(fold.train)} spk, val {fold.val}, "
              f"test {fold.test}", flush=True)
        run_fold(k, fold, fs, args, rows, args.out, args.frame_pool)
    # the table: every fold (of the first --folds) whose rows are all finished, by this or another process
    done = [args.out / f"fold{k}_pool{args.frame_pool}.json" for k in range(len(folds))]
    results = [r for r in (json.loads(p.read_text()) for p in done if p.exists())
               if all(row in r["rows"] for row in rows)]
    folds_used = [r["fold"] for r in results]
    body = table(results, rows)
    print(body)
    cmd = "python benchmarks/deep_branch.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"Command: `{cmd}`  \n"
            f"Machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{args.threads} thread(s); CPU shared with other jobs (times are contended).  \n"
            f"Date: {datetime.date.today()}; search + training time of the tabulated folds "
            f"{sum(r.get('search_s', 0) + sum(x['train_s'] for x in r['rows'].values()) for r in results) / 60:.0f} "
            "min (one process per half of the folds, run side by side).\n\n"
            f"EmoDB, leave-one-speaker-out, {len(results)} of 10 folds ({', '.join(folds_used)}; "
            f"{len(fs) if fs is not None else len(list((args.data / 'wav').glob('*.wav')))} "
            "utterances, 7 classes); "
            f"{args.encoder} layers {args.layers or 'all'} (learned softmax mix), frames 25 Hz averaged by "
            f"{args.frame_pool}; test speaker scored once with the best-validation-UA epoch. "
            f"Mean ± std over folds.\n\n{body}\n")
    if args.notes:
        text += "\n" + args.notes.read_text(encoding="utf-8").strip() + "\n"
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
