"""Compute once what the summary, the tables and the plots show: the ranked variants, each
variant against its baseline (paired by seed) and against the reference frontier at its own L0,
and which values are clearly best. `render.py` only formats what `compute` returns.

Headline metrics are the registry's (`evals.registry.REGISTRY[...].headline`, see headlines.py)
of the enabled eval types; SCR/TPP at N = `visualization.headline_threshold` ablated latents.

The summary claims only what the data supports:

- **Values**: the mean over seeds ± the half-width of its 95% t-interval (replicates.py) when the
  eval type was replicated; the single value otherwise.
- **Ranking**: a Copeland score over the ranking metrics (`ranking.metrics`; by default every
  headline metric but L0 and those the registry marks unreliable, i.e. SCR and TPP). On each
  metric, every pair of ranked variants is compared: a *win* is a paired difference outside noise
  (its 95% interval over common seeds excludes 0; a constant difference needs three seeds); on a
  core metric with per-batch records, the paired bootstrap's 95% interval over batches excludes 0
  (core_noise.py); on a metric measured once without a noise estimate (a one-seed run, or old
  core records) a strictly better value at the shown precision counts, provisionally. A
  variant's score is its wins minus its losses, summed over the metrics: one scale for every
  metric, so a dense SAE's
  reconstruction lead counts as one win per rival, like a probe lead, and a noisy variant that
  nobody can beat outside noise beats nobody either (score near 0, not first). Equal scores share
  the rank; the order breaks ties by lower L0, then variant id. The baselines, derived and
  comparison variants are ranked among themselves; the reference SAEs (the frontier's points)
  are listed apart, so adding references never moves a variant. L0 is shown, not ranked.
- **Bold** marks a column's best value only when it is clear: on a replicated metric the best
  variant beats every other one outside noise; on a deterministic metric (core) it is the
  strictly best value at the shown precision. With one seed, seed-dependent metrics are never
  bolded: no noise estimate exists.
- **Verdicts** (verdicts.py): each variant against its baseline (paired by seed) and against the
  reference frontier at its L0, tested as one family with the run's correction
  (`statistics.correction`, multiplicity.py).
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
from workflow_scripts.results import multiplicity, replicates, significance, verdicts
from workflow_scripts.results.formatting import format_value

__all__ = ["DEFAULT_THRESHOLD", "L0", "Comparison", "Results", "compute", "headline_metrics"]

REFERENCE = "reference"  # the variant-table family of reference-frontier SAEs: listed apart


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
    # variant -> its core record's per-batch sums: a noise estimate for core (core_noise.py)
    core_batches: dict = field(default_factory=dict)
    correction: str = "holm"  # statistics.correction
    pooled_noise: bool = True  # statistics.pooled_noise
    # (eval_type, variant, baseline): a decoder-only eval's value that a derived variant shares
    # with its baseline by construction (collect.Merged.shared): no verdict against it
    shared: list[tuple[str, str, str]] = field(default_factory=list)

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
        for shared_type, variant, baseline in self.shared:
            if shared_type == eval_type and baseline in wide:
                wide[variant] = wide[baseline]  # the same decoder: the same values
        return wide.reindex(columns=list(self.table["variant"]))

    def seed_dependent(self, column: str) -> bool:
        return REGISTRY[column.split(".", 1)[0]].seed_dependent

    def families(self) -> dict[str, str]:
        """variant id -> its variant-table family (baseline, reference, comparison, ihtp, ...)."""
        if "family" not in self.table:
            return {}
        return dict(zip(self.table["variant"], self.table["family"].astype(str)))

    def metrics(self) -> list[verdicts.Metric]:
        """The headline metrics that get verdicts (all but L0)."""
        return [
            verdicts.Metric(h.eval_type, h.key, h.higher_is_better)
            for h in self.headlines
            if h.column != L0
        ]


def ranked_set(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that are ranked: every variant but the reference SAEs."""
    if "family" not in table:
        return table
    return table[table["family"].astype(str) != REFERENCE]


def pairwise_wins(comparison: Comparison, column: str, h: Headline, values: pd.Series):
    """wins.loc[a, b]: a beats b on `column` (see the module docstring); `values` indexed by
    variant, NaN dropped."""
    seeds = comparison.by_seed(column)
    if seeds is not None:
        return replicates.pairwise_beats(seeds[values.index], h.higher_is_better)
    if verdicts.core_metric(column) and verdicts.enough_batches(
        comparison.core_batches, values.index
    ):
        return verdicts.bootstrap_wins(column, comparison.core_batches, values.index, h)
    shown = {v: format_value(x) for v, x in values.items()}
    sign = 1.0 if h.higher_is_better else -1.0
    wins = pd.DataFrame(
        [
            [shown[a] != shown[b] and sign * (values[a] - values[b]) > 0 for b in values.index]
            for a in values.index
        ],
        index=values.index,
        columns=values.index,
    )
    return wins


def rank_variants(
    table: pd.DataFrame,
    headlines: list[Headline],
    comparison: Comparison | None = None,
) -> pd.DataFrame:
    """The ranked set of `table` (references left out) sorted by the ranking rule, with `score`
    (Copeland: wins − losses over the ranking metrics) and `rank` (1 = best) columns."""
    comparison = comparison or Comparison(
        table, headlines, sorted({h.eval_type for h in headlines})
    )
    ranked = ranked_set(table).copy()
    by_column = {h.column: h for h in headlines}
    score = pd.Series(0.0, index=ranked["variant"])
    scored = pd.Series(False, index=ranked["variant"])
    for column in comparison.ranked_columns:
        if column not in ranked or column not in by_column:
            continue
        values = pd.to_numeric(ranked[column], errors="coerce")
        values.index = ranked["variant"]
        values = values.dropna()
        if values.empty:
            continue
        wins = pairwise_wins(comparison, column, by_column[column], values)
        score[values.index] += wins.sum(axis=1) - wins.sum(axis=0)
        scored[values.index] = True
    ranked["score"] = [score[v] if scored[v] else math.nan for v in ranked["variant"]]
    l0 = (
        pd.to_numeric(ranked[L0], errors="coerce")
        if L0 in ranked
        else pd.Series(math.nan, ranked.index)
    )
    order = sorted(
        ranked.index,
        key=lambda i: (
            _last_if_nan(-ranked.at[i, "score"]),
            _last_if_nan(l0[i]),
            str(ranked.at[i, "variant"]),
        ),
    )
    ranked = ranked.loc[order].reset_index(drop=True)
    shared = (-ranked["score"]).rank(method="min", na_option="bottom").astype(int)
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


@dataclass(frozen=True)
class Results:
    """What a run's comparison shows, computed once: `ranked` (rank_variants), `references` (the
    reference SAEs, listed apart), `versus` (versus_baseline.csv), `matched` (matched_l0.csv) and
    the frontiers that could not be built, `bold` (per headline column, the variants whose value
    is clearly best), the noise `models` per metric, the confirmatory `family_size` and the
    smallest differences the seeds can detect (`detectable`)."""

    comparison: Comparison
    ranked: pd.DataFrame
    references: pd.DataFrame
    versus: pd.DataFrame
    matched: pd.DataFrame
    matched_problems: tuple[str, ...]
    bold: dict[str, frozenset[str]]
    models: dict[str, significance.NoiseModel]
    family_size: int
    detectable: list

    def ranks(self) -> pd.DataFrame:
        """rank, variant, score: what ranking.csv holds (the plots read it); the reference
        SAEs follow without a rank."""
        refs = self.references[["variant"]].assign(rank=pd.NA, score=math.nan)
        return pd.concat(
            [self.ranked[["rank", "variant", "score"]], refs[["rank", "variant", "score"]]],
            ignore_index=True,
        )


def compute(comparison: Comparison) -> Results:
    c = comparison
    ranked = rank_variants(c.table, c.headlines, c)
    references = c.table[~c.table["variant"].isin(ranked["variant"])]
    bold = {h.column: frozenset(_clear_best(c, ranked, h)) for h in c.headlines}
    settings = verdicts.Settings(c.correction, c.pooled_noise, c.families(), c.ranked_columns)
    metrics = c.metrics()
    models, versus = {}, pd.DataFrame(columns=verdicts.VERSUS_COLUMNS + ["_better"])
    matched, problems = pd.DataFrame(columns=[*verdicts.frontier.COLUMNS, "family"]), []
    if c.long is not None:
        models = verdicts.noise_models(c.long, metrics, list(c.table["variant"]), c.pooled_noise)
        if c.baseline_of:
            versus = verdicts.versus_baseline(
                c.long, c.baseline_of, metrics, settings, models, {(e, v) for e, v, _ in c.shared}
            )
            versus = verdicts.core_versus(versus, c.core_batches)
        if c.reference:
            matched, problems = verdicts.matched_l0(c.table, c.long, metrics, c.reference, settings)
            matched = verdicts.core_matched(matched, c.table, c.core_batches)
    versus, matched = verdicts.finish(versus, matched, c.correction)
    size = multiplicity.family_size([versus, matched])
    alpha_family = size if c.correction != "none" else 1
    detectable = verdicts.detectable(models, metrics, len(c.table), c.seeds, alpha_family)
    return Results(
        c, ranked, references, versus, matched, tuple(problems), bold, models, size, detectable
    )
