"""A selection group: the speakers one selection searches and chooses on, and its candidate pool.

Folds are dealt into groups (training/run_helpers.py `plan_searches`); a group's search speakers
are those of none of its folds' test speakers. `prepare_group` gives it its inner folds (speaker
grouped, stratified), its encoder-layer probe, the baselines and a seeded sample of the space
(ordered by a prior when one is bound), `budget` candidates in all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emotionnas.data.folds import Fold
from emotionnas.features.encoder_ref import EncoderRef
from emotionnas.space.pipeline import (
    FINE_TUNED,
    baselines,
    enumerate_space,
    layer_windows,
    tunes_encoder,
)
from emotionnas.training import selection as sel
from emotionnas.training.cell_search import layer_probe
from emotionnas.training.prior import order_by_prior
from emotionnas.training.run_helpers import stage_seed, train_indices
from emotionnas.training.selection_result import SelectionResult


@dataclass
class Group:
    fold: Fold                        # search fold: train/val speakers searched on, test = excluded
    members: list[int]                # outer folds that use this group's selection
    idx: np.ndarray                   # utterances of the search speakers
    inner: list[np.ndarray] = field(default_factory=list)  # positions into idx, one array per inner fold
    probe: dict = field(default_factory=dict)
    arch: dict = field(default_factory=dict)
    pool: dict = field(default_factory=dict)        # key -> Candidate
    baselines: dict = field(default_factory=dict)   # name -> Candidate
    result: SelectionResult | None = None          # what its selection decided (training/select.py)
    prior: dict = field(default_factory=dict)       # selection.prior: sources used and candidate scores
    partitions: int = 1                             # inner has `partitions` speaker partitions, in order

    @property
    def name(self) -> str:
        return self.fold.name

    @property
    def first_partition(self) -> list[np.ndarray]:  # inner folds that cover each search speaker once
        return self.inner[: len(self.inner) // self.partitions]


def prepare_group(run, search_fold: Fold, members: list[int]) -> Group:
    fs, cfg = run.fs, run.cfg
    g = Group(search_fold, members, train_indices(fs.speakers, search_fold), partitions=cfg.selection.partitions)
    seeds = [stage_seed(cfg.seed, "inner", g.name, *(("partition", p) if p else ())) for p in range(g.partitions)]
    g.inner = sel.inner_partitions(fs.speakers[g.idx], cfg.selection.inner_folds, seeds, fs.labels[g.idx])
    g.probe = layer_probe(fs, g.idx, run.dir.layer_probe(g.name), stage_seed(cfg.seed, "layers", g.name), run.log,
                          run.identity)
    windows = layer_windows(g.probe["scores"], cfg.space.layer_widths, cfg.space.layer_windows)
    top = run.dims.deep_layers_total - 1  # the encoder's top hidden state
    whisper = EncoderRef.parse(cfg.features.encoder).has_whisper_blocks
    tunable = not cfg.features.speaker_norm and (tunes_encoder(cfg.space) or whisper)
    g.baselines = baselines(windows[0], top if tunable else None)
    in_pool = {n: c for n, c in g.baselines.items()
               if n != FINE_TUNED or tunes_encoder(cfg.space) or cfg.space.finetune_in_pool}  # else
    # fine-tuning (of Whisper, not on standardised states) is a baseline outside the pool (fixed schedule)
    space = enumerate_space(cfg.space, windows, top)
    fixed = {c.key for c in g.baselines.values()}
    rng = np.random.default_rng(stage_seed(cfg.seed, "pool", g.name))
    rest = [space[i] for i in rng.permutation(len(space)) if space[i].key not in fixed]
    rest, g.prior = order_by_prior(run.prior, rest, g.probe["scores"])
    n_sample = max(0, cfg.selection.budget - len(in_pool))
    g.pool = {c.key: c for c in list(in_pool.values()) + rest[:n_sample]}
    return g
