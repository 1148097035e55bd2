"""Tests of one SAE against another on a seed-dependent metric, with the seed noise estimated once
from every SAE of the run where that noise is comparable across SAEs.

A run evaluates every SAE at the same seeds, and the seed fixes SAE Bench's data split and probe
training, so a metric's value is modelled as

    value[variant, seed] = mu[variant] + s[seed] + e,   e ~ N(0, sigma^2), independent

(a two-way additive model: `statsmodels` OLS of value on variant and seed indicators, i.e.
`value ~ C(variant) + C(seed)`). The difference
of two variants is then a contrast of the variant effects, tested with the residual variance of
the whole run: with 17 SAEs and 3 seeds the residual has (17 − 1)(3 − 1) = 32 degrees of freedom
instead of the 2 of one paired comparison, which is what makes a multiplicity-corrected test
usable at 3 seeds. On complete data the contrast equals the mean of the paired differences.

The model assumes equal noise across SAEs. It is checked per metric, for each SAE, by the spread
of its values about the other SAEs' mean at each seed (which removes the seed effect): under equal
noise its sample variance over seeds, divided by the pooled variance · (1 + 1/(V − 1)), is F
distributed with (n_v − 1, residual df) degrees of freedom; the smallest p over the V SAEs,
Bonferroni-adjusted, below 5% rejects (`equal_noise_p`). Simulated with 17 SAEs: it rejects 0.1%
(3 seeds) to 0.8% (5 seeds) of runs with equal noise, and finds one SAE five times noisier than
the rest in 61% (3 seeds) and 92% (5 seeds) of runs. Not Levene's test on the model's residuals:
those are not independent (each SAE's sum to 0), and at 3 seeds it rejected equal noise in 38% of
simulated runs that had it. When the check rejects, or too few SAEs or seeds leave no residual,
every comparison of that metric falls back to its own paired t-test (`scipy.stats.ttest_rel`,
n − 1 degrees of freedom), and `NoiseModel.reason` says why.

Guards: a paired test needs a noise estimate: with the per-pair test, a constant difference over
n = 2 seeds has none (`no noise estimate`); at n >= 3 a constant nonzero difference is taken as
exact (p = 0). The minimum detectable difference (`detectable_difference`) comes from the
noncentral t distribution (`scipy.stats.nct`) of the same test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, special, stats

from workflow_scripts.results import replicates

CONFIDENCE = replicates.CONFIDENCE
EQUAL_NOISE_LEVEL = 0.05
POOLED, PAIRED = "pooled two-way model", "paired t-test"


@dataclass(frozen=True)
class NoiseModel:
    """The noise estimate of one metric: pooled (the two-way model's residual sd `sigma` with
    `df` degrees of freedom) or not (then `reason` says why and tests are per pair)."""

    pooled: bool
    sigma: float = math.nan
    df: int = 0
    equal_noise_p: float = math.nan  # the equal-noise check (equal_noise_p)
    reason: str = ""
    # (coefficients, their covariance, variant -> coefficient index or None for the reference
    # level) of the statsmodels OLS fit, for contrasts
    result: object = None


def fit(by_seed: pd.DataFrame, pooled: bool = True) -> NoiseModel:
    """The noise model of one metric from its seeds x variants values (NaN: missing)."""
    if not pooled:
        return NoiseModel(False, reason="statistics.pooled_noise is off")
    values = by_seed.to_numpy(dtype="float64")  # (seeds, variants)
    keep = (~np.isnan(values)).sum(axis=0) >= 2
    variants = [str(v) for v, k in zip(by_seed.columns, keep) if k]
    if len(variants) < 3:
        return NoiseModel(False, reason="fewer than three SAEs with two or more seeds")
    values = values[:, keep]
    seed_of, variant_of = np.nonzero(~np.isnan(values))  # one row per observed value
    y = values[seed_of, variant_of]
    # value ~ C(variant) + C(seed): treatment coding, the first variant and seed as reference
    n_variants, n_seeds = values.shape[1], values.shape[0]
    design = np.zeros((len(y), n_variants + n_seeds - 1))
    design[:, 0] = 1.0
    rows = np.arange(len(y))
    design[rows[variant_of > 0], variant_of[variant_of > 0]] = 1.0
    design[rows[seed_of > 0], n_variants - 1 + seed_of[seed_of > 0]] = 1.0
    used = design.any(axis=0)  # a seed no replicated SAE has: no column
    result = sm.OLS(y, design[:, used]).fit()
    df = int(round(result.df_resid))
    if df < 1:
        return NoiseModel(False, reason="no residual degrees of freedom")
    sigma = math.sqrt(result.mse_resid)
    if sigma <= 1e-12 * max(1.0, float(np.abs(y).max())):
        return NoiseModel(False, sigma, df, math.nan, "no residual spread")
    check_p = equal_noise_p(values, sigma**2, df)
    if not math.isnan(check_p) and check_p < EQUAL_NOISE_LEVEL:
        reason = f"unequal noise across SAEs (equal-noise check p = {check_p:.3g})"
        return NoiseModel(False, sigma, df, check_p, reason)
    position = np.cumsum(used) - 1  # design column -> coefficient index
    effects = {v: (int(position[k]) if k > 0 else None) for k, v in enumerate(variants)}
    return NoiseModel(True, sigma, df, check_p, "", (result.params, result.cov_params(), effects))


def equal_noise_p(values: np.ndarray, pooled_variance: float, df: int) -> float:
    """Bonferroni-adjusted smallest p, over the SAEs (columns of seeds x SAEs `values`, NaN:
    missing), of the F test of each SAE's spread about the others' per-seed mean against the
    pooled variance (see the module docstring)."""
    n_variants = values.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN seeds of the others
        totals, counts = np.nansum(values, axis=1), np.sum(~np.isnan(values), axis=1)
    p_values = []
    for v in range(n_variants):
        mine = values[:, v]
        others = (totals - np.nan_to_num(mine)) / (counts - ~np.isnan(mine))
        deviation = mine - others
        deviation = deviation[~np.isnan(deviation)]
        if len(deviation) < 2:
            continue
        ratio = deviation.var(ddof=1) / (pooled_variance * (1 + 1 / (n_variants - 1)))
        # = scipy.stats.f.sf (f_gen._sf is special.fdtrc), without the wrapper's cost
        p_values.append(float(special.fdtrc(len(deviation) - 1, df, ratio)))
    return min(1.0, min(p_values) * len(p_values)) if p_values else math.nan


def compare_arrays(model: NoiseModel, a: str, b: str, seeds, variant, baseline) -> dict:
    """a − b on aligned arrays of seeds (NaN: missing): difference, ci_low, ci_high (95%),
    p_value (two-sided), n (paired seeds), df, method, seeds, unpaired_seeds."""
    row = replicates.paired_arrays(seeds, variant, baseline)
    effects = model.result[2] if model.pooled else {}
    if a in effects and b in effects and row["n"] >= 2:
        params, cov, _ = model.result
        contrast = np.zeros(len(params))
        for name, weight in ((a, 1.0), (b, -1.0)):
            if effects[name] is not None:  # None: the reference level, whose effect is 0
                contrast[effects[name]] = weight
        effect = float(contrast @ params)
        se = math.sqrt(float(contrast @ cov @ contrast))  # = statsmodels' t_test of the contrast
        half = replicates.t_quantile(0.5 + CONFIDENCE / 2, model.df) * se
        p = 2 * replicates.t_sf(abs(effect) / se, model.df) if se > 0 else math.nan
        row.update(
            difference=effect,
            ci_low=effect - half,
            ci_high=effect + half,
            p_value=p,
            df=model.df,
            method=POOLED,
        )
        return row
    row.update(p_value=paired_p_value(row), df=max(row["n"] - 1, 0), method=PAIRED)
    if math.isnan(row["p_value"]):
        row.update(ci_low=math.nan, ci_high=math.nan, method="")
    return row


def paired_p_value(row: dict) -> float:
    """Two-sided p of a paired difference summarised by replicates.paired_arrays: NaN
    without a noise estimate (n < 2, or a constant difference at n = 2), 0 for a constant
    nonzero difference at n >= 3, else the t-test of the differences (= scipy's ttest_rel)."""
    n, mean, std = row["n"], row["difference"], row["std"]
    if n < 2 or math.isnan(mean):
        return math.nan
    if std == 0 or std <= 1e-12 * max(1.0, abs(mean)):
        if n < 3:
            return math.nan
        return 1.0 if mean == 0 else 0.0
    t = mean / (std / math.sqrt(n))
    return 2 * replicates.t_sf(abs(t), n - 1)


def one_sample(values) -> dict:
    """Mean of `values` (e.g. per-seed differences to a frontier) against 0: difference,
    ci_low, ci_high, p_value, n, with the same guards as a paired test."""
    mean, std, _, n, low, high = replicates.interval(values)
    row = {"difference": mean, "std": std, "n": n, "ci_low": low, "ci_high": high}
    row["p_value"] = paired_p_value(row)
    if math.isnan(row["p_value"]):
        row.update(ci_low=math.nan, ci_high=math.nan)
    return row


def detectable_difference(
    sigma: float, n_seeds: int, df: int, alpha: float, power: float = 0.8
) -> float:
    """The smallest true difference a two-sided paired test at level `alpha` detects with
    probability `power`, for noise sd `sigma` per value, `n_seeds` paired seeds and `df`
    degrees of freedom: d with P(|T| > t_crit) = power, T ~ noncentral t(df, d / (sigma·√(2/n)))."""
    if not (sigma > 0) or df < 1 or n_seeds < 2:
        return math.nan
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(delta):
        reached = stats.nct.sf(crit, df, delta) + stats.nct.cdf(-crit, df, delta)
        return (1.0 if math.isnan(reached) else reached) - power  # NaN: far in the tail, ~1

    delta = optimize.brentq(shortfall, 0.0, 200.0)
    return float(delta * sigma * math.sqrt(2.0 / n_seeds))


def pooled_df(n_variants: int, n_seeds: int) -> int:
    """Residual degrees of freedom of the two-way model on complete data."""
    return (n_variants - 1) * (n_seeds - 1)
