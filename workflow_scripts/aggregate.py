"""Merge the per-pair SAE Bench JSONs into one table: one row per variant.

Columns: variant, family, architecture, param_name, param, d_sae, hook, missing (eval types without
a result, only with allow_missing), then every scalar metric as `<eval_type>.<group>.<metric>`, read
from SAE Bench's `eval_result_metrics` unchanged. Also writes the ranked summary of the headline
metrics (workflow_scripts/summary.py), the run's configuration, and links that give every pair
JSON the file name SAE Bench itself would use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from numbers import Number
from pathlib import Path

import pandas as pd
import yaml

from workflow_scripts import summary

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


class MissingPairError(FileNotFoundError):
    """A (variant, eval type) pair has no usable result and the config does not allow gaps."""


def read_pair(path: Path) -> dict | None:
    """SAE Bench's result JSON, or None if it is absent, unreadable or has no metrics."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("eval_result_metrics") else None


def merge(
    variants: list[dict],
    saes_dir: Path,
    evals_dir: Path,
    eval_types: list[str],
    allow_missing: bool = False,
) -> pd.DataFrame:
    """One row per variant. A missing pair raises MissingPairError naming it, unless
    `allow_missing`: then its metrics are NaN, the `missing` column lists its eval types and
    `table.attrs["missing"]` holds the (eval_type, variant) pairs."""
    rows, missing = [], []
    for variant in variants:
        row = variant_row(variant, Path(saes_dir) / variant["id"])
        gaps = []
        for eval_type in eval_types:
            path = Path(evals_dir) / eval_type / f"{variant['id']}.json"
            result = read_pair(path)
            if result is None:
                if not allow_missing:
                    state = "has no metrics" if path.exists() else "is missing"
                    raise MissingPairError(
                        f"pair ({eval_type}, {variant['id']}): {path} {state}; rerun its job "
                        f"(logs/evaluate/{eval_type}/{variant['id']}.log has the cause), or set "
                        "allow_missing: true to aggregate without it"
                    )
                gaps.append(eval_type)
                missing.append((eval_type, variant["id"]))
                continue
            row.update(scalar_metrics(eval_type, result))
        row["missing"] = ";".join(gaps)
        rows.append(row)
    table = pd.DataFrame(rows)
    columns = ID_COLUMNS + ["missing"]
    metric_columns = sorted(c for c in table.columns if c not in columns)
    table = table[columns + metric_columns]
    table.attrs["missing"] = missing
    return table


def missing_headlines(table: pd.DataFrame, headlines) -> list[str]:
    """Problems: headline metrics absent from an eval type's results although it has results
    (e.g. an SCR/TPP headline threshold that is not one of the eval's n_values)."""
    problems = []
    for h in headlines:
        if h.column in table or not any(c.startswith(f"{h.eval_type}.") for c in table.columns):
            continue
        group = h.key.split(".")[0]
        known = sorted(
            c.split(".", 2)[2] for c in table.columns if c.startswith(f"{h.eval_type}.{group}.")
        )
        hint = (
            " (visualization.headline_threshold must be one of the eval's n_values)"
            if "threshold_" in h.key
            else ""
        )
        problems.append(
            f"headline metric {h.column} is not in SAE Bench's {h.eval_type} results{hint}; "
            f"{group} has: {', '.join(known[:12]) or 'nothing'}"
        )
    return problems


def ensure_columns(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Headline columns of an eval type that no variant has (all pairs missing), as NaN."""
    for column in columns:
        if column not in table:
            table[column] = float("nan")
    return table


def link_saebench_names(
    table: pd.DataFrame, evals_dir: Path, out_dir: Path, eval_types: list[str]
) -> list[Path]:
    """`out_dir/<eval_type>/<variant>_custom_sae_eval_results.json`, relative links to the pair
    JSONs: the names SAE Bench itself gives custom SAEs' results, for its tools that find files by
    name (graphing_utils.find_eval_results_files). Links to pairs no longer configured go."""
    made = []
    for eval_type in eval_types:
        folder = Path(out_dir) / eval_type
        folder.mkdir(parents=True, exist_ok=True)
        wanted = set()
        for variant in table["variant"]:
            target = Path(evals_dir) / eval_type / f"{variant}.json"
            if not target.is_file():
                continue
            link = folder / f"{variant}_custom_sae_eval_results.json"
            wanted.add(link.name)
            if link.is_symlink() or link.exists():
                link.unlink()
            try:
                link.symlink_to(os.path.relpath(target, folder))
            except OSError:  # a filesystem without links: a copy
                shutil.copyfile(target, link)
            made.append(link)
        for stale in folder.glob("*_eval_results.json"):
            if stale.name not in wanted:
                stale.unlink()
    return made


def write_outputs(table: pd.DataFrame, args) -> None:
    missing = table.attrs.get("missing", [])
    headlines = summary.headline_metrics(args.eval_types, args.threshold)
    table = ensure_columns(table, [h.column for h in headlines])
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False)
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=2))
    if args.summary_md:
        args.summary_md.write_text(
            summary.markdown(table, headlines, missing, args.threshold, args.eval_types)
        )
    if args.summary_rst or args.summary_html:
        text = summary.rst(table, headlines, missing, args.threshold, args.eval_types)
        if args.summary_rst:
            args.summary_rst.write_text(text)
        if args.summary_html:
            args.summary_html.write_text(summary.html(text))
    if args.config_dump:
        args.config_dump.write_text(
            "# The validated configuration of this run (every default filled in)\n"
            + yaml.safe_dump(json.loads(args.config), sort_keys=False)
        )
    if args.saebench_dir:
        link_saebench_names(table, args.evals_dir, args.saebench_dir, args.eval_types)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", required=True, help="JSON list of variant-table rows")
    parser.add_argument("--eval-types", required=True, nargs="+")
    parser.add_argument("--saes-dir", required=True, type=Path)
    parser.add_argument("--evals-dir", required=True, type=Path)
    parser.add_argument("--csv", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="mark a missing pair in the table instead of failing",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=summary.DEFAULT_THRESHOLD,
        help="SCR/TPP headline: number of ablated latents",
    )
    parser.add_argument("--summary-md", type=Path)
    parser.add_argument("--summary-rst", type=Path)
    parser.add_argument("--summary-html", type=Path)
    parser.add_argument("--config", default="{}", help="JSON of the run's configuration")
    parser.add_argument("--config-dump", type=Path, help="write --config here as YAML")
    parser.add_argument(
        "--saebench-dir", type=Path, help="folder for links under SAE Bench's own file names"
    )
    args = parser.parse_args(argv)
    try:
        table = merge(
            json.loads(args.variants),
            args.saes_dir,
            args.evals_dir,
            args.eval_types,
            allow_missing=args.allow_missing,
        )
    except MissingPairError as error:
        print(f"aggregate: {error}", file=sys.stderr)
        return 1
    problems = missing_headlines(table, summary.headline_metrics(args.eval_types, args.threshold))
    if problems:
        print("aggregate: " + "; ".join(problems), file=sys.stderr)
        return 1
    write_outputs(table, args)
    print(table.to_string(index=False, max_cols=12))
    if table.attrs["missing"]:
        print(
            "missing pairs (allow_missing): "
            + ", ".join(f"{e}/{v}" for e, v in table.attrs["missing"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
