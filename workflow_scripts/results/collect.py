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
- links that give every main-seed pair JSON the file name SAE Bench itself would use.

The verdicts and the ranked summary are computed from these (ranking.py) and rendered apart
(render.py); steps/aggregate.py writes them all.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path

import pandas as pd

from workflow_scripts.plan.variants import IMPORTED_FAMILIES
from workflow_scripts.results import replicates

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
    # variant -> its core record's per-batch sums (core_batches), for core_noise.py
    core_batches: dict = field(default_factory=dict)
    # (eval_type, variant, baseline): a decoder-only eval's values of a derived variant, which
    # are its baseline's by construction (copied into `table`, never into `long`)
    shared: list[tuple[str, str, str]] = field(default_factory=list)


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
    decoder_only: list[str] | None = None,
) -> Merged:
    """One row per variant, metric columns the mean over seeds (see the module docstring).

    `replicated` eval types are read at `main_seed` and every `extra_seeds`, the others at
    `main_seed` only. A missing main-seed pair raises MissingPairError naming it, unless
    `allow_missing`: then its metrics are NaN, the `missing` column lists its eval types and
    `missing` holds the (eval_type, variant) pairs. A missing replicate is an error too, or with
    allow_missing listed in `missing_replicates` as (eval_type, variant, seed).

    `decoder_only` eval types read only the decoder, which a derived variant shares with its
    baseline: such a variant has no result of its own; its table values are its baseline's and
    it is listed in `shared`, while `long` (from which the noise and the verdicts are computed)
    holds each measured value once."""
    records_dir = Path(records_dir) if records_dir else Path(evals_dir).parent / "workflow_metrics"
    replicated = set(replicated or [])
    rows, long_rows, missing, missing_replicates, shared = [], [], [], [], []
    core_batches = {}
    for variant in variants:
        row = variant_row(variant, Path(saes_dir) / variant["id"])
        gaps = []
        for eval_type in eval_types:
            if eval_type in (decoder_only or []) and is_derived(variant):
                shared.append((eval_type, variant["id"], variant["baseline"]))
                continue
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
                if record and record.get("core_batches") and seed == main_seed:
                    core_batches[variant["id"]] = record["core_batches"]
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
    for row in rows:  # a shared value is missing where its baseline's is
        lost = [e for e, v, b in shared if v == row["variant"] and (e, b) in missing]
        row["missing"] = ";".join(filter(None, [row["missing"], *lost]))
    long = pd.DataFrame(long_rows, columns=replicates.LONG_COLUMNS)
    table = pd.DataFrame(rows)
    wide = _wide(long, replicated)
    table = table.merge(wide, how="left", left_on="variant", right_index=True)
    table = _share_values(table, shared)
    columns = ID_COLUMNS + ["missing"]
    metric_columns = sorted(c for c in table.columns if c not in columns)
    table = table[columns + metric_columns]
    return Merged(table, long, missing, missing_replicates, core_batches, shared)


def is_derived(variant: dict) -> bool:
    """A variant-table row (plan/variants.Variant as a dict) built from its baseline's decoder."""
    return variant["family"] not in IMPORTED_FAMILIES


def _share_values(table: pd.DataFrame, shared: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Each shared (eval_type, variant, baseline): the baseline's `<eval_type>.*` columns (means
    and interval columns) copied into the variant's row."""
    if not shared:
        return table
    table = table.set_index("variant", drop=False)
    for eval_type, variant, baseline in shared:
        columns = [c for c in table.columns if c.startswith(f"{eval_type}.")]
        if baseline in table.index and columns:
            table.loc[variant, columns] = table.loc[baseline, columns].to_numpy()
    return table.reset_index(drop=True)


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
            if field == "n":  # a count, also where a pair has no value (NaN would make it float)
                part = part.astype("Int64")
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
