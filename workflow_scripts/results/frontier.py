"""Verdicts at equal sparsity: each variant against the reference frontier at its own L0.

Why: a variant that spends more active latents per token than its baseline reconstructs better
for that reason alone, so "better than the baseline point" says nothing about the encoder. The
field compares SAEs at equal L0 (SAE Bench's plots, Pareto frontiers); here the comparison is
made against the best a reference sweep reaches at the variant's own L0.

The reference frontier of one headline metric is built from the reference SAEs (the baselines of
a sweep, published SAEs of the same architecture, or local sweep checkpoints; config key
`reference_frontier`) on one hook point:

- its points are a monotone fit of the reference values in L0 order: the isotonic regression
  (`scipy.optimize.isotonic_regression`, least squares under "a denser SAE is never worse"; values
  at equal L0 averaged first, weighted by their count); at an L0 between two reference L0 values
  it is interpolated linearly in log L0, and it is flat wherever the fit is (a sparser SAE is
  always admissible);
- why a fit and not the upper envelope of the points (the Pareto points): each reference value is
  one noisy draw, and the envelope keeps the points that noise lifted and drops those it lowered,
  so it sits above the true curve, and more so with more seeds (simulated: a variant exactly on
  the true curve read "below" in 6.8% of runs at 3 seeds and 14.4% at 5, against 2.5% nominal).
  The isotonic fit is the least-squares monotone curve through the points: unbiased where the
  truth is strictly monotone, and it removed that bias in the same simulation
  (tests/unit/test_frontier_bias.py);
- why log L0: across the sweeps SAE Bench publishes, reconstruction and probing metrics change
  roughly linearly in log L0 (its plots use a log L0 axis); linear in L0 would bend the frontier
  between widely spaced sweep points (L0 20 and 200) and flatter-than-real segments would make
  variants look better;
- its range is [sparsest, densest reference SAE]; a variant outside it gets "outside the
  reference range", never an extrapolated verdict; a frontier needs two distinct L0 values, and
  one point refuses (`FrontierError`).

Matched difference = variant's value − frontier at the variant's L0, signed so that positive is
better (for a lower-is-better metric the sign is flipped). With replicates it is computed per
seed, against the frontier fitted to that seed's values of the reference SAEs (L0 comes from
core, which does not depend on the seed), so the references' seed noise is in the differences;
the 95% Student-t interval and the t-test over seeds (significance.one_sample) give its p-value,
which the run's family adjusts (multiplicity.py). The reported `value` and `frontier_value` are
means over the seeds the difference uses, so sign · (value − frontier_value) = difference; the
variant's seeds without a frontier, and the references' seeds the variant lacks, are named in
`unpaired_seeds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import isotonic_regression

from workflow_scripts.results import replicates, significance

ABOVE = "above the frontier"
BELOW = "below the frontier"
WITHIN = "within noise"
OUTSIDE = "outside the reference range"
ON = "on the frontier"
NO_SEEDS = "no seed with a frontier at this L0 in common with the reference SAEs"
NO_L0 = "no L0 (no core result)"
NO_ESTIMATE_SUFFIX = " (measured once: no noise estimate)"
COLUMNS = [
    "variant",
    "hook",
    "eval_type",
    "metric",
    "l0",
    "frontier_l0_low",
    "frontier_l0_high",
    "frontier_value",
    "value",
    "difference",
    "ci_low",
    "ci_high",
    "n",
    "p_value",
    "method",
    "seeds",
    "unpaired_seeds",
    "verdict",
    "reference",
]


class FrontierError(ValueError):
    """A set of reference points that does not make a frontier (fewer than two L0 values)."""


@dataclass(frozen=True)
class Frontier:
    """The best value of one metric reachable at each L0 in [l0_low, l0_high].

    points_l0 / points_value: the fitted frontier at the distinct reference L0 values, L0
    ascending, values non-decreasing. Values are stored signed so that higher is better (`sign` =
    -1 for lower-is-better metrics).
    """

    points_l0: np.ndarray
    points_value: np.ndarray
    l0_low: float
    l0_high: float
    sign: float

    @classmethod
    def from_points(cls, l0, values, higher_is_better: bool = True, names=None) -> Frontier:
        """Frontier of reference points (L0 > 0, metric value); NaN points are left out.

        Raises FrontierError when fewer than two distinct L0 values remain: one point has no
        neighbour to interpolate with, and a verdict against it would be an extrapolation.
        """
        l0 = np.asarray(l0, dtype="float64")
        values = np.asarray(values, dtype="float64")
        keep = ~(np.isnan(l0) | np.isnan(values)) & (l0 > 0)
        l0, values = l0[keep], values[keep]
        distinct, where, counts = np.unique(l0, return_inverse=True, return_counts=True)
        if len(distinct) < 2:
            listed = ", ".join(names) if names is not None else f"{len(l0)} point(s)"
            raise FrontierError(
                f"a reference frontier needs reference SAEs at two or more L0 values to "
                f"interpolate between; it has {listed} (add sweep points under "
                "reference_frontier)"
            )
        sign = 1.0 if higher_is_better else -1.0
        mean_at = np.bincount(where, weights=sign * values) / counts  # equal L0: their mean
        fitted = isotonic_regression(mean_at, weights=counts, increasing=True).x
        return cls(distinct, np.asarray(fitted), float(distinct[0]), float(distinct[-1]), sign)

    def contains(self, l0: float) -> bool:
        return self.l0_low <= l0 <= self.l0_high

    def at(self, l0: float) -> float:
        """The frontier's value (in the metric's own sign) at `l0`; ValueError outside the range."""
        if not self.contains(l0):
            raise ValueError(
                f"L0 {l0:g} is outside the reference range [{self.l0_low:g}, {self.l0_high:g}]"
            )
        signed = np.interp(np.log(l0), np.log(self.points_l0), self.points_value)
        return float(self.sign * signed)

    def curve(self, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """(l0, value) samples of the frontier over its range, for plots (log-spaced)."""
        xs = np.geomspace(self.l0_low, self.l0_high, n)
        xs = np.unique(np.concatenate([xs, self.points_l0]))
        return xs, np.array([self.at(x) for x in xs])


def matched_difference(
    variant_l0: float,
    variant_values: pd.Series,
    reference_l0: pd.Series,
    reference_values: pd.DataFrame,
    higher_is_better: bool,
) -> dict:
    """One variant and metric against the reference frontier at the variant's L0.

    variant_values: the variant's value per seed (index: seed); reference_l0: L0 per reference
    SAE (index: reference id); reference_values: seeds x reference ids. Per seed, the difference
    to that seed's frontier (better-is-positive). Returns value and frontier_value (means over
    the seeds used), difference, ci_low, ci_high, n, p_value (significance.one_sample), seeds,
    unpaired_seeds, and `verdict` only where no test can be made (outside the reference range, no
    L0, no seed in common); the run's family gives the others (verdicts.py).
    """
    frontier = Frontier.from_points(
        reference_l0[reference_values.columns],
        reference_values.mean(axis=0),
        higher_is_better,
        names=list(reference_values.columns),
    )
    mine = variant_values.dropna()
    row = {
        "l0": variant_l0,
        "frontier_l0_low": frontier.l0_low,
        "frontier_l0_high": frontier.l0_high,
        "value": float(mine.mean()) if len(mine) else math.nan,
        "frontier_value": math.nan,
        "difference": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "n": 0,
        "p_value": math.nan,
        "method": "",
        "seeds": "",
        "unpaired_seeds": "",
        "verdict": None,
    }
    if math.isnan(variant_l0):
        return {**row, "verdict": NO_L0}
    if not frontier.contains(variant_l0):
        return {**row, "verdict": OUTSIDE}
    sign = 1.0 if higher_is_better else -1.0
    at_frontier, values = {}, {}
    for seed, value in mine.items():
        if seed not in reference_values.index:
            continue
        at_seed = reference_values.loc[seed].dropna()
        try:
            seed_frontier = Frontier.from_points(
                reference_l0[at_seed.index], at_seed, higher_is_better
            )
        except FrontierError:
            continue
        if seed_frontier.contains(variant_l0):
            at_frontier[seed], values[seed] = seed_frontier.at(variant_l0), float(value)
    unpaired = [f"{int(s)} (no frontier)" for s in mine.index if s not in at_frontier]
    unpaired += [
        f"{int(s)} (references only)"
        for s in reference_values.dropna(how="all").index
        if s not in mine.index
    ]
    row["unpaired_seeds"] = ";".join(unpaired)
    if not at_frontier:
        return {**row, "verdict": NO_SEEDS}
    seeds = sorted(at_frontier)
    diffs = [sign * (values[s] - at_frontier[s]) for s in seeds]
    test = significance.one_sample(diffs)
    row.update(
        value=float(np.mean([values[s] for s in seeds])),
        frontier_value=float(np.mean([at_frontier[s] for s in seeds])),
        difference=test["difference"],
        ci_low=test["ci_low"],
        ci_high=test["ci_high"],
        n=test["n"],
        p_value=test["p_value"],
        method="" if math.isnan(test["p_value"]) else "t-test over seeds",
        seeds=";".join(str(int(s)) for s in seeds),
    )
    return row


def verdict(difference: float, p_adjusted: float, n: int) -> str:
    """The claim a better-is-positive matched difference supports, given its adjusted p-value
    (multiplicity.py); measured once (n = 1), a direction without a noise estimate."""
    if n == 0 or math.isnan(difference):
        return OUTSIDE
    if math.isnan(p_adjusted):
        if abs(difference) <= 1e-12:
            return ON
        if n == 1:
            return (ABOVE if difference > 0 else BELOW) + NO_ESTIMATE_SUFFIX
        return replicates.NO_ESTIMATE
    if p_adjusted < 0.05 and difference != 0:
        return ABOVE if difference > 0 else BELOW
    return WITHIN


def matched_table(
    table: pd.DataFrame,
    long: pd.DataFrame,
    metrics: list[tuple[str, str, bool]],
    reference_ids: list[str],
    l0_column: str = "core.sparsity.l0",
) -> tuple[pd.DataFrame, list[str]]:
    """Matched-L0 rows for every variant that is not a reference SAE, per headline metric, each
    against the frontier of the reference SAEs on its own hook point.

    `metrics`: (eval_type, metric key, higher_is_better), L0 left out. Returns the rows (COLUMNS)
    and notes on frontiers that could not be built (which hook, which metric, why).
    """
    notes, rows = [], []
    if l0_column not in table:
        return pd.DataFrame(columns=COLUMNS), ["no L0 (core eval off): no matched-L0 verdicts"]
    by_seed = long.set_index(["variant", "eval_type", "metric", "seed"])["value"].sort_index()
    l0 = pd.to_numeric(table.set_index("variant")[l0_column], errors="coerce")
    hooks = table.set_index("variant")["hook"]
    references = [r for r in reference_ids if r in l0.index]
    for hook in dict.fromkeys(hooks):
        refs = [r for r in references if hooks[r] == hook]
        variants = [v for v in table["variant"] if hooks[v] == hook and v not in refs]
        if not variants:
            continue
        for eval_type, metric, higher_is_better in metrics:
            ref_values = pd.DataFrame(
                {r: replicates.seed_series(by_seed, r, eval_type, metric) for r in refs}
            )
            try:
                if ref_values.empty:
                    raise FrontierError("no reference SAE on this hook point")
                Frontier.from_points(l0[ref_values.columns], ref_values.mean(axis=0))
            except FrontierError as error:
                notes.append(f"{hook}, {eval_type}.{metric}: {error}")
                continue
            for variant in variants:
                mine = replicates.seed_series(by_seed, variant, eval_type, metric)
                if mine.dropna().empty:
                    continue
                result = matched_difference(
                    float(l0[variant]), mine, l0, ref_values, higher_is_better
                )
                rows.append(
                    {
                        "variant": variant,
                        "hook": hook,
                        "eval_type": eval_type,
                        "metric": metric,
                        **result,
                        "reference": ";".join(ref_values.columns),
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS), notes
