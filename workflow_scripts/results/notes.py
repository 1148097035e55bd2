"""The notes of the summary: what each number means and how sure it is (render.py places them)."""

from __future__ import annotations

import pandas as pd

from workflow_scripts.evals.registry import REGISTRY
from workflow_scripts.plan.headlines import L0
from workflow_scripts.results import multiplicity
from workflow_scripts.results.formatting import MISSING, UNRANKED_MARK, format_value
from workflow_scripts.results.ranking import Results


def summary_notes(results: Results) -> list[str]:
    """The notes under the ranked table: seeds, what is measured once, the ranking rule, the
    family and its correction, the noise model and the detectable differences, reliability."""
    c = results.comparison
    notes = []
    replicated = [e for e in c.eval_types if REGISTRY[e].seed_dependent]
    fixed = [e for e in c.eval_types if not REGISTRY[e].seed_dependent]
    if c.replicated:
        notes.append(
            f"**Replicates**: seeds {', '.join(map(str, c.seeds))} (n = {len(c.seeds)}) for "
            f"{', '.join(replicated) or 'no eval type'}; values are mean ± half-width of the "
            "95% t-interval of the mean over seeds."
        )
    else:
        seed = c.seeds[0] if c.seeds else "the configured seed"
        notes.append(
            f"**One seed ({seed}): no noise estimate exists.** Seed-dependent metrics are single "
            "draws of SAE Bench's data split and probe training; a difference between two "
            "variants may be seed noise. Set `replicates.seeds: [42, 43, 44]` (or more) to run "
            "them once per seed and get 95% intervals, paired verdicts and a ranking that "
            "counts only differences outside noise. No seed-dependent value is bolded."
        )
    for e in fixed:
        notes.append(f"`{e}` is measured once: {REGISTRY[e].seed_note}.")
    ranked = [h.label for h in c.headlines if h.column in set(c.ranked_columns)]
    once = "" if c.replicated else " With one seed every win is by value: provisional."
    notes.append(
        f"**Ranking**: score = wins − losses against every other ranked variant, summed over "
        f"{', '.join(ranked) or 'no metric'} (`ranking.metrics`). A win is a paired difference "
        "outside noise (95% interval over common seeds excludes 0); on a metric measured once, "
        "a strictly better value at the shown precision (no noise estimate)." + once + " Equal "
        "scores share the rank; ties are ordered by lower L0, then id. Reference SAEs are "
        "listed apart and never move a rank. L0 is shown, not ranked: compare at equal L0 "
        "(the table above and the L0 plots)."
    )
    notes += family_notes(results)
    notes.append(
        "**Bold**: a column's best value, only where it is clear: outside noise of every other "
        "variant (replicated metrics) or strictly best at the shown precision (metrics "
        "measured once that do not depend on the seed)."
    )
    for h in c.headlines:
        if h.reliability:
            mark = (
                f" {UNRANKED_MARK} not ranked"
                if h.column not in set(c.ranked_columns) and h.column != L0
                else ""
            )
            notes.append(f"*{h.label}*{mark}: {h.reliability}.")
    if "core" in c.eval_types:
        notes.append(
            "*Explained variance* is the workflow's centered value, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² "
            "over core's tokens (`core.workflow_reconstruction.explained_variance_centered`). "
            "SAE Bench 0.6.0's `core.reconstruction_quality.explained_variance` divides by the "
            "variance about zero (a mean predictor scores near 1 when activations have a large "
            "mean) and `explained_variance_legacy` averages per-token ratios; both stay in "
            "metrics.csv under SAE Bench's names."
        )
    if {"scr", "tpp"} & set(c.eval_types):
        notes.append(
            f"SCR/TPP: score with the top {c.threshold} latents ablated "
            "(`visualization.headline_threshold`)."
        )
    if "core" not in c.eval_types:
        notes.append("The core eval is disabled: no L0 (sparsity) to compare at.")
    notes += shared_notes(results)
    if c.missing:
        pairs = ", ".join(f"{e}/{v}" for e, v in c.missing)
        notes.append(
            f"**Missing pairs** (allow_missing: true; shown as `{MISSING}`, their metrics left "
            f"out of that metric's wins and losses): {pairs}."
        )
    if c.missing_replicates:
        runs = ", ".join(f"{e}/seed_{s}/{v}" for e, v, s in c.missing_replicates)
        notes.append(
            f"**Missing replicates** (allow_missing: true; their seeds are left out of the "
            f"means, intervals and pairings): {runs}."
        )
    return notes


def versus_notes(results: Results) -> list[str]:
    notes = [
        "Δ = variant − its baseline on the same seeds (same data split and probe training), "
        "± half-width of its 95% interval; *better* / *worse* when the family's adjusted p (p) "
        "is below 0.05 in the metric's direction, *within noise* otherwise, *no noise "
        "estimate* without a test: fewer than two paired seeds, or a constant difference over "
        "two (metrics measured once: the difference is exact for those tokens, its sampling "
        "error unknown)."
    ]
    unpaired = results.versus
    unpaired = unpaired[unpaired.get("unpaired_seeds", pd.Series(dtype=str)).fillna("") != ""]
    for _, r in unpaired.iterrows():
        notes.append(
            f"{r['variant']} vs {r['baseline']}, {r['eval_type']}: seeds without a partner, "
            f"left out of the pairing: {r['unpaired_seeds']}."
        )
    return notes


def family_notes(results: Results) -> list[str]:
    """The family of claims, its correction, and the noise behind the tests."""
    c = results.comparison
    method = multiplicity.METHOD_NAMES[c.correction]
    notes = [
        f"**Claims**: {results.family_size} tests form the confirmatory family (every derived "
        "or comparison variant against its baseline and against the frontier, on the ranked "
        f"metrics), adjusted together with {method} (`statistics.correction`), so the chance "
        "of any false better/worse or above/below claim in this summary is at most 5%"
        + (" (per claim without correction)." if c.correction == "none" else ".")
        + " Reference SAEs and unranked metrics are descriptive: tested one at a time, "
        "never a claim."
    ]
    pooled = {col: m for col, m in results.models.items() if m.pooled}
    fallback = {col: m for col, m in results.models.items() if not m.pooled and m.reason}
    labels = {h.column: h.label for h in c.headlines}
    if pooled:
        notes.append(
            "**Noise**: seed noise estimated once per metric from all SAEs (two-way model value "
            "~ variant + seed): "
            + "; ".join(
                f"{labels.get(col, col)} sd {format_value(m.sigma)} with {m.df} df"
                for col, m in pooled.items()
            )
            + "."
        )
    for col, m in fallback.items():
        if c.replicated and c.seed_dependent(col):
            notes.append(f"*{labels.get(col, col)}*: per-pair paired t-tests ({m.reason}).")
    if results.detectable:
        parts = [
            f"{metric.column.split('.')[-1]}: Δ ≥ {format_value(d)} with {n} seeds"
            for metric, n, d in results.detectable
        ]
        notes.append(
            "**Detectable differences** (80% power at the family's strictest level, from this "
            "run's noise): " + "; ".join(parts) + "."
        )
    return notes


def shared_notes(results: Results) -> list[str]:
    """One note per decoder-only eval type whose values derived variants share."""
    c = results.comparison
    labels = {h.eval_type: h.label for h in c.headlines}
    notes = []
    for eval_type in dict.fromkeys(e for e, _, _ in c.shared):
        variants = [v for e, v, _ in c.shared if e == eval_type]
        notes.append(
            f"*{labels.get(eval_type, eval_type)}* (`{eval_type}`) reads only the decoder: "
            f"{', '.join(variants)} reuse their baseline's decoder, so each shows its "
            "baseline's value by construction (not evaluated again, no verdict against the "
            "baseline or the frontier)."
        )
    return notes
