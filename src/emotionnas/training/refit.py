"""Stage D of a run: per fold, the group's ensemble (and with `baselines` each baseline) refit on
all the fold's training speakers for its chosen epochs, then one evaluation on the fold's test
speakers. Each result is written as it arrives: `folds/foldNN/<key>.json` (identity, test
probabilities, the weights' sha256) after `<key>.pt` for ensemble members, so a killed run
resumes here; a record of another fold, epoch, seed or config is refused (training/records.py)."""
from __future__ import annotations

import numpy as np

from emotionnas.errors import ConfigError
from emotionnas.rundir import RESTART_HINT
from emotionnas.training.run_helpers import speaker_indices, stage_seed, train_indices
from emotionnas.training.tasks import run_task
from emotionnas.utils.io import atomic_torch_save, atomic_write_json, load_checkpoint, read_json_or_none


def refit_folds(run, groups) -> dict:
    """{(fold index, candidate key): record} for every member (and baseline) of every fold."""
    jobs, done = [], {}
    for g in groups:
        wanted = {m.key: (m.epoch, True) for m in g.result.members}
        if run.cfg.baselines:
            for b in g.result.baselines:
                wanted.setdefault(b.key, (b.epoch, False))
        for i in g.members:
            fold = run.folds[i]
            train = train_indices(run.fs.speakers, fold)
            test = speaker_indices(run.fs.speakers, fold.test)
            for key, (epoch, keep_weights) in wanted.items():
                seed = stage_seed(run.cfg.seed, "refit", fold.name, key)
                identity = {"fold": fold.to_dict(), "key": key, "epoch": epoch, "seed": seed,
                            "run": run.identity}
                path = run.dir.refit_json(i, key)
                rec = read_json_or_none(path, run.log)
                if rec is not None and rec.get("identity") != identity:
                    raise ConfigError(f"{path}: computed for another fold, epoch, seed or config (stale); "
                                      f"{RESTART_HINT}")
                if rec is not None and (not keep_weights or load_checkpoint(
                        run.dir.refit_weights(i, key), run.log, rec.get("weights_sha256"), verify=True) is not None):
                    done[i, key] = rec
                    continue
                task = run.task("refit", g.result.candidate(key), g, train, test, seed, epoch)
                jobs.append(((i, key, keep_weights, identity), run_task, task))
    for (i, key, keep_weights, identity), res in run.map(jobs, "refit and test"):
        sha = atomic_torch_save(run.dir.refit_weights(i, key), res["state"]) if keep_weights else None
        rec = {"identity": identity, "test_probs": np.round(res["test_probs"], 6).tolist(),
               "seconds": res["seconds"], "spec_stats": res["spec_stats"], "n_params": res["n_params"],
               **({"weights_sha256": sha} if sha else {})}
        atomic_write_json(run.dir.refit_json(i, key), rec)  # last: its presence means complete
        done[i, key] = rec
    return done
