"""The fine-tuning families (models/tune.py): at init they compute the pretrained Whisper blocks
exactly; each mode trains what it says and nothing else; pretrained weights learn at a fraction
of the head's rate; a model folder with a tuned member carries its tuned blocks, and its ONNX
backend predicts what torch predicts. whisper-tiny.en ships offline (4 blocks, 384-d)."""
import json

import numpy as np
import pytest
import torch

from emotionnas.config import SpaceConfig, TrainConfig
from emotionnas.errors import ConfigError
from emotionnas.models.build import build_model
from emotionnas.models.tune import PRETRAINED_LR, pretrained_encoder
from emotionnas.space.model_spec import Dims, Member, ModelSpec
from emotionnas.space.pipeline import FINE_TUNED, Candidate, baselines, enumerate_space
from emotionnas.training.loop import ArraySplit, param_groups, train_model

TINY = "whisper-tiny.en"
DIMS = Dims(3, 384, 5, encoder=TINY)   # 4 blocks: hidden states 0..4


@pytest.fixture(scope="module")
def encoder():
    return pretrained_encoder(TINY)


def tuned(name: str, layer: int, dims: Dims = DIMS, pooling: str = "mean"):
    torch.manual_seed(0)
    return build_model(Candidate(name, (layer,), 1, pooling, 64, 0.0), dims).eval()


def test_initialisation_does_not_depend_on_whether_the_encoder_was_loaded_before():
    """A fine-tuned model built right after a seed is the same whether this process loads the
    pretrained encoder for it or finds it cached (a run's first fine-tuning task in a worker used
    to differ from the later ones: loading drew numbers from the seeded generator)."""
    pretrained_encoder.cache_clear()
    first = tuned("tune", 1).state_dict()   # loads the encoder
    again = tuned("tune", 1).state_dict()   # cached
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.parametrize("name", ["tune", "tunenb", "tunelora"])
@pytest.mark.parametrize("layer", [1, 2, 3])
def test_at_init_the_branch_computes_the_pretrained_blocks(encoder, name, layer):
    """Layer 1: blocks 1-2 (state 3); layer 2: blocks 2-3 and the final LayerNorm (state 4, the
    top, normed as the cache defines it); layer 3: block 3 only (the top is one block away).
    A padded batch: the shorter item's frames equal the encoder's on that item alone."""
    mel, mel_len = torch.randn(2, 80, 240, generator=torch.Generator().manual_seed(layer)), torch.tensor([240, 150])
    mel[1, :, 150:] = 0.0  # zero-padded, as the encoder batches
    with torch.no_grad():
        states = encoder(mel, mel_len)                               # (5, B, 120, 384)
        alone = encoder(mel[1:, :, :150])                            # the short item, unpadded
        net = tuned(name, layer)
        got, lengths = net.hidden(states[layer][:, None], (mel_len + 1) // 2)
    want = states[min(layer + 2, 4)]
    assert len(net.blocks) == min(2, 4 - layer) and (net.ln_post is not None) == (layer + 2 >= 4)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1, :75], alone[min(layer + 2, 4), 0], rtol=0, atol=1e-4)
    assert lengths.tolist() == [120, 75]


def test_each_mode_trains_only_what_it_says(encoder):
    def trained(net):
        return {n for n, p in net.named_parameters() if p.requires_grad}
    head = {"norm.weight", "norm.bias", "head.1.weight", "head.1.bias"}
    full, nb, lora = (tuned(n, 1) for n in ("tune", "tunenb", "tunelora"))
    block_params = {n for n, _ in full.named_parameters() if n.startswith("blocks.")}
    assert trained(full) == block_params | head and len(block_params) == 2 * 12
    assert trained(nb) - head == {f"blocks.{i}.{m}.{w}" for i in (0, 1) for m in ("attn_ln", "mlp_ln")
                                  for w in ("weight", "bias")} | {f"blocks.{i}.{m}.bias" for i in (0, 1)
                                                                  for m in ("qkv", "out", "fc1", "fc2")}
    assert trained(lora) - head == {f"blocks.{i}.lora_{p}_{ab}" for i in (0, 1) for p in "qv" for ab in "ab"}
    n = {name: sum(p.numel() for p in net.parameters() if p.requires_grad) - (2 * 384 + 384 * 3 + 3)  # - head
         for name, net in (("full", full), ("nb", nb), ("lora", lora))}
    per_block = {"full": 384 * 1152 + 1152 + 384 * 384 + 384 + 2 * 384 * 1536 + 1536 + 384 + 4 * 384,
                 "nb": 4 * 384 + 1152 + 384 + 1536 + 384, "lora": 4 * 8 * 384}
    assert n == {k: 2 * v for k, v in per_block.items()}
    top = tuned("tunenb", 2)  # at the top the final LayerNorm is a norm too: BitFit trains it
    assert {"ln_post.weight", "ln_post.bias"} <= trained(top)


def test_pretrained_weights_learn_slower_and_frozen_ones_stay(encoder):
    net = tuned("tunenb", 1)
    groups = param_groups(net, 1e-3)
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert set(by_lr) == {1e-3, 1e-3 * PRETRAINED_LR}
    assert by_lr[1e-3 * PRETRAINED_LR] == {id(p) for p in net.pretrained_parameters()}
    assert id(net.blocks[0].fc1.weight) not in set().union(*by_lr.values())   # frozen: not optimised
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    x, lengths, y = torch.randn(12, 1, 9, 384, generator=gen), torch.full((12,), 9), np.arange(12) % 3
    train_model(net, ArraySplit((x, lengths), y), TrainConfig(batch_size=4, time_mask=0.0), 3, seed=0,
                schedule_epochs=2)
    moved = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert "blocks.0.fc1.bias" in moved and "head.1.weight" in moved
    frozen = {n for n in before if n.startswith("blocks.") and n.endswith(".weight") and "_ln." not in n}
    assert len(frozen) == 8 and not moved & frozen


def test_one_layer_is_required_and_the_top_has_nothing_to_tune():
    with pytest.raises(ConfigError, match="candidate.layers: 'tune' tunes the encoder blocks above one layer"):
        Candidate("tune", (2, 3))
    with pytest.raises(ConfigError, match="one layer"):
        Candidate("tunelora", "all")
    with pytest.raises(ConfigError, match="no encoder block above layer 4"):
        tuned("tune", 4, Dims(3, 384, 5))
    with pytest.raises(ConfigError, match="not a Whisper width"):
        tuned("tune", 1, Dims(3, 200, 5))
    meta = ModelSpec(("a", "b"), (Member("t", Candidate("tune", (4,)), None, None, (0.0, 1.0), "m0."),),
                     Dims(2, 384, 5), TINY, 2, {}).to_dict()
    with pytest.raises(ConfigError, match=r"members\[0\].candidate.layers: 'tune' tunes the blocks above layer 4"):
        ModelSpec.from_meta(meta)
    assert "encoder" not in meta["dims"]   # a model folder never names pretrained weights to load


def test_space_and_baseline_read_one_layer_below_the_top():
    space = SpaceConfig(deep=["gru", "tunelora"], pooling=["mean"], hidden=[64], layer_mix=True)
    cands = enumerate_space(space, [(3, 4), (4,), (2,)], top=4)
    assert sorted(c.layers for c in cands if c.deep == "tunelora") == [(2,), (3,)]   # (4,): nothing above
    assert {c.name for c in cands if c.deep == "tunelora"} == {"tunelora-L3-p4-mean", "tunelora-L2-p4-mean"}
    plain = baselines((3, 4))
    assert FINE_TUNED not in plain
    with_tuning = baselines((3, 4), tune_top=6)
    assert {k: c.key for k, c in with_tuning.items() if k != FINE_TUNED} == {k: c.key for k, c in plain.items()}
    ft = with_tuning[FINE_TUNED]
    assert (ft.deep, ft.layers, ft.pooling) == ("tune", (4,), "mean")
    assert baselines((4, 5), tune_top=6)[FINE_TUNED].layers == (4,)  # 2 blocks: never above top - 2


@pytest.mark.slow  # whisper-tiny.en encodes; two ONNX graphs are exported and checked
def test_a_model_folder_with_a_tuned_member_predicts_the_same_with_torch_and_onnx(encoder, tmp_path):
    pytest.importorskip("onnxruntime")
    from safetensors.torch import save_file

    from emotionnas.recognizer import Recognizer
    from emotionnas.recognizer.onnx_export import export_onnx
    members = (Member("tuned", Candidate("tune", (2,), 2, "attention", 256, 0.2), None, None, (0.0, 1.0), "m0."),
               Member("lora", Candidate("tunelora", (1,), 1, "mean", 256, 0.2), None, None, (0.0, 1.0), "m1."))
    spec = ModelSpec(("a", "b", "c"), members, Dims(3, 384, 5, 4, 3), TINY, 2, {"out_freq": 32, "out_time": 32})
    state = {}
    for i, m in enumerate(members):
        torch.manual_seed(i)
        net = build_model(m.candidate, DIMS)   # initialised from the pretrained encoder, as in training
        with torch.no_grad():  # "tuned": the blocks move away from the pretrained weights
            for p in net.blocks.parameters():
                p.add_(0.01 * torch.randn_like(p))
        state |= {f"m{i}.{k}": v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "model.json").write_text(json.dumps(spec.to_dict()))
    pretrained_encoder.cache_clear()
    rec = Recognizer.load(tmp_path)
    assert pretrained_encoder.cache_info().currsize == 0   # built from model.json, weights from the folder
    loaded = {f"m{i}.{k}": v for i, net in enumerate(rec.model.nets) for k, v in net.state_dict().items()}
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    info = export_onnx(tmp_path)
    assert max(info["max_error"].values()) < 1e-4 and info["encoder"]["layers"] == 3  # states 0..2 only
    onnx = Recognizer.load(tmp_path, backend="onnx")
    rng = np.random.default_rng(0)
    for seconds in (1.3, 2.9):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = (0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.2 * np.sin(3 * t))) + 0.02 * rng.standard_normal(t.size))
        p_torch, p_onnx = rec.predict_proba(wave.astype(np.float32)), onnx.predict_proba(wave.astype(np.float32))
        assert abs(p_torch.sum() - 1) < 1e-5
        np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4)


@pytest.mark.slow  # a real run_crossval, report and export
def test_a_run_with_tuning_in_its_space_trains_reports_and_exports_it(demo_root, tmp_path):
    from emotionnas.cli import demo_config
    from emotionnas.recognizer import Recognizer
    from emotionnas.recognizer.export import export_run
    from emotionnas.reports.report import write_report
    from emotionnas.training.crossval import run_crossval
    cfg = demo_config(str(demo_root), str(tmp_path / "cache"))
    cfg.max_folds, cfg.workers, cfg.baselines, cfg.final_model = 1, 1, True, False
    cfg.space.deep, cfg.space.spectrogram, cfg.space.pooling = ["tunelora"], ["none"], ["mean"]
    cfg.selection.budget = 8          # 6 baselines (with the fine-tuning one) + 2 sampled
    pretrained_encoder.cache_clear()
    results = run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    assert pretrained_encoder.cache_info().currsize == 1   # serial tasks: initialised from the run's encoder
    assert FINE_TUNED in results["baselines"] and np.isfinite(results["baselines"][FINE_TUNED]["ua"])
    summary = json.loads(next((tmp_path / "run").rglob("selection.json")).read_text())
    deep = {r["candidate"]["deep"] for r in summary["candidates"]}
    assert {"tune", "tunelora"} <= deep
    write_report(tmp_path / "run")
    export_run(tmp_path / "run", tmp_path / "model", fold=0)
    rec = Recognizer.load(tmp_path / "model")
    wave = (0.3 * np.sin(2 * np.pi * 200 * np.arange(24000) / 16000)).astype(np.float32)
    assert abs(rec.predict_proba(wave).sum() - 1) < 1e-5
