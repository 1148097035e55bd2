"""`l0_vs_<eval_type>.png`: L0 (log scale) against each headline metric of the eval, one panel per
metric; one marker and colour per architecture (config `visualization`), every point labelled
with its variant id, each family's parameter sweep joined by a line in parameter order, and the
Pareto frontier (best value reachable at a given L0 or sparser) drawn as a dashed step line, or,
with reference SAEs, their frontier and each variant's matched-L0 difference to it. With
replicate seeds, points are means over seeds with their 95% t-interval as error bars.

Missing pairs (allow_missing) are left out of a panel and named under it; without the core eval
there is no L0, and the plots show each metric per variant as bars with a note saying so.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from workflow_scripts.plan.headlines import DEFAULT_THRESHOLD, Headline, headline_metrics  # noqa: E402
from workflow_scripts.results import frontier  # noqa: E402
from workflow_scripts.results.plot_style import (  # noqa: E402
    L0,
    X_LABEL,
    Style,
    numeric,
    place_labels,
    short_label,
)


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
    ax, shown: pd.DataFrame, headline: Headline, reference: list[str], handles: list
) -> bool:
    """Draw the reference frontier of each hook point (frontier.py: the best the reference SAEs
    reach at each L0, interpolated in log L0, so straight on the log axis) and a dotted segment
    from it to every other variant in its L0 range (its matched-L0 difference). False when no
    hook has a frontier for this metric (then the caller draws the plain Pareto frontier)."""
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
    headline: Headline,
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


def bar_panel(ax, table: pd.DataFrame, headline: Headline, style: Style) -> None:
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
    threshold: int = DEFAULT_THRESHOLD,
    reference: list[str] | None = None,
) -> None:
    if not isinstance(style, Style):
        style = Style(style, sorted(table["architecture"].unique()))
    metrics = [h for h in headline_metrics([eval_type], threshold) if h.column != L0]
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
