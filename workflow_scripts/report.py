"""What the end of the workflow collects and how the Snakemake report presents it.

Helpers for rules/aggregate.smk (kept here so the rule file holds only rules): which pair JSONs
the aggregation waits for, and which caption (rules/report/*.rst) each plot gets.
"""

from __future__ import annotations

from pathlib import Path

CAPTIONS = Path(__file__).resolve().parent.parent / "rules" / "report"
EVAL_LOG = "logs/evaluate/{eval_type}/{variant}.log"  # the evaluate rule's log


def aggregate_inputs(out: str, eval_types: list[str], variants, allow_missing: bool) -> list[str]:
    """Every pair's JSON. With allow_missing, less the pairs whose job already ran and failed (its
    log exists, its JSON does not), so the comparison is made with what exists; a pair that never
    ran is still waited for. Rerun a skipped pair by asking for its JSON."""
    pairs = [(e, v) for e in eval_types for v in variants]
    paths = [f"{out}/evals/{e}/{v}.json" for e, v in pairs]
    if not allow_missing:
        return paths
    return [p for (e, v), p in zip(pairs, paths)
            if Path(p).exists() or not Path(EVAL_LOG.format(eval_type=e, variant=v)).exists()]


def l0_caption(eval_type: str) -> str:
    """report/l0_vs_<eval_type>.rst (relative to rules/), or the generic one."""
    own = CAPTIONS / f"l0_vs_{eval_type}.rst"
    return f"report/{own.name}" if own.exists() else "report/l0_vs_eval.rst"
