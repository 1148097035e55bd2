"""`headline_heatmap.png`: variants (in the summary's rank order, read from ranking.csv) x
headline metrics, coloured by how good each value is within its column (1 = best variant, 0 =
worst), annotated with the values and each variant's verdict against its baseline (▲ better,
▼ worse, ≈ within noise: hatched; nothing without a noise estimate); † marks metrics left out of
the ranking. Nothing here ranks: the order and the rank numbers are the aggregation's.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs have no display
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from workflow_scripts.plan.headlines import DEFAULT_THRESHOLD, headline_metrics, ranking_columns  # noqa: E402
from workflow_scripts.results.formatting import MISSING, format_value  # noqa: E402
from workflow_scripts.results.plot_style import L0, numeric, short_label  # noqa: E402

VERDICT_MARKS = {"better": "▲", "worse": "▼", "within noise": "≈"}


def plot_heatmap(
    table: pd.DataFrame,
    ranks: pd.DataFrame,
    eval_types: list[str],
    path,
    threshold: int = DEFAULT_THRESHOLD,
    ranking_metrics: list[str] | None = None,
    versus: pd.DataFrame | None = None,
) -> None:
    """`ranks`: ranking.csv (rank, variant, mean_rank) in the summary's order; `ranking_metrics`:
    the config's ranking.metrics (None: the registry's), for the † marks."""
    headlines = headline_metrics(eval_types, threshold)
    order = [v for v in ranks["variant"] if v in set(table["variant"])]
    ranked = table.set_index("variant").loc[order].reset_index()
    ranked.insert(0, "rank", ranks.set_index("variant").loc[order, "rank"].to_numpy())
    ranked_columns = set(ranking_columns(headlines, ranking_metrics))
    values = pd.DataFrame({h.column: numeric(ranked, h.column) for h in headlines})
    goodness = pd.DataFrame(index=values.index)
    for h in headlines:
        column = values[h.column]
        low, high = column.min(), column.max()
        scaled = (column - low) / (high - low) if high > low else column * 0 + 1.0
        goodness[h.column] = scaled if h.higher_is_better else 1 - scaled
    annotations = values.apply(lambda c: c.map(format_value))
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
    rows = [
        f"{'ref' if pd.isna(r) else int(r)}. {short_label(v, 40)}"  # reference SAEs: not ranked
        for r, v in zip(ranked["rank"], ranked["variant"])
    ]
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
            MISSING,
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
