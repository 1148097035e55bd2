"""Merge every pair's results, compute the comparison once and write the tables and the summary
(rule `aggregate`).

Usage: python -m workflow_scripts.steps.aggregate --plan '<json>'

The plan (built by `aggregate_plan` in rules/common.smk) holds:
  variants      the variant table's rows; eval_types, replicated: the enabled / replicated types
  saes_dir, evals_dir, records_dir: where the SAE folders, SAE Bench JSONs and records are
  decoder_only: the enabled eval types that read only the decoder (derived variants share
  their baseline's values); main_seed, extra_seeds; allow_missing; threshold (SCR/TPP headline);
  ranking (ranking.metrics or null); reference (the reference-frontier SAE ids); correction,
  pooled_noise (the `statistics` section); config (the validated configuration)
  outputs       csv, json, long, versus, matched, ranks, summary_md, summary_rst, summary_html,
                config, saebench: the paths to write (any may be left out)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from workflow_scripts.plan.headlines import headline_metrics
from workflow_scripts.plan.variants import baseline_pairs
from workflow_scripts.results import collect, ranking, render


def comparison(merged: collect.Merged, plan: dict) -> ranking.Comparison:
    """What the summary shows, from the merged results and the plan."""
    table = merged.table
    rows = table[[c for c in ("variant", "family", "baseline", "hook") if c in table]]
    variants = set(table["variant"])
    return ranking.Comparison(
        table=table,
        headlines=headline_metrics(plan["eval_types"], plan["threshold"]),
        eval_types=plan["eval_types"],
        threshold=plan["threshold"],
        long=merged.long,
        seeds=[plan["main_seed"], *plan["extra_seeds"]],
        ranking=plan.get("ranking"),
        baseline_of=baseline_pairs(rows.to_dict("records")),
        missing=merged.missing,
        missing_replicates=merged.missing_replicates,
        reference=[r for r in plan.get("reference") or [] if r in variants],
        core_batches=merged.core_batches,
        correction=plan.get("correction", "holm"),
        pooled_noise=plan.get("pooled_noise", True),
        shared=merged.shared,
    )


def write_outputs(merged: collect.Merged, plan: dict) -> ranking.Results:
    out = {k: Path(v) for k, v in plan["outputs"].items() if v}
    headlines = headline_metrics(plan["eval_types"], plan["threshold"])
    table = collect.ensure_columns(merged.table, [h.column for h in headlines])
    results = ranking.compute(comparison(merged, plan))
    out["csv"].parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out["csv"], index=False)
    if "json" in out:
        out["json"].write_text(table.to_json(orient="records", indent=2))
    if "long" in out:
        merged.long.to_csv(out["long"], index=False)
    if "versus" in out:
        results.versus.to_csv(out["versus"], index=False)
    if "matched" in out:
        results.matched.to_csv(out["matched"], index=False)
    if "ranks" in out:
        results.ranks().to_csv(out["ranks"], index=False)
    if "summary_md" in out:
        out["summary_md"].write_text(render.markdown(results))
    if "summary_rst" in out or "summary_html" in out:
        text = render.rst(results)
        if "summary_rst" in out:
            out["summary_rst"].write_text(text)
        if "summary_html" in out:
            out["summary_html"].write_text(render.html(text))
    if "config" in out:
        out["config"].write_text(
            "# The validated configuration of this run (every default filled in)\n"
            + yaml.safe_dump(plan.get("config", {}), sort_keys=False)
        )
    if "saebench" in out:
        collect.link_saebench_names(table, plan["evals_dir"], out["saebench"], plan["eval_types"])
    return results


def run(plan: dict) -> int:
    try:
        merged = collect.collect(
            plan["variants"],
            plan["saes_dir"],
            plan["evals_dir"],
            plan["eval_types"],
            allow_missing=plan.get("allow_missing", False),
            records_dir=plan.get("records_dir"),
            main_seed=plan["main_seed"],
            extra_seeds=plan["extra_seeds"],
            replicated=plan["replicated"],
            decoder_only=plan.get("decoder_only"),
        )
    except collect.MissingPairError as error:
        print(f"aggregate: {error}", file=sys.stderr)
        return 1
    headlines = headline_metrics(plan["eval_types"], plan["threshold"])
    problems = collect.missing_headlines(merged.table, headlines)
    if problems:
        print("aggregate: " + "; ".join(problems), file=sys.stderr)
        return 1
    write_outputs(merged, plan)
    print(merged.table.to_string(index=False, max_cols=12))
    if merged.missing:
        print("missing pairs (allow_missing): " + ", ".join(f"{e}/{v}" for e, v in merged.missing))
    if merged.missing_replicates:
        print(
            "missing replicates (allow_missing): "
            + ", ".join(f"{e}/seed_{s}/{v}" for e, v, s in merged.missing_replicates)
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="JSON built by the aggregate rule")
    args = parser.parse_args(argv)
    return run(json.loads(args.plan))


if __name__ == "__main__":
    sys.exit(main())
