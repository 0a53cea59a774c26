"""Fast CPU execution of a recipe cell (EmotionNAS Sec. 2.2; NAS-Bench-NLP recipes).

Interpreting a recipe node by node in Python costs a dict walk and a module
call per node per frame. Instead:

* every projection of ``x`` (all linear nodes that read ``x``, biases folded
  in) is one matmul over all frames before the time loop;
* projections of each ``h_prev_k`` by all the linear nodes that read it are one
  matmul per step;
* the per-step graph is emitted as TorchScript source (the time loop included)
  and compiled once per distinct recipe/size with ``torch.jit.CompilationUnit``.
  The source is built only from generated variable names (``v3``), op templates
  and integers: no string of the recipe (node names come from user files) ever
  enters it, and there is no ``exec`` fallback.

Variable lengths: a sequence's states are frozen after its last frame
(``torch.where(mask_t, new, old)``), so padding never changes its output.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.errors import ConfigError
from emotionnas.space.recipe import n_states, topological_order, validate_recipe

_COMPILED: dict[str, object] = {}  # source -> compiled function (shared by all cells)


def _compile(src: str):
    fn = _COMPILED.get(src)
    if fn is None:
        fn = torch.jit.CompilationUnit(src).run
        _COMPILED[src] = fn
    return fn


class RecipeCell(nn.Module):
    """One recurrent layer running a recipe over a whole sequence.

    Args:
        recipe: validated NAS-Bench-NLP recipe.
        input_dim: size D of x. Ops other than linear that read x need D == hidden.
        hidden: state size H.
    forward(x (B, T, D), lengths (B,) int64 or None, state=None)
        -> (outputs (B, T, H) zero on padding, states list of (B, H)).
    """

    def __init__(self, recipe: dict, input_dim: int, hidden: int):
        super().__init__()
        if not (isinstance(input_dim, int) and isinstance(hidden, int) and 1 <= input_dim <= 65536
                and 1 <= hidden <= 8192):
            raise ConfigError(f"recipe cell: sizes out of range (input_dim={input_dim!r}, hidden={hidden!r})")
        self.recipe = validate_recipe(recipe)
        self.input_dim, self.hidden, self.n_states = input_dim, hidden, n_states(recipe)
        order = topological_order(recipe)
        for name in order:
            node = recipe[name]
            if node["op"] != "linear" and "x" in node["input"] and input_dim != hidden:
                raise ConfigError(f"recipe node {name!r} ({node['op']}) reads x, which needs "
                                  f"input_dim == hidden (got {input_dim} vs {hidden}); project the input first")
        self._order = order
        self._uses_raw_x = any(recipe[n]["op"] != "linear" and "x" in recipe[n]["input"] for n in order)
        # parameter slots: which block of which matrix each (linear node, input) uses
        self._x_slot: dict[str, int] = {}
        self._h_slot: dict[tuple[str, int], int] = {}
        self._n_slot: dict[tuple[str, str], int] = {}
        self._b_slot: dict[str, int] = {}
        h_count = [0] * self.n_states
        linears = [n for n in order if recipe[n]["op"] == "linear"]
        for name in linears:
            self._b_slot[name] = len(self._b_slot)
            for inp in recipe[name]["input"]:
                if inp == "x":
                    self._x_slot[name] = len(self._x_slot)
                elif inp.startswith("h_prev_"):
                    k = int(inp[len("h_prev_"):])
                    self._h_slot[(name, k)] = h_count[k]
                    h_count[k] += 1
                else:
                    self._n_slot[(name, inp)] = len(self._n_slot)
        H = hidden
        self.w_x = nn.Parameter(torch.empty(len(self._x_slot) * H, input_dim))
        self.w_h = nn.ParameterList([nn.Parameter(torch.empty(c * H, H)) for c in h_count])
        self.w_n = nn.ParameterList([nn.Parameter(torch.empty(H, H)) for _ in self._n_slot])
        self.bias = nn.Parameter(torch.empty(len(self._b_slot), H))
        self.reset_parameters()
        self._src = self._generate()
        self._fn = None

    def reset_parameters(self) -> None:
        # same scheme as torch.nn.LSTM and NAS-Bench-NLP's CustomRNN
        bound = 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    # ------------------------------------------------------------ weights access
    def set_linear(self, node: str, weights: dict, bias: torch.Tensor) -> None:
        """Copy weights into linear `node`: weights {input_name: (H, in_dim)}, bias (H,)."""
        H = self.hidden
        with torch.no_grad():
            for inp, w in weights.items():
                if inp == "x":
                    s = self._x_slot[node]
                    self.w_x[s * H:(s + 1) * H].copy_(w)
                elif inp.startswith("h_prev_"):
                    k = int(inp[len("h_prev_"):])
                    s = self._h_slot[(node, k)]
                    self.w_h[k][s * H:(s + 1) * H].copy_(w)
                else:
                    self.w_n[self._n_slot[(node, inp)]].copy_(w)
            self.bias[self._b_slot[node]].copy_(bias)

    # ------------------------------------------------------------ code generation
    def _generate(self, export: bool = False) -> str:
        """The step loop as TorchScript source. `export`: outputs written into a preallocated
        tensor instead of a stacked list (same numbers; the form the ONNX exporter turns into a
        correct Loop)."""
        var = self._variable_names()
        lines = self._prologue(export)
        lines += ["        " + b for b in self._step_body(var, export)]
        lines.append(f"    return {'outs' if export else 'torch.stack(outs)'}, ["
                     + ", ".join(f"h{k}" for k in range(self.n_states)) + "]")
        return "\n".join(lines) + "\n"

    def _variable_names(self) -> dict[str, str]:
        """Generated variable of every input and node (never a recipe string)."""
        var = {"x": "xr"}
        for k in range(self.n_states):
            var[f"h_prev_{k}"] = f"h{k}"
        for i, name in enumerate(self._order):
            var[name] = f"v{i}"
        return var

    def _prologue(self, export: bool) -> list[str]:
        """The signature, the initial states, the output buffer and the loop header."""
        lines = [
            "def run(xp: Tensor, xr: Tensor, mask: Tensor, hs: List[Tensor], wh: List[Tensor],",
            "        wn: List[Tensor], bn: Tensor) -> Tuple[Tensor, List[Tensor]]:",
        ]
        for k in range(self.n_states):
            lines.append(f"    h{k} = hs[{k}]")
        # unbind/split rather than indexing: their backward is one stack/cat,
        # where each index op's backward would allocate a full zero tensor
        lines.append("    outs = torch.zeros([xp.shape[0], hs[0].shape[0], hs[0].shape[1]])" if export
                     else "    outs: List[Tensor] = []")
        lines.append("    xps = xp.unbind(0)")
        lines.append("    masks = mask.unbind(0)")
        lines.append("    xrs = xr.unbind(0)")
        lines.append("    for t in range(len(xps)):")
        return lines

    def _step_body(self, var: dict[str, str], export: bool) -> list[str]:
        """The statements of one time step (unindented): projections, nodes, masked state update."""
        H = self.hidden
        body = ["m = masks[t]"]
        if self._x_slot:
            body.append(f"xpt = xps[t].split({H}, 1)")
        if self._uses_raw_x:
            body.append("xr_t = xrs[t]")
            var["x"] = "xr_t"
        for k in range(self.n_states):
            if self.w_h[k].shape[0] > 0:
                body.append(f"ph{k} = torch.mm(h{k}, wh[{k}]).split({H}, 1)")
        for name in self._order:
            body.append(f"{var[name]} = {self._node_expr(name, var)}")
        for k in range(self.n_states):
            body.append(f"h{k} = torch.where(m, {var[f'h_new_{k}']}, h{k})")
        body.append("outs[t] = h0" if export else "outs.append(h0)")
        return body

    def _node_expr(self, name: str, var: dict[str, str]) -> str:
        """The TorchScript expression computing node `name`."""
        node = self.recipe[name]
        op, ins = node["op"], node["input"]
        a = [var[i] for i in ins]
        if op == "linear":
            return self._linear_expr(name, ins, var)
        if op == "blend":
            return f"{a[0]} * {a[1]} + (1.0 - {a[0]}) * {a[2]}"
        if op == "elementwise_prod":
            return " * ".join(a)
        if op == "elementwise_sum":
            return " + ".join(a)
        if op == "activation_tanh":
            return f"torch.tanh({a[0]})"
        if op == "activation_sigm":
            return f"torch.sigmoid({a[0]})"
        # activation_leaky_relu, slope 0.01 as torch's default
        return f"torch.where({a[0]} > 0, {a[0]}, 0.01 * {a[0]})"

    def _linear_expr(self, name: str, ins: list[str], var: dict[str, str]) -> str:
        """Linear node `name`: the sum of its precomputed input projections and its bias."""
        terms = []
        for inp in ins:
            if inp == "x":
                s = self._x_slot[name]
                terms.append(f"xpt[{s}]")
            elif inp.startswith("h_prev_"):
                k = int(inp[len("h_prev_"):])
                s = self._h_slot[(name, k)]
                terms.append(f"ph{k}[{s}]")
            else:
                terms.append(f"torch.mm({var[inp]}, wn[{self._n_slot[(name, inp)]}])")
        if "x" not in ins:  # x-linears have their bias folded into xp
            terms.append(f"bn[{self._b_slot[name]}]")
        return " + ".join(terms)

    def use_export_graph(self) -> None:
        """Run the export form of the loop from now on (for `torch.onnx.export`)."""
        self._fn = _compile(self._generate(export=True))

    @property
    def source(self) -> str:
        """The generated TorchScript source of the time loop (for inspection)."""
        return self._src

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, state=None):
        b, t, _ = x.shape
        H = self.hidden
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=x.device)
        if self._fn is None:
            self._fn = _compile(self._src)
        x_lin = [n for n in self._x_slot]
        bias_x = torch.cat([self.bias[self._b_slot[n]] for n in x_lin]) if x_lin else None
        xp = F.linear(x, self.w_x, bias_x).transpose(0, 1).contiguous()  # (T, B, Kx*H) in one matmul
        xr = x.transpose(0, 1) if self._uses_raw_x else xp[:, :, :0]
        mask = (torch.arange(t, device=x.device)[:, None] < lengths.to(x.device)[None, :]).unsqueeze(-1)
        if state is None:
            state = [x.new_zeros(b, H) for _ in range(self.n_states)]
        wh = [w.t() for w in self.w_h]
        wn = [w.t() for w in self.w_n]
        outs, states = self._fn(xp, xr, mask, list(state), wh, wn, self.bias)
        outs = outs.transpose(0, 1) * mask.transpose(0, 1).to(outs.dtype)
        return outs, states


class RecipeRNN(nn.Module):
    """Stack of `layers` RecipeCells. forward(x (B,T,D), lengths) -> (out (B,T,H), last h (B,H))."""

    def __init__(self, recipe: dict, input_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.cells = nn.ModuleList(
            [RecipeCell(recipe, input_dim if i == 0 else hidden, hidden) for i in range(layers)])
        self.drop = nn.Dropout(dropout)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        h_last = None
        for i, cell in enumerate(self.cells):
            if i > 0:
                x = self.drop(x)
            x, states = cell(x, lengths)
            h_last = states[0]
        return x, h_last
