"""Draw a Genotype's normal and reduction cells as DARTS does (Liu et al. 2019, Fig. 4-5),
with matplotlib only (no graphviz): inputs c_{k-2}, c_{k-1} on the left, intermediate
nodes 0..N-1 in layers by depth, the concatenated output c_{k} on the right, every
edge labelled with its op.
"""
from __future__ import annotations

import io
from pathlib import Path

from emotionnas.space.genotype import Genotype
from emotionnas.utils.io import atomic_write_bytes

_BOX_W, _BOX_H, _DX, _DY = 1.1, 0.5, 3.2, 1.3
_COLORS = {"input": "#a7d3f2", "node": "#d9edf7", "output": "#f8e6a0"}


def _layout(pairs, concat):
    """Node name -> (x, y). Intermediate node i sits one layer right of its deepest input."""
    n = len(pairs) // 2
    depth = {0: 0, 1: 0}
    for i in range(n):
        depth[i + 2] = 1 + max(depth[j] for _, j in pairs[2 * i: 2 * i + 2])
    last = max(depth.values()) + 1
    columns: dict[int, list[int]] = {}
    for k in range(n + 2):
        columns.setdefault(depth[k], []).append(k)
    pos = {}
    for col, members in columns.items():
        for r, k in enumerate(members):
            pos[k] = (col * _DX, (len(members) - 1) / 2 * _DY - r * _DY)
    pos["out"] = (last * _DX, 0.0)
    return pos


def _border(p, q):
    """Point where the segment from box centre p towards q leaves the box."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    sx = (_BOX_W / 2) / abs(dx) if dx else float("inf")
    sy = (_BOX_H / 2) / abs(dy) if dy else float("inf")
    s = min(sx, sy, 1.0)
    return p[0] + s * dx, p[1] + s * dy


def _curve_point(a, b, rad, t):
    """Point at parameter t on matplotlib's arc3 curve from a to b (equal-aspect axes)."""
    cx = (a[0] + b[0]) / 2 + rad * (b[1] - a[1])
    cy = (a[1] + b[1]) / 2 - rad * (b[0] - a[0])
    u = 1 - t
    return u * u * a[0] + 2 * u * t * cx + t * t * b[0], u * u * a[1] + 2 * u * t * cy + t * t * b[1]


def _pick_bend(src, dst, boxes, labels_at):
    """(curvature, label position t) whose arc crosses the fewest other boxes and whose label
    sits clear of boxes and of the labels placed so far (greedy; ties go to straight, centred)."""
    best = None
    a, b = _border(src, dst), _border(dst, src)
    for rad in (0.0, 0.2, -0.2, 0.35, -0.35, 0.5, -0.5):
        crossing = 0.0
        for t in [i / 20 for i in range(1, 20)]:
            x, y = _curve_point(a, b, rad, t)
            crossing += sum(abs(x - p[0]) < 0.6 * _BOX_W and abs(y - p[1]) < 0.7 * _BOX_H for p in boxes)
        for t in (0.5, 0.4, 0.6, 0.3, 0.7):
            mx, my = _curve_point(a, b, rad, t)
            cost = crossing + abs(rad) + abs(t - 0.5)
            cost += 4 * sum(abs(mx - x) < 1.2 and abs(my - y) < 0.32 for x, y in labels_at)
            cost += 8 * sum(abs(mx - p[0]) < 0.5 * _BOX_W + 0.55 and abs(my - p[1]) < 0.5 * _BOX_H + 0.15
                            for p in boxes)
            if best is None or cost < best[0]:
                best = (cost, rad, t)
    return best[1], best[2]


def _draw_cell(pairs, concat, title: str, out_prefix: Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    pos = _layout(pairs, concat)
    labels = {0: "c_{k-2}", 1: "c_{k-1}", "out": "c_{k}"}
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    width = max(xs) - min(xs) + 2 * _BOX_W
    height = max(ys) - min(ys) + 2.2 * _BOX_H
    fig, ax = plt.subplots(figsize=(0.95 * width, 0.95 * height + 0.6))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_xlim(min(xs) - _BOX_W, max(xs) + _BOX_W)
    ax.set_ylim(min(ys) - 1.1 * _BOX_H, max(ys) + 1.1 * _BOX_H)
    ax.set_title(title, fontsize=13)

    def arrow(p, q, rad, color, lw=1.4):
        a, b = _border(p, q), _border(q, p)
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(
            arrowstyle="-|>", color=color, lw=lw, shrinkA=0, shrinkB=0,
            connectionstyle=f"arc3,rad={rad}"))
        return a, b

    labels_at: list[tuple[float, float]] = []
    for k, (op, j) in enumerate(pairs):
        src, dst = pos[j], pos[k // 2 + 2]
        others = [p for key, p in pos.items() if key not in (j, k // 2 + 2)]
        rad, t = _pick_bend(src, dst, others, labels_at)
        a, b = arrow(src, dst, rad, "#333333")
        mx, my = _curve_point(a, b, rad, t)
        labels_at.append((mx, my))
        ax.text(mx, my, op, ha="center", va="center", fontsize=9, zorder=5,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
    for c in concat:
        others = [p for key, p in pos.items() if key not in (c, "out")]
        arrow(pos[c], pos["out"], _pick_bend(pos[c], pos["out"], others, [])[0], "#999999", lw=1.0)
    for key, (x, y) in pos.items():
        kind = "output" if key == "out" else "input" if key in (0, 1) else "node"
        name = labels.get(key, str(key - 2) if key != "out" else "")
        ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                    boxstyle="round,pad=0,rounding_size=0.12", fc=_COLORS[kind],
                                    ec="#555555", zorder=3))
        ax.text(x, y, f"${name}$" if "_" in name else name, ha="center", va="center", fontsize=12,
                zorder=4)
    fig.tight_layout()
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130 if ext == "png" else None)
        atomic_write_bytes(f"{out_prefix}.{ext}", buf.getvalue())
    plt.close(fig)


def draw_genotype(genotype: Genotype, out_prefix) -> list[Path]:
    """Write ``<prefix>_normal.png/.svg`` and ``<prefix>_reduce.png/.svg``; returns the paths."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in ("normal", "reduce"):
        prefix = out_prefix.parent / f"{out_prefix.name}_{kind}"
        _draw_cell(getattr(genotype, kind), getattr(genotype, kind + "_concat"),
                   f"{kind} cell", prefix)
        written += [prefix.with_suffix(".png"), prefix.with_suffix(".svg")]
    return written
