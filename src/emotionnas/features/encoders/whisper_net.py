"""The Whisper audio encoder in plain torch, returning every hidden state.

Architecture (Radford et al. 2022, Sec. 2.3): conv1 (k3) -> GELU -> conv2
(k3, stride 2) -> GELU -> + sinusoidal positions sliced to T -> L pre-LN
transformer blocks (self-attention, GELU MLP) -> final LayerNorm.

Weights come from a CTranslate2 ``model.bin`` (``from_ct2``) or a Hugging Face
``WhisperModel`` state dict (``from_hf``). Hidden states follow HF's
``output_hidden_states`` convention so both sources agree: index 0 is the
embedding output, index i < L the output of block i, and index L the output
of block L *after* the final LayerNorm (which is also what CTranslate2's
``Whisper.encode`` returns).

Unlike openai-whisper and HF, input need not be 30 s: T = ceil(n_mel / 2).
Batches of different lengths are exact (not approximately) equal to encoding
each item alone: conv1 outputs past an item's length are zeroed (what conv2's
zero padding would see) and attention ignores padded keys.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.features.encoders.base import EncoderError
from emotionnas.features.encoders.ct2_format import CT2Model


class _Block(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, n_heads: int, ffn_dim: int):
        super().__init__()
        self.n_heads = n_heads
        self.attn_ln = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)  # fused q, k, v (Whisper's k has no bias: stored as zeros)
        self.out = nn.Linear(dim, dim)
        self.mlp_ln = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), key_mask (B, 1, 1, T) bool (True = real frame) or None -> (B, T, D)."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


class WhisperNet(nn.Module):
    """Whisper encoder. ``forward(mel (B, n_mels, N), mel_lengths (B,) | None) -> (L+1, B, ceil(N/2), D)``."""

    def __init__(self, n_mels: int, dim: int, n_heads: int, n_layers: int, ffn_dim: int, n_ctx: int = 1500):
        super().__init__()
        if dim % n_heads:
            raise EncoderError(f"Whisper dim {dim} is not divisible by {n_heads} heads")
        self.n_mels, self.dim, self.n_heads, self.n_layers, self.n_ctx = n_mels, dim, n_heads, n_layers, n_ctx
        self.conv1 = nn.Conv1d(n_mels, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(n_ctx, dim), persistent=True)
        self.blocks = nn.ModuleList(_Block(dim, n_heads, ffn_dim) for _ in range(n_layers))
        self.ln_post = nn.LayerNorm(dim)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None,
                max_layer: int | None = None) -> torch.Tensor:
        """mel (B, n_mels, n) -> hidden states (L'+1, B, T, D); `max_layer` stops after that block
        (L' = max_layer): a recognizer reading layers 2-3 of 6 skips half of the encoder."""
        n = mel.shape[-1]
        if n > 2 * self.n_ctx:
            raise EncoderError(f"Whisper input of {n} mel frames exceeds {2 * self.n_ctx}; chunk it first")
        h = F.gelu(self.conv1(mel))
        key_mask = None
        if mel_lengths is not None:
            frame = torch.arange(n, device=mel.device)
            # zero what lies beyond each item, as conv2's zero padding would see it unbatched
            h = h * (frame[None, :] < mel_lengths[:, None]).unsqueeze(1).to(h.dtype)
        h = F.gelu(self.conv2(h)).transpose(1, 2)  # (B, T, D)
        t = h.shape[1]
        if mel_lengths is not None:
            out_lengths = (mel_lengths + 1) // 2
            key_mask = (torch.arange(t, device=mel.device)[None, :] < out_lengths[:, None])[:, None, None, :]
        h = h + self.positions[:t]
        states = [h]
        n_blocks = self.n_layers if max_layer is None else max(0, min(int(max_layer), self.n_layers))
        for i, block in enumerate(self.blocks[:n_blocks]):
            h = block(h, key_mask)
            states.append(self.ln_post(h) if i == self.n_layers - 1 else h)
        return torch.stack(states)


def from_ct2(model: CT2Model) -> WhisperNet:
    """Build a WhisperNet from the ``encoder/`` variables of a CTranslate2 WhisperSpec model."""
    if model.spec != "WhisperSpec":
        raise EncoderError(f"expected a CTranslate2 WhisperSpec model, got {model.spec}")
    g = model.get
    n_layers = sum(1 for k in model.variables if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    conv1 = g("encoder/conv1/weight")
    dim, n_mels = conv1.shape[0], conv1.shape[1]
    ffn_dim = g("encoder/layer_0/ffn/linear_0/weight").shape[0]
    positions = g("encoder/position_encodings/encodings")
    net = WhisperNet(n_mels, dim, int(g("encoder/num_heads")), n_layers, ffn_dim, positions.shape[0])
    sd = {
        "conv1.weight": conv1, "conv1.bias": g("encoder/conv1/bias"),
        "conv2.weight": g("encoder/conv2/weight"), "conv2.bias": g("encoder/conv2/bias"),
        "positions": positions,
        "ln_post.weight": g("encoder/layer_norm/gamma"), "ln_post.bias": g("encoder/layer_norm/beta"),
    }
    for i in range(n_layers):
        p, q = f"encoder/layer_{i}/", f"blocks.{i}."
        for ours, theirs in (("attn_ln", "self_attention/layer_norm"), ("mlp_ln", "ffn/layer_norm")):
            sd[q + ours + ".weight"] = g(p + theirs + "/gamma")
            sd[q + ours + ".bias"] = g(p + theirs + "/beta")
        for ours, theirs in (("qkv", "self_attention/linear_0"), ("out", "self_attention/linear_1"),
                             ("fc1", "ffn/linear_0"), ("fc2", "ffn/linear_1")):
            sd[q + ours + ".weight"] = g(p + theirs + "/weight")
            sd[q + ours + ".bias"] = g(p + theirs + "/bias")
    _load(net, sd)
    return net


def from_hf(state_dict: dict[str, torch.Tensor], config) -> WhisperNet:
    """Build a WhisperNet from a HF ``WhisperEncoder`` state dict and its ``WhisperConfig``."""
    if getattr(config, "activation_function", "gelu") != "gelu":
        raise EncoderError(f"Whisper activation {config.activation_function!r} not supported (only 'gelu')")
    sd_in = {k.removeprefix("encoder."): v for k, v in state_dict.items()}
    net = WhisperNet(config.num_mel_bins, config.d_model, config.encoder_attention_heads,
                     config.encoder_layers, config.encoder_ffn_dim, config.max_source_positions)
    sd = {
        "conv1.weight": sd_in["conv1.weight"], "conv1.bias": sd_in["conv1.bias"],
        "conv2.weight": sd_in["conv2.weight"], "conv2.bias": sd_in["conv2.bias"],
        "positions": sd_in["embed_positions.weight"],
        "ln_post.weight": sd_in["layer_norm.weight"], "ln_post.bias": sd_in["layer_norm.bias"],
    }
    for i in range(config.encoder_layers):
        p, q = f"layers.{i}.", f"blocks.{i}."
        a = p + "self_attn."
        sd[q + "qkv.weight"] = torch.cat([sd_in[a + "q_proj.weight"], sd_in[a + "k_proj.weight"],
                                          sd_in[a + "v_proj.weight"]])
        sd[q + "qkv.bias"] = torch.cat([sd_in[a + "q_proj.bias"], torch.zeros_like(sd_in[a + "q_proj.bias"]),
                                        sd_in[a + "v_proj.bias"]])
        for ours, theirs in (("out", "self_attn.out_proj"), ("attn_ln", "self_attn_layer_norm"),
                             ("mlp_ln", "final_layer_norm"), ("fc1", "fc1"), ("fc2", "fc2")):
            sd[q + ours + ".weight"] = sd_in[p + theirs + ".weight"]
            sd[q + ours + ".bias"] = sd_in[p + theirs + ".bias"]
    _load(net, sd)
    return net


def _load(net: WhisperNet, sd: dict) -> None:
    tensors = {k: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v, dtype=torch.float32)
               for k, v in sd.items()}
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise EncoderError(f"Whisper weights do not fit the encoder: {' '.join(str(e).split())[:300]}") from None
    net.eval().requires_grad_(False)
