"""Run folders -> BENCHMARKS.md tables. No training here: every number comes from a run made
by `emotionnas run` (the command is in the run's environment.json and printed with the table).

    .venv/bin/python benchmarks/tables.py RUN_DIR [RUN_DIR ...] --title "EmoDB, leave-one-speaker-out"
        [--write]   # replace that section of BENCHMARKS.md (otherwise print it)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


from emotionnas.reports.report import baselines_table
from emotionnas.reports.tables import fmt, markdown_table
from emotionnas.rundir import RunDir
from emotionnas.training.summary import rank_agreement
from emotionnas.utils.io import atomic_write_text

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def section(run_dir: Path) -> str:
    rd = RunDir(run_dir)
    res, timing = rd.read_results(), rd.read_timing() or {}
    env = json.loads(rd.environment.read_text())
    cmd = "emotionnas " + " ".join(str(env.get("command", "")).split()[1:])
    lines = [f"Command: `{cmd}`  ",
             f"Machine: {env.get('cpus')} CPUs ({env.get('cpu')}), torch {env.get('torch')}, "
             f"git {str(env.get('git_revision'))[:12]}; started {env.get('date')}.  ",
             f"{res['n_utterances']} utterances, {res['n_speakers']} speakers, {len(res['folds'])} folds "
             f"({res['protocol']}); wall {timing.get('total_seconds', 0) / 60:.1f} min "
             f"(cell searches {timing.get('search_seconds', 0) / 60:.1f}, selection "
             f"{timing.get('selection_seconds', 0) / 60:.1f}, refits {timing.get('refit_seconds', 0) / 60:.1f}), "
             f"CPU {timing.get('cpu_seconds', 0) / 60:.1f} min, peak RSS {timing.get('peak_rss_mb', 0):.0f} MB, "
             f"{timing.get('workers', 1)} worker(s).\n"]
    bt = baselines_table(res)
    if bt:
        lines.append(bt)
    else:
        lines.append(f"Searched ensemble: UA {fmt(res['ua'], res['ua_std'])}, WA {fmt(res['wa'])}.\n")
    abl = res["ablations"]["selection"]
    lines.append(markdown_table([[k, fmt(v["ua"], v["ua_std"]), fmt(v["wa"]), fmt(v["macro_f1"])]
                                 for k, v in abl.items()], ["Searched, as", "UA (%)", "WA (%)", "Macro-F1 (%)"]))
    sp = res.get("selection_spread") or {}
    if sp.get("single_speaker_ua_std") is not None:
        lines.append(f"Selection score spread: one validation speaker ±{sp['single_speaker_ua_std']:.1f} UA (std over "
                     f"search speakers) vs inner-CV standard error ±{sp['inner_cv_ua_se']:.1f}.\n")
    lines.append(agreement(rd, res))
    lines.append(bagged(res))
    rows = []
    for s in res["searches"]:
        rows.append([s["group"], ", ".join(s["held_out_speakers"]), s["ensemble_k"],
                     "; ".join(m["name"] for m in s["members"])])
    lines.append(markdown_table(rows, ["Group", "Held out", "k", "Ensemble members"], align="lllll"[:4]))
    return "\n".join(lines)


def bagged(res: dict) -> str:
    """The bagged fold models (no refit) beside the refit ensemble, and the baselines both ways."""
    b = res.get("bagged")
    if not b:
        return ""
    p = b["paired_ua_vs_refit"]
    pv = f"{p['p_value']:.3f}" if p.get("p_value") is not None else "–"
    line = (f"Bagged fold models (the members' inner-fold models averaged, no refit): UA {fmt(b['ua'], b['ua_std'])} "
            f"vs the refit ensemble {fmt(res['ua'], res['ua_std'])}; bagged − refit per fold {p['mean_diff']:+.2f} "
            f"(wins/ties/losses {p['wins']}/{p['ties']}/{p['losses']}, Wilcoxon p {pv}).")
    if b.get("baselines"):
        line += " Baselines bagged vs refit: " + ", ".join(
            f"{name} {fmt(v['ua'])} vs {fmt(res['baselines'][name]['ua'])}" for name, v in b["baselines"].items()
            if name in (res.get("baselines") or {})) + "."
    return line + "\n"


def agreement(rd: RunDir, res: dict) -> str:
    """The run's inner-CV vs test rank agreement, deep-stream models only (the close calls a
    selection has to make; the report's line counts every model)."""
    summaries = {f["search_group"]: json.loads(rd.selection_summary(f["search_group"]).read_text())
                 for f in res["folds"]}
    a = rank_agreement(res["folds"], summaries, deep_only=True)
    if not a["pairs"]:
        return ""
    return (f"Inner-CV ranking vs test ranking (deep-stream models with both scores, {a['pairs']} pairs over all "
            f"folds): same order in {100 * a['share']:.0f} % of pairs (50 % = a coin); median inner-CV gap between "
            f"the two models of a pair {a['median_inner_gap']:.1f} UA.\n")


def write(title: str, body: str) -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif "\n## History" in text:  # new sections go above the history of earlier sessions
        i = text.index("\n## History")
        text = text[:i].rstrip() + "\n\n" + block + text[i + 1:]
    else:
        text = text.rstrip() + "\n\n" + block
    atomic_write_text(BENCHMARKS, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--title", required=True)
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    body = "\n\n".join(section(r) for r in a.runs)
    if a.write:
        write(a.title, body)
    print(f"## {a.title}\n\n{body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
