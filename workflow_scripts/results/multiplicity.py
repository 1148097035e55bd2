"""The run's claims as one family of tests, and their error control.

A run makes many comparisons: every variant against its baseline and against the reference
frontier, on every headline metric. Tested one at a time at 95%, a run without any true
difference still reports about one false "better"/"worse" per 20 comparisons (with the default
run's 84 verdicts: 3.2 on average, at least one in about 9 runs out of 10). So:

- the **confirmatory family** is every derived or comparison variant against its baseline and
  against the reference frontier, on the ranked metrics (`ranking.metrics`): the claims the
  summary leads with. Reference SAEs against the baseline and metrics left out of the ranking
  (SCR/TPP by default) are **descriptive**: shown apart, tested at 95% each, never marked better
  or worse;
- the family's p-values are adjusted together (`statsmodels.stats.multitest.multipletests`), by
  default with **Holm**'s step-down method, which bounds the probability of any false claim in the
  family (family-wise error) at 5% under any dependence between the tests. The comparisons share
  their baseline and seeds, so they are dependent; Benjamini-Hochberg (`bh`, false discovery
  rate) is valid under positive dependence only and lets 5% of the claims be false, which in a
  paper that quotes a handful of them is a false claim quoted. `none` gives per-comparison tests.

A row's verdict is "better" / "worse" (or above / below the frontier) when its adjusted p is
below 5%, in the direction of its difference; "within noise" otherwise; "no noise estimate"
without a p-value. Intervals stay per-comparison 95% intervals: an interval that excludes 0 with
a "within noise" verdict is a difference that does not survive the correction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

LEVEL = 0.05
CONFIRMATORY, DESCRIPTIVE = "confirmatory", "descriptive"
METHODS = {"holm": "holm", "bh": "fdr_bh", "none": None}
METHOD_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


def family_of(family: str, metric_column: str, ranked_columns) -> str:
    """CONFIRMATORY for a derived or comparison variant on a ranked metric, else DESCRIPTIVE.
    `family` is the variant table's family (baseline, reference, comparison, ihtp, ...)."""
    if family in ("baseline", "reference") or metric_column not in set(ranked_columns):
        return DESCRIPTIVE
    return CONFIRMATORY


def adjust(p_values, correction: str = "holm") -> np.ndarray:
    """Adjusted p-values of one family (NaN entries are not tests and stay NaN)."""
    if correction not in METHODS:
        raise ValueError(f"statistics.correction: {correction!r} is not one of {list(METHODS)}")
    p = np.asarray(p_values, dtype="float64")
    out = np.full_like(p, np.nan)
    tested = ~np.isnan(p)
    if not tested.any():
        return out
    if METHODS[correction] is None:
        out[tested] = p[tested]
    else:
        out[tested] = multipletests(p[tested], alpha=LEVEL, method=METHODS[correction])[1]
    return out


def verdict(difference: float, p: float, higher: str, lower: str, within: str, none: str):
    """The claim an adjusted p-value supports; `difference` is better-is-positive."""
    if p is None or math.isnan(p) or math.isnan(difference):
        return none
    if p < LEVEL and difference != 0:
        return higher if difference > 0 else lower
    return within


def apply(tables: list[pd.DataFrame], correction: str = "holm") -> list[pd.DataFrame]:
    """Adjust the confirmatory rows of all `tables` together (one family: columns `family`,
    `p_value`); descriptive rows keep their own p as `p_adjusted` (they claim nothing). Returns
    copies with `p_adjusted` filled in."""
    tables = [t.copy() for t in tables]
    p = np.concatenate(
        [t["p_value"].where(t["family"] == CONFIRMATORY).to_numpy(dtype="float64") for t in tables]
    )
    adjusted = adjust(p, correction)
    start = 0
    for t in tables:
        mine = adjusted[start : start + len(t)]
        start += len(t)
        t["p_adjusted"] = np.where(t["family"] == CONFIRMATORY, mine, t["p_value"])
    return tables


def family_size(tables: list[pd.DataFrame]) -> int:
    """The number of tests in the confirmatory family (rows with a p-value)."""
    return int(
        sum(((t["family"] == CONFIRMATORY) & t["p_value"].notna()).sum() for t in tables if len(t))
    )
