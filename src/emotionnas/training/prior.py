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

At run time (`selection.prior: builtin | PATH`) a source is dropped when it shares any audio
with the run's corpus (a truncated sha256 of each utterance's file), a speaker fingerprint
digest, or its corpus name (for the generic `manifest` reader: with the manifest's file name),
so a corpus never uses its own scores; a run that itself used a prior is refused as a source
(its scores carry other corpora's). The effects of the remaining sources are averaged, and the
non-baseline candidates enter the pool best prior score first (ties: the run's random order).
The prior a run starts with is copied into its folder (RUN/prior.json); a resume with another
prior's content is refused as stale.
"""
from __future__ import annotations

import hashlib
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
MAX_PRIOR_BYTES = 16 << 20
MAX_GROUP_BYTES = 8 << 20
MAX_EFFECT = 100.0   # effects are in z units (~1); anything larger is not a prior
HASH_CHARS = 10      # of each utterance's sha256: a false overlap (p ~ n^2 / 2^41) only drops a source
MAX_ROWS, MAX_FEATURES = 50_000, 1_000  # bound the ridge design matrix (<= 400 MB) whatever the files say
RIDGE = 1.0          # a priori: one unit of penalty per z-scored observation scale
RANK_CAP = 3         # windows ranked below the probe's 3rd best (of their width) share one feature
GENERIC_NAMES = ("manifest",)  # reader names that say nothing about which corpus it is


def corpus_label(cfg: RunConfig) -> str:
    """A source's name: the reader's, with the manifest's file name for a generic reader."""
    return f"{cfg.corpus}:{Path(cfg.root).stem}" if cfg.corpus in GENERIC_NAMES else cfg.corpus
BUILTIN = Path(__file__).resolve().parents[1] / "presets" / "prior.json"


def ranked_windows(probe_scores, widths=(1, 2, 3, 4)) -> dict[int, list[tuple[int, ...]]]:
    """Per width, every window of consecutive layers of that width, the probe's best first (ranks
    within a width, so they mean the same whatever widths a run's space allows)."""
    return {w: layer_windows(list(probe_scores), [w], top=10 ** 6) for w in widths}


def candidate_features(c: dict, ranked: dict[int, list[tuple[int, ...]]]) -> list[str]:
    """The choices of candidate `c` (Candidate.to_dict()), layers as their probe rank."""
    deep, spec = c["deep"], c["spectrogram"]
    out = [f"deep={deep}", f"spectrogram={spec}"]
    if deep != "none":
        if c["layers"] == "all":
            out.append("layers=all")
        else:
            win = tuple(c["layers"])
            same = ranked.get(len(win), [])
            rank = same.index(win) if win in same else RANK_CAP
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
    if len(rows) > MAX_ROWS or len(vocab) > MAX_FEATURES:  # the design matrix is sized by the files read
        raise ConfigError(f"prior: {len(rows)} candidates with {len(vocab)} distinct choices exceed the limits "
                          f"({MAX_ROWS}, {MAX_FEATURES}); not selection summaries of emotionnas runs")
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
    if cfg.selection.prior:
        raise ConfigError(f"{run_dir}: its pool was ordered by a prior (selection.prior: {cfg.selection.prior}), "
                          "so its scores carry other corpora's; build priors from runs without one")
    fingerprint = _read_bounded(fp_path, MAX_GROUP_BYTES)
    groups = []
    for path in sorted((run_dir / "searches").glob("*/selection.json")):
        summary = _read_bounded(path, MAX_GROUP_BYTES)
        try:
            ranked = ranked_windows(summary["layer_probe"]["scores"])
            cands = first_budget_scores(summary["candidates"])
            groups.append(([candidate_features(c["candidate"], ranked) for c, _ in cands],
                           np.array([ua for _, ua in cands])))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"{path}: not a selection summary ({type(e).__name__}: {e})") from None
    if not groups:
        raise ConfigError(f"{run_dir}: no searches/*/selection.json (has the run's selection finished?)")
    return cfg, fingerprint, groups


def utterance_hashes(paths) -> list[str]:
    """Truncated sha256 of each audio file: what a source and a run compare to find shared audio."""
    from emotionnas.utils.io import file_sha256
    return sorted({file_sha256(p)[:HASH_CHARS] for p in paths})


AUDIO_HASHES = "audio_hashes.json"  # in every run folder: what a prior built from the run compares


def _speakers_sha(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint.get("speakers"), sort_keys=True).encode()).hexdigest()[:16]


def record_audio_hashes(run_root: Path, content_hashes, fingerprint: dict) -> None:
    """At `Run.start`: the run's truncated audio hashes, tied to its fingerprint's speakers, so a
    prior can be built from the run folder without its corpus on disk."""
    if content_hashes:
        from emotionnas.utils.io import atomic_write_json
        atomic_write_json(Path(run_root) / AUDIO_HASHES, {
            "hash_chars": HASH_CHARS, "n_utterances": len(content_hashes), "speakers_sha256": _speakers_sha(fingerprint),
            "hashes": sorted({h[:HASH_CHARS] for h in content_hashes})})


def _corpus_hashes(cfg: RunConfig, run_dir: Path, fingerprint: dict) -> list[str]:
    """The source run's audio hashes: from its audio_hashes.json, checked against its fingerprint;
    for a run from before that file (or before it named the speakers), by reading its corpus again."""
    path = run_dir / AUDIO_HASHES
    rec = _read_bounded(path, MAX_PRIOR_BYTES) if path.exists() else None
    older = isinstance(rec, dict) and "speakers_sha256" not in rec  # written before it named the speakers
    if rec is not None and not older:
        hashes = rec.get("hashes") if isinstance(rec, dict) else None
        try:
            n = sum(int(v["utterances"]) for v in fingerprint["speakers"].values())
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"{run_dir / 'fingerprint.json'}: no utterance counts") from None
        if not (_strings(hashes) and all(len(h) == HASH_CHARS and set(h) <= set("0123456789abcdef") for h in hashes)
                and rec.get("n_utterances") == n and 0 < len(hashes) <= n
                and rec.get("speakers_sha256") == _speakers_sha(fingerprint)):
            raise ConfigError(f"{path}: not this run's audio hashes (they must match its fingerprint.json: "
                              f"{n} utterances, the same speakers)")
        return hashes
    from emotionnas.data.corpora import read_corpus
    try:
        table = read_corpus(cfg.corpus, cfg.root, **cfg.corpus_options)
    except Exception as e:  # noqa: BLE001 - said in one line
        raise ConfigError(f"{run_dir}: its corpus ({cfg.corpus} at {cfg.root}) is needed to fingerprint the "
                          f"source's audio and cannot be read ({type(e).__name__}: {e})") from None
    return utterance_hashes(u.path for u in table.utterances)


def build_prior(run_dirs, ridge: float = RIDGE) -> dict:
    """A prior from finished runs, one source per corpus (runs of one corpus are pooled)."""
    from emotionnas.utils.provenance import git_revision
    by_corpus: dict[str, dict] = {}
    for run_dir in map(Path, run_dirs):
        cfg, fingerprint, groups = _source_groups(run_dir)
        name = corpus_label(cfg)
        src = by_corpus.setdefault(name, {"corpus": name, "runs": [], "speaker_digests": set(),
                                          "utterance_hashes": set(), "groups_data": []})
        src["runs"].append(str(run_dir))
        try:
            src["speaker_digests"] |= {str(v["digest"]) for v in fingerprint["speakers"].values()}
        except (KeyError, TypeError, AttributeError):
            raise ConfigError(f"{run_dir / 'fingerprint.json'}: no speaker digests") from None
        src["utterance_hashes"] |= set(_corpus_hashes(cfg, run_dir, fingerprint))
        src["groups_data"] += groups
    sources = []
    for src in by_corpus.values():
        groups = src.pop("groups_data")
        sources.append({**src, "speaker_digests": sorted(src["speaker_digests"]),
                        "utterance_hashes": sorted(src["utterance_hashes"]), "groups": len(groups),
                        "candidates": int(sum(len(u) for _, u in groups)), "effects": fit_effects(groups, ridge)})
    return {"format": FORMAT, "kind": KIND,
            "built": {"date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(),
                      "ridge": ridge, "target": "rung-0 inner-CV UA over search speakers, z-scored within "
                                                "each selection group (no test score)"},
            "sources": sources}


def _read_bounded(path: Path, limit: int):
    """JSON from `path`, read through at most `limit` bytes (never sized by the file's claim)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ConfigError(f"{path}: more than {limit} bytes (limit)")
        return json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: unreadable JSON ({type(e).__name__}: {str(e)[:80]})") from None


def _strings(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def _effect(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= MAX_EFFECT


def load_prior(spec: str) -> tuple[dict, bytes]:
    """The prior named by `selection.prior` ('builtin' or a path), checked; and its bytes."""
    path = BUILTIN if spec == "builtin" else Path(spec)
    prior = _read_bounded(path, MAX_PRIOR_BYTES)
    ok = (isinstance(prior, dict) and prior.get("format") == FORMAT and prior.get("kind") == KIND
          and isinstance(prior.get("sources"), list))
    for src in prior["sources"] if ok else []:
        ok = ok and isinstance(src, dict) and isinstance(src.get("corpus"), str) \
            and _strings(src.get("speaker_digests")) and _strings(src.get("utterance_hashes")) \
            and isinstance(src.get("effects"), dict) \
            and all(isinstance(k, str) and _effect(v) for k, v in src["effects"].items())
    if not ok:
        raise ConfigError(f"{path}: not an emotionnas selection prior (format {FORMAT}: kind, sources with "
                          f"corpus, speaker_digests, utterance_hashes and numeric effects |v| <= {MAX_EFFECT:g})")
    prior["path"] = str(path)
    return prior, json.dumps(prior["sources"], sort_keys=True).encode()


def usable_sources(prior: dict, corpus: str, speaker_digests, hashes) -> tuple[list[dict], list[str]]:
    """(sources from other corpora, names of the dropped ones: this corpus's own scores)."""
    own_digests, own_hashes = set(speaker_digests), {h[:HASH_CHARS] for h in hashes}
    keep, dropped = [], []
    for src in prior["sources"]:
        same_name = src["corpus"] == corpus
        shared = own_digests & set(src["speaker_digests"]) or own_hashes & set(src["utterance_hashes"])
        (dropped if same_name or shared else keep).append(src)
    return keep, [s["corpus"] for s in dropped]


def bind_prior(cfg: RunConfig, run_root: Path, content_hashes, fingerprint: dict) -> dict | None:
    """At `Run.start`: the usable sources of `selection.prior` for this corpus (None when off).
    The prior is copied into the run folder; resuming with another prior's content is refused."""
    if not cfg.selection.prior:
        return None
    if not content_hashes or not fingerprint.get("speakers"):
        raise ConfigError("selection.prior: the run's audio hashes and speaker digests are needed to drop "
                          "its own corpus's scores; none were given")
    from emotionnas.rundir import RESTART_HINT
    from emotionnas.utils.io import atomic_write_bytes
    prior, content = load_prior(cfg.selection.prior)
    copy = Path(run_root) / "prior.json"
    if copy.exists() and copy.read_bytes() != content:
        raise ConfigError(f"{copy}: this run started with another prior than {prior['path']} (stale); {RESTART_HINT}")
    atomic_write_bytes(copy, content)
    digests = [str(s.get("digest")) for s in fingerprint["speakers"].values()]
    sources, dropped = usable_sources(prior, corpus_label(cfg), digests, content_hashes)
    return {"path": prior["path"], "sha256": hashlib.sha256(content).hexdigest()[:16], "sources": sources,
            "dropped": dropped}


def prior_scores(sources: list[dict], candidates, ranked) -> dict[str, float]:
    """key -> the candidate's prior score (mean over sources of its summed effects; 0 = unknown)."""
    out = {}
    for c in candidates:
        feats = candidate_features(c.to_dict(), ranked)
        out[c.key] = float(np.mean([sum(s["effects"].get(f, 0.0) for f in feats) for s in sources])) \
            if sources else 0.0
    return out


def order_by_prior(bound: dict | None, rest: list, probe_scores) -> tuple[list, dict]:
    """`rest` (the pool's non-baseline candidates in the run's random order) best prior score
    first, and the record of it for selection.json; unchanged when no prior is bound."""
    if not bound:
        return rest, {}
    score = prior_scores(bound["sources"], rest, ranked_windows(probe_scores))
    ordered = sorted(rest, key=lambda c: -score[c.key])  # stable: ties keep the random order
    return ordered, {"path": bound["path"], "sha256": bound["sha256"], "dropped": bound["dropped"],
                     "sources": [s["corpus"] for s in bound["sources"]],
                     "scores": {c.key: round(score[c.key], 4) for c in ordered}}


def write_prior(runs, out) -> int:
    """`emotionnas prior RUN [RUN ...] --out F`: build a prior from finished runs, say what it holds."""
    from emotionnas.utils.io import atomic_write_json
    prior = build_prior(runs)
    atomic_write_json(out, prior)
    for s in prior["sources"]:
        top = sorted(s["effects"].items(), key=lambda kv: -kv[1])
        best, worst = (", ".join(f"{k} {v:+.2f}" for k, v in part) for part in (top[:4], top[-3:]))
        print(f"{s['corpus']}: {s['groups']} groups, {s['candidates']} candidates; best {best}; worst {worst}")
    print(f"wrote {out}")
    return 0


def first_budget_scores(rows: list) -> list[tuple[dict, float]]:
    """[(row, UA)] of the candidates scored at the group's smallest budget (the fewest inner folds
    any candidate was scored on: successive halving's first rung), so that every score compared
    was made on the same folds. Replicas and candidates only scored on more folds are left out."""
    scored = [(c, {int(b["folds"]): float(b["ua"]) for b in c.get("budget_scores") or []}) for c in rows]
    budgets = [min(s) for _, s in scored if s]
    if not budgets:
        return []
    smallest = min(budgets)
    return [(c, s[smallest]) for c, s in scored if smallest in s]
