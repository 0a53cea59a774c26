"""Spectrogram branch on EmoDB, leave-one-speaker-out: an EmotionNAS Table-2 analogue.

    .venv/bin/python benchmarks/spectrogram_branch.py run --folds 0,1 [--jobs 2]
    .venv/bin/python benchmarks/spectrogram_branch.py profile
    .venv/bin/python benchmarks/spectrogram_branch.py guard
    .venv/bin/python benchmarks/spectrogram_branch.py report

``run``: per fold (test = one speaker, val = one other speaker, train = the other 8),
cells are searched on train (weights) + val (α) speakers only, at a reduced-resolution
proxy; the derived network is retrained from scratch at 140x140 with early stopping on
the val speaker; UA/WA are measured once on the test speaker. Rows: NAS-C4L3, NAS-C6L3,
NAS-C8L4, emoDARTS (C4L3 cells + LSTM), ResNet18, ResNet*. Each fold writes
``<out>/<fold>/results.json`` (rerunning skips finished rows; searches resume).
``profile``: supernet step cost (CPU seconds) for each speed measure.
``guard``: collapse guard (β-decay, max-2-skip) vs none on one fold's search split.
``report``: replaces "## Spectrogram branch (benchmarks/spectrogram_branch.py)" in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/emodb"
SECTION = "## Spectrogram branch (benchmarks/spectrogram_branch.py)"
ROWS = ("ResNet*", "NAS-C4L3", "emoDARTS", "NAS-C6L3", "ResNet18", "NAS-C8L4")
NAS = {"NAS-C4L3": (4, 3, "gap"), "NAS-C6L3": (6, 3, "gap"), "NAS-C8L4": (8, 4, "gap"), "emoDARTS": (4, 3, "lstm")}


def _features(cache: Path, size: int = 140):
    from emotionnas.features.dataset import load_features
    from emotionnas.features.spectrogram import SpectrogramConfig
    return load_features("emodb", DATA, cache, streams=("spectrogram",), progress=False,
                         spec_cfg=SpectrogramConfig(out_freq=size, out_time=size))


def _group_plan(fs, groups: int):
    """Cross-fitted searches: [(search Fold, member fold indices)], as `emotionnas run` plans them."""
    from emotionnas.config import RunConfig
    from emotionnas.data.folds import make_folds
    from emotionnas.training.crossval import plan_searches
    folds = make_folds(fs.table, "loso")
    return plan_searches(folds, RunConfig(search_groups=groups), sorted(set(fs.speakers)))


def _group_of(fs, groups: int, fold_index: int) -> int:
    return next(g for g, (_, members) in enumerate(_group_plan(fs, groups)) if fold_index in members)


def search_group(args, g: int) -> None:
    """Cross-fitted search of every NAS row on group g's speakers (its folds' test speakers excluded)."""
    from emotionnas.data.folds import split_indices
    from emotionnas.search.cnn.search import search_cnn
    from emotionnas.utils.io import atomic_write_json
    torch.set_num_threads(1)
    fs = _features(args.cache, args.size)
    sfold, members = _group_plan(fs, args.cross_fit)[g]
    tr, va, te = split_indices(fs.table, sfold)
    spec = fs.spectrograms
    mean, std = float(spec[tr].mean()), float(spec[tr].std()) + 1e-6
    x, y = torch.from_numpy((spec - mean) / std).unsqueeze(1), torch.from_numpy(fs.labels)
    out = args.out / "searches" / sfold.name
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for row in NAS:
        if row in results or row not in args.rows:
            continue
        C, layers, head = NAS[row]
        cfg = _search_cfg(args, C, layers, head)
        t0, c0 = time.perf_counter(), time.process_time()
        geno = search_cnn(x[tr], y[tr], x[va], y[va], cfg, out / f"search_{row}", progress=False)
        log = json.loads((out / f"search_{row}" / "search_log.json").read_text())
        results[row] = {"group": sfold.name, "train_speakers": list(sfold.train), "val_speakers": list(sfold.val),
                        "excluded": list(sfold.test), "member_folds": members,
                        "search_s": sum(e["time_s"] for e in log["epochs"]), "search_wall_s": time.perf_counter() - t0,
                        "search_cpu_s": time.process_time() - c0, "genotype": json.loads(geno.to_json()),
                        "param_free_ops": log["epochs"][-1]["param_free_ops"],
                        "param_free_ops_unguarded": log["epochs"][-1]["param_free_ops_unguarded"],
                        "search_cfg": asdict(cfg)}
        atomic_write_json(path, results)
        print(f"{sfold.name} {row}: searched in {results[row]['search_cpu_s']:.0f} CPU-s", flush=True)


def _splits(fs, fold_index: int):
    from emotionnas.data.folds import make_folds, split_indices
    fold = make_folds(fs.table, "loso")[fold_index]
    tr, va, te = split_indices(fs.table, fold)
    spec = fs.spectrograms
    mean, std = float(spec[tr].mean()), float(spec[tr].std()) + 1e-6  # train speakers only
    x = torch.from_numpy((spec - mean) / std).unsqueeze(1)
    y = torch.from_numpy(fs.labels)
    return fold, {k: (x[i], y[i]) for k, i in (("train", tr), ("val", va), ("test", te))}


def _search_cfg(args, C, layers, head, **kw):
    from emotionnas.search.cnn.search import CNNSearchConfig
    return CNNSearchConfig(C=C, layers=layers, head=head, epochs=args.search_epochs,
                           warmup_epochs=args.warmup_epochs, proxy_size=args.proxy,
                           partial_channels=args.pc, seed=args.seed, **{"arch_lr": args.arch_lr, **kw})


def _train_eval(model, data, args, n_classes):
    """Retrain from scratch on train, early-stop on val UA, score the test speaker once."""
    from emotionnas.training.loop import ArraySplit, TrainConfig, fit, predict_proba
    from emotionnas.metrics import unweighted_accuracy, weighted_accuracy
    cl = torch.channels_last
    model = model.to(memory_format=cl)
    split = {k: ArraySplit((x.contiguous(memory_format=cl),), y.numpy()) for k, (x, y) in data.items()}
    cfg = TrainConfig(epochs=args.train_epochs, patience=args.patience)
    res = fit(model, split["train"], split["val"], cfg, n_classes, seed=args.seed)
    pred = predict_proba(model, split["test"]).argmax(1)
    y = split["test"].labels
    return {"ua": unweighted_accuracy(y, pred, n_classes), "wa": weighted_accuracy(y, pred),
            "val_ua": res.best_val_ua, "best_epoch": res.best_epoch, "train_s": res.seconds,
            "train_cpu_s": None}


def run_fold(args, fold_index: int) -> None:
    from emotionnas.models.cnn_branch import CNNBranch, count_parameters
    from emotionnas.models.emodarts import EmoDARTS
    from emotionnas.models.resnet import resnet18, resnet_star
    from emotionnas.search.cnn.search import search_cnn
    from emotionnas.utils.io import atomic_write_json
    from emotionnas.utils.seed import seed_everything

    from emotionnas.space.genotype import Genotype
    torch.set_num_threads(1)  # 2 shared cores: one thread per process, folds in parallel
    fs = _features(args.cache, args.size)
    fold, data = _splits(fs, fold_index)
    group = None
    if args.cross_fit:
        group = _group_plan(fs, args.cross_fit)[_group_of(fs, args.cross_fit, fold_index)][0]
        assert not set(group.train + group.val) & set(fold.test), "a test speaker reached a search"
    out = args.out / fold.name
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    n_classes = fs.n_classes
    for row in ROWS:
        if row in results or row not in args.rows:
            continue
        rec = {"fold": fold.name, "test": list(fold.test), "val": list(fold.val),
               "n_train": len(data["train"][1]), "n_val": len(data["val"][1]), "n_test": len(data["test"][1])}
        if row in NAS and group is not None:  # the group's search never saw this fold's test speaker
            C, layers, head = NAS[row]
            searched = json.loads((args.out / "searches" / group.name / "results.json").read_text())[row]
            rec.update({k: v for k, v in searched.items() if k != "member_folds"})
            geno = Genotype.from_json(json.dumps(searched["genotype"]))
            seed_everything(args.seed)
            model = (EmoDARTS(geno, C, layers, n_classes) if head == "lstm"
                     else CNNBranch(geno, C, layers, n_classes))
        elif row in NAS:
            C, layers, head = NAS[row]
            cfg = _search_cnn_cfg = _search_cfg(args, C, layers, head)
            t0, c0 = time.perf_counter(), time.process_time()
            geno = search_cnn(*data["train"], *data["val"], cfg, out / f"search_{row}", progress=False)
            log = json.loads((out / f"search_{row}" / "search_log.json").read_text())
            rec.update(search_s=sum(e["time_s"] for e in log["epochs"]), search_wall_s=time.perf_counter() - t0,
                       search_cpu_s=time.process_time() - c0, genotype=json.loads(geno.to_json()),
                       param_free_ops=log["epochs"][-1]["param_free_ops"],
                       param_free_ops_unguarded=log["epochs"][-1]["param_free_ops_unguarded"],
                       search_cfg=asdict(_search_cnn_cfg))
            seed_everything(args.seed)
            model = (EmoDARTS(geno, C, layers, n_classes) if head == "lstm"
                     else CNNBranch(geno, C, layers, n_classes))
        else:
            seed_everything(args.seed)
            model = resnet18(n_classes) if row == "ResNet18" else resnet_star(n_classes)
        rec["params"] = count_parameters(model)
        c0 = time.process_time()
        rec.update(_train_eval(model, data, args, n_classes))
        rec["train_cpu_s"] = time.process_time() - c0
        results[row] = rec
        atomic_write_json(path, results)
        print(f"{fold.name} {row}: UA {rec['ua']:.3f} WA {rec['wa']:.3f} params {rec['params']}", flush=True)


# ------------------------------------------------------------------ profile: what each speed step buys

def _step_cost(size, channels_last, k, fast_avg, alpha_no_wgrad, reps=2):
    """CPU seconds of one weight step and one first-order α step of a C6L3 supernet, batch 32."""
    from torch import nn

    from emotionnas.space import cnn_ops as ops
    from emotionnas.search.cnn.architect import only_grad_for
    from emotionnas.search.cnn.supernet import SuperNet
    saved = ops.OPS["avg_pool_3x3"]
    if not fast_avg:
        ops.OPS["avg_pool_3x3"] = lambda C, s, a: nn.AvgPool2d(3, s, 1, count_include_pad=False)
    try:
        torch.manual_seed(0)
        net = SuperNet(6, 3, 7, ops.PRIMITIVES, partial_channels=k)
    finally:
        ops.OPS["avg_pool_3x3"] = saved
    x, y = torch.randn(32, 1, size, size), torch.randint(0, 7, (32,))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    w_t, a_t = [], []
    for i in range(reps + 1):
        c = time.process_time()
        F.cross_entropy(net(x), y).backward()
        w_t.append(time.process_time() - c)
        c = time.process_time()
        params = net.arch_parameters() if alpha_no_wgrad else list(net.parameters())
        with only_grad_for(params, net.parameters()):
            F.cross_entropy(net(x), y).backward()
        a_t.append(time.process_time() - c)
        net.zero_grad()
    return float(np.mean(w_t[1:])), float(np.mean(a_t[1:]))


def profile(args) -> None:
    """Supernet step cost per speed measure. Beware: a C6L3 supernet at 140x140, batch 32,
    holds ~15 GB of activations (8 ops x 14 edges at full resolution); use --sizes 35,70."""
    from emotionnas.utils.io import atomic_write_json
    torch.set_num_threads(1)
    steps = [("naive (NCHW, aten avg-pool, α step computes weight grads)", dict(channels_last=False, k=1, fast_avg=False, alpha_no_wgrad=False)),
             ("+ α step without weight gradients", dict(channels_last=False, k=1, fast_avg=False, alpha_no_wgrad=True)),
             ("+ shifted-add avg-pool", dict(channels_last=False, k=1, fast_avg=True, alpha_no_wgrad=True)),
             ("+ channels_last", dict(channels_last=True, k=1, fast_avg=True, alpha_no_wgrad=True)),
             ("+ partial channels K=2", dict(channels_last=True, k=2, fast_avg=True, alpha_no_wgrad=True))]
    rows = []
    for size in args.sizes:
        for name, kw in steps:
            if size >= 140 and name.startswith("+ α"):
                continue  # 140x140 is slow: measure the endpoints and the big levers only
            w, a = _step_cost(size, reps=1 if size >= 140 else 2, **kw)
            rows.append({"size": size, "step": name, "weight_step_cpu_s": w, "alpha_step_cpu_s": a})
            print(json.dumps(rows[-1]), flush=True)
            atomic_write_json(args.out / "profile.json", rows)  # after each row: 140x140 rows are slow


# ------------------------------------------------------------------ collapse guard

def guard(args) -> None:
    from emotionnas.search.cnn.search import search_cnn
    from emotionnas.utils.io import atomic_write_json
    torch.set_num_threads(1)
    fs = _features(args.cache)
    fold, data = _splits(fs, args.guard_fold)
    rows = []
    # α must move far enough for collapse to show: with ~14 steps per epoch, Adam at the
    # default arch_lr moves α by < 0.1 in the whole search, so the guard runs use --guard-arch-lr.
    for name, kw in (("DARTS (no β-decay)", dict()), (f"β-DARTS λ={args.beta:g}", dict(beta_decay=args.beta))):
        cfg = _search_cfg(args, 4, 3, "gap", arch_lr=args.guard_arch_lr, **kw)
        out = args.out / "guard" / fold.name / ("beta" if kw else "darts")
        search_cnn(*data["train"], *data["val"], cfg, out, progress=False)
        log = json.loads((out / "search_log.json").read_text())["epochs"]
        rows.append({"setting": name, "fold": fold.name, "epochs": cfg.epochs, "arch_lr": cfg.arch_lr,
                     "param_free_per_epoch": [e["param_free_ops_unguarded"] for e in log],
                     "param_free_with_max_skip2": log[-1]["param_free_ops"],
                     "skip_normal": sum(op == "skip_connect" for op, _ in log[-1]["genotype"]["normal"]),
                     "max_alpha_weight": float(np.max(log[-1]["weights_normal"])),
                     "val_acc": log[-1]["val_acc"]})
        if args.guard_retrain:  # does the searched cell train better? retrain at 140x140, score test once
            from emotionnas.models.cnn_branch import CNNBranch
            from emotionnas.space.genotype import Genotype
            from emotionnas.utils.seed import seed_everything
            seed_everything(args.seed)
            model = CNNBranch(Genotype.load(out / "genotype.json"), 4, 3, fs.n_classes)
            rows[-1].update({"retrain_" + k: v for k, v in _train_eval(model, data, args, fs.n_classes).items()})
        print(json.dumps(rows[-1]), flush=True)
    atomic_write_json(args.out / "guard.json", rows)


# ------------------------------------------------------------------ report

def _fmt(v) -> str:
    return f"{np.mean(v):.1f} ± {np.std(v):.1f}" if v else "–"  # metrics are in percent


def report(args) -> None:
    import platform as pf
    # Rows may come from several runs (e.g. `fold --rows ResNet18 --out <out>/extra` in parallel).
    merged: dict[str, dict] = {}
    for p in sorted(args.out.glob("*/results.json")) + sorted(args.out.glob("extra*/*/results.json")):
        merged.setdefault(p.parent.name, {}).update(json.loads(p.read_text()))
    results = list(merged.values())
    folds = [next(iter(r.values()))["fold"] for r in results if r]
    any_nas = next((r[k] for r in results for k in NAS if k in r), None)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine_line
    xfit = f" --cross-fit {args.cross_fit}" if args.cross_fit else ""
    lines = [f"Command: `.venv/bin/python benchmarks/spectrogram_branch.py run --folds {args.folds} --size {args.size}"
             f"{xfit} --jobs {args.jobs} --out {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out} "
             f"--search-epochs {args.search_epochs} --warmup-epochs {args.warmup_epochs} --proxy {args.proxy} "
             f"--pc {args.pc} --arch-lr {args.arch_lr:g} --train-epochs {args.train_epochs} --patience {args.patience}` "
             "then `report` with the same options.",
             f"Machine: {machine_line()} (at report time). {args.jobs} processes side by side, one thread each.",
             "",
             f"EmoDB (535 utterances, 7 classes, 10 speakers), leave-one-speaker-out; folds run: "
             f"{', '.join(folds) or 'none yet'} ({len(folds)} of 10). Per fold the test speaker is unseen by "
             "search and training; the retraining early-stops on the validation speaker's UA (AdamW, cosine, "
             "class-weighted loss) and the test speaker is scored once. "
             + (f"Searches are **cross-fitted** as in `emotionnas run`: {args.cross_fit} searches per NAS row, each on "
                "the speakers outside one group of folds (4 speakers for weights, 1 for α), and every fold retrains "
                "the cells of the search that never saw its test speaker."
                if args.cross_fit else
                "Cells are searched per fold: α on the validation speaker, weights on the 8 training speakers."),
             ""]
    if any_nas:
        c = any_nas["search_cfg"]
        lines.append(f"Search: {c['epochs']} epochs ({c['warmup_epochs']} warm-up, weights only), batch "
                     f"{c['batch_size']}, proxy {c['proxy_size']}x{c['proxy_size']} (average-pooled), PC-DARTS "
                     f"K={c['partial_channels']}, first order, α Adam lr {c['arch_lr']:g}, max {c['max_skip']} skip_connect "
                     "in the normal cell, "
                     f"channels_last. Retraining at {args.size}x{args.size}, up to {args.train_epochs} epochs, patience {args.patience}.")
        lines.append("")
    lines += ["| Model | Params | UA % (mean ± std) | WA % (mean ± std) | Search s/fold wall (CPU) | "
              "Train s/fold wall (CPU) | "
              "Param-free ops (guarded / unguarded) | Folds |",
              "|---|---|---|---|---|---|---|---|"]
    for row in ("NAS-C4L3", "NAS-C6L3", "NAS-C8L4", "emoDARTS", "ResNet18", "ResNet*"):
        rs = [r[row] for r in results if row in r]
        if not rs:
            lines.append(f"| {row} | – | not run | | | | | 0 |")
            continue
        cpu = lambda key: f"{np.mean([r[key] for r in rs]):.0f}" if key in rs[0] else "–"
        search = f"{np.mean([r['search_wall_s'] for r in rs]):.0f} ({cpu('search_cpu_s')})" if "search_wall_s" in rs[0] else "–"
        train = f"{np.mean([r['train_s'] for r in rs]):.0f} ({cpu('train_cpu_s')})"
        free = (f"{np.mean([r['param_free_ops'] for r in rs]):.1f} / {np.mean([r['param_free_ops_unguarded'] for r in rs]):.1f}"
                if "param_free_ops" in rs[0] else "–")
        n = np.mean([r["params"] for r in rs])
        params = f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"
        lines.append(f"| {row} | {params} | {_fmt([r['ua'] for r in rs])} | {_fmt([r['wa'] for r in rs])} | "
                     f"{search} | {train} | {free} | {len(rs)} |")
    lines.append("")
    lines.append("Times: wall-clock seconds per fold (per search when cross-fitted), CPU seconds of the process in brackets; "
                 "params of NAS rows vary with the searched cell (mean shown). Param-free ops: of the 16 edges of "
                 "the derived normal + reduction cells, with / without the max-2-skip rule.")
    prof = args.out / "profile.json"
    if prof.exists():
        rows = json.loads(prof.read_text())
        lines += ["", "### Where the supernet time goes (C6L3, batch 32, one thread, CPU seconds per step)", "",
                  "`.venv/bin/python benchmarks/spectrogram_branch.py profile` — each line adds one measure "
                  "to the line above (CPU time, so contention inflates it less than wall time).", "",
                  "| Input | Step | Weight step s | α step s |", "|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['size']}x{r['size']} | {r['step']} | {r['weight_step_cpu_s']:.2f} | "
                         f"{r['alpha_step_cpu_s']:.2f} |" + (f" {r['note']}" if "note" in r else ""))
    g = args.out / "guard.json"
    if g.exists():
        rows = json.loads(g.read_text())
        lines += ["", "### Collapse guard (NAS-C4L3 search, fold " + rows[0]["fold"] + ")", "",
                  f"`.venv/bin/python benchmarks/spectrogram_branch.py guard` (schedule of the table, but arch_lr "
                  f"{rows[0].get('arch_lr')} so that α moves) — "
                  "parameter-free ops (of 16 edges, normal + reduce) in the cells derived after each epoch without "
                  "the max-skip rule; then with it.", "",
                  "| Setting | Param-free ops per epoch | With max 2 skip | skip_connect in normal cell (guarded) | "
                  "Largest normal-cell op weight | Search val acc | Retrained test UA / WA % |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['setting']} | {' '.join(map(str, r['param_free_per_epoch']))} | "
                         f"{r['param_free_with_max_skip2']} | {r['skip_normal']} | {r['max_alpha_weight']:.3f} | "
                         f"{100 * r['val_acc']:.1f} | "
                         + (f"{r['retrain_ua']:.1f} / {r['retrain_wa']:.1f} |" if "retrain_ua" in r else "– |"))
    proxy = sorted((args.out / "proxy70").glob("*/results.json"))
    row = args.proxy_row
    if proxy:
        lines += ["", f"### Does the proxy's choice hold up? ({row}, search at 35x35 vs 70x70, retrained at "
                  f"{args.size}x{args.size})", "",
                  f"`.venv/bin/python benchmarks/spectrogram_branch.py run --rows {row} --proxy 70 "
                  f"--out {args.out.name}/proxy70` (other options as above).", "",
                  "| Fold | Proxy | Search s | Val UA % | Test UA % | Test WA % | Same (op, input) pairs |",
                  "|---|---|---|---|---|---|---|"]
        pairs = []
        for p70 in proxy:
            r70 = json.loads(p70.read_text()).get(row)
            r35 = next((r[row] for r in results if r.get(row, {}).get("fold") == p70.parent.name), None)
            if not r70 or not r35:
                continue
            pairs.append((r35, r70))
            same = sum(a == b for k in ("normal", "reduce") for a, b in zip(r35["genotype"][k], r70["genotype"][k]))
            for name, r in (("35", r35), ("70", r70)):
                lines.append(f"| {r['fold']} | {name}x{name} | {r['search_wall_s']:.0f} | {r['val_ua']:.1f} | "
                             f"{r['ua']:.1f} | {r['wa']:.1f} | {same}/16 |")
        if len(pairs) > 1:
            lines.append(f"| mean over {len(pairs)} folds | 35x35 | | {_fmt([a['val_ua'] for a, _ in pairs])} | "
                         f"{_fmt([a['ua'] for a, _ in pairs])} | {_fmt([a['wa'] for a, _ in pairs])} | |")
            lines.append(f"| mean over {len(pairs)} folds | 70x70 | | {_fmt([b['val_ua'] for _, b in pairs])} | "
                         f"{_fmt([b['ua'] for _, b in pairs])} | {_fmt([b['wa'] for _, b in pairs])} | |")
    notes = REPO / "benchmarks" / "notes" / f"spectrogram_branch{'_' + args.out.name if args.cross_fit else ''}.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    title = SECTION.removeprefix("## ")
    if args.cross_fit:  # its own section: the per-fold-search section (140x140, profile, guard) stays
        title = f"Spectrogram branch, cross-fitted search, {args.size}x{args.size} (benchmarks/spectrogram_branch.py)"
    write_section("\n".join(lines), title)
    print("\n".join(lines))


def write_section(text: str, title: str = SECTION.removeprefix("## ")) -> None:
    """Replace this script's section of BENCHMARKS.md (one writer for every benchmark)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import write_section as replace_section
    replace_section(title, text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["run", "group", "fold", "profile", "guard", "report"])
    ap.add_argument("--size", type=int, default=140, help="spectrogram side the networks are retrained at")
    ap.add_argument("--cross-fit", type=int, default=0,
                    help="G>=2: G cross-fitted searches (as `emotionnas run`) instead of one per fold")
    ap.add_argument("--group", type=int, default=0)
    ap.add_argument("--proxy-row", default="NAS-C4L3", help="row compared in the proxy check of `report`")
    ap.add_argument("--cache", type=Path, default=REPO.parent / "cache")
    ap.add_argument("--out", type=Path, default=REPO / "runs/spectrogram_branch")
    ap.add_argument("--folds", default="0,1", help="LOSO fold indices (0-9)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="folds run in parallel processes")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--search-epochs", type=int, default=10)
    ap.add_argument("--warmup-epochs", type=int, default=3)
    ap.add_argument("--proxy", type=int, default=35)
    ap.add_argument("--pc", type=int, default=2, help="PC-DARTS partial channels K during search")
    ap.add_argument("--train-epochs", type=int, default=15)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", default="35,70")
    ap.add_argument("--guard-fold", type=int, default=0)
    ap.add_argument("--arch-lr", type=float, default=6e-4, help="α learning rate of the table's searches")
    ap.add_argument("--guard-arch-lr", type=float, default=6e-3)
    ap.add_argument("--guard-retrain", action="store_true", help="also retrain each guard genotype")
    ap.add_argument("--beta", type=float, default=10.0, help="β-DARTS λ at the last epoch (linear ramp)")
    args = ap.parse_args(argv)
    args.rows = args.rows.split(",")
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cmd == "fold":
        run_fold(args, args.fold)
    elif args.cmd == "group":
        search_group(args, args.group)
    elif args.cmd == "run":
        folds = [int(f) for f in args.folds.split(",")]
        passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "run"]
        procs: list[subprocess.Popen] = []
        jobs = [["group", "--group", str(g)] for g in range(args.cross_fit)]
        jobs.append(None)  # barrier: every search finishes before the folds retrain
        jobs += [["fold", "--fold", str(f)] for f in folds]
        for job in jobs:  # simple pool of --jobs processes
            if job is None:
                for p in procs:
                    p.wait()
                continue
            while len([p for p in procs if p.poll() is None]) >= args.jobs:
                time.sleep(5)
            procs.append(subprocess.Popen([sys.executable, __file__, *job, *passthrough]))
        for p in procs:
            p.wait()
    elif args.cmd == "profile":
        profile(args)
    elif args.cmd == "guard":
        guard(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
