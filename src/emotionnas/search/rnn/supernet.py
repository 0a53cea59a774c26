"""Weight-sharing supernet over recipes (DARTS-style relaxation of the NAS-Bench-NLP space).

EmotionNAS (Sun et al., Interspeech 2023, Sec. 2.2) searches the recurrent cell
of the deep branch. Here the space is a fixed DAG of K nodes. The candidates a
node may read are ``x`` (projected to H once for all frames), ``h_prev_k`` and
every earlier node. Each node has three input *slots* (a, b, c), each a softmax
mixture (beta) over its candidates, and a softmax mixture (alpha) over the 7
recipe ops (space/recipe.py OPS) applied to the slots:

  linear(a, b) | blend(g=c, a, b) | prod(a, b) | sum(a, b) | tanh(a) | sigm(a) | leaky_relu(a)

State 0 is ``tanh`` of a softmax mixture (gamma_0) of the nodes — the squash
keeps the recurrent state bounded over hundreds of frames, the way every
classic cell ends; further states (memory, like an LSTM's c) are plain mixtures.
`derive()` turns the argmaxes into a valid recipe (see there).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.errors import ConfigError
from emotionnas.models.layer_mix import LayerMix
from emotionnas.features.inputs import lengths_to_mask
from emotionnas.models.pooling import AttentionPooling
from emotionnas.features.inputs import pool_frames
from emotionnas.space.recipe import OPS, prune_recipe, validate_recipe

# What each recipe op (space/recipe.py OPS, the one table of the space) computes on the slots
# (a, b, c) of node i, as a mixture candidate; alpha's columns follow OPS.
_MIXED = {
    "linear": lambda cell, i, a, b, c: torch.addmm(cell.lin_b[i], torch.cat([a, b], 1), cell.lin_w[i]),
    "blend": lambda cell, i, a, b, c: c * a + (1.0 - c) * b,
    "elementwise_prod": lambda cell, i, a, b, c: a * b,
    "elementwise_sum": lambda cell, i, a, b, c: a + b,
    "activation_tanh": lambda cell, i, a, b, c: torch.tanh(a),
    "activation_sigm": lambda cell, i, a, b, c: torch.sigmoid(a),
    "activation_leaky_relu": lambda cell, i, a, b, c: F.leaky_relu(a, 0.01),
}
if set(_MIXED) != set(OPS):  # pragma: no cover - a new recipe op needs its mixed form here
    raise ImportError(f"search/rnn/supernet.py: mixed ops {sorted(_MIXED)} differ from recipe OPS {sorted(OPS)}")
_OP_FNS = tuple(_MIXED[op] for op in OPS)


class SuperCell(nn.Module):
    """Mixed cell over K nodes. forward(xh (B, T, H) projected x, lengths) -> (B, T, H).

    Architecture parameters (own optimizer group, see `arch_parameters`):
      alpha (K, 7) op logits; beta (K, 3, J) slot logits over candidates
      (J = 1 + n_states + K - 1, later ones masked for early nodes);
      gamma (n_states, K) which node becomes each state.
    """

    def __init__(self, hidden: int, n_nodes: int = 5, n_states: int = 1):
        super().__init__()
        if n_states not in (1, 2) or n_nodes < 1:
            raise ConfigError(f"SuperCell needs n_states in (1, 2) and n_nodes >= 1, got {n_states}, {n_nodes}")
        self.hidden, self.n_nodes, self.n_states = hidden, n_nodes, n_states
        self.base = ["x"] + [f"h_prev_{k}" for k in range(n_states)]
        J = len(self.base) + n_nodes - 1
        self.lin_w = nn.Parameter(torch.empty(n_nodes, 2 * hidden, hidden))
        self.lin_b = nn.Parameter(torch.zeros(n_nodes, hidden))
        self.alpha = nn.Parameter(1e-3 * torch.randn(n_nodes, len(OPS)))
        self.beta = nn.Parameter(1e-3 * torch.randn(n_nodes, 3, J))
        self.gamma = nn.Parameter(1e-3 * torch.randn(n_states, n_nodes))
        valid = torch.zeros(n_nodes, 1, J, dtype=torch.bool)
        for i in range(n_nodes):
            valid[i, 0, : len(self.base) + i] = True
        self.register_buffer("valid", valid, persistent=False)
        bound = 1.0 / math.sqrt(hidden)
        nn.init.uniform_(self.lin_w, -bound, bound)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta, self.gamma]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [self.lin_w, self.lin_b]

    def arch_weights(self) -> dict:
        """Softmaxed alpha (K, 7), beta (K, 3, J) (0 on invalid candidates), gamma (S, K)."""
        return {
            "alpha": torch.softmax(self.alpha, -1),
            "beta": torch.softmax(self.beta.masked_fill(~self.valid, float("-inf")), -1),
            "gamma": torch.softmax(self.gamma, -1),
        }

    def forward(self, xh: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t, H = xh.shape
        w = self.arch_weights()
        alpha, beta, gamma = w["alpha"], w["beta"], w["gamma"]
        mask = (torch.arange(t, device=xh.device)[:, None] < lengths[None, :]).unsqueeze(-1)
        hs = [xh.new_zeros(b, H) for _ in range(self.n_states)]
        outs = []
        for x_t, m in zip(xh.unbind(1), mask.unbind(0)):
            states = [x_t] + hs
            for i in range(self.n_nodes):
                cand = torch.stack(states, 0)  # (J_i, B, H)
                a, bb, c = torch.einsum("sj,jbh->sbh", beta[i, :, : len(states)], cand).unbind(0)
                ops = torch.stack([fn(self, i, a, bb, c) for fn in _OP_FNS], 0)
                states.append(torch.einsum("o,obh->bh", alpha[i], ops))
            nodes = torch.stack(states[len(self.base):], 0)  # (K, B, H)
            new = torch.einsum("sk,kbh->sbh", gamma, nodes).unbind(0)
            new = [torch.tanh(new[0])] + list(new[1:])
            hs = [torch.where(m, n, h) for n, h in zip(new, hs)]
            outs.append(hs[0])
        return torch.stack(outs, 1) * mask.transpose(0, 1).to(xh.dtype)

    # ------------------------------------------------------------------ derive
    def derive(self) -> dict:
        """The recipe of the strongest op/inputs per node (a valid recipe, always).

        Node i takes its argmax op; its inputs are the argmax candidates of the
        slots that op reads (linear, sum and blend need two different inputs, so slot b
        falls back to its next best). h_new_0 = tanh(argmax-gamma node); further
        states are the argmax-gamma node itself. Nodes reaching no output are
        pruned. A recipe must read x and every h_prev_k: if the argmaxes leave
        one unread, the output gets a linear over the chosen node plus the
        unread inputs, the smallest change that makes the recipe valid.
        """
        with torch.no_grad():
            w = {k: v.detach().cpu() for k, v in self.arch_weights().items()}
        names = list(self.base) + [f"node_{i}" for i in range(self.n_nodes)]
        recipe: dict = {}
        for i in range(self.n_nodes):
            op = OPS[int(w["alpha"][i].argmax())]
            n_cand = len(self.base) + i
            order = [[int(j) for j in torch.argsort(w["beta"][i, s, :n_cand], descending=True)]
                     for s in range(3)]
            a = order[0][0]
            b = order[1][0]
            if op in ("linear", "elementwise_sum", "blend") and b == a:
                # W1 a + W2 a is one linear, a + a a scaling, blend(g, a, a) = a: read two things
                b = order[1][1]
            if op == "linear":
                ins = [a, b]
            elif op == "blend":
                ins = [order[2][0], a, b]
            elif op in ("elementwise_prod", "elementwise_sum"):
                ins = [a, b]
            else:
                ins = [a]
            recipe[f"node_{i}"] = {"op": op, "input": [names[j] for j in ins]}
        chosen = [f"node_{int(w['gamma'][k].argmax())}" for k in range(self.n_states)]
        # state 1 (memory) is a node itself: rename it h_new_1
        rename = {chosen[1]: "h_new_1"} if self.n_states == 2 else {}
        recipe = {rename.get(n, n): {"op": v["op"], "input": [rename.get(i, i) for i in v["input"]]}
                  for n, v in recipe.items()}
        out_node = rename.get(chosen[0], chosen[0])
        recipe["h_new_0"] = {"op": "activation_tanh", "input": [out_node]}
        recipe = prune_recipe(recipe)
        used = {i for v in recipe.values() for i in v["input"]}
        missing = [n for n in self.base if n not in used]
        if missing:
            recipe["out_mix"] = {"op": "linear", "input": [out_node] + missing[:2]}
            recipe["h_new_0"] = {"op": "activation_tanh", "input": ["out_mix"]}
            if len(missing) > 2:  # x, h_prev_0 and h_prev_1 all unread: chain a second linear
                recipe["out_mix2"] = {"op": "linear", "input": ["out_mix"] + missing[2:]}
                recipe["h_new_0"] = {"op": "activation_tanh", "input": ["out_mix2"]}
            recipe = prune_recipe(recipe)
        # h_new_0 last, for readability
        recipe = {**{n: v for n, v in recipe.items() if n != "h_new_0"}, "h_new_0": recipe["h_new_0"]}
        return validate_recipe(recipe, source="derived recipe")


class SearchModel(nn.Module):
    """LayerMix -> frame pooling -> LayerNorm -> project x to H -> SuperCell -> attention pooling -> head.

    forward(x (B, [L+1,] T, D), lengths (B,)) -> logits (B, n_classes). Same input
    pipeline as `RNNBranch`, so the searched cell is judged on what it will see.
    """

    def __init__(self, input_dim: int, hidden: int, n_classes: int, n_nodes: int, n_states: int,
                 n_layers_in: int | None = None, layer_mode: str = "weighted", frame_pool: int = 1,
                 dropout: float = 0.2):
        super().__init__()
        self.frame_pool = frame_pool
        self.mix = LayerMix(n_layers_in, layer_mode) if n_layers_in else None
        self.norm = nn.LayerNorm(input_dim)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(input_dim, hidden)
        self.cell = SuperCell(hidden, n_nodes, n_states)
        self.pool = AttentionPooling(hidden)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.cell.arch_parameters()

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = self.mix(x)
        x, lengths = pool_frames(x, lengths, self.frame_pool)
        xh = self.proj(self.drop(self.norm(x)))
        out = self.cell(xh, lengths)
        return self.head(self.pool(out, lengths_to_mask(lengths, out.shape[1])))
