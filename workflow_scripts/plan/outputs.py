"""Names of the files the workflow promises: the rules declare them, the plotting writes them.

Kept apart from the plotting modules (results/plot_*.py) so that building the DAG
(`snakemake -n`) does not import matplotlib or seaborn.
"""

from __future__ import annotations

HEATMAP = "headline_heatmap.png"


def l0_plot_name(eval_type: str) -> str:
    """The L0-vs-headline-metrics plot of one eval type."""
    return f"l0_vs_{eval_type}.png"


def plot_file_names(eval_types: list[str]) -> list[str]:
    """The plot files the workflow promises for these eval types (the plot rule's outputs)."""
    return [l0_plot_name(name) for name in eval_types] + [HEATMAP]
