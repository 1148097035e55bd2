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

Verdicts (`verdict`): "better" / "worse" when the 95% interval of the paired difference excludes
0 (in the metric's better direction), "within noise" when it includes 0, "no noise estimate" with
fewer than two paired seeds.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

LONG_COLUMNS = ["variant", "eval_type", "metric", "seed", "value"]
CONFIDENCE = 0.95
BETTER, WORSE, WITHIN_NOISE, NO_ESTIMATE = "better", "worse", "within noise", "no noise estimate"


def interval(values) -> tuple[float, float, float, int, float, float]:
    """(mean, standard deviation, standard error, n, ci_low, ci_high) of `values`, NaN dropped.

    Standard deviation with ddof=1; the interval is the 95% Student-t interval of the mean. With
    n < 2 the deviation and the interval are NaN. With zero spread (up to float rounding) the
    interval is the mean itself.
    """
    series = pd.to_numeric(pd.Series(values, dtype="float64"), errors="coerce").dropna()
    n = len(series)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(series.mean())
    if n < 2:
        return (mean, math.nan, math.nan, 1, math.nan, math.nan)
    std = float(series.std(ddof=1))
    sem = std / math.sqrt(n)
    if std <= 1e-12 * max(1.0, abs(mean)):  # equal up to float rounding: no spread to test
        return (mean, 0.0, 0.0, n, mean, mean)
    ci = stats.ttest_1samp(series.to_numpy(), 0.0).confidence_interval(CONFIDENCE)
    return (mean, std, sem, n, float(ci.low), float(ci.high))


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


def verdict(low: float, high: float, n: int, higher_is_better: bool) -> str:
    """The claim the paired interval [low, high] of (variant - baseline) supports."""
    if n < 2 or math.isnan(low) or math.isnan(high):
        return NO_ESTIMATE
    if low > 0:
        return BETTER if higher_is_better else WORSE
    if high < 0:
        return WORSE if higher_is_better else BETTER
    return WITHIN_NOISE


def paired_difference(variant: pd.Series, baseline: pd.Series) -> dict:
    """Paired difference of two seed-indexed series (variant - baseline) over the seeds both
    have; the seeds only one of them has are listed, never silently dropped."""
    variant, baseline = variant.dropna(), baseline.dropna()
    common = sorted(set(variant.index) & set(baseline.index))
    diffs = variant.loc[common] - baseline.loc[common] if common else pd.Series(dtype="float64")
    mean, std, _, n, low, high = interval(diffs)
    unpaired = sorted(set(variant.index) ^ set(baseline.index))
    return {
        "n": n,
        "difference": mean,
        "std": std,
        "ci_low": low,
        "ci_high": high,
        "seeds": ";".join(str(int(s)) for s in common),
        "unpaired_seeds": ";".join(
            f"{int(s)} ({'baseline' if s in baseline.index else 'variant'} only)" for s in unpaired
        ),
    }


def versus_baseline(
    long: pd.DataFrame, baseline_of: dict[str, str], metrics: list[tuple[str, str, bool]]
) -> pd.DataFrame:
    """Per variant (other than its baseline) and metric: the paired difference to its baseline.

    `baseline_of` maps each variant id to the id of the baseline it is compared with; `metrics`
    lists (eval_type, metric key, higher_is_better). Columns: variant, baseline, eval_type,
    metric, n, difference, std, ci_low, ci_high, verdict, seeds, unpaired_seeds.
    """
    by_seed = long.set_index(["variant", "eval_type", "metric", "seed"])["value"].sort_index()
    rows = []
    for variant, baseline in baseline_of.items():
        if variant == baseline:
            continue
        for eval_type, metric, higher_is_better in metrics:
            mine = seed_series(by_seed, variant, eval_type, metric)
            theirs = seed_series(by_seed, baseline, eval_type, metric)
            if mine.empty and theirs.empty:
                continue
            row = {"variant": variant, "baseline": baseline, "eval_type": eval_type}
            row["metric"] = metric
            row.update(paired_difference(mine, theirs))
            row["verdict"] = verdict(row["ci_low"], row["ci_high"], row["n"], higher_is_better)
            rows.append(row)
    columns = ["variant", "baseline", "eval_type", "metric", "n", "difference", "std", "ci_low"]
    columns += ["ci_high", "verdict", "seeds", "unpaired_seeds"]
    return pd.DataFrame(rows, columns=columns)


def seed_series(by_seed: pd.Series, variant: str, eval_type: str, metric: str) -> pd.Series:
    """One variant's values of one metric, indexed by seed (empty when it has none)."""
    try:
        return by_seed.loc[(variant, eval_type, metric)].astype("float64")
    except KeyError:
        return pd.Series(dtype="float64")


def pairwise_beats(by_seed: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """beats.loc[a, b]: variant a beats variant b outside noise, i.e. the 95% t-interval of their
    paired difference over common seeds (rows of `by_seed`, columns = variants) excludes 0 in the
    metric's better direction. Pairs with fewer than two common seeds never count.

    The interval is the one `interval` computes (mean ± t(0.975, n-1) · sd/√n, scipy's t
    quantile), here for all pairs at once: (seeds, a, b) differences, NaN where a seed is missing.
    """
    import numpy as np

    values = by_seed.to_numpy(dtype="float64")  # (seeds, variants)
    diff = values[:, :, None] - values[:, None, :]  # (seeds, a, b): a - b
    n = np.sum(~np.isnan(diff), axis=0)  # (a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(diff, axis=0) / np.maximum(n, 1), np.nan)
        centred = np.where(np.isnan(diff), 0.0, diff - mean[None])
        std = np.sqrt(np.sum(centred**2, axis=0) / np.maximum(n - 1, 1))
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    half = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), half, 0.0)  # no spread: exact
    sign = 1.0 if higher_is_better else -1.0
    beats = (n >= 2) & (sign * mean - half > 0)
    return pd.DataFrame(beats, index=by_seed.columns, columns=by_seed.columns)


def clear_wins(by_seed: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """For each variant, how many other variants beat it outside noise (`pairwise_beats`)."""
    return pairwise_beats(by_seed, higher_is_better).sum(axis=0)
