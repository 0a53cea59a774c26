"""What `emotionnas run` checks before it writes anything, and the plan line it prints.

A refused run must leave no folder behind (a typo in the corpus name used to leave `--out`
with a lock file in it), so the corpus name, the reader options and the root's layout are
checked here, from the config alone, before the run folder is locked. The plan line says
what the run will do before hours of work start: read from the config only, so it is
printed in a second and cannot disagree with a half-made run folder.
"""
from __future__ import annotations


def check_before_writing(cfg) -> None:
    """CorpusError (one line) for an unknown corpus, an option its reader does not take, or a
    root that is missing or not the corpus root (with "did you mean …?" when one is near)."""
    from emotionnas.data.corpora import check_reader_options
    from emotionnas.data.corpora.layout import check_layout
    check_reader_options(cfg.corpus, cfg.corpus_options)
    check_layout(cfg.corpus, cfg.root)


def plan_line(cfg) -> str:
    """One line: selection groups, candidates per group, inner folds, baselines, final model, stages."""
    sel = cfg.selection
    if cfg.search_per_fold or cfg.search_groups == 0:
        groups = "one selection group per fold"
    else:
        groups = f"{cfg.search_groups} selection groups (fewer if there are fewer folds)"
    folds = f"first {cfg.max_folds} folds of {cfg.protocol}" if cfg.max_folds else f"every {cfg.protocol} fold"
    return (f"plan: {folds}; {groups}, each choosing among up to {sel.budget} candidates "
            f"(strategy {sel.strategy}) by {sel.inner_folds}-fold inner CV; "
            f"baselines {'on' if cfg.baselines else 'off'}; final model {'on' if cfg.final_model else 'off'}; "
            f"{3 + bool(cfg.final_model)} stages, each starting with where the run is and, once tasks have been "
            f"timed, the training time left")


def remove_if_untouched(out) -> None:
    """Remove the run folder `out` (made by this command) when it holds nothing but its lock file
    and the config written as the run started: a run refused by a check that needs the audio
    (no usable file) leaves no trace. Anything more is finished work, kept for the resume."""
    from pathlib import Path

    from emotionnas.rundir import LOCK_NAME, RunDir
    folder = Path(out)
    try:
        names = sorted(e.name for e in folder.iterdir())
        if set(names) <= {LOCK_NAME, RunDir(folder).config.name}:
            for name in names:
                (folder / name).unlink()
            folder.rmdir()
    except OSError:
        pass  # not ours to insist on: the refusal itself is what the user needs to see
