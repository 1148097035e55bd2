"""Draw the comparison plots from the merged tables (rule `plot`): one L0 plot per eval type
(results/plot_l0.py) and the heat map of headline metrics (results/plot_heatmap.py).

Usage: python -m workflow_scripts.steps.plot --table merged/metrics.csv --ranks merged/ranking.csv \
           --versus merged/versus_baseline.csv --eval-types core sparse_probing --out-dir plots
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from workflow_scripts.plan.headlines import DEFAULT_THRESHOLD
from workflow_scripts.plan.outputs import HEATMAP, l0_plot_name
from workflow_scripts.results.plot_heatmap import plot_heatmap
from workflow_scripts.results.plot_l0 import plot_eval
from workflow_scripts.results.plot_style import Style


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
    parser.add_argument("--ranks", required=True, type=Path, help="ranking.csv (the order)")
    parser.add_argument("--versus", type=Path, help="versus_baseline.csv (verdicts)")
    parser.add_argument("--ranking", help="JSON list of ranking.metrics (default: registry's)")
    parser.add_argument("--reference", help="JSON list of the reference-frontier SAEs")
    args = parser.parse_args(argv)
    reference = json.loads(args.reference) if args.reference else None
    table = pd.read_csv(args.table)
    style_config = json.loads(args.style)
    threshold = args.threshold or style_config.get("headline_threshold", DEFAULT_THRESHOLD)
    style = Style(style_config, sorted(table["architecture"].astype(str).unique()))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for eval_type in args.eval_types:
        plot_eval(
            table, eval_type, style, args.out_dir / l0_plot_name(eval_type), threshold, reference
        )
    versus = pd.read_csv(args.versus) if args.versus else None
    plot_heatmap(
        table,
        pd.read_csv(args.ranks),
        args.eval_types,
        args.out_dir / HEATMAP,
        threshold,
        json.loads(args.ranking) if args.ranking else None,
        versus,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
