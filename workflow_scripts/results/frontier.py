"""Verdicts at equal sparsity: each variant against the reference frontier at its own L0.

Why: a variant that spends more active latents per token than its baseline reconstructs better
for that reason alone, so "better than the baseline point" says nothing about the encoder. The
field compares SAEs at equal L0 (SAE Bench's plots, Pareto frontiers); here the comparison is
made against the best a reference sweep reaches at the variant's own L0.

The reference frontier of one headline metric is built from the reference SAEs (the baselines of
a sweep, published SAEs of the same architecture, or local sweep checkpoints; config key
`reference_frontier`) on one hook point:

- its points are the Pareto points: sorted by L0, each one better than every sparser point (at
  equal L0 the better one); at an L0 between two Pareto points the best reachable value is
  interpolated linearly in log L0, and past the densest Pareto point, up to the densest
  reference SAE, it stays at that point's value (a sparser SAE is always admissible);
- why log L0: across the sweeps SAE Bench publishes, reconstruction and probing metrics change
  roughly linearly in log L0 (its plots use a log L0 axis); linear in L0 would bend the frontier
  between widely spaced sweep points (L0 20 and 200) and flatter-than-real segments would make
  variants look better;
- its range is [sparsest, densest reference SAE]; a variant outside it gets "outside the
  reference range", never an extrapolated verdict; a frontier needs two distinct L0 values, and
  one point refuses (`FrontierError`).

Matched difference = variant's value − frontier at the variant's L0, signed so that positive is
better (for a lower-is-better metric the sign is flipped). With replicates it is computed per
seed, against the frontier built from that seed's values of the reference SAEs (L0 comes from
core, which does not depend on the seed), and the 95% Student-t interval over seeds gives the
verdict, as `replicates.verdict` does for the paired differences to the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workflow_scripts.results import replicates

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
    "verdict",
    "reference",
]


class FrontierError(ValueError):
    """A set of reference points that does not make a frontier (fewer than two L0 values)."""


@dataclass(frozen=True)
class Frontier:
    """The best value of one metric reachable at each L0 in [l0_low, l0_high].

    pareto_l0 / pareto_value: the Pareto points, L0 ascending, values strictly improving.
    Values are stored signed so that higher is better (`sign` = -1 for lower-is-better metrics).
    """

    pareto_l0: np.ndarray
    pareto_value: np.ndarray
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
        if len(np.unique(l0)) < 2:
            listed = ", ".join(names) if names is not None else f"{len(l0)} point(s)"
            raise FrontierError(
                f"a reference frontier needs reference SAEs at two or more L0 values to "
                f"interpolate between; it has {listed} (add sweep points under "
                "reference_frontier)"
            )
        sign = 1.0 if higher_is_better else -1.0
        signed = sign * values
        order = np.lexsort((-signed, l0))  # L0 ascending, the best first at equal L0
        pareto_l0, pareto_value, best = [], [], -math.inf
        for i in order:
            if signed[i] > best:
                pareto_l0.append(l0[i])
                pareto_value.append(signed[i])
                best = signed[i]
        return cls(
            np.array(pareto_l0), np.array(pareto_value), float(l0.min()), float(l0.max()), sign
        )

    def contains(self, l0: float) -> bool:
        return self.l0_low <= l0 <= self.l0_high

    def at(self, l0: float) -> float:
        """The frontier's value (in the metric's own sign) at `l0`; ValueError outside the range."""
        if not self.contains(l0):
            raise ValueError(
                f"L0 {l0:g} is outside the reference range [{self.l0_low:g}, {self.l0_high:g}]"
            )
        signed = np.interp(np.log(l0), np.log(self.pareto_l0), self.pareto_value)
        return float(self.sign * signed)

    def curve(self, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """(l0, value) samples of the frontier over its range, for plots (log-spaced)."""
        xs = np.geomspace(self.l0_low, self.l0_high, n)
        xs = np.unique(np.concatenate([xs, self.pareto_l0]))
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
    SAE (index: reference id); reference_values: seeds x reference ids. Returns frontier_value
    (main frontier: means over seeds), value (mean), difference (better-is-positive, mean over
    seeds of the per-seed differences), ci_low, ci_high, n and verdict.
    """
    means = reference_values.mean(axis=0)
    frontier = Frontier.from_points(
        reference_l0[means.index], means, higher_is_better, names=list(means.index)
    )
    row = {
        "l0": variant_l0,
        "frontier_l0_low": frontier.l0_low,
        "frontier_l0_high": frontier.l0_high,
        "value": float(variant_values.mean()) if len(variant_values.dropna()) else math.nan,
        "frontier_value": math.nan,
        "difference": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "n": 0,
    }
    if math.isnan(variant_l0):
        return {**row, "verdict": NO_L0}
    if not frontier.contains(variant_l0):
        return {**row, "verdict": OUTSIDE}
    row["frontier_value"] = frontier.at(variant_l0)
    sign = 1.0 if higher_is_better else -1.0
    diffs = {}
    for seed, value in variant_values.dropna().items():
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
            diffs[seed] = sign * (value - seed_frontier.at(variant_l0))
    if not diffs:
        return {**row, "verdict": NO_SEEDS}
    mean, _, _, n, low, high = replicates.interval(list(diffs.values()))
    row.update(difference=mean, ci_low=low, ci_high=high, n=n)
    return {**row, "verdict": verdict(mean, low, high, n)}


def verdict(difference: float, low: float, high: float, n: int) -> str:
    """The claim a better-is-positive matched difference supports (see the module docstring)."""
    if n == 0 or math.isnan(difference):
        return OUTSIDE
    if n < 2 or math.isnan(low):
        if abs(difference) <= 1e-12:
            return ON
        return (ABOVE if difference > 0 else BELOW) + NO_ESTIMATE_SUFFIX
    if low > 0:
        return ABOVE
    if high < 0:
        return BELOW
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
