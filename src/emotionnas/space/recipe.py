"""Recurrent cells as plain data: the NAS-Bench-NLP "recipe" (Klyuchnikov et al. 2020).

A recipe is a dict ``{node_name: {"op": str, "input": [names]}}``. The names
``x`` (the frame at step t) and ``h_prev_k`` (state k from step t-1) are the
inputs; the nodes ``h_new_k`` are the new states, ``h_new_0`` being the output
of the step. A recipe with only ``h_new_0`` is a one-state cell (RNN, GRU); one
with ``h_new_0`` and ``h_new_1`` carries two states (LSTM: h and c). EmotionNAS
(Sun et al., Interspeech 2023, Sec. 2.2) searches the deep-feature branch's cell
in this space.

Ops (arity in brackets):
  linear [2-3]            sum_i W_i a_i + b    (one weight per input, one bias)
  blend [3]               g * a + (1 - g) * b  (inputs [g, a, b])
  elementwise_prod [2-3]  a * b (* c)
  elementwise_sum [2-3]   a + b (+ c)
  activation_tanh / activation_sigm / activation_leaky_relu [1]
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from emotionnas.errors import ConfigError
from emotionnas.utils.io import atomic_write_json

OPS = ("linear", "blend", "elementwise_prod", "elementwise_sum",
       "activation_tanh", "activation_sigm", "activation_leaky_relu")
ARITY = {
    "linear": (2, 3),
    "blend": (3, 3),
    "elementwise_prod": (2, 3),
    "elementwise_sum": (2, 3),
    "activation_tanh": (1, 1),
    "activation_sigm": (1, 1),
    "activation_leaky_relu": (1, 1),
}
_STATE_RE = re.compile(r"^h_(prev|new)_(\d+)$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # node names are identifiers, nothing else
MAX_NODES = 64    # far above any searched or classic cell (LSTM: 11 nodes)
MAX_STATES = 4    # h_new_0 .. h_new_3


def n_states(recipe: dict) -> int:
    """Number of recurrent states k (h_new_0 .. h_new_{k-1})."""
    ks = [int(m.group(2)) for name in recipe if (m := _STATE_RE.match(name)) and m.group(1) == "new"]
    return max(ks) + 1 if ks else 0


def input_names(recipe: dict) -> list[str]:
    """The recipe's inputs: x, h_prev_0, ..., h_prev_{k-1}."""
    return ["x"] + [f"h_prev_{k}" for k in range(n_states(recipe))]


def topological_order(recipe: dict, source: str = "recipe") -> list[str]:
    """Nodes (not inputs) in an order where every input comes first.

    Ties are broken by the recipe's own key order so the order (and generated
    code) is deterministic. Raises ConfigError on a cycle.
    """
    inputs = set(input_names(recipe))
    done: set[str] = set(inputs)
    order: list[str] = []
    pending = [n for n in recipe]
    while pending:
        progressed = False
        for name in list(pending):
            if all(i in done for i in recipe[name]["input"]):
                order.append(name)
                done.add(name)
                pending.remove(name)
                progressed = True
        if not progressed:
            raise ConfigError(f"{source}: cycle among nodes {sorted(pending)} (or nodes fed by one)")
    return order


def validate_recipe(recipe, source: str = "recipe") -> dict:
    """Check a recipe and return it; raise ConfigError (one line, names `source`) if bad.

    Checks: dict of {"op", "input"} nodes, known ops with the right arity,
    outputs h_new_0..h_new_{k-1} present, inputs exist (only x and h_prev_k for
    k < number of states), no cycle, every input used, every node reaches an
    output (dead nodes would be silent parameters).
    """
    if not isinstance(recipe, dict) or not recipe:
        raise ConfigError(f"{source}: a recipe must be a non-empty dict of nodes")
    if len(recipe) > MAX_NODES:
        raise ConfigError(f"{source}: recipe has {len(recipe)} nodes, at most {MAX_NODES} allowed")
    for name, node in recipe.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{source}: node name {str(name)[:40]!r} is not an identifier "
                              f"(letters, digits, '_', at most 64 characters)")
        if name == "x" or (m := _STATE_RE.match(name)) and m.group(1) == "prev":
            raise ConfigError(f"{source}: node {name!r} redefines an input")
        if not isinstance(node, dict) or "op" not in node or "input" not in node:
            raise ConfigError(f"{source}: node {name!r} must be a dict with 'op' and 'input'")
        op, ins = node["op"], node["input"]
        if op not in ARITY:
            raise ConfigError(f"{source}: node {name!r} has unknown op {op!r} (known: {', '.join(OPS)})")
        if not isinstance(ins, list) or not all(isinstance(i, str) and NAME_RE.match(i) for i in ins):
            raise ConfigError(f"{source}: node {name!r} 'input' must be a list of node names")
        if set(node) - {"op", "input"}:
            raise ConfigError(f"{source}: node {name!r} has unknown field(s) {sorted(set(node) - {'op', 'input'})}")
        lo, hi = ARITY[op]
        if not lo <= len(ins) <= hi:
            want = str(lo) if lo == hi else f"{lo}-{hi}"
            raise ConfigError(f"{source}: node {name!r} op {op} takes {want} inputs, got {len(ins)}")
        if op == "linear" and len(set(ins)) != len(ins):
            raise ConfigError(f"{source}: node {name!r} linear lists an input twice")
    k = n_states(recipe)
    if k == 0:
        raise ConfigError(f"{source}: recipe has no output node h_new_0")
    if k > MAX_STATES:
        raise ConfigError(f"{source}: recipe has {k} states, at most {MAX_STATES} allowed")
    for j in range(k):
        if f"h_new_{j}" not in recipe:
            raise ConfigError(f"{source}: recipe has h_new_{k - 1} but no h_new_{j}")
    inputs = input_names(recipe)
    for name, node in recipe.items():
        for i in node["input"]:
            if i not in recipe and i not in inputs:
                raise ConfigError(f"{source}: node {name!r} reads {i!r}, which does not exist "
                                  f"(inputs are {', '.join(inputs)})")
    topological_order(recipe, source)  # raises on a cycle
    used = {i for node in recipe.values() for i in node["input"]}
    for i in inputs:
        if i not in used:
            raise ConfigError(f"{source}: input {i!r} is never used")
    live = _reaching_outputs(recipe, k)
    dead = [n for n in recipe if n not in live]
    if dead:
        raise ConfigError(f"{source}: nodes {dead} do not reach any output h_new_*")
    return recipe


def _reaching_outputs(recipe: dict, k: int) -> set[str]:
    live: set[str] = set()
    stack = [f"h_new_{j}" for j in range(k)]
    while stack:
        n = stack.pop()
        if n in live or n not in recipe:
            continue
        live.add(n)
        stack.extend(recipe[n]["input"])
    return live


def prune_recipe(recipe: dict) -> dict:
    """Drop nodes that reach no output (used when deriving a cell from a supernet)."""
    live = _reaching_outputs(recipe, n_states(recipe))
    return {n: {"op": v["op"], "input": list(v["input"])} for n, v in recipe.items() if n in live}


def save_recipe(recipe: dict, path: str | Path) -> None:
    """Validate then write `recipe.json` atomically."""
    validate_recipe(recipe, source=str(path))
    atomic_write_json(path, recipe)


def load_recipe(path: str | Path) -> dict:
    """Read and validate a recipe JSON (ours or a NAS-Bench-NLP cell)."""
    path = Path(path)
    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return validate_recipe(recipe, source=str(path))


# ----------------------------------------------------------------- classic cells
def _lin(*inputs):
    return {"op": "linear", "input": list(inputs)}


def _op(op, *inputs):
    return {"op": op, "input": list(inputs)}


def rnn_recipe() -> dict:
    """Elman RNN: h = tanh(W x + U h + b)."""
    return {"pre": _lin("x", "h_prev_0"), "h_new_0": _op("activation_tanh", "pre")}


def lstm_recipe() -> dict:
    """LSTM (Hochreiter & Schmidhuber 1997) with h_prev_0 = h, h_prev_1 = c.

    Node order i, f, g, o matches torch.nn.LSTM's weight layout.
    """
    return {
        "i": _lin("x", "h_prev_0"), "i_act": _op("activation_sigm", "i"),
        "f": _lin("x", "h_prev_0"), "f_act": _op("activation_sigm", "f"),
        "g": _lin("x", "h_prev_0"), "g_act": _op("activation_tanh", "g"),
        "o": _lin("x", "h_prev_0"), "o_act": _op("activation_sigm", "o"),
        "fc": _op("elementwise_prod", "f_act", "h_prev_1"),
        "ig": _op("elementwise_prod", "i_act", "g_act"),
        "h_new_1": _op("elementwise_sum", "fc", "ig"),
        "c_act": _op("activation_tanh", "h_new_1"),
        "h_new_0": _op("elementwise_prod", "o_act", "c_act"),
    }


def gru_recipe() -> dict:
    """GRU as in Cho et al. 2014 (reset applied before the recurrent matmul)."""
    return {
        "r": _lin("x", "h_prev_0"), "r_act": _op("activation_sigm", "r"),
        "z": _lin("x", "h_prev_0"), "z_act": _op("activation_sigm", "z"),
        "rh": _op("elementwise_prod", "r_act", "h_prev_0"),
        "n": _lin("x", "rh"), "n_act": _op("activation_tanh", "n"),
        "h_new_0": _op("blend", "z_act", "h_prev_0", "n_act"),
    }


CLASSIC = {"rnn": rnn_recipe, "lstm": lstm_recipe, "gru": gru_recipe}
