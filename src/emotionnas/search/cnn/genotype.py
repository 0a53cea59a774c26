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
from emotionnas.search.cnn.ops import OPS
from emotionnas.utils.io import atomic_write_text

Pairs = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Genotype:
    normal: Pairs
    normal_concat: tuple[int, ...]
    reduce: Pairs
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        for name in ("normal", "reduce"):
            pairs = tuple((str(op), int(j)) for op, j in getattr(self, name))
            if not pairs or len(pairs) % 2:
                raise ConfigError(f"genotype.{name}: need 2 inputs per node, got {len(pairs)} pairs")
            for k, (op, j) in enumerate(pairs):
                if op not in OPS or op == "none":
                    raise ConfigError(f"genotype.{name}[{k}]: unknown or 'none' op {op!r}")
                if not 0 <= j < k // 2 + 2:
                    raise ConfigError(f"genotype.{name}[{k}]: input {j} does not exist yet")
            object.__setattr__(self, name, pairs)
            concat = tuple(int(c) for c in getattr(self, name + "_concat"))
            if not concat or any(not 2 <= c < len(pairs) // 2 + 2 for c in concat):
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
            return cls(d["normal"], d["normal_concat"], d["reduce"], d["reduce_concat"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{source}: not a genotype ({type(e).__name__}: {e})") from None

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
    pairs = []
    for i in range(nodes):
        rows = w[edge_index(i, 0): edge_index(i, 0) + i + 2]
        # An edge's strength is its best real op; 'none' never competes (DARTS Sec. 2.4).
        strength = [max(row[k] for k in usable) for row in rows]
        best = sorted(range(i + 2), key=lambda j: (-strength[j], j))[:2]
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
