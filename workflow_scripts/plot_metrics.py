"""Comparison plots: L0 (log scale) against each enabled eval's headline metrics.

One marker and colour per architecture (from the config's `visualization`), every point labelled
with its variant id, and each family's parameter sweep joined by a line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from workflow_scripts.eval_registry import REGISTRY  # noqa: E402

L0 = "core.sparsity.l0"


def plot_file_names(eval_types: list[str]) -> list[str]:
    """The plot files the workflow promises for these eval types (the rule's outputs)."""
    return [f"l0_vs_{name}.png" for name in eval_types]


def plot_eval(table: pd.DataFrame, eval_type: str, style: dict, path: Path) -> None:
    metrics = [m for m in REGISTRY[eval_type].headline if f"{eval_type}.{m.key}" != L0]
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(5.5 * max(len(metrics), 1), 4.5),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        column = f"{eval_type}.{metric.key}"
        if column not in table or L0 not in table:
            ax.text(0.5, 0.5, f"{column} or {L0} missing", ha="center", transform=ax.transAxes)
            continue
        for (family, architecture), group in table.groupby(["family", "architecture"], sort=False):
            group = group.sort_values("param") if group["param"].notna().all() else group
            ax.plot(group[L0], group[column],
                    linestyle="-" if len(group) > 1 and family != "comparison" else "none",
                    marker=style.get("markers", {}).get(architecture, "o"),
                    color=style.get("colors", {}).get(architecture),
                    markersize=8, label=f"{architecture} ({family})")
            for _, row in group.iterrows():
                ax.annotate(row["variant"], (row[L0], row[column]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("L0: active latents per token (log scale, lower is sparser)")
        ax.set_ylabel(f"{metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better)")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{eval_type}: sparsity vs headline metrics")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--eval-types", required=True, nargs="+")
    parser.add_argument("--style", default="{}", help="JSON of the config's visualization section")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    table = pd.read_csv(args.table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for eval_type, name in zip(args.eval_types, plot_file_names(args.eval_types)):
        plot_eval(table, eval_type, json.loads(args.style), args.out_dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
