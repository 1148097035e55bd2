"""Merge the per-pair SAE Bench JSONs into one table: one row per variant.

Columns: variant, family, architecture, param_name, param, d_sae, hook, then every scalar metric as
`<eval_type>.<group>.<metric>`, read from SAE Bench's `eval_result_metrics` unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from numbers import Number
from pathlib import Path

import pandas as pd

ID_COLUMNS = ["variant", "family", "architecture", "param_name", "param", "d_sae", "hook"]


def scalar_metrics(eval_type: str, result: dict) -> dict[str, float]:
    """`<eval_type>.<group>.<metric>` -> value, for every scalar in eval_result_metrics."""
    flat = {}
    for group, metrics in result.get("eval_result_metrics", {}).items():
        for name, value in (metrics or {}).items():
            if isinstance(value, Number) and not isinstance(value, bool):
                flat[f"{eval_type}.{group}.{name}"] = float(value)
    return flat


def variant_row(variant: dict, sae_dir: Path) -> dict:
    sae_config = json.loads((Path(sae_dir) / "config.json").read_text())
    return {
        "variant": variant["id"],
        "family": variant["family"],
        "architecture": sae_config["architecture"],
        "param_name": variant.get("param_name"),
        "param": variant.get("param"),
        "d_sae": sae_config["d_sae"],
        "hook": sae_config["hook_name"],
    }


def merge(variants: list[dict], saes_dir: Path, evals_dir: Path, eval_types: list[str]) -> pd.DataFrame:
    rows = []
    for variant in variants:
        row = variant_row(variant, Path(saes_dir) / variant["id"])
        for eval_type in eval_types:
            path = Path(evals_dir) / eval_type / f"{variant['id']}.json"
            row.update(scalar_metrics(eval_type, json.loads(path.read_text())))
        rows.append(row)
    table = pd.DataFrame(rows)
    metric_columns = sorted(c for c in table.columns if c not in ID_COLUMNS)
    return table[ID_COLUMNS + metric_columns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", required=True, help="JSON list of variant-table rows")
    parser.add_argument("--eval-types", required=True, nargs="+")
    parser.add_argument("--saes-dir", required=True, type=Path)
    parser.add_argument("--evals-dir", required=True, type=Path)
    parser.add_argument("--csv", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    table = merge(json.loads(args.variants), args.saes_dir, args.evals_dir, args.eval_types)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False)
    if args.json:
        table.to_json(args.json, orient="records", indent=2)
    print(table.to_string(index=False, max_cols=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
