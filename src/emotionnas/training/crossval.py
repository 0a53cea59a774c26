"""`run_crossval`: corpus -> honestly selected models -> per-fold test scores.

Read top to bottom (the stages are methods of `Run`, training/run.py):
  1. start: bind the run folder to the config and the corpus fingerprint (resume or refuse);
     features from the cache (extracted once, in this process); speaker-independent folds
  2. groups: folds are dealt into selection groups, and group g's search speakers are those of
     no fold of the group (its test speakers never reach it); per group an encoder-layer probe
     and a candidate pool (the baselines + a seeded sample of the space)
  3. searches: the groups' cell searches (DARTS, recipe)
  4. selection: inner cross-validation with successive halving, an ensemble of the top k
                                                             -> training/selection.py
  5. refit: per fold, the group's ensemble (and, with `baselines`, each baseline) refit on all
     the fold's training speakers for its chosen epochs; one evaluation on the test speakers
  6. summary: results.json (the report is written from the run folder by reports/report.py)
  7. final: the deployable model, selected and refit on every speaker (training/final.py)
Each stage starts with a line saying where the run is (stage k of n, elapsed, the time left from
the tasks' measured cost: training/progress.py).
Independent work runs as tasks on an executor (training/executor.py); each task's result is
written atomically as it arrives, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import torch

from emotionnas.config import RunConfig
from emotionnas.training.run import Group, Run
from emotionnas.training.run_helpers import fingerprint_of, plan_searches

__all__ = ["Group", "Run", "fingerprint_of", "plan_searches", "run_crossval"]


def run_crossval(cfg: RunConfig, out_dir, progress: bool = True, log=print, restart: bool = False) -> dict:
    """The whole cross-validated run into `out_dir`; resumes a killed run of the same config
    and corpus. `restart`: delete the previous run in `out_dir` first."""
    with torch.jit.optimized_execution(False):  # bit-identical recipe cells, resumed or not
        with Run.start(cfg, out_dir, progress=progress, log=log, restart=restart) as run:
            groups = run.groups()
            run.begin("cell searches", groups)
            run.searches(groups)
            run.begin("selection", groups)
            run.selection(groups)
            run.begin("refits", groups)
            refits = run.refit(groups)
            results = run.summary(groups, refits)  # the CV results are safe before the final stage
            if cfg.final_model:
                run.begin("final model", groups)
                run.final()
                run.write_timing()
        return results
