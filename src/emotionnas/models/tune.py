"""Fine-tuning the encoder as a deep-stream family: the pretrained Whisper blocks above the
cached layer L, tuned, then a pooled linear head.

The cache holds every hidden state of the encoder (features/cache.py); a `tune` candidate reads
one of them, L, and runs the next k = 2 blocks of the encoder (fewer when the top is nearer;
at the top the encoder's final LayerNorm follows, as hidden state `top` is defined in
features/encoders/whisper_net.py), initialised from the run's pretrained encoder. Whisper adds
positions only at its input, so the upper blocks run on any number of frames (the cache pools
them in time; the tuning adapts); padded frames are masked as keys, as WhisperNet masks them.

What trains, by family (space/families.py), besides the head:

    tune       every block weight (full fine-tuning)
    tunenb     LayerNorms and biases only (BitFit, Ben Zaken et al. 2022)
    tunelora   rank-8 adapters on the attention q and v projections (LoRA, Hu et al. 2022),
               the blocks frozen

Pretrained weights learn at `PRETRAINED_LR` x the head's learning rate (training/loop.py reads
`pretrained_parameters()`); adapters and the head are new weights and learn at the head's rate.
Pretrained weights are only an initialisation: they are loaded when `dims.encoder` names the
run's encoder (training); a model folder's Dims name none, and its safetensors carry the tuned
blocks (a recognizer never loads pretrained weights to build the network).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.errors import ConfigError
from emotionnas.features.inputs import lengths_to_mask
from emotionnas.models.pooling import AttentionPooling

MODES = {"tune": "full", "tunenb": "normbias", "tunelora": "lora"}   # family -> what trains
BLOCKS = 2              # encoder blocks tuned above layer L (fewer at the encoder's top)
LORA_RANK = 8
PRETRAINED_LR = 0.1     # pretrained weights' learning rate, relative to the head's


def whisper_geometry(dim: int) -> tuple[int, int]:
    """(heads, MLP width) of a Whisper block of width `dim`: 64-d heads, a 4x MLP (every
    Whisper size, tiny to large); one head below 64."""
    return max(1, dim // 64), 4 * dim


class TunedBlock(nn.Module):
    """A pre-LN Whisper block (whisper_net's parameter names: attn_ln, qkv, out, mlp_ln, fc1,
    fc2) with optional low-rank adapters on q and v: q += B_q A_q h, v += B_v A_v h (B = 0 at
    init, so a new block computes the pretrained one exactly)."""

    def __init__(self, dim: int, n_heads: int, ffn_dim: int, lora_rank: int = 0):
        super().__init__()
        self.n_heads = n_heads
        self.attn_ln = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mlp_ln = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.lora_rank = lora_rank
        if lora_rank:
            bound = 1.0 / math.sqrt(dim)
            self.lora_q_a = nn.Parameter(torch.empty(lora_rank, dim).uniform_(-bound, bound))
            self.lora_q_b = nn.Parameter(torch.zeros(dim, lora_rank))
            self.lora_v_a = nn.Parameter(torch.empty(lora_rank, dim).uniform_(-bound, bound))
            self.lora_v_b = nn.Parameter(torch.zeros(dim, lora_rank))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), key_mask (B, 1, 1, T) bool (True = real frame) -> (B, T, D)."""
        b, t, d = x.shape
        h = self.attn_ln(x)
        q, k, v = self.qkv(h).split(d, dim=-1)
        if self.lora_rank:
            q = q + h @ self.lora_q_a.t() @ self.lora_q_b.t()
            v = v + h @ self.lora_v_a.t() @ self.lora_v_b.t()
        q, k, v = (z.reshape(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


@functools.lru_cache(maxsize=2)
def pretrained_encoder(name: str):
    """The float32 WhisperNet of encoder `name` (a compute dtype suffix, `@int8`, is dropped:
    tuning starts from the float weights), loaded once per process. Loading draws no number from
    the caller's random generators (building the network initialises weights before the pretrained
    ones replace them), so a model's initialisation never depends on whether this process had
    loaded the encoder before."""
    from emotionnas.features.encoders import create_encoder
    from emotionnas.features.encoder_ref import EncoderRef
    from emotionnas.features.encoders.whisper_net import WhisperNet
    with torch.random.fork_rng(devices=[]):
        net = getattr(create_encoder(EncoderRef.parse(name).float_name), "net", None)
    if not isinstance(net, WhisperNet):
        raise ConfigError(f"encoder {name!r} has no Whisper blocks to fine-tune (tune families need a Whisper encoder)")
    return net.float().eval()


class TuneBranch(nn.Module):
    """Encoder blocks above layer `layer` + norm + pooling + linear head.

    Args:
        mode: "full" | "normbias" | "lora" (what of the blocks trains).
        layer: L, the cached hidden state read (0 = embeddings); blocks L .. L+n-1 follow.
        n_layers: blocks of the encoder (its top hidden state is `n_layers`).
        dim: D. n_classes: emotions. pooling: attention | mean | meanstd. dropout: before the head.
        encoder: a pretrained encoder name to initialise the blocks from, or "" (random init:
            a model folder loads its tuned weights afterwards).
        blocks: how many blocks above L (at most up to the top).
    """

    PRETRAINED_LR = PRETRAINED_LR

    def __init__(self, mode: str, layer: int, n_layers: int, dim: int, n_classes: int, *,
                 pooling: str = "mean", dropout: float = 0.0, encoder: str = "", blocks: int = BLOCKS,
                 source: str = "tune"):
        super().__init__()
        if mode not in MODES.values():
            raise ConfigError(f"{source}: tune mode {mode!r} is not one of {sorted(MODES.values())}")
        if not 0 <= layer < n_layers:
            raise ConfigError(f"{source}: no encoder block above layer {layer} (the encoder has {n_layers} blocks)")
        heads, ffn = whisper_geometry(dim)
        if dim % heads:
            raise ConfigError(f"{source}: width {dim} is not a Whisper width (not divisible by {heads} heads)")
        self.mode, self.layer, self.pooling = mode, layer, pooling
        stop = min(layer + blocks, n_layers)
        rank = LORA_RANK if mode == "lora" else 0
        self.blocks = nn.ModuleList(TunedBlock(dim, heads, ffn, rank) for _ in range(layer, stop))
        self.ln_post = nn.LayerNorm(dim) if stop == n_layers else None   # hidden state `top` is normed
        if encoder:
            self._load_pretrained(encoder, layer, stop, n_layers, dim, source)
        self.norm = nn.LayerNorm(dim)
        self.pool = AttentionPooling(dim) if pooling == "attention" else None
        self.out_dim = 2 * dim if pooling == "meanstd" else dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.out_dim, n_classes))
        self._freeze()

    def _load_pretrained(self, encoder: str, start: int, stop: int, n_layers: int, dim: int, source: str):
        net = pretrained_encoder(encoder)
        heads, ffn = whisper_geometry(dim)
        if (net.n_layers, net.dim, net.n_heads, net.blocks[0].fc1.out_features) != (n_layers, dim, heads, ffn):
            raise ConfigError(f"{source}: encoder {encoder!r} ({net.n_layers} blocks, {net.dim}-d, {net.n_heads} "
                              f"heads) does not match the features ({n_layers} blocks, {dim}-d, {heads} heads)")
        with torch.no_grad():
            for ours, i in zip(self.blocks, range(start, stop)):
                missing, unexpected = ours.load_state_dict(net.blocks[i].state_dict(), strict=False)
                if unexpected or any("lora_" not in k for k in missing):  # adapters stay as made
                    raise ConfigError(f"{source}: encoder {encoder!r} block {i} does not fit a Whisper block")
            if self.ln_post is not None:
                self.ln_post.load_state_dict(net.ln_post.state_dict())

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The trainable weights that came from the encoder (learn at PRETRAINED_LR x lr)."""
        return [p for n, p in self._encoder_parameters() if p.requires_grad and "lora_" not in n]

    def _encoder_parameters(self):
        yield from self.blocks.named_parameters()
        if self.ln_post is not None:
            yield from (("ln_post." + n, p) for n, p in self.ln_post.named_parameters())

    def _freeze(self) -> None:
        for name, p in self._encoder_parameters():
            if self.mode == "full":
                p.requires_grad_(True)
            elif self.mode == "normbias":
                p.requires_grad_(name.endswith("bias") or "_ln." in name or name.startswith("ln_post."))
            else:
                p.requires_grad_("lora_" in name)

    def hidden(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        """(B, 1, T, D) or (B, T, D) hidden states of layer L -> (those of layer L + n (B, T', D),
        lengths (B,)), as the encoder computes them (padded frames masked as keys)."""
        if x.dim() == 4:
            if x.shape[1] != 1:
                raise ValueError(f"TuneBranch reads one layer, got {x.shape[1]}")
            x = x[:, 0]
        b, t = x.shape[:2]
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        lengths = lengths.to(torch.long).clamp(1, t)
        t_max = int(lengths.max())
        if t_max < t:  # a batch padded to a longer corpus-wide length: skip all-padding frames
            x = x[:, :t_max]
        key_mask = lengths_to_mask(lengths, x.shape[1])[:, None, None, :]
        for block in self.blocks:
            x = block(x, key_mask)
        if self.ln_post is not None:
            x = self.ln_post(x)
        return x, lengths

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, T, D), lengths (B,) -> (B, out_dim)."""
        h, lengths = self.hidden(x, lengths)
        h = self.norm(h)
        mask = lengths_to_mask(lengths, h.shape[1])
        if self.pooling == "attention":
            return self.pool(h, mask)
        m = mask.unsqueeze(-1).to(h.dtype)
        n = m.sum(1).clamp_min(1.0)
        pooled = (h * m).sum(1) / n
        if self.pooling == "meanstd":
            var = ((h - pooled.unsqueeze(1)) ** 2 * m).sum(1) / n
            pooled = torch.cat([pooled, (var + 1e-5).sqrt()], 1)
        return pooled

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(x, lengths))


def tune_branch(c, dims, arch: dict, source: str) -> TuneBranch:
    """Builder of the families tune, tunenb, tunelora (space/families.py): the encoder's blocks
    above the candidate's one layer (Candidate checks it is one), initialised from `dims.encoder`
    when it names one."""
    return TuneBranch(MODES[c.deep], c.layers[0], dims.deep_layers_total - 1, dims.deep_dim, dims.n_classes,
                      pooling=c.pooling, dropout=c.dropout, encoder=dims.encoder, source=source)
