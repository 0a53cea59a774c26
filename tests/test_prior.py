"""The cross-corpus selection prior (training/prior.py): features relative to the layer probe,
effects that recover what the sources show, a corpus never using its own scores, bounded and
checked files, and the pool a run fills from it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emotionnas.config import RunConfig
from emotionnas.errors import ConfigError
from emotionnas.space.pipeline import Candidate
from emotionnas.training import prior as pr
from emotionnas.utils.io import file_sha256


def test_layers_are_features_by_probe_rank_not_by_number():
    """The best window of a corpus whose probe peaks at layer 3 and of one peaking at layer 0
    are the same feature (rank0), so effects carry across corpora."""
    a = pr.ranked_windows([50, 60, 70, 80, 60, 50])
    b = pr.ranked_windows([80, 70, 60, 50, 40, 30])
    fa = pr.candidate_features(Candidate("gru", (3,)).to_dict(), a)
    fb = pr.candidate_features(Candidate("gru", (0,)).to_dict(), b)
    assert fa == fb and "layers=rank0" in fa and "layers=width1" in fa
    assert "layers=all" in pr.candidate_features(Candidate("lstm", "all").to_dict(), a)
    assert "hidden=256" in fa and not any(f.startswith("hidden") for f in
                                          pr.candidate_features(Candidate("linear", (3,), pooling="mean").to_dict(), a))


SHAPES = [(d, w, p, h) for d in ("lstm", "mlp") for w in ((2,), (1, 2), "all")
          for p in ("attention", "meanstd") for h in (128, 256)]


def _groups(rng, n_groups=4, gap=5.0):
    """Synthetic selection groups (candidates, rung-0 UAs): lstm scores `gap` UA above mlp,
    plus noise and a per-group offset."""
    ranked = pr.ranked_windows([60, 70, 80, 70])
    out = []
    for _ in range(n_groups):
        cands = [Candidate(d, w, pooling=p, hidden=h) for d, w, p, h in SHAPES]
        uas = np.array([70 + rng.normal(0, 1) + (gap if c.deep == "lstm" else 0) for c in cands]) + rng.normal(0, 10)
        out.append((cands, [pr.candidate_features(c.to_dict(), ranked) for c in cands], uas))
    return out


def test_effects_recover_the_planted_choice():
    effects = pr.fit_effects([(f, u) for _, f, u in _groups(np.random.default_rng(0))])
    assert effects["deep=lstm"] - effects["deep=mlp"] > 1.0  # z-scored: the gap dominates the noise
    flat = pr.fit_effects([(f, u) for _, f, u in _groups(np.random.default_rng(1), gap=0.0)])
    assert abs(flat["deep=lstm"] - flat["deep=mlp"]) < 0.5


def test_effects_refuse_a_design_matrix_the_files_would_size(monkeypatch):
    monkeypatch.setattr(pr, "MAX_FEATURES", 5)
    with pytest.raises(ConfigError, match="exceed the limits"):
        pr.fit_effects([(f, u) for _, f, u in _groups(np.random.default_rng(0), n_groups=1)])


def _fake_run(root, corpus, digests, rng, audio: list[bytes], prior=None):
    """A run folder as `emotionnas run` leaves it (config.yaml, fingerprint.json, selection.json)
    over a manifest corpus of the given audio files (the prior fingerprints its audio)."""
    from conftest import write_wav
    (root / "corpus").mkdir(parents=True)
    lines = ["path,label,speaker"]
    for i, seed in enumerate(audio):
        write_wav(root / "corpus" / f"u{i}.wav", np.random.default_rng(seed).uniform(-0.5, 0.5, 1600))
        lines.append(f"u{i}.wav,{'ab'[i % 2]},s{i % 2}")
    (root / "corpus" / f"{corpus}.csv").write_text("\n".join(lines) + "\n")
    cfg = RunConfig(corpus="manifest", root=str(root / "corpus" / f"{corpus}.csv"))
    cfg.selection.prior = prior
    (root / "config.yaml").write_text(cfg.to_yaml())
    (root / "fingerprint.json").write_text(json.dumps({"corpus": corpus, "speakers": {
        f"s{i}": {"utterances": 10, "digest": d} for i, d in enumerate(digests)}}))
    for g, (cands, _, uas) in enumerate(_groups(rng, n_groups=2)):
        rows = [{"candidate": c.to_dict(), "budget_scores": [{"folds": 1, "ua": float(u)}]} for c, u in zip(cands, uas)]
        rows.append({"candidate": Candidate("gru", (2,)).to_dict(), "budget_scores": []})  # a replica: no first rung
        d = root / "searches" / f"group{g}"
        d.mkdir(parents=True)
        (d / "selection.json").write_text(json.dumps({"layer_probe": {"scores": [60, 70, 80, 70]},
                                                      "candidates": rows}))
    return root


def test_built_prior_drops_a_corpus_own_scores_by_name_speakers_or_audio(tmp_path):
    rng = np.random.default_rng(2)
    a = _fake_run(tmp_path / "a", "alpha", ["d1", "d2"], rng, [1, 2, 3])
    prior = pr.build_prior([a, _fake_run(tmp_path / "b", "beta", ["d3"], rng, [4, 5])])
    assert [s["corpus"] for s in prior["sources"]] == ["manifest:alpha", "manifest:beta"]
    assert prior["sources"][0]["groups"] == 2 and prior["sources"][0]["candidates"] == 48
    assert len(prior["sources"][0]["utterance_hashes"]) == 3
    assert prior["sources"][0]["effects"]["deep=lstm"] > prior["sources"][0]["effects"]["deep=mlp"]
    hashes_a = pr.utterance_hashes(sorted((a / "corpus").glob("*.wav")))
    cases = {("manifest:beta", (), ()): ["manifest:beta"],     # the same corpus (here: manifest) name
             ("renamed", ("d3",), ()): ["manifest:beta"],      # the same speakers under another name
             ("other", (), tuple(hashes_a[:1])): ["manifest:alpha"],  # one shared audio file is enough
             ("manifest:gamma", (), ()): []}                   # another manifest shares nothing
    for (corpus, digests, hashes), dropped in cases.items():
        keep, got = pr.usable_sources(prior, corpus, digests, hashes)
        assert got == dropped and len(keep) == 2 - len(dropped)
    with pytest.raises(ConfigError, match="not a run folder"):
        pr.build_prior([tmp_path])
    with pytest.raises(ConfigError, match="ordered by a prior"):  # its scores carry other corpora's
        pr.build_prior([_fake_run(tmp_path / "c", "gamma", ["d4"], rng, [6], prior="builtin")])


def _prior(**src):
    return {"format": 1, "kind": pr.KIND, "sources": [{"corpus": "x", "speaker_digests": [], "utterance_hashes": [],
                                                       "effects": {}, **src}]}


@pytest.mark.parametrize("text", [
    "{not json", json.dumps([1, 2]), json.dumps({"format": 1, "kind": pr.KIND, "sources": [{"corpus": "x"}]}),
    json.dumps(_prior(effects={"deep=gru": "import os"})), json.dumps(_prior(effects={"deep=gru": True})),
    json.dumps(_prior(effects={"deep=gru": 1e308})), '{"format": 1, "kind": "%s", "sources": [{"corpus": "x", '
    '"speaker_digests": [], "utterance_hashes": [], "effects": {"deep=gru": 1%s}}]}' % (pr.KIND, "0" * 400),
    json.dumps(_prior(speaker_digests=[[1]])), json.dumps(_prior(utterance_hashes="abc")), "[" * 200_000])
def test_bad_prior_files_are_one_line_errors_naming_the_file(tmp_path, text):
    bad = tmp_path / "p.json"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=str(bad)):
        pr.load_prior(str(bad))


def test_prior_reads_are_bounded(tmp_path):
    big = tmp_path / "p.json"
    big.write_bytes(b" " * (pr.MAX_PRIOR_BYTES + 1))
    with pytest.raises(ConfigError, match="limit"):
        pr.load_prior(str(big))
    prior, _ = pr.load_prior("builtin")  # the shipped prior loads, with both corpora
    assert {s["corpus"] for s in prior["sources"]} == {"emodb", "urdu"}


def test_pool_order_follows_the_prior_of_other_corpora(tmp_path):
    prior = {"format": 1, "kind": pr.KIND, "sources": [
        {"corpus": "other", "speaker_digests": [], "utterance_hashes": ["ffffffffff"],
         "effects": {"deep=lstm": 1.0, "deep=mlp": -1.0}},
        {"corpus": "demo", "speaker_digests": [], "utterance_hashes": [],
         "effects": {"deep=mlp": 9.0}}]}  # own corpus: never used
    path, run_dir = tmp_path / "prior.json", tmp_path / "run"
    run_dir.mkdir()
    path.write_text(json.dumps(prior))
    rest = [Candidate(d, (1,)) for d in ("mlp", "gru", "lstm", "mlp", "cell")]
    cfg = RunConfig(corpus="demo")
    fingerprint = {"speakers": {"s": {"digest": "d"}}}
    assert pr.bind_prior(cfg, run_dir, ["a" * 64], fingerprint) is None
    assert pr.order_by_prior(None, rest, [50, 60, 40]) == (rest, {})  # off: the random order stays
    cfg.selection.prior = str(path)
    with pytest.raises(ConfigError, match="needed"):  # fails closed: no audio hashes, no prior
        pr.bind_prior(cfg, run_dir, [], fingerprint)
    bound = pr.bind_prior(cfg, run_dir, ["a" * 64], fingerprint)
    ordered, record = pr.order_by_prior(bound, rest, [50, 60, 40])
    assert [c.deep for c in ordered] == ["lstm", "gru", "cell", "mlp", "mlp"]  # ties keep their order
    assert record["sources"] == ["other"] and record["dropped"] == ["demo"]
    assert record["scores"][rest[2].key] == 1.0
    prior["sources"][0]["effects"]["deep=gru"] = 2.0  # the prior changes under a run in progress
    path.write_text(json.dumps(prior))
    with pytest.raises(ConfigError, match="stale"):
        pr.bind_prior(cfg, run_dir, ["a" * 64], fingerprint)


@pytest.mark.slow  # the tiny_run fixture: a real run_crossval
def test_run_fills_its_pool_from_a_prior_and_records_it(tiny_run, tmp_path):
    """A prior built from a finished run steers another run's pool; on the same corpus it is
    dropped (a corpus never uses its own scores) and the pool is the random one."""
    from emotionnas.data.folds import final_search_fold
    from emotionnas.training.run import Run
    run_dir, _ = tiny_run
    built = tmp_path / "prior.json"
    assert pr.write_prior([run_dir], built) == 0
    cfg = RunConfig.from_yaml(run_dir / "config.yaml")

    def pool(name, spec):
        cfg.selection.prior = spec
        with Run.start(cfg, tmp_path / name, progress=False, log=lambda *a: None) as run:
            fold = final_search_fold(sorted(set(run.fs.speakers.tolist())), n_val=cfg.n_val, seed=cfg.seed)
            return run.prepare_group(fold, [])
    g_none, g_own = pool("none", None), pool("own", str(built))
    assert g_own.prior["dropped"] == ["demo"] and g_own.prior["sources"] == []
    assert list(g_own.pool) == list(g_none.pool)
    other = json.loads(built.read_text())
    other["sources"][0].update(corpus="other", speaker_digests=[], utterance_hashes=[],
                               effects={"deep=mlp": 5.0, "deep=linear": 4.0})
    (tmp_path / "other.json").write_text(json.dumps(other))
    g = pool("other", str(tmp_path / "other.json"))
    sampled = [c for c in g.pool.values() if c.key not in {b.key for b in g.baselines.values()}]
    assert g.prior["sources"] == ["other"]
    scores = [g.prior["scores"][c.key] for c in sampled]
    assert scores == sorted(scores, reverse=True) and scores[0] >= 4.0


def test_a_prior_reads_the_source_runs_audio_hashes_without_its_corpus(tmp_path):
    rng = np.random.default_rng(3)
    a = _fake_run(tmp_path / "a", "alpha", ["d1", "d2"], rng, [1, 2, 3])
    want = pr.build_prior([a])["sources"][0]["utterance_hashes"]  # no audio_hashes.json: the corpus is read
    fp = json.loads((a / "fingerprint.json").read_text())
    n = sum(v["utterances"] for v in fp["speakers"].values())
    pr.record_audio_hashes(a, [file_sha256(p) for p in sorted((a / "corpus").glob("*.wav"))] * (n // 3)
                           + [file_sha256(a / "corpus" / "u0.wav")] * (n % 3), fp)
    for wav in (a / "corpus").glob("*.wav"):
        wav.unlink()  # the corpus is gone; the run folder is enough
    assert pr.build_prior([a])["sources"][0]["utterance_hashes"] == want
    rec = json.loads((a / pr.AUDIO_HASHES).read_text())
    for bad in ({**rec, "n_utterances": n + 1}, {**rec, "hashes": ["<script>"]}, {**rec, "hashes": "abc"}, [1],
                {**rec, "speakers_sha256": "0" * 16}):  # another run's file with the same count
        (a / pr.AUDIO_HASHES).write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=pr.AUDIO_HASHES):
            pr.build_prior([a])


@pytest.mark.slow  # the tiny_run fixture: a real run_crossval
def test_every_run_records_its_audio_hashes(tiny_run):
    run_dir, _ = tiny_run
    rec = json.loads((run_dir / pr.AUDIO_HASHES).read_text())
    fp = json.loads((run_dir / "fingerprint.json").read_text())
    assert rec["n_utterances"] == sum(v["utterances"] for v in fp["speakers"].values())
    cfg = RunConfig.from_yaml(run_dir / "config.yaml")
    from emotionnas.data.corpora import read_corpus
    assert rec["hashes"] == pr.utterance_hashes(u.path for u in read_corpus(cfg.corpus, cfg.root).utterances)
