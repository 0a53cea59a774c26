"""Draw a recurrent-cell recipe (NAS-Bench-NLP form) with matplotlib only.

Inputs ``x`` and ``h_prev_k`` on the left, nodes in columns by depth (longest
path from an input), new states ``h_new_k`` highlighted. Every node box shows
its name and op; blend edges are labelled g / a / b because their order
matters (g*a + (1-g)*b). EmotionNAS (Sun et al., Interspeech 2023) shows its
searched cell in this way.
"""
from __future__ import annotations

import io
from pathlib import Path

from emotionnas.space.recipe import input_names, topological_order, validate_recipe
from emotionnas.utils.io import atomic_write_bytes

_W, _H, _DX, _DY = 1.7, 0.62, 2.5, 1.0
_COLORS = {"input": "#a7d3f2", "node": "#e8f1f8", "output": "#f8e6a0"}
_SHORT = {"linear": "linear", "blend": "blend", "elementwise_prod": "prod (*)",
          "elementwise_sum": "sum (+)", "activation_tanh": "tanh", "activation_sigm": "sigmoid",
          "activation_leaky_relu": "leaky ReLU"}


def _layout(recipe: dict) -> dict:
    depth = {n: 0 for n in input_names(recipe)}
    for n in topological_order(recipe):
        depth[n] = 1 + max(depth[i] for i in recipe[n]["input"])
    columns: dict[int, list[str]] = {}
    for n, d in depth.items():
        columns.setdefault(d, []).append(n)
    pos = {}
    for d, members in columns.items():
        for r, n in enumerate(members):
            pos[n] = (d * _DX, (len(members) - 1) / 2 * _DY - r * _DY + (0.18 if d % 2 else 0.0))
    return pos


def _border(p, q):
    dx, dy = q[0] - p[0], q[1] - p[1]
    sx = (_W / 2) / abs(dx) if dx else float("inf")
    sy = (_H / 2) / abs(dy) if dy else float("inf")
    s = min(sx, sy, 1.0)
    return p[0] + s * dx, p[1] + s * dy


def _curve(a, b, rad, t):
    """Point at t on matplotlib's arc3 curve from a to b (equal-aspect axes)."""
    cx = (a[0] + b[0]) / 2 + rad * (b[1] - a[1])
    cy = (a[1] + b[1]) / 2 - rad * (b[0] - a[0])
    u = 1 - t
    return u * u * a[0] + 2 * u * t * cx + t * t * b[0], u * u * a[1] + 2 * u * t * cy + t * t * b[1]


def _bend(p, q, boxes):
    """Curvature whose arc crosses the fewest other boxes (ties: the straightest)."""
    best = None
    for rad in (0.0, 0.15, -0.15, 0.3, -0.3, 0.45, -0.45, 0.6, -0.6):
        a, b = _border(p, q), _border(q, p)
        hits = sum(abs(x - c[0]) < 0.55 * _W and abs(y - c[1]) < 0.6 * _H
                   for x, y in (_curve(a, b, rad, i / 24) for i in range(1, 24)) for c in boxes)
        cost = hits + 0.5 * abs(rad)
        if best is None or cost < best[0]:
            best = (cost, rad)
    return best[1]


def draw_recipe(recipe: dict, out_prefix, title: str | None = None) -> list[Path]:
    """Write ``<out_prefix>.png`` and ``<out_prefix>.svg``; return their paths."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    validate_recipe(recipe)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    pos = _layout(recipe)
    edges = []  # (src, dst, slot, rad): bends chosen first so the axes can hold them
    for n, node in recipe.items():
        for slot, i in enumerate(node["input"]):
            # edges that skip columns bend so they do not run through boxes in between
            edges.append((i, n, slot, _bend(pos[i], pos[n], [c for k, c in pos.items() if k not in (i, n)])))
    pts = list(pos.values()) + [_curve(_border(pos[i], pos[n]), _border(pos[n], pos[i]), rad, t / 10)
                                for i, n, _, rad in edges for t in range(11)]
    x0, x1 = min(p[0] for p in pts) - 0.6 * _W, max(p[0] for p in pts) + 0.6 * _W
    y0, y1 = min(p[1] for p in pts) - 1.3 * _H, max(p[1] for p in pts) + 0.9 * _H
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * (x1 - x0)), max(2.5, 0.8 * (y1 - y0) + 0.5)))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(title or f"recurrent cell ({len(recipe)} nodes)", fontsize=12)
    for i, n, slot, rad in edges:
        p, q = pos[i], pos[n]
        a, b = _border(p, q), _border(q, p)
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(
            arrowstyle="-|>", color="#444444", lw=1.1, shrinkA=0, shrinkB=0,
            connectionstyle=f"arc3,rad={rad}"), zorder=1)
        if recipe[n]["op"] == "blend":
            lx, ly = _curve(a, b, rad, 0.75)
            ax.text(lx, ly, "gab"[slot], fontsize=8, ha="center", va="center", color="#aa3300", zorder=5,
                    bbox=dict(boxstyle="circle,pad=0.1", fc="white", ec="none"))
    for n, (x, y) in pos.items():
        kind = "input" if n in input_names(recipe) else "output" if n.startswith("h_new_") else "node"
        ax.add_patch(FancyBboxPatch((x - _W / 2, y - _H / 2), _W, _H, boxstyle="round,pad=0,rounding_size=0.1",
                                    fc=_COLORS[kind], ec="#555555", lw=1.6 if kind != "node" else 1.0, zorder=3))
        label = n if kind == "input" else f"{n}\n{_SHORT[recipe[n]['op']]}"
        ax.text(x, y, label, ha="center", va="center", fontsize=8.5, zorder=4,
                fontweight="bold" if kind != "node" else "normal")
    ax.text(x0 + 0.1, y0 + 0.3,
            "h_new_k becomes h_prev_k at the next frame; h_new_0 is the cell output",
            fontsize=8, color="#555555", ha="left", va="center")
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130 if ext == "png" else None)
        path = out_prefix.parent / f"{out_prefix.name}.{ext}"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths
