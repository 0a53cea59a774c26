"""`write_report(run_dir)`: report.md, figures and tables of a finished run.

Reads the run only through `emotionnas.rundir.RunDir`. Writes

    RUN/report.md
    RUN/figures/  confusion_counts.png, confusion_normalized.png (pooled over folds), fold_scores.png,
                  <group>_cnn_{normal,reduce}.png, <group>_rnn.png (the searched cells)
    RUN/tables/   folds.md, baselines.md, selection_<group>.md

A figure that cannot be drawn is a note in the report, never an exception; only a missing
or malformed results.json is an error. Every write is atomic.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from emotionnas.reports import plots, tables
from emotionnas.reports.glossary import glossary_lines
from emotionnas.reports.tables import DASH, fmt, markdown_table
from emotionnas.errors import EmotionNASError
from emotionnas.rundir import RunDir, safe_component
from emotionnas.space.model_spec import needs_genotype, needs_recipe
from emotionnas.space.pipeline import FINE_TUNED, Candidate
from emotionnas.utils.io import atomic_write_text, read_json_or_none

PROTOCOLS = {"loso": "leave-one-speaker-out", "loso-session": "leave-one-session-out",
             "iemocap-paper": "the EmotionNAS IEMOCAP protocol", "kfold": "speaker-group k-fold"}


def _rel(path: Path, root: Path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def _figures(results: dict, run: RunDir, notes: list[str]) -> list[str]:
    out = []
    cm = tables.pooled_confusion(results)
    labels = results.get("label_names") or []
    try:
        if cm is not None:
            for name, norm in (("confusion_counts.png", False), ("confusion_normalized.png", True)):
                p = plots.plot_confusion(cm, labels, run.figures / name, normalize=norm)
                out.append(f"![{name}]({_rel(p, run.root)})")
        p = plots.plot_fold_scores(results.get("folds") or [], run.figures / "fold_scores.png")
        if p:
            out.append(f"![fold scores]({_rel(p, run.root)})")
    except Exception as e:  # noqa: BLE001 - a figure is optional, the numbers are not
        notes.append(f"figures not drawn ({type(e).__name__}: {e})")
    return out


def _used_cells(search: dict, summary: dict) -> tuple[bool, bool]:
    """(a member of the group's ensemble reads the searched CNN cells, one reads the searched
    recurrent cell), from the members' candidates in selection.json; (True, True) when that file
    is missing or older (then whether they were used is unknown, and they are drawn as before)."""
    keys = {m["key"] for m in search.get("members") or []}
    try:
        used = [Candidate.from_dict(c["candidate"]) for c in summary["candidates"] if c["key"] in keys]
    except (KeyError, TypeError, ValueError, EmotionNASError):
        return True, True
    if len(used) != len(keys):
        return True, True
    return any(needs_genotype(c) for c in used), any(needs_recipe(c) for c in used)


def _cells(search: dict, run: RunDir, notes: list[str], summary: dict) -> list[str]:
    """Drawings of the group's searched cells that its ensemble uses (a cell no member reads is
    named, not drawn)."""
    lines, stem = [], safe_component(search["group"])
    cnn, rnn = _used_cells(search, summary)
    unused = [what for what, found, used in (("CNN cells", search.get("genotype"), cnn),
                                             ("recurrent cell", search.get("recipe"), rnn)) if found and not used]
    if unused:
        lines.append(f"The searched {' and '.join(unused)} of this group are not drawn: no ensemble member uses "
                     "them.\n")
    try:
        if search.get("genotype") and cnn:
            from emotionnas.reports.draw_cnn import draw_genotype
            from emotionnas.space.genotype import Genotype
            g = Genotype.from_dict(search["genotype"], "genotype")
            for p in draw_genotype(g, run.figures / f"{stem}_cnn"):
                if p.suffix == ".png":
                    lines.append(f"![{p.stem}]({_rel(p, run.root)})")
        if search.get("recipe") and rnn:
            from emotionnas.reports.draw_rnn import draw_recipe
            for p in draw_recipe(search["recipe"], run.figures / f"{stem}_rnn",
                                 title=f"searched recurrent cell ({search['group']})"):
                if p.suffix == ".png":
                    lines.append(f"![recipe]({_rel(p, run.root)})")
    except Exception as e:  # noqa: BLE001
        notes.append(f"cell drawings of {search['group']} not drawn ({type(e).__name__}: {e})")
    return lines


def baselines_table(results: dict) -> str | None:
    base = results.get("baselines")
    if not base:
        return None
    rows = [["**searched (ensemble)**", f"**{fmt(results['ua'], results['ua_std'])}**", fmt(results["wa"]),
             fmt(results["macro_f1"]), DASH, DASH, DASH]]
    for name, b in base.items():
        p = b["paired_ua"]
        pv = DASH if p["p_value"] is None else f"{p['p_value']:.3f}"
        rows.append([name, fmt(b["ua"], b["ua_std"]), fmt(b["wa"]), fmt(b["macro_f1"]),
                     f"{p['wins']}/{p['ties']}/{p['losses']}", f"{p['mean_diff']:+.1f}", pv])
    return markdown_table(rows, ["Model", "UA (%)", "WA (%)", "Macro-F1 (%)", "searched wins/ties/losses",
                                 "mean paired ΔUA", "Wilcoxon p"])


def folds_table(results: dict) -> str:
    names = list((results.get("baselines") or {}))
    rows = []
    for f in results.get("folds") or []:
        rows.append([f["name"], ", ".join(f["test_speakers"]), len(f.get("test_true") or []), fmt(f["ua"]),
                     fmt(f["top1"]["ua"]), str(len(f["members"]))]
                    + [fmt(f["baselines"][b]["ua"]) for b in names])
    rows.append(["**mean**", "", "", f"**{fmt(results['ua'], results['ua_std'])}**",
                 fmt(results["ablations"]["selection"]["top-1 candidate"]["ua"]), "", *[
                     fmt(results["baselines"][b]["ua"]) for b in names]])
    return markdown_table(rows, ["Fold", "Test speakers", "Test utts", "UA ensemble", "UA top-1", "k"]
                          + [f"UA {b}" for b in names])


def selection_table(summary: dict, top: int = 12) -> str:
    """The candidates of one selection group: their score at the first budget (the fewest inner
    folds they were scored on), their inner-CV UA over every inner fold, whether the strategy let
    them go on to every fold, and their place in the ensemble."""
    def first(c):
        scores = c.get("budget_scores") or []
        return scores[0]["ua"] if scores else None

    cands = sorted(summary["candidates"], key=lambda c: (-(c.get("inner_ua") or -1), -(first(c) or -1)))
    rows = []
    for c in cands[:top]:
        member = next((i + 1 for i, m in enumerate(summary["members"]) if m["key"] == c["key"]), None)
        went_on = "inner_ua" in c
        rows.append([c["name"] + (f" *({c['baseline']})*" if c.get("baseline") else ""), fmt(first(c)),
                     fmt(c.get("inner_ua")), c.get("epoch", DASH), fmt(c.get("speaker_ua_std")),
                     "yes" if went_on else "no", member or ""])
    return markdown_table(rows, ["Candidate", "UA on the first inner fold(s)", "inner-CV UA (every fold)", "epoch",
                                 "per-speaker UA std", "scored on every fold", "in ensemble"])


def _summary_lines(results: dict) -> list[str]:
    """Title, the synthetic-data warning and what was run (corpus, classes, protocol)."""
    lines = [f"# emotionnas run: {results['corpus']}\n"]
    if results.get("synthetic"):
        lines.append("> **Synthetic demo corpus**: these numbers show that the pipeline runs, nothing more.\n")
    if results.get("speaker_adaptive"):
        lines.append("> **Speaker-adaptive mode** (`features.speaker_norm`): every speaker's features, the test "
                     "speakers' included, were standardised with that speaker's own unlabelled audio; not "
                     "comparable with speaker-independent results, and the model needs enrolment.\n")
    lines.append(f"{results['n_utterances']} utterances, {results['n_speakers']} speakers, "
                 f"{len(results['label_names'])} classes ({', '.join(results['label_names'])}); "
                 f"{PROTOCOLS.get(results['protocol'], results['protocol'])}, {len(results['folds'])} folds. "
                 "Every fold's test speakers were scored once, at the end, by a model selected and trained "
                 "without them.\n")
    return lines


def _result_lines(results: dict, timing: dict) -> list[str]:
    """The headline scores and, when the run was timed, its wall time."""
    lines = ["## Result\n"]
    lines.append(f"**Searched ensemble: UA {fmt(results['ua'], results['ua_std'])}, "
                 f"WA {fmt(results['wa'], results['wa_std'])}, macro-F1 {fmt(results['macro_f1'], results['macro_f1_std'])}** "
                 f"(mean ± std over folds).\n")
    if timing:
        lines.append(f"Wall time {timing.get('total_seconds', 0) / 60:.1f} min (searches "
                     f"{timing.get('search_seconds', 0) / 60:.1f}, selection {timing.get('selection_seconds', 0) / 60:.1f}, "
                     f"refits {timing.get('refit_seconds', 0) / 60:.1f}) with {timing.get('workers', 1)} worker(s).\n")
    return lines


def _baselines_lines(results: dict, run: RunDir) -> list[str]:
    """The baselines section (empty without baselines); writes tables/baselines.md."""
    bt = baselines_table(results)
    if not bt:
        return []
    atomic_write_text(run.tables / "baselines.md", bt)
    return ["## Searched vs hand-designed baselines\n",
            "Same folds, features and training speakers; each baseline's epoch chosen by the same inner "
            "cross-validation" + (" (the fine-tuning recipe, when the space does not tune the encoder, is not a "
                                  "candidate: it trains its fixed schedule and uses the last epoch)"
                                  if FINE_TUNED in results["baselines"] else "")
            + ". Paired over folds (Wilcoxon signed-rank on the per-fold UA differences).\n", bt]


def _folds_lines(results: dict, run: RunDir) -> list[str]:
    """The per-fold section; writes tables/folds.md."""
    ft = folds_table(results)
    atomic_write_text(run.tables / "folds.md", ft)
    return ["## Per fold\n", ft]


def _selection_intro_lines(results: dict) -> list[str]:
    """How candidates were selected, and how noisy that selection is."""
    spread = results.get("selection_spread") or {}
    lines = ["## How the models were chosen\n"]
    lines.append("Inside each selection group (the speakers of no test fold of the group), every candidate was "
                 "trained once without each inner speaker group and scored on it, so every search speaker was "
                 "validated exactly once; candidates were halved after the first inner folds; the ensemble "
                 "size k was chosen on the same out-of-fold predictions.\n")
    if spread.get("partitions"):
        lines.append(f"Past the first rung, every candidate was also scored on {spread['partitions'] - 1} other "
                     "partition(s) of the search speakers into inner folds (so validated once per partition); its out-of-fold "
                     "probabilities are the mean over the partitions, each from models that did not train on that "
                     "utterance.\n")
    if spread.get("single_speaker_ua_std") is not None:
        lines.append(f"Selection noise: one validation speaker's UA varies with the speaker by "
                     f"**±{spread['single_speaker_ua_std']:.1f}** (std over search speakers); the inner-CV score "
                     f"has a standard error of **±{spread['inner_cv_ua_se']:.1f}**.\n")
    agree = results.get("rank_agreement") or {}
    if agree.get("pairs"):
        lines.append(f"Does inner CV rank models as the test speakers do? Of {agree['pairs']} pairs of models with "
                     f"both scores (ensemble members and baselines, within each fold), **{100 * agree['share']:.0f} %** "
                     f"are in the same order (50 % = a coin; median inner-CV gap of a pair "
                     f"{agree['median_inner_gap']:.1f} UA). Read after the test scores; it chose nothing.\n")
    lines += _optimism_lines(results)
    return lines


def _optimism_lines(results: dict) -> list[str]:
    """Each fold's ensemble inner-CV UA (what the selection believed) beside its test UA."""
    opt = results.get("optimism") or {}
    folds = [f for f in results["folds"] if "inner_ua" in f]
    if not folds or opt.get("mean") is None:
        return []
    rows = [[f["name"], fmt(f["inner_ua"]), fmt(f["ua"]), f"{f['inner_ua'] - f['ua']:+.1f}"] for f in folds]
    return [f"How far the selection's own estimate can be trusted: the ensemble's inner-CV UA (on its search "
            f"speakers) minus its test UA is **{opt['mean']:+.1f}** on average (> 0: the selection flattered itself).\n",
            markdown_table(rows, ["Fold", "inner-CV UA", "test UA", "inner − test"]), ""]


def _search_lines(s: dict, run: RunDir, notes: list[str]) -> list[str]:
    """One selection group: its candidates and ensemble, the selection table
    (written to tables/selection_<group>.md) and the drawings of its searched cells."""
    summary = read_json_or_none(run.selection_summary(s["group"])) or {}
    lines = [f"### {s['group']} (held out {', '.join(s['held_out_speakers'])}; folds "
             f"{', '.join(str(i) for i in s['folds'])})\n"]
    if s.get("layer_scores"):
        lines.append("Encoder-layer probe UA (layer 0…): " + ", ".join(f"{v:.0f}" for v in s["layer_scores"]) + "\n")
    lines.append(f"{s['n_candidates']} candidates, {s['n_full']} scored on every inner fold; ensemble of "
                 f"k = {s['ensemble_k']}: " + ", ".join(f"`{m['name']}` (epoch {m['epoch']})" for m in s["members"])
                 + ". Out-of-fold UA of the top-1…k ensembles: "
                 + ", ".join(f"{u:.1f}" for u in summary.get("ensemble_uas", [])) + ".\n")
    if s.get("combiner"):
        c = s["combiner"]
        lines.append(f"Combiner ({c['mode']}): **{c['choice']}**; out-of-fold UA averaged {c['mean_ua']:.1f}, "
                     f"stacked (cross-fitted) {c.get('stack_ua', float('nan')):.1f}.\n")
    if summary:
        st = selection_table(summary)
        atomic_write_text(run.tables / f"selection_{safe_component(s['group'])}.md", st)
        lines.append(st)
    lines += _cells(s, run, notes, summary)
    lines.append("")
    return lines


def _notes_lines(results: dict, notes: list[str]) -> list[str]:
    """The findings of `tables.check_results` and the figures not drawn (empty if none)."""
    findings = tables.check_results(results)
    if not (findings or notes):
        return []
    return ["## Notes\n", *[f"- {x}" for x in findings + notes], ""]


def _reproduce_lines(results: dict, env: dict | None, config: dict | None) -> list[str]:
    """The command that made the run, where its configuration is, and the limitations."""
    lines = ["## Reproduce\n"]
    if env and env.get("command"):
        lines += ["```bash", "emotionnas " + " ".join(str(env["command"]).split()[1:]), "```\n"]
    if config:
        lines.append(f"`config.yaml` beside this report holds the whole configuration "
                     f"(seed {config.get('seed')}); `environment.json` the versions and git revision.\n")
    lines.append("**Limitations.** " + ("The data are synthetic. " if results.get("synthetic") else "")
                 + f"With {len(results['folds'])} folds the ± is itself a rough estimate; UA from other papers is "
                   "comparable only under the same corpus, label set and folds; wall times depend on the machine's load.\n")
    return lines


def write_report(run_dir) -> Path:
    run = RunDir(run_dir)
    results = run.read_results()
    notes: list[str] = []
    config = _yaml(run.config)
    env = read_json_or_none(run.environment)
    timing = run.read_timing() or {}
    lines = _summary_lines(results) + glossary_lines() + _result_lines(results, timing)
    lines += _baselines_lines(results, run)
    lines += _folds_lines(results, run)
    lines += _selection_intro_lines(results)
    for s in results["searches"]:
        lines += _search_lines(s, run, notes)
    lines += _final_lines(run)
    lines.append("## Figures\n")
    lines += _figures(results, run, notes)
    lines.append("")
    lines += _notes_lines(results, notes)
    lines += _reproduce_lines(results, env, config)
    atomic_write_text(run.report, "\n".join(lines))
    return run.report


def _final_lines(run: RunDir) -> list[str]:
    """The deployable model (training/final.py): who it was trained on, its calibration."""
    final = read_json_or_none(run.final_record)
    if final is None:
        return []
    members = ", ".join(f"`{m['name']}` (epoch {m['epoch']})" for m in final["members"])
    return ["## The final model (what `emotionnas export` ships)\n",
            f"Selected by the same inner cross-validation over **every** speaker ({len(final['speakers'])}) and "
            f"refit on all {final['n_utterances']} utterances: {members}. No speaker is held out, so it has no "
            "test score of its own: the cross-validated scores above are its expected accuracy on new speakers.\n",
            f"Calibration: temperature {final['temperature']} fit on the ensemble's out-of-fold inner-CV "
            f"probabilities; expected calibration error {final['ece_before']:.1f} % before, "
            f"{final['ece_after']:.1f} % after (out of fold, 10 bins).\n"]


def _yaml(path: Path):
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["write_report", "baselines_table", "folds_table", "selection_table"]
