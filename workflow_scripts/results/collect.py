"""Merge the per-pair SAE Bench JSONs into one table: one row per variant.

Every evaluation job left SAE Bench's JSON (`evals/<eval_type>[/seed_<seed>]/<variant>.json`) and
the workflow's record (`workflow_metrics/...`, same layout; for core the centered explained
variance and |code| > 0 density). Both are read into a long table, one row per
(variant, eval_type, metric, seed, value) (`metrics_long.csv`), and from it:

- `metrics.csv` / `.json`: one row per variant. Columns: variant, family, baseline (the one it
  is compared with), architecture, param_name, param, d_sae, hook, missing (eval types without
  a result, only with allow_missing), then every scalar metric as
  `<eval_type>.<group>.<metric>` (SAE Bench's names unchanged; the workflow's groups start with
  `workflow_`), holding the mean over seeds (the value itself with
  one seed). For replicated eval types each metric also has `<column>_std` (sample standard
  deviation), `<column>_n` (seeds), `<column>_ci_low` / `<column>_ci_high` (95% t-interval of the
  mean; see replicates.py).
- `versus_baseline.csv`: per variant and headline metric, the paired difference to its baseline
  with its 95% interval and verdict.
- the ranked summary (ranking.py), the run's configuration, and links that give every main-seed
  pair JSON the file name SAE Bench itself would use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from numbers import Number
from pathlib import Path

import pandas as pd
import yaml

from workflow_scripts.results import replicates
from workflow_scripts.results import ranking

ID_COLUMNS = [
    "variant",
    "family",
    "baseline",
    "architecture",
    "param_name",
    "param",
    "d_sae",
    "hook",
]


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
        # the baseline it is compared with; "baseline" for tables written before baseline_saes
        "baseline": variant.get("baseline") or "baseline",
        # a published SAE: the architecture SAE Lens loaded it as (gated, jumprelu, topk, ...)
        "architecture": sae_config.get("sae_lens_architecture", sae_config["architecture"]),
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


def run_folders(eval_type: str, main_seed: int, extra_seeds: list[int]) -> list[tuple[int, str]]:
    """(seed, folder under evals/ and workflow_metrics/) of every run of one eval type."""
    return [(main_seed, eval_type)] + [(s, f"{eval_type}/seed_{s}") for s in extra_seeds]


@dataclass
class Merged:
    """The merged results: `table` (one row per variant), `long` (one row per value and seed),
    and what is missing: main-seed pairs (eval_type, variant) and replicates (…, seed)."""

    table: pd.DataFrame
    long: pd.DataFrame
    missing: list[tuple[str, str]]
    missing_replicates: list[tuple[str, str, int]]


def merge(*args, **kwargs) -> pd.DataFrame:
    """`collect(...).table`, with the missing pairs and replicates in its `attrs`."""
    merged = collect(*args, **kwargs)
    merged.table.attrs.update(missing=merged.missing, missing_replicates=merged.missing_replicates)
    return merged.table


def collect(
    variants: list[dict],
    saes_dir: Path,
    evals_dir: Path,
    eval_types: list[str],
    allow_missing: bool = False,
    records_dir: Path | None = None,
    main_seed: int = 42,
    extra_seeds: list[int] | None = None,
    replicated: list[str] | None = None,
) -> Merged:
    """One row per variant, metric columns the mean over seeds (see the module docstring).

    `replicated` eval types are read at `main_seed` and every `extra_seeds`, the others at
    `main_seed` only. A missing main-seed pair raises MissingPairError naming it, unless
    `allow_missing`: then its metrics are NaN, the `missing` column lists its eval types and
    `missing` holds the (eval_type, variant) pairs. A missing replicate is an error too, or with
    allow_missing listed in `missing_replicates` as (eval_type, variant, seed)."""
    records_dir = Path(records_dir) if records_dir else Path(evals_dir).parent / "workflow_metrics"
    replicated = set(replicated or [])
    rows, long_rows, missing, missing_replicates = [], [], [], []
    for variant in variants:
        row = variant_row(variant, Path(saes_dir) / variant["id"])
        gaps = []
        for eval_type in eval_types:
            seeds = extra_seeds if eval_type in replicated else []
            for seed, folder in run_folders(eval_type, main_seed, seeds or []):
                path = Path(evals_dir) / folder / f"{variant['id']}.json"
                result = read_pair(path)
                if result is None:
                    if not allow_missing:
                        state = "has no metrics" if path.exists() else "is missing"
                        which = "" if seed == main_seed else f", seed {seed}"
                        raise MissingPairError(
                            f"pair ({eval_type}, {variant['id']}{which}): {path} {state}; "
                            f"rerun its job (logs/evaluate/{folder}/{variant['id']}.log has the "
                            "cause), or set allow_missing: true to aggregate without it"
                        )
                    if seed == main_seed:
                        gaps.append(eval_type)
                        missing.append((eval_type, variant["id"]))
                    else:
                        missing_replicates.append((eval_type, variant["id"], seed))
                    continue
                values = scalar_metrics(eval_type, result)
                record = read_record(records_dir / folder / f"{variant['id']}.json")
                values.update(scalar_metrics(eval_type, record or {}))
                long_rows += [
                    {
                        "variant": variant["id"],
                        "eval_type": eval_type,
                        "metric": column.split(".", 1)[1],
                        "seed": seed,
                        "value": value,
                    }
                    for column, value in values.items()
                ]
        row["missing"] = ";".join(gaps)
        rows.append(row)
    long = pd.DataFrame(long_rows, columns=replicates.LONG_COLUMNS)
    table = pd.DataFrame(rows)
    wide = _wide(long, replicated)
    table = table.merge(wide, how="left", left_on="variant", right_index=True)
    columns = ID_COLUMNS + ["missing"]
    metric_columns = sorted(c for c in table.columns if c not in columns)
    table = table[columns + metric_columns]
    return Merged(table, long, missing, missing_replicates)


def _wide(long: pd.DataFrame, replicated: set[str]) -> pd.DataFrame:
    """variant x `<eval_type>.<metric>` means, plus the interval columns of replicated types."""
    if long.empty:
        return pd.DataFrame(index=pd.Index([], name="variant"))
    stats = replicates.summarize(long)
    stats["column"] = stats["eval_type"] + "." + stats["metric"]
    wide = stats.pivot(index="variant", columns="column", values="mean")
    extra = stats[stats["eval_type"].isin(replicated)]
    if not extra.empty:
        for field in ("std", "n", "ci_low", "ci_high"):
            part = extra.pivot(index="variant", columns="column", values=field)
            wide = wide.join(part.add_suffix(f"_{field}"))
    wide.columns.name = None
    return wide


def read_record(path: Path) -> dict | None:
    """The workflow's record of one job (evaluate.write_workflow_record), or None."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


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


def comparison(merged: Merged, args) -> ranking.Comparison:
    """What the summary shows, from the merged results and the command line."""
    table = merged.table
    baseline_of = {
        row["variant"]: row["baseline"]
        for _, row in table.iterrows()
        if isinstance(row.get("baseline"), str) and row["baseline"] in set(table["variant"])
    }
    # a published SAE's hook point is known only once imported: pair it with the baseline on
    # the same hook point (the variant table names the first baseline), if there is one
    if "hook" in table and "family" in table:
        baseline_on = {}
        for _, row in table[table["family"] == "baseline"].iterrows():
            baseline_on.setdefault(row["hook"], row["variant"])
        for _, row in table[table["family"].isin(["comparison", "reference"])].iterrows():
            if row["hook"] in baseline_on:
                baseline_of[row["variant"]] = baseline_on[row["hook"]]
    return ranking.Comparison(
        table=table,
        headlines=ranking.headline_metrics(args.eval_types, args.threshold),
        eval_types=args.eval_types,
        threshold=args.threshold,
        long=merged.long,
        seeds=[args.main_seed, *args.extra_seeds],
        ranking=json.loads(args.ranking) if args.ranking else None,
        baseline_of=baseline_of,
        missing=merged.missing,
        missing_replicates=merged.missing_replicates,
        reference=[
            r
            for r in json.loads(getattr(args, "reference", None) or "[]")
            if r in set(table["variant"])
        ],
    )


def write_outputs(merged: Merged, args) -> None:
    headlines = ranking.headline_metrics(args.eval_types, args.threshold)
    table = ensure_columns(merged.table, [h.column for h in headlines])
    compared = comparison(merged, args)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv, index=False)
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=2))
    if args.long_csv:
        merged.long.to_csv(args.long_csv, index=False)
    if args.versus_csv:
        ranking.versus_baseline(compared).to_csv(args.versus_csv, index=False)
    if args.matched_csv:
        ranking.matched_l0(compared)[0].to_csv(args.matched_csv, index=False)
    if args.summary_md:
        args.summary_md.write_text(ranking.markdown(compared))
    if args.summary_rst or args.summary_html:
        text = ranking.rst(compared)
        if args.summary_rst:
            args.summary_rst.write_text(text)
        if args.summary_html:
            args.summary_html.write_text(ranking.html(text))
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
    parser.add_argument(
        "--records-dir",
        type=Path,
        help="the workflow's records of each job (default: <evals-dir>/../workflow_metrics)",
    )
    parser.add_argument("--main-seed", type=int, default=42, help="random_seed: the plain paths")
    parser.add_argument(
        "--extra-seeds",
        type=int,
        nargs="*",
        default=[],
        help="the other seeds of replicates.seeds (their runs are under seed_<seed>/)",
    )
    parser.add_argument("--replicated", nargs="*", default=[], help="eval types run once per seed")
    parser.add_argument("--ranking", help="JSON list of ranking.metrics (default: registry's)")
    parser.add_argument("--csv", required=True, type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--long-csv", type=Path, help="(variant, eval_type, metric, seed, value)")
    parser.add_argument("--versus-csv", type=Path, help="paired differences to the baseline")
    parser.add_argument(
        "--reference", help="JSON list of the reference-frontier SAEs (reference_frontier)"
    )
    parser.add_argument(
        "--matched-csv", type=Path, help="differences to the reference frontier at matched L0"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="mark a missing pair in the table instead of failing",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=ranking.DEFAULT_THRESHOLD,
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
        merged = collect(
            json.loads(args.variants),
            args.saes_dir,
            args.evals_dir,
            args.eval_types,
            allow_missing=args.allow_missing,
            records_dir=args.records_dir,
            main_seed=args.main_seed,
            extra_seeds=args.extra_seeds,
            replicated=args.replicated,
        )
    except MissingPairError as error:
        print(f"aggregate: {error}", file=sys.stderr)
        return 1
    headlines = ranking.headline_metrics(args.eval_types, args.threshold)
    problems = missing_headlines(merged.table, headlines)
    if problems:
        print("aggregate: " + "; ".join(problems), file=sys.stderr)
        return 1
    write_outputs(merged, args)
    print(merged.table.to_string(index=False, max_cols=12))
    if merged.missing:
        print("missing pairs (allow_missing): " + ", ".join(f"{e}/{v}" for e, v in merged.missing))
    if merged.missing_replicates:
        print(
            "missing replicates (allow_missing): "
            + ", ".join(f"{e}/seed_{s}/{v}" for e, v, s in merged.missing_replicates)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
