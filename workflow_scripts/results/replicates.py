"""Replicate statistics: per-variant means with confidence intervals, paired differences to the
baseline, and verdicts that claim a difference only outside noise.

Input is the long table every replicate job feeds (one row per variant, eval type, metric and
seed; `long_table`). The intervals are Student-t 95% intervals from scipy:

- a metric's mean over seeds: `scipy.stats.ttest_1samp(values, 0).confidence_interval(0.95)`,
  i.e. mean ± t(0.975, n-1) · s/√n;
- a variant versus its baseline: the same interval over the *paired* differences, variant minus
  baseline at the same seed. The seed fixes SAE Bench's data split, probe initialisation and
  shuffles, so both see the same draw of that noise and pairing removes it from the comparison
  (the baseline's own seed-to-seed spread can be far larger than the difference's).

Why t and not a bootstrap: replicates are few (typically 3 to 5 seeds). A bootstrap over 3 values
has 10 distinct resamples and its percentile interval is too narrow at that n; the t-interval is
the standard small-sample interval for a mean under roughly normal seed noise, and it widens
honestly as n shrinks. With n = 1 no interval exists and none is claimed.

The tests behind the verdicts (with the seed noise pooled over the run's SAEs where it is
comparable) are in significance.py, their error control over the run in multiplicity.py, the
tables in verdicts.py.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special, stats

LONG_COLUMNS = ["variant", "eval_type", "metric", "seed", "value"]


# Student-t tail and quantile as scipy.stats.t computes them (scipy 1.17
# stats/_continuous_distns.py, t_gen._sf: special.stdtr(df, -x); t_gen._ppf:
# special.stdtrit(df, q)), called without the distribution wrapper's argument handling, which
# costs ~0.3 ms a call: the run's statistics and their simulation tests make thousands of calls.
def t_sf(x: float, df: float) -> float:
    """P(T > x) for T ~ Student t with `df` > 0 degrees of freedom (= scipy.stats.t.sf)."""
    return float(special.stdtr(df, -x)) if df > 0 else math.nan


def t_quantile(q: float, df: float) -> float:
    """The `q` quantile of Student t with `df` > 0 degrees of freedom (= scipy.stats.t.ppf)."""
    return float(special.stdtrit(df, q)) if df > 0 else math.nan


CONFIDENCE = 0.95
BETTER, WORSE, WITHIN_NOISE, NO_ESTIMATE = "better", "worse", "within noise", "no noise estimate"


def interval(values) -> tuple[float, float, float, int, float, float]:
    """(mean, standard deviation, standard error, n, ci_low, ci_high) of `values`, NaN dropped.

    Standard deviation with ddof=1; the interval is the 95% Student-t interval of the mean,
    mean ± t(0.975, n − 1) · s/√n (scipy's t quantile; the interval of
    `scipy.stats.ttest_1samp(values, 0).confidence_interval(0.95)`, computed directly because
    the run's simulations call it thousands of times). With n < 2 the deviation and the interval
    are NaN. With zero spread (up to float rounding) the interval is the mean itself.
    """
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        array = values[~np.isnan(values)]
    else:
        array = np.asarray(pd.to_numeric(pd.Series(values, dtype="float64"), errors="coerce"))
        array = array[~np.isnan(array)]
    n = len(array)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(array.mean())
    if n < 2:
        return (mean, math.nan, math.nan, 1, math.nan, math.nan)
    std = float(array.std(ddof=1))
    sem = std / math.sqrt(n)
    if std <= 1e-12 * max(1.0, abs(mean)):  # equal up to float rounding: no spread to test
        return (mean, 0.0, 0.0, n, mean, mean)
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * sem
    return (mean, std, sem, n, mean - half, mean + half)


def summarize(long: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, eval_type, metric): mean, std, n, ci_low, ci_high and the seeds used."""
    rows = []
    for (variant, eval_type, metric), group in long.groupby(
        ["variant", "eval_type", "metric"], sort=False
    ):
        mean, std, _, n, low, high = interval(group["value"])
        rows.append(
            {
                "variant": variant,
                "eval_type": eval_type,
                "metric": metric,
                "mean": mean,
                "std": std,
                "n": n,
                "ci_low": low,
                "ci_high": high,
                "seeds": ";".join(str(int(s)) for s in sorted(group["seed"].dropna().unique())),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["variant", "eval_type", "metric", "mean", "std", "n"]
        + ["ci_low", "ci_high", "seeds"],
    )


def paired_arrays(seeds, variant: np.ndarray, baseline: np.ndarray) -> dict:
    """Paired difference variant − baseline over the seeds both have (aligned arrays, NaN: that
    seed's value is missing); the seeds only one of them has are listed, never silently
    dropped."""
    has_v, has_b = ~np.isnan(variant), ~np.isnan(baseline)
    both = has_v & has_b
    mean, std, _, n, low, high = interval(variant[both] - baseline[both])
    unpaired = [
        f"{int(s)} ({'baseline' if b else 'variant'} only)"
        for s, v, b in zip(seeds, has_v, has_b)
        if v != b
    ]
    return {
        "n": n,
        "difference": mean,
        "std": std,
        "ci_low": low,
        "ci_high": high,
        "seeds": ";".join(str(int(s)) for s, ok in zip(seeds, both) if ok),
        "unpaired_seeds": ";".join(unpaired),
    }


def seed_series(by_seed: pd.Series, variant: str, eval_type: str, metric: str) -> pd.Series:
    """One variant's values of one metric, indexed by seed (empty when it has none)."""
    try:
        return by_seed.loc[(variant, eval_type, metric)].astype("float64")
    except KeyError:
        return pd.Series(dtype="float64")


def pairwise_beats(by_seed: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """beats.loc[a, b]: variant a beats variant b outside noise, i.e. the 95% t-interval of their
    paired difference over common seeds (rows of `by_seed`, columns = variants) excludes 0 in the
    metric's better direction. Pairs with fewer than two common seeds never count, nor a
    constant difference over two seeds (no noise estimate: on a metric that moves on a grid, such
    as a probe accuracy over 100 test rows, two equal differences are common by chance).

    The interval is the one `interval` computes (mean ± t(0.975, n-1) · sd/√n, scipy's t
    quantile), here for all pairs at once: (seeds, a, b) differences, NaN where a seed is missing.
    """
    values = by_seed.to_numpy(dtype="float64")  # (seeds, variants)
    diff = values[:, :, None] - values[:, None, :]  # (seeds, a, b): a - b
    n = np.sum(~np.isnan(diff), axis=0)  # (a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(diff, axis=0) / np.maximum(n, 1), np.nan)
        centred = np.where(np.isnan(diff), 0.0, diff - mean[None])
        std = np.sqrt(np.sum(centred**2, axis=0) / np.maximum(n - 1, 1))
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    spread = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    half = np.where(spread, half, 0.0)  # no spread: exact, but only from three seeds on
    sign = 1.0 if higher_is_better else -1.0
    beats = (n >= 2) & (spread | (n >= 3)) & (sign * mean - half > 0)
    return pd.DataFrame(beats, index=by_seed.columns, columns=by_seed.columns)


def clear_wins(by_seed: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """For each variant, how many other variants beat it outside noise (`pairwise_beats`)."""
    return pairwise_beats(by_seed, higher_is_better).sum(axis=0)
