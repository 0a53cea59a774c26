"""Any Hugging Face speech encoder on disk (wav2vec 2.0, HuBERT, WavLM, Whisper, ...).

Loading is local-only (``local_files_only=True``): nothing is downloaded; a
model that is not on disk is a one-line EncoderError saying how to fetch it.

* Whisper checkpoints are converted into our WhisperNet (whisper_net.from_hf)
  so they run unpadded — HF's WhisperEncoder insists on 30 s input, whose
  extra padding frames would also change every hidden state through
  attention. Tests check WhisperNet equals HF's encoder on 30 s input.
* Other models: AutoFeatureExtractor + AutoModel(output_hidden_states=True),
  one utterance at a time (no padding, so no attention-mask subtleties).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from emotionnas.features.encoders import assets
from emotionnas.features.encoders.base import Encoder, EncoderError, check_wave
from emotionnas.features.encoders.whisper import WhisperEncoder
from emotionnas.features.encoders.whisper_net import from_hf
from emotionnas.utils.io import file_sha256

IMPL_VERSION = 1


def _not_found(model_id: str, e: Exception) -> EncoderError:
    first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    return EncoderError(f"{model_id}: Hugging Face model not found on disk (no downloads are attempted); "
                        f"put it in a local folder or the HF cache first, e.g. `huggingface-cli download {model_id}` "
                        f"({first})")


def _weights_identity(model_id: str, config) -> dict:
    """Commit hash when loaded from the HF cache, else sha256 of the local weight files."""
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return {"commit": commit}
    path = Path(model_id)
    files = sorted(p for pat in ("*.safetensors", "*.bin") for p in path.glob(pat)) if path.is_dir() else []
    return {"weights_sha256": {p.name: file_sha256(p) for p in files}}


def load_hf_encoder(model_id: str, device: str = "cpu", **kw) -> Encoder:
    """Encoder for the HF model `model_id` (hub id in the local cache, or a local directory)."""
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(model_id, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise _not_found(model_id, e) from None
    identity = {"format": "huggingface", "source": str(model_id), "model_type": config.model_type,
                **_weights_identity(model_id, config)}
    if config.model_type == "whisper":
        from transformers import WhisperModel
        try:
            hf = WhisperModel.from_pretrained(model_id, local_files_only=True, use_safetensors=True,
                                            trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise _not_found(model_id, e) from None
        net = from_hf(hf.get_encoder().state_dict(), config)
        del hf
        return WhisperEncoder(net, f"hf:{model_id}", identity, device=device, **kw)
    if kw:
        raise EncoderError(f"{model_id}: options {sorted(kw)} apply to Whisper models only, not {config.model_type}")
    return HFEncoder(model_id, config, identity, device=device)


class HFEncoder(Encoder):
    """wav2vec2-style HF model -> (num_hidden_layers + 1, T, hidden_size) float32 per wave."""

    sample_rate = 16000

    def __init__(self, model_id: str, config, identity: dict, device: str = "cpu"):
        from transformers import AutoFeatureExtractor, AutoModel
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(model_id, local_files_only=True,
                                                                  trust_remote_code=False)
            self.model = AutoModel.from_pretrained(model_id, local_files_only=True, use_safetensors=True,
                                                   trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise _not_found(model_id, e) from None
        self.model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.name = f"hf:{model_id}"
        self.num_layers = int(config.num_hidden_layers)
        self.dim = int(config.hidden_size)
        strides = getattr(config, "conv_stride", None)
        self.frame_rate = self.sample_rate / math.prod(strides) if strides else float("nan")
        self.identity = identity

    def config_dict(self) -> dict:
        return {"name": self.name, "kind": "huggingface", "impl_version": IMPL_VERSION, **self.identity,
                "num_layers": self.num_layers, "dim": self.dim, "hidden_states": "hf output_hidden_states"}

    @torch.inference_mode()
    def encode(self, wave: np.ndarray) -> np.ndarray:
        """wave float32 (n,) 16 kHz -> float32 (num_layers + 1, T, dim)."""
        wave = check_wave(wave)
        inputs = self.extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_values", "input_features")}
        out = self.model(**inputs, output_hidden_states=True)
        states = out.hidden_states
        if states is None or len(states) != self.num_layers + 1:
            raise EncoderError(f"{self.name}: model returned {0 if states is None else len(states)} hidden "
                               f"states, expected {self.num_layers + 1}")
        return torch.stack([s[0] for s in states]).float().cpu().numpy()
