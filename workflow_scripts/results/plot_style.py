"""What every plot shares: marker and colour per architecture, numeric columns, short labels
and labels placed where they do not overlap."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs have no display
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from workflow_scripts.plan.headlines import L0  # noqa: E402

X_LABEL = "L0: active latents per token (log scale; lower = sparser)"
FALLBACK_COLORS = sns.color_palette("tab10", 10).as_hex()

__all__ = ["L0", "X_LABEL", "Style", "numeric", "place_labels", "short_label"]


class Style:
    """Marker and colour per architecture, from the config's visualization section."""

    def __init__(self, style: dict, architectures: list[str]):
        self.markers = dict(style.get("markers", {}))
        self.colors = dict(style.get("colors", {}))
        unknown = [a for a in architectures if a not in self.colors]
        for i, architecture in enumerate(unknown):
            self.colors[architecture] = FALLBACK_COLORS[i % len(FALLBACK_COLORS)]

    def marker(self, architecture: str) -> str:
        return self.markers.get(architecture, "o")

    def color(self, architecture: str) -> str:
        return self.colors[architecture]


def numeric(table: pd.DataFrame, column: str) -> pd.Series:
    if column not in table:
        return pd.Series(np.nan, index=table.index, dtype=float)
    return pd.to_numeric(table[column], errors="coerce")


def short_label(variant: str, max_length: int = 22) -> str:
    """A point label that fits: a published SAE's id `<release>__<hook>__trainer_N` becomes its
    last part (`trainer_N`); other long ids are shortened in the middle."""
    variant = str(variant)
    if len(variant) <= max_length:
        return variant
    last = variant.replace("/", "__").split("__")[-1]
    if 0 < len(last) <= max_length:
        return last
    half = (max_length - 1) // 2
    return f"{variant[:half]}…{variant[-half:]}"


def place_labels(ax, points: list[tuple[float, float, str]]) -> None:
    """Label each point, choosing for each the offset whose box overlaps the fewest other labels
    and markers (greedy), with a leader line when the label sits far from its point."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    marker_boxes = []
    for x, y, _ in points:
        px, py = to_display((x, y))
        marker_boxes.append((px - 6, py - 6, px + 6, py + 6))
    axes_box = ax.get_window_extent(renderer)
    line_boxes = []  # sweep lines and the frontier, sampled every few pixels: labels avoid them too
    for line in ax.get_lines():
        if line.get_linestyle() in ("None", "none", ""):
            continue
        xy = ax.transData.transform(np.column_stack(line.get_data()).astype(float))
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
            steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / 6))
            for t in np.linspace(0, 1, steps + 1):
                px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                line_boxes.append((px - 2, py - 2, px + 2, py + 2))
    placed = []
    offsets = [
        (7, 5, "left", "bottom"),
        (7, -5, "left", "top"),
        (-7, 5, "right", "bottom"),
        (-7, -5, "right", "top"),
        (0, 9, "center", "bottom"),
        (0, -9, "center", "top"),
        (14, 14, "left", "bottom"),
        (14, -14, "left", "top"),
        (-14, 14, "right", "bottom"),
        (-14, -14, "right", "top"),
        (0, 22, "center", "bottom"),
        (0, -22, "center", "top"),
        (24, 0, "left", "center"),
        (-24, 0, "right", "center"),
    ]
    dpi_scale = fig.dpi / 72
    for x, y, text in points:
        best = None
        for dx, dy, ha, va in offsets:
            annotation = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7
            )
            box = annotation.get_window_extent(renderer)
            annotation.remove()
            rect = (box.x0 - 1, box.y0 - 1, box.x1 + 1, box.y1 + 1)
            cost = sum(_overlap(rect, other) for other in placed + marker_boxes)
            cost += 0.5 * sum(_overlap(rect, other) for other in line_boxes)
            outside = (
                max(0, axes_box.x0 - rect[0])
                + max(0, rect[2] - axes_box.x1)
                + max(0, axes_box.y0 - rect[1])
                + max(0, rect[3] - axes_box.y1)
            )
            cost += outside * 50 + math.hypot(dx, dy) * dpi_scale * 0.01
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, rect)
        _, dx, dy, ha, va, rect = best
        far = math.hypot(dx, dy) > 12
        ax.annotate(
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=7,
            arrowprops=dict(arrowstyle="-", color="0.5", lw=0.6) if far else None,
        )
        placed.append(rect)


def _overlap(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0
