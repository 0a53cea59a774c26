"""A derived CNN cell as plain data, and the DARTS derivation rule (Liu et al. 2019, Sec. 2.4).

A cell has ``nodes`` intermediate nodes; node ``i`` may read the two previous cells
(input indices 0 = c_{k-2}, 1 = c_{k-1}) and every earlier node (index ``j + 2``).
``normal`` / ``reduce`` hold ``2 * nodes`` pairs ``(op, input_index)``: pairs ``2i, 2i+1``
feed node ``i``. The cell output concatenates the nodes listed in ``*_concat``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionnas.errors import ConfigError
from emotionnas.utils.io import atomic_write_text

# The op names of the DARTS space (space/cnn_ops.py holds what each op computes). Order matters
# only for reading logs; every table is keyed by name.
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
# Ops with no weights: the ones a collapsing DARTS search piles up (Zela et al. 2020).
PARAMETER_FREE = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})

Pairs = tuple[tuple[str, int], ...]
MAX_NODES = 16  # intermediate nodes per cell (DARTS: 4); bounds what a genotype file can ask to build


@dataclass(frozen=True)
class Genotype:
    normal: Pairs
    normal_concat: tuple[int, ...]
    reduce: Pairs
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        for name in ("normal", "reduce"):
            raw = getattr(self, name)
            if not isinstance(raw, (list, tuple)) or not all(
                    isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                    and isinstance(p[1], int) and not isinstance(p[1], bool) for p in raw):
                raise ConfigError(f"genotype.{name}: expected a list of [op, input_index] pairs")
            pairs = tuple((op, j) for op, j in raw)
            if not pairs or len(pairs) % 2:
                raise ConfigError(f"genotype.{name}: need 2 inputs per node, got {len(pairs)} pairs")
            if len(pairs) > 2 * MAX_NODES:
                raise ConfigError(f"genotype.{name}: {len(pairs) // 2} nodes, at most {MAX_NODES} allowed")
            for k, (op, j) in enumerate(pairs):
                if op not in PRIMITIVES or op == "none":
                    raise ConfigError(f"genotype.{name}[{k}]: unknown or 'none' op {op[:40]!r}")
                if not 0 <= j < k // 2 + 2:
                    raise ConfigError(f"genotype.{name}[{k}]: input {j} does not exist yet")
            object.__setattr__(self, name, pairs)
            raw_concat = getattr(self, name + "_concat")
            if not isinstance(raw_concat, (list, tuple)) or not all(
                    isinstance(c, int) and not isinstance(c, bool) for c in raw_concat):
                raise ConfigError(f"genotype.{name}_concat: expected a list of node indices")
            concat = tuple(raw_concat)
            if not concat or len(set(concat)) != len(concat) or any(not 2 <= c < len(pairs) // 2 + 2 for c in concat):
                raise ConfigError(f"genotype.{name}_concat: bad node indices {concat}")
            object.__setattr__(self, name + "_concat", concat)

    @property
    def nodes(self) -> int:
        return len(self.normal) // 2

    def to_json(self) -> str:
        return json.dumps({
            "normal": [list(p) for p in self.normal], "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce], "reduce_concat": list(self.reduce_concat),
        }, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> "Genotype":
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{source}: not valid JSON ({e})") from None
        return cls.from_dict(d, source)

    @classmethod
    def from_dict(cls, d, source: str = "genotype") -> "Genotype":
        """Validate a plain-data genotype; ConfigError names `source` and the field."""
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        if not isinstance(d, dict) or set(d) != set(fields):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ConfigError(f"{source}: a genotype has exactly the fields {list(fields)}, got {got}")
        try:
            return cls(*(d[f] for f in fields))
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    def save(self, path) -> None:
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path) -> "Genotype":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read genotype ({e.strerror})") from None
        return cls.from_json(text, source=str(path))

    def count_ops(self, names) -> int:
        """How many edges (normal + reduce) use one of ``names``."""
        return sum(op in names for op, _ in self.normal + self.reduce)


def edge_index(node: int, inp: int) -> int:
    """Row of edge ``inp -> node`` in an α matrix (node ``i`` has ``i + 2`` inputs)."""
    return sum(j + 2 for j in range(node)) + inp


def n_edges(nodes: int) -> int:
    return edge_index(nodes, 0)


def _derive_cell(w: np.ndarray, primitives, nodes: int) -> list[tuple[str, int]]:
    none = primitives.index("none") if "none" in primitives else -1
    usable = [k for k in range(len(primitives)) if k != none]
    if not usable:
        raise ConfigError(f"cannot derive a cell: no op besides 'none' in {primitives}")
    pairs = []
    for i in range(nodes):
        rows = w[edge_index(i, 0): edge_index(i, 0) + i + 2]
        # An edge's strength is its best real op; 'none' never competes (DARTS Sec. 2.4).
        # A banned op has weight -inf; an edge with only banned ops cannot be kept.
        strength = [max(row[k] for k in usable) for row in rows]
        best = sorted(range(i + 2), key=lambda j: (-strength[j], j))[:2]
        if any(strength[j] == -np.inf for j in best):
            raise ConfigError(f"cannot derive a cell: node {i} has fewer than 2 incoming edges with an "
                              f"allowed op (max_skip bans skip_connect, and no other op besides 'none' "
                              f"is in {primitives})")
        for j in sorted(best):
            k = max(usable, key=lambda k: (rows[j][k], -k))
            pairs.append((primitives[k], j))
    return pairs


def derive_cell(weights, primitives, nodes: int, max_skip: int | None = None) -> list[tuple[str, int]]:
    """Derive one cell from op weights ``(n_edges(nodes), len(primitives))``.

    Each node keeps its two strongest incoming edges; each kept edge its strongest
    non-'none' op. With ``max_skip`` the weakest surplus ``skip_connect`` edges are
    banned from skipping and the cell re-derived (DARTS+ / P-DARTS collapse guard).
    """
    w = np.array(weights, dtype=np.float64)
    primitives = list(primitives)
    if w.shape != (n_edges(nodes), len(primitives)):
        raise ValueError(f"α of shape {w.shape}, expected {(n_edges(nodes), len(primitives))}")
    while True:
        pairs = _derive_cell(w, primitives, nodes)
        if max_skip is None or "skip_connect" not in primitives:
            return pairs
        s = primitives.index("skip_connect")
        skips = [(w[edge_index(k // 2, j), s], edge_index(k // 2, j))
                 for k, (op, j) in enumerate(pairs) if op == "skip_connect"]
        if len(skips) <= max_skip:
            return pairs
        w[min(skips)[1], s] = -np.inf


def derive_genotype(w_normal, w_reduce, primitives, nodes: int, max_skip: int | None = None) -> Genotype:
    """Genotype from the op weights of both cell types (``max_skip`` applies to the normal cell)."""
    concat = tuple(range(2, nodes + 2))
    return Genotype(derive_cell(w_normal, primitives, nodes, max_skip), concat,
                    derive_cell(w_reduce, primitives, nodes, None), concat)
