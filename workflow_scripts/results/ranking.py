"""Compute once what the summary, the tables and the plots show: the ranked variants, each
variant against its baseline (paired by seed) and against the reference frontier at its own L0,
and which values are clearly best. `render.py` only formats what `compute` returns.

Headline metrics are the registry's (`evals.registry.REGISTRY[...].headline`, see headlines.py)
of the enabled eval types; SCR/TPP at N = `visualization.headline_threshold` ablated latents.

The summary claims only what the data supports:

- **Values**: the mean over seeds ± the half-width of its 95% t-interval (replicates.py) when the
  eval type was replicated; the single value otherwise.
- **Ranking** over the ranking metrics (`ranking.metrics`; by default every headline metric but
  L0 and those the registry marks unreliable, i.e. SCR and TPP). On a replicated metric a
  variant's rank is 1 + the number of variants that beat it outside noise (paired 95% interval of
  the difference excludes 0), so variants within noise of each other share a rank; on a metric
  measured once (core, deterministic for its fixed tokens; or any metric of a one-seed run) the
  rank is by value, ties sharing the better rank. A variant's score is the mean of its ranks over
  the metrics it has; equal scores share the displayed rank; the order breaks ties by lower L0,
  then variant id. L0 is shown, not ranked: sparsity is a design choice.
- **Bold** marks a column's best value only when it is clear: on a replicated metric the best
  variant beats every other one outside noise; on a deterministic metric (core) it is the
  strictly best value at the shown precision. With one seed, seed-dependent metrics are never
  bolded: no noise estimate exists.
- **Versus baseline**: per variant and headline metric (L0 excepted), the paired difference to
  its baseline (same seed = same data split), ± its 95% half-width, and the verdict.
- **Matched L0**: each non-reference variant against the reference frontier at its L0
  (frontier.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from workflow_scripts.evals.registry import REGISTRY
from workflow_scripts.plan.headlines import (
    DEFAULT_THRESHOLD,
    L0,
    Headline,
    headline_metrics,
    ranking_columns,
)
from workflow_scripts.results import frontier, replicates
from workflow_scripts.results.formatting import format_value

__all__ = ["DEFAULT_THRESHOLD", "L0", "Comparison", "Results", "compute", "headline_metrics"]


@dataclass
class Comparison:
    """Everything the summary shows. `table`: one row per variant, metric columns the means over
    seeds (aggregate.merge); `long`: (variant, eval_type, metric, seed, value) rows, None when
    only the table is known (then every metric counts as measured once)."""

    table: pd.DataFrame
    headlines: list[Headline]
    eval_types: list[str]
    threshold: int = DEFAULT_THRESHOLD
    long: pd.DataFrame | None = None
    seeds: list[int] = field(default_factory=list)
    ranking: list[str] | None = None  # config key ranking.metrics
    baseline_of: dict[str, str] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)
    missing_replicates: list[tuple[str, str, int]] = field(default_factory=list)
    # ids of the reference-frontier SAEs (config key reference_frontier); empty: no frontier
    reference: list[str] = field(default_factory=list)

    @property
    def ranked_columns(self) -> list[str]:
        return ranking_columns(self.headlines, self.ranking)

    @property
    def replicated(self) -> bool:
        return len(self.seeds) > 1

    def by_seed(self, column: str) -> pd.DataFrame | None:
        """seeds x variants values of one column, or None when it was measured once."""
        if self.long is None or self.long.empty:
            return None
        eval_type, metric = column.split(".", 1)
        rows = self.long[(self.long["eval_type"] == eval_type) & (self.long["metric"] == metric)]
        if rows.empty or rows.groupby("variant")["seed"].nunique().max() < 2:
            return None
        wide = rows.pivot_table(index="seed", columns="variant", values="value", aggfunc="first")
        return wide.reindex(columns=list(self.table["variant"]))

    def seed_dependent(self, column: str) -> bool:
        return REGISTRY[column.split(".", 1)[0]].seed_dependent


def rank_variants(
    table: pd.DataFrame,
    headlines: list[Headline],
    comparison: Comparison | None = None,
) -> pd.DataFrame:
    """`table` sorted by the ranking rule, with `mean_rank` and `rank` (1 = best) columns."""
    comparison = comparison or Comparison(
        table, headlines, sorted({h.eval_type for h in headlines})
    )
    ranked = table.copy()
    by_column = {h.column: h for h in headlines}
    ranks = pd.DataFrame(index=ranked.index)
    for column in comparison.ranked_columns:
        if column not in ranked or column not in by_column:
            continue
        h = by_column[column]
        values = pd.to_numeric(ranked[column], errors="coerce")
        seeds = comparison.by_seed(column)
        if seeds is not None:  # replicated: count only wins outside noise
            beaten_by = replicates.clear_wins(seeds, h.higher_is_better)
            ranks[column] = [
                1.0 + beaten_by[v] if not pd.isna(x) else math.nan
                for v, x in zip(ranked["variant"], values)
            ]
        else:
            ranks[column] = values.rank(ascending=not h.higher_is_better, method="min")
    ranked["mean_rank"] = ranks.mean(axis=1, skipna=True) if len(ranks.columns) else math.nan
    l0 = (
        pd.to_numeric(ranked[L0], errors="coerce")
        if L0 in ranked
        else pd.Series(math.nan, ranked.index)
    )
    order = sorted(
        ranked.index,
        key=lambda i: (
            _last_if_nan(ranked.at[i, "mean_rank"]),
            _last_if_nan(l0[i]),
            str(ranked.at[i, "variant"]),
        ),
    )
    ranked = ranked.loc[order].reset_index(drop=True)
    shared = ranked["mean_rank"].rank(method="min", na_option="bottom").astype(int)
    ranked.insert(0, "rank", shared)
    return ranked


def _last_if_nan(value) -> float:
    return math.inf if value is None or pd.isna(value) else float(value)


def _clear_best(comparison: Comparison, ranked: pd.DataFrame, h: Headline) -> set[str]:
    """The variants whose value of `h` is bold (see the module docstring)."""
    if h.column == L0 or h.column not in ranked:
        return set()
    values = pd.to_numeric(ranked[h.column], errors="coerce")
    values.index = ranked["variant"]
    values = values.dropna()
    if values.empty:
        return set()
    seeds = comparison.by_seed(h.column)
    if seeds is not None:
        beats = replicates.pairwise_beats(seeds[values.index], h.higher_is_better)
        return {v for v in values.index if beats.loc[v].sum() == len(values) - 1}
    if comparison.seed_dependent(h.column) or len(values) < 2:
        return set()  # one seed: no noise estimate, nothing is clearly best
    ordered = values.sort_values(ascending=not h.higher_is_better)
    # strictly best, and visibly so: a lead that vanishes at the shown precision is no lead
    lead = format_value(ordered.iloc[0]) != format_value(ordered.iloc[1])
    return {ordered.index[0]} if lead else set()


def versus_baseline(comparison: Comparison) -> pd.DataFrame:
    """replicates.versus_baseline over the headline metrics (L0 excepted)."""
    if comparison.long is None or not comparison.baseline_of:
        return pd.DataFrame(columns=["variant", "baseline", "eval_type", "metric", "verdict"])
    metrics = [
        (h.eval_type, h.key, h.higher_is_better) for h in comparison.headlines if h.column != L0
    ]
    return replicates.versus_baseline(comparison.long, comparison.baseline_of, metrics)


def matched_l0(comparison: Comparison) -> tuple[pd.DataFrame, list[str]]:
    """Every non-reference variant against the reference frontier at its own L0 (frontier.py),
    per headline metric but L0; and notes on frontiers that could not be built."""
    if not comparison.reference or comparison.long is None:
        return pd.DataFrame(columns=frontier.COLUMNS), []
    metrics = [
        (h.eval_type, h.key, h.higher_is_better) for h in comparison.headlines if h.column != L0
    ]
    return frontier.matched_table(comparison.table, comparison.long, metrics, comparison.reference)


@dataclass(frozen=True)
class Results:
    """What a run's comparison shows, computed once: `ranked` (rank_variants), `versus`
    (versus_baseline.csv), `matched` (matched_l0.csv) and the frontiers that could not be built,
    `bold` (per headline column, the variants whose value is clearly best)."""

    comparison: Comparison
    ranked: pd.DataFrame
    versus: pd.DataFrame
    matched: pd.DataFrame
    matched_problems: tuple[str, ...]
    bold: dict[str, frozenset[str]]

    def ranks(self) -> pd.DataFrame:
        """rank, variant, mean_rank: what ranking.csv holds (the plots read it)."""
        return self.ranked[["rank", "variant", "mean_rank"]]


def compute(comparison: Comparison) -> Results:
    ranked = rank_variants(comparison.table, comparison.headlines, comparison)
    matched, problems = matched_l0(comparison)
    bold = {h.column: frozenset(_clear_best(comparison, ranked, h)) for h in comparison.headlines}
    return Results(comparison, ranked, versus_baseline(comparison), matched, tuple(problems), bold)
