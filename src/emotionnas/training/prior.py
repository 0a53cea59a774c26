"""A selection prior learned across corpora: which choices of the space tended to score well
on *other* corpora, used to fill the candidate pool before successive halving (issue 18 item 4).

A prior is plain JSON (presets/prior.json ships one; `emotionnas prior RUN ... --out F` builds
another). For each source corpus it holds the main effect of every choice — deep family,
pooling, width, dropout, frame pooling, spectrogram family, fusion, and the layers read as
*their rank in that group's layer probe* (rank0 = the probe's best window; absolute layer
numbers differ between corpora) — fitted by ridge regression on the rung-0 inner-CV UA of every
candidate of every selection group, z-scored within its group. Only inner-CV scores over search
speakers enter; no test score does. Its provenance (runs, corpora, speaker digests, date, git
revision) is written in it.

At run time (`selection.prior: builtin | PATH`) a source is dropped when it is the run's own
corpus (same name, or any speaker whose fingerprint digest is the same), so a corpus never uses
its own scores; the effects of the remaining sources are averaged, and the non-baseline
candidates enter the pool best prior score first (ties: the run's random order).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from emotionnas.config import RunConfig
from emotionnas.errors import ConfigError
from emotionnas.space.families import family, names
from emotionnas.space.pipeline import layer_windows

FORMAT = 1
KIND = "emotionnas selection prior"
MAX_PRIOR_BYTES = 1 << 20
MAX_GROUP_BYTES = 8 << 20
RIDGE = 1.0          # a priori: one unit of penalty per z-scored observation scale
RANK_CAP = 3         # windows ranked below the probe's 3rd best share one feature
BUILTIN = Path(__file__).resolve().parents[1] / "presets" / "prior.json"


def ranked_windows(probe_scores, widths) -> list[tuple[int, ...]]:
    """Every window of consecutive layers of the given widths, the probe's best first."""
    return layer_windows(list(probe_scores), widths, top=10 ** 6)


def candidate_features(c: dict, ranked: list[tuple[int, ...]]) -> list[str]:
    """The choices of candidate `c` (Candidate.to_dict()), layers as their probe rank."""
    deep, spec = c["deep"], c["spectrogram"]
    out = [f"deep={deep}", f"spectrogram={spec}"]
    if deep != "none":
        if c["layers"] == "all":
            out.append("layers=all")
        else:
            win = tuple(c["layers"])
            rank = ranked.index(win) if win in ranked else RANK_CAP
            out += [f"layers=rank{min(rank, RANK_CAP)}", f"layers=width{len(win)}"]
        out += [f"pooling={c['pooling']}", f"frame_pool={c['frame_pool']}", f"dropout={float(c['dropout']):g}"]
        if deep in names("deep") and family(deep).width:
            out.append(f"hidden={c['hidden']}")
    if deep != "none" and spec != "none":
        out.append(f"fusion={c['fusion']}")
    return out


def fit_effects(groups: list[tuple[list[list[str]], np.ndarray]], ridge: float = RIDGE) -> dict[str, float]:
    """Ridge main effects of the features on UA z-scored within each group."""
    rows, ys = [], []
    for feats, uas in groups:
        if len(uas) < 3 or np.std(uas) == 0:
            continue  # nothing to learn from a group of ties
        rows += feats
        ys.append((uas - uas.mean()) / uas.std())
    if not rows:
        return {}
    vocab = sorted({f for r in rows for f in r})
    pos = {f: i for i, f in enumerate(vocab)}
    x = np.zeros((len(rows), len(vocab)))
    for i, r in enumerate(rows):
        x[i, [pos[f] for f in r]] = 1.0
    y = np.concatenate(ys)
    beta = np.linalg.solve(x.T @ x + ridge * np.eye(len(vocab)), x.T @ y)
    return {f: round(float(b), 4) for f, b in zip(vocab, beta)}


def _source_groups(run_dir: Path) -> tuple[RunConfig, dict, list]:
    cfg_path, fp_path = run_dir / "config.yaml", run_dir / "fingerprint.json"
    if not cfg_path.exists() or not fp_path.exists():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml or fingerprint.json)")
    cfg = RunConfig.from_yaml(cfg_path)
    fingerprint = _read_bounded(fp_path, MAX_GROUP_BYTES)
    groups = []
    for path in sorted((run_dir / "searches").glob("*/selection.json")):
        summary = _read_bounded(path, MAX_GROUP_BYTES)
        try:
            ranked = ranked_windows(summary["layer_probe"]["scores"], cfg.space.layer_widths)
            cands = [c for c in summary["candidates"] if c.get("rung0_ua") is not None]
            groups.append(([candidate_features(c["candidate"], ranked) for c in cands],
                           np.array([float(c["rung0_ua"]) for c in cands])))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: not a selection summary ({type(e).__name__}: {e})") from None
    if not groups:
        raise ConfigError(f"{run_dir}: no searches/*/selection.json (has the run's selection finished?)")
    return cfg, fingerprint, groups


def build_prior(run_dirs, ridge: float = RIDGE) -> dict:
    """A prior from finished runs, one source per corpus (runs of one corpus are pooled)."""
    from emotionnas.utils.provenance import git_revision
    by_corpus: dict[str, dict] = {}
    for run_dir in map(Path, run_dirs):
        cfg, fingerprint, groups = _source_groups(run_dir)
        src = by_corpus.setdefault(cfg.corpus, {"corpus": cfg.corpus, "runs": [], "speaker_digests": set(),
                                                "groups_data": []})
        src["runs"].append(str(run_dir))
        src["speaker_digests"] |= {s["digest"] for s in fingerprint.get("speakers", {}).values()}
        src["groups_data"] += groups
    sources = []
    for src in by_corpus.values():
        groups = src.pop("groups_data")
        sources.append({**src, "speaker_digests": sorted(src["speaker_digests"]), "groups": len(groups),
                        "candidates": int(sum(len(u) for _, u in groups)), "effects": fit_effects(groups, ridge)})
    return {"format": FORMAT, "kind": KIND,
            "built": {"date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(),
                      "ridge": ridge, "target": "rung-0 inner-CV UA over search speakers, z-scored within "
                                                "each selection group (no test score)"},
            "sources": sources}


def _read_bounded(path: Path, limit: int):
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise ConfigError(f"{path}: {size} bytes > limit {limit}")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable JSON ({type(e).__name__}: {e})") from None


def load_prior(spec: str) -> dict:
    """The prior named by `selection.prior` ('builtin' or a path), checked."""
    path = BUILTIN if spec == "builtin" else Path(spec)
    prior = _read_bounded(path, MAX_PRIOR_BYTES)
    ok = (isinstance(prior, dict) and prior.get("format") == FORMAT and prior.get("kind") == KIND
          and isinstance(prior.get("sources"), list))
    for src in prior.get("sources", []) if ok else []:
        ok = ok and isinstance(src, dict) and isinstance(src.get("corpus"), str) \
            and isinstance(src.get("speaker_digests"), list) and isinstance(src.get("effects"), dict) \
            and all(isinstance(k, str) and isinstance(v, (int, float)) and np.isfinite(v)
                    for k, v in src["effects"].items())
    if not ok:
        raise ConfigError(f"{path}: not an emotionnas selection prior (format {FORMAT}: kind, sources "
                          "with corpus, speaker_digests and numeric effects)")
    prior["path"] = str(path)
    return prior


def usable_sources(prior: dict, corpus: str, speaker_digests) -> tuple[list[dict], list[str]]:
    """(sources from other corpora, names of the dropped ones: this corpus's own scores)."""
    own = set(speaker_digests)
    keep, dropped = [], []
    for src in prior["sources"]:
        (dropped if src["corpus"] == corpus or own & set(src["speaker_digests"]) else keep).append(src)
    return keep, [s["corpus"] for s in dropped]


def prior_scores(sources: list[dict], candidates, ranked) -> dict[str, float]:
    """key -> the candidate's prior score (mean over sources of its summed effects; 0 = unknown)."""
    out = {}
    for c in candidates:
        feats = candidate_features(c.to_dict(), ranked)
        out[c.key] = float(np.mean([sum(s["effects"].get(f, 0.0) for f in feats) for s in sources])) \
            if sources else 0.0
    return out


def order_by_prior(cfg: RunConfig, rest: list, probe_scores, fingerprint: dict) -> tuple[list, dict]:
    """`rest` (the pool's non-baseline candidates in the run's random order) best prior score
    first, and the record of it for selection.json; unchanged when `selection.prior` is off."""
    if not cfg.selection.prior:
        return rest, {}
    prior = load_prior(cfg.selection.prior)
    digests = [s["digest"] for s in fingerprint.get("speakers", {}).values()]
    sources, dropped = usable_sources(prior, cfg.corpus, digests)
    ranked = ranked_windows(probe_scores, cfg.space.layer_widths)
    score = prior_scores(sources, rest, ranked)
    ordered = sorted(rest, key=lambda c: -score[c.key])  # stable: ties keep the random order
    return ordered, {"path": prior["path"], "sources": [s["corpus"] for s in sources], "dropped": dropped,
                     "scores": {c.key: round(score[c.key], 4) for c in ordered}}


def write_prior(runs, out) -> int:
    """`emotionnas prior RUN [RUN ...] --out F`: build a prior from finished runs, say what it holds."""
    from emotionnas.utils.io import atomic_write_json
    prior = build_prior(runs)
    atomic_write_json(out, prior)
    for s in prior["sources"]:
        top = sorted(s["effects"].items(), key=lambda kv: -kv[1])
        print(f"{s['corpus']}: {s['groups']} groups, {s['candidates']} candidates; best "
              f"{', '.join(f'{k} {v:+.2f}' for k, v in top[:4])}; worst {', '.join(f'{k} {v:+.2f}' for k, v in top[-3:])}")
    print(f"wrote {out}")
    return 0
