"""Comparison plots (seaborn) from the merged table.

- `l0_vs_<eval_type>.png`: L0 (log scale) against each headline metric of the eval, one panel per
  metric; one marker and colour per architecture (config `visualization`), every point labelled
  with its variant id, each family's parameter sweep joined by a line in parameter order, and the
  Pareto frontier (best value reachable at a given L0 or sparser) drawn as a dashed step line.
  With replicate seeds, points are means over seeds with their 95% t-interval as error bars, and
  the frontier is drawn through the means.
- `headline_heatmap.png`: variants (in summary rank order) x headline metrics, coloured by how
  good each value is within its column (1 = best variant, 0 = worst), annotated with the values
  and each variant's verdict against its baseline (▲ better, ▼ worse, ≈ within noise: hatched;
  nothing without a noise estimate); † marks metrics left out of the ranking.

Missing pairs (allow_missing) are left out of a panel and named under it; without the core eval
there is no L0, and the L0 plots show each metric per variant as bars with a note saying so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from workflow_scripts.results import ranking  # noqa: E402
from workflow_scripts.plan.outputs import HEATMAP, l0_plot_name  # noqa: E402

L0 = ranking.L0
X_LABEL = "L0: active latents per token (log scale; lower = sparser)"
FALLBACK_COLORS = sns.color_palette("tab10", 10).as_hex()


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


def pareto_front(x: np.ndarray, y: np.ndarray, higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats in both lower x and better y, by x."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i] if higher_is_better else y[i]))
    front, best = [], -math.inf
    for i in order:
        value = y[i] if higher_is_better else -y[i]
        if value > best:
            front.append(i)
            best = value
    return front


def sweep_groups(table: pd.DataFrame):
    """(family, architecture, rows sorted by parameter) for every family in the table, one sweep
    per baseline (a family derived from two baselines is two lines)."""
    keys = [k for k in ("baseline", "family", "architecture") if k in table]
    for key, group in table.groupby(keys, sort=False, dropna=False):
        family, architecture = key[-2], key[-1]
        params = pd.to_numeric(group["param"], errors="coerce")
        if params.notna().all():
            group = group.assign(_p=params).sort_values("_p").drop(columns="_p")
        yield family, architecture, group


def sweep_label(family: str, architecture: str, group: pd.DataFrame) -> str:
    params = pd.to_numeric(group["param"], errors="coerce")
    name = architecture if family in (architecture, "comparison") else f"{architecture} ({family})"
    bases = group["baseline"].dropna().unique() if "baseline" in group else []
    if family != "comparison" and len(bases) == 1 and bases[0] != "baseline":
        name = f"{name} of {bases[0]}"
    if family == "comparison":
        name = f"{architecture} (published)"
    if len(group) > 1 and params.notna().all():
        values = [int(p) if float(p).is_integer() else p for p in params]
        return f"{name}: {group['param_name'].iloc[0]} = {values[0]} → {values[-1]}"
    return name


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


def _missing_note(ax, names: list[str]) -> None:
    if names:
        ax.text(
            0.0,
            -0.2,
            "missing (allow_missing): " + ", ".join(map(short_label, names)),
            transform=ax.transAxes,
            fontsize=7,
            color="0.35",
            ha="left",
            va="top",
            wrap=True,
        )


def reference_panel(
    ax, shown: pd.DataFrame, headline: ranking.Headline, reference: list[str], handles: list
) -> bool:
    """Draw the reference frontier of each hook point (frontier.py: the best the reference SAEs
    reach at each L0, interpolated in log L0, so straight on the log axis) and a dotted segment
    from it to every other variant in its L0 range (its matched-L0 difference). False when no
    hook has a frontier for this metric (then the caller draws the plain Pareto frontier)."""
    from workflow_scripts.results import frontier

    drawn = False
    for _, rows in shown.groupby("hook", sort=False):
        refs = rows[rows["variant"].isin(reference)]
        try:
            f = frontier.Frontier.from_points(
                numeric(refs, L0), numeric(refs, headline.column), headline.higher_is_better
            )
        except frontier.FrontierError:
            continue
        drawn = True
        cx, cy = f.curve()
        ax.plot(cx, cy, color="0.35", linestyle="--", linewidth=1.4, zorder=1)
        ax.scatter(
            numeric(refs, L0),
            numeric(refs, headline.column),
            s=260,
            facecolors="none",
            edgecolors="0.5",
            linewidths=1.0,
            zorder=1,
        )
        for _, row in rows[~rows["variant"].isin(reference)].iterrows():
            l0, value = float(row[L0]), float(row[headline.column])
            if f.contains(l0):
                ax.plot([l0, l0], [f.at(l0), value], color="0.3", linestyle=":", linewidth=1.2)
    if drawn:
        handles.append(
            Line2D(
                [],
                [],
                color="0.35",
                linestyle="--",
                marker="o",
                markerfacecolor="none",
                markeredgecolor="0.5",
                markersize=11,
                label="reference frontier (ringed: reference SAEs; log-L0 interpolation)",
            )
        )
        handles.append(
            Line2D(
                [], [], color="0.3", linestyle=":", label="matched-L0 difference to the frontier"
            )
        )
    return drawn


def scatter_panel(
    ax,
    table: pd.DataFrame,
    headline: ranking.Headline,
    style: Style,
    reference: list[str] | None = None,
) -> list:
    """One L0-vs-metric panel; returns the legend handles it drew. With `reference` ids, the
    reference frontier and each variant's matched-L0 difference replace the Pareto frontier."""
    x_all, y_all = numeric(table, L0), numeric(table, headline.column)
    present = x_all.notna() & y_all.notna()
    handles = []
    ax.set_xscale("log")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(headline.axis_label)
    ax.set_title(headline.label, fontsize=10)
    if not present.any():
        ax.text(
            0.5,
            0.5,
            f"no results for {headline.column}",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
        _missing_note(ax, list(table["variant"]))
        return handles
    shown = table[present]
    x, y = x_all[present].to_numpy(), y_all[present].to_numpy()
    low, high = (
        numeric(shown, f"{headline.column}_ci_low"),
        numeric(shown, f"{headline.column}_ci_high"),
    )
    has_ci = low.notna() & high.notna()
    if has_ci.any():  # replicates: the 95% interval of each mean
        for architecture, rows in shown[has_ci.to_numpy()].groupby("architecture"):
            ys = numeric(rows, headline.column).to_numpy()
            ax.errorbar(
                numeric(rows, L0).to_numpy(),
                ys,
                yerr=[ys - low[rows.index].to_numpy(), high[rows.index].to_numpy() - ys],
                fmt="none",
                ecolor=style.color(architecture),
                elinewidth=1.1,
                capsize=3,
                alpha=0.8,
                zorder=2,
            )
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                marker="|",
                linestyle="none",
                markersize=10,
                label="95% interval of the mean over seeds",
            )
        )
    if not reference_panel(ax, shown, headline, reference or [], handles):
        front = pareto_front(x, y, headline.higher_is_better)
        fx, fy = x[front], y[front]
        ax.step(fx, fy, where="post", color="0.45", linestyle="--", linewidth=1.2, zorder=1)
        ax.scatter(fx, fy, s=260, facecolors="none", edgecolors="0.6", linewidths=1.0, zorder=1)
        handles.append(
            Line2D(
                [],
                [],
                color="0.45",
                linestyle="--",
                marker="o",
                markerfacecolor="none",
                markeredgecolor="0.6",
                markersize=11,
                label="Pareto frontier (best at this L0 or sparser)",
            )
        )
    for family, architecture, group in sweep_groups(shown):
        gx, gy = numeric(group, L0), numeric(group, headline.column)
        is_sweep = len(group) > 1 and family != "comparison"
        ax.plot(
            gx,
            gy,
            linestyle="-" if is_sweep else "none",
            linewidth=1.5,
            marker=style.marker(architecture),
            color=style.color(architecture),
            markersize=8,
            markeredgecolor="white",
            markeredgewidth=0.7,
            zorder=3,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="-" if is_sweep else "none",
                marker=style.marker(architecture),
                color=style.color(architecture),
                markersize=8,
                label=sweep_label(family, architecture, group),
            )
        )
    ax.margins(x=0.12, y=0.15)
    # plain numbers on the log axis (10, 20, 50, ...), not only powers of ten
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    place_labels(ax, [(xi, yi, short_label(v)) for xi, yi, v in zip(x, y, shown["variant"])])
    _missing_note(
        ax,
        list(table.loc[~present & x_all.notna(), "variant"])
        + list(table.loc[x_all.isna(), "variant"]),
    )
    return handles


def bar_panel(ax, table: pd.DataFrame, headline: ranking.Headline, style: Style) -> None:
    """Without L0 (core disabled): the metric per variant as bars."""
    values = numeric(table, headline.column)
    data = table.assign(_value=values).dropna(subset=["_value"])
    if data.empty:
        ax.text(
            0.5,
            0.5,
            f"no results for {headline.column}",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
        ax.set_axis_off()
        return
    colors = [style.color(a) for a in data["architecture"]]
    ax.barh(data["variant"], data["_value"], color=colors)
    ax.invert_yaxis()
    ax.set_xlabel(headline.axis_label)
    ax.set_title(headline.label, fontsize=10)


def plot_eval(
    table: pd.DataFrame,
    eval_type: str,
    style: dict | Style,
    path: Path,
    threshold: int = ranking.DEFAULT_THRESHOLD,
    reference: list[str] | None = None,
) -> None:
    if not isinstance(style, Style):
        style = Style(style, sorted(table["architecture"].unique()))
    metrics = [h for h in ranking.headline_metrics([eval_type], threshold) if h.column != L0]
    sns.set_theme(style="whitegrid", context="notebook")
    has_l0 = numeric(table, L0).notna().any()
    n = max(len(metrics), 1)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 5.4), squeeze=False)
    handles = {}
    if not metrics:
        axes[0][0].text(
            0.5,
            0.5,
            f"{eval_type} has no headline metric besides L0",
            ha="center",
            va="center",
            transform=axes[0][0].transAxes,
        )
        axes[0][0].set_axis_off()
    for ax, headline in zip(axes[0], metrics):
        if has_l0:
            for handle in scatter_panel(ax, table, headline, style, reference):
                handles.setdefault(handle.get_label(), handle)
        else:
            bar_panel(ax, table, headline, style)
    if has_l0:
        title = f"{eval_type}: sparsity (L0) against headline metrics"
    else:
        title = (
            f"{eval_type}: headline metrics per variant — no L0 to plot against "
            "(the core eval is disabled or has no results)"
        )
    fig.suptitle(title, fontsize=12)
    if handles:
        fig.legend(
            handles=list(handles.values()),
            loc="lower center",
            ncol=min(len(handles), 3),
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
        rows = math.ceil(len(handles) / 3)
        fig.tight_layout(rect=(0, 0.045 * rows + 0.05, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


VERDICT_MARKS = {"better": "▲", "worse": "▼", "within noise": "≈"}


def plot_heatmap(
    table: pd.DataFrame,
    eval_types: list[str],
    path: Path,
    threshold: int = ranking.DEFAULT_THRESHOLD,
    comparison: ranking.Comparison | None = None,
    versus: pd.DataFrame | None = None,
) -> None:
    headlines = ranking.headline_metrics(eval_types, threshold)
    ranked = ranking.rank_variants(table, headlines, comparison)
    ranked_columns = set(
        (comparison or ranking.Comparison(table, headlines, eval_types)).ranked_columns
    )
    values = pd.DataFrame({h.column: numeric(ranked, h.column) for h in headlines})
    goodness = pd.DataFrame(index=values.index)
    for h in headlines:
        column = values[h.column]
        low, high = column.min(), column.max()
        scaled = (column - low) / (high - low) if high > low else column * 0 + 1.0
        goodness[h.column] = scaled if h.higher_is_better else 1 - scaled
    annotations = values.apply(lambda c: c.map(ranking._format))
    verdicts = pd.DataFrame("", index=values.index, columns=values.columns)
    if versus is not None and not versus.empty:
        for i, variant in enumerate(ranked["variant"]):
            for h in headlines:
                match = versus[
                    (versus["variant"] == variant)
                    & (versus["eval_type"] == h.eval_type)
                    & (versus["metric"] == h.key)
                ]
                if not match.empty:
                    verdicts.iloc[i, list(values.columns).index(h.column)] = match["verdict"].iloc[
                        0
                    ]
    marks = verdicts.apply(lambda c: c.map(lambda v: VERDICT_MARKS.get(v, "")))
    annotations = annotations.where(marks == "", annotations + " " + marks)
    rows = [f"{r}. {short_label(v, 40)}" for r, v in zip(ranked["rank"], ranked["variant"])]
    columns = [
        f"{h.label}{'' if h.column in ranked_columns or h.column == L0 else ' †'}"
        f"\n{h.arrow} {h.direction}"
        for h in headlines
    ]
    sns.set_theme(style="white")
    fig, ax = plt.subplots(
        figsize=(max(6.5, 2.0 * len(headlines) + 3.5), max(3.0, 0.45 * len(rows) + 2.2))
    )
    ax.set_facecolor("0.88")
    sns.heatmap(
        goodness.to_numpy(dtype=float),
        mask=values.isna().to_numpy(),
        ax=ax,
        annot=annotations.to_numpy(),
        fmt="",
        cmap="viridis",
        vmin=0,
        vmax=1,
        linewidths=0.6,
        linecolor="white",
        xticklabels=columns,
        yticklabels=rows,
        annot_kws={"fontsize": 8},
        cbar_kws={"label": "within-column score\n(1 = best variant, 0 = worst)"},
    )
    for i, j in zip(*np.where(values.isna().to_numpy())):
        ax.text(
            j + 0.5,
            i + 0.5,
            ranking.MISSING,
            ha="center",
            va="center",
            fontsize=8,
            color="0.3",
            style="italic",
        )
    for i, j in zip(*np.where((verdicts == "within noise").to_numpy())):
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (j, i), 1, 1, fill=False, hatch="///", edgecolor="white", linewidth=0, alpha=0.7
            )
        )
    legend = "vs baseline: ▲ better, ▼ worse, ≈ within noise (hatched); † not ranked"
    ax.text(0.0, -0.12, legend, transform=ax.transAxes, fontsize=7, color="0.3", va="top")
    ax.set_xticklabels(ax.get_xticklabels(), rotation=0, fontsize=8)
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0, fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel("variant (summary rank)")
    ax.set_title(
        "Headline metrics per variant (colour: better → brighter, per column)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--eval-types", required=True, nargs="+")
    parser.add_argument("--style", default="{}", help="JSON of the config's visualization section")
    parser.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="SCR/TPP headline threshold (default: the style's headline_threshold or 20)",
    )
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--long", type=Path, help="metrics_long.csv (replicates)")
    parser.add_argument("--versus", type=Path, help="versus_baseline.csv (verdicts)")
    parser.add_argument("--ranking", help="JSON list of ranking.metrics (default: registry's)")
    parser.add_argument("--reference", help="JSON list of the reference-frontier SAEs")
    args = parser.parse_args(argv)
    reference = json.loads(args.reference) if args.reference else None
    table = pd.read_csv(args.table)
    style_config = json.loads(args.style)
    threshold = args.threshold or style_config.get("headline_threshold", ranking.DEFAULT_THRESHOLD)
    style = Style(style_config, sorted(table["architecture"].astype(str).unique()))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for eval_type in args.eval_types:
        plot_eval(
            table, eval_type, style, args.out_dir / l0_plot_name(eval_type), threshold, reference
        )
    long = pd.read_csv(args.long) if args.long else None
    comparison = ranking.Comparison(
        table,
        ranking.headline_metrics(args.eval_types, threshold),
        args.eval_types,
        threshold,
        long=long,
        seeds=sorted(long["seed"].unique().tolist()) if long is not None and len(long) else [],
        ranking=json.loads(args.ranking) if args.ranking else None,
    )
    versus = pd.read_csv(args.versus) if args.versus else None
    plot_heatmap(table, args.eval_types, args.out_dir / HEATMAP, threshold, comparison, versus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
