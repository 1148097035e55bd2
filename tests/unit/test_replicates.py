"""Replicate statistics on synthetic seed spreads: intervals, paired differences, verdicts."""

import math

import pandas as pd
import pytest

from workflow_scripts.results import replicates as S
from workflow_scripts.results import verdicts


def versus(long, baseline_of, metrics, correction="none", pooled=False):
    """One comparison at a time (no family correction, per-pair tests): the per-comparison
    arithmetic these tests pin; the family and the pooled model are tested in test_verdicts."""
    metrics = [verdicts.Metric(e, k, h) for e, k, h in metrics]
    families = {v: "ihtp" for v in baseline_of}
    settings = verdicts.Settings(correction, pooled, families, [m.column for m in metrics])
    models = verdicts.noise_models(long, metrics, sorted(set(long["variant"])), pooled)
    table = verdicts.versus_baseline(long, baseline_of, metrics, settings, models)
    empty = pd.DataFrame(columns=[*verdicts.frontier.COLUMNS, "family"])
    return verdicts.finish(table, empty, correction)[0]


T_975_DF2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (tables)


def long_rows(values: dict[str, dict[int, float]], eval_type="scr", metric="m") -> pd.DataFrame:
    rows = [
        {"variant": v, "eval_type": eval_type, "metric": metric, "seed": s, "value": x}
        for v, by_seed in values.items()
        for s, x in by_seed.items()
    ]
    return pd.DataFrame(rows, columns=S.LONG_COLUMNS)


def test_interval_is_the_student_t_interval_of_the_mean():
    mean, std, sem, n, low, high = S.interval([1.0, 2.0, 3.0])
    assert (mean, std, n) == (2.0, 1.0, 3)
    half = T_975_DF2 * 1.0 / math.sqrt(3)
    assert low == pytest.approx(2.0 - half) and high == pytest.approx(2.0 + half)


def test_single_value_has_no_interval():
    mean, std, _, n, low, high = S.interval([0.7])
    assert mean == 0.7 and n == 1
    assert math.isnan(std) and math.isnan(low) and math.isnan(high)


def test_clear_win_that_the_unpaired_spread_hides():
    """The issue's demo numbers: the baseline's SCR varies 0.39-0.61 with the seed, the variant's
    advantage at each seed is 0.10-0.12: unpaired intervals overlap, the paired one excludes 0."""
    base = {42: 0.610, 43: 0.387, 44: 0.454}
    gain = {42: 0.116, 43: 0.099, 44: 0.111}
    long = long_rows({"baseline": base, "mpsae_s20": {s: base[s] + gain[s] for s in base}})
    table = S.summarize(long).set_index("variant")
    assert table.loc["baseline", "ci_high"] > table.loc["mpsae_s20", "ci_low"]  # overlap
    row = versus(
        long, {"baseline": "baseline", "mpsae_s20": "baseline"}, [("scr", "m", True)]
    ).iloc[0]
    mean, std = pd.Series(gain).mean(), pd.Series(gain).std()
    assert row["difference"] == pytest.approx(mean)
    assert row["ci_low"] == pytest.approx(mean - T_975_DF2 * std / math.sqrt(3))
    assert row["ci_low"] > 0 and row["verdict"] == S.BETTER
    assert row["n"] == 3 and row["seeds"] == "42;43;44" and row["unpaired_seeds"] == ""


def test_clear_loss_respects_the_metric_direction():
    base = {1: 0.30, 2: 0.32, 3: 0.31}
    worse_absorption = {s: v + 0.05 + 0.001 * s for s, v in base.items()}  # higher = worse
    long = long_rows({"b": base, "v": worse_absorption}, eval_type="absorption")
    row = versus(long, {"v": "b"}, [("absorption", "m", False)]).iloc[0]
    assert row["ci_low"] > 0 and row["verdict"] == S.WORSE
    lower = long_rows({"b": base, "v": {s: v - 0.05 - 0.001 * s for s, v in base.items()}})
    row = versus(lower, {"v": "b"}, [("scr", "m", False)]).iloc[0]
    assert row["verdict"] == S.BETTER


def test_within_noise():
    """The issue's top-1 probe accuracy: the baseline reads higher, but the paired difference
    (-0.009, sd 0.007, n = 3) has an interval that includes 0."""
    long = long_rows(
        {
            "baseline": {42: 0.958, 43: 0.958, 44: 0.970},
            "mpsae_s10": {42: 0.942, 43: 0.956, 44: 0.962},
        }
    )
    row = versus(long, {"mpsae_s10": "baseline"}, [("scr", "m", True)]).iloc[0]
    assert row["difference"] == pytest.approx(-0.00867, abs=1e-4)
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["verdict"] == S.WITHIN_NOISE


def test_one_seed_claims_nothing():
    long = long_rows({"b": {42: 0.5}, "v": {42: 0.9}})
    row = versus(long, {"v": "b"}, [("scr", "m", True)]).iloc[0]
    assert row["n"] == 1 and row["difference"] == pytest.approx(0.4)
    assert math.isnan(row["ci_low"]) and row["verdict"] == S.NO_ESTIMATE


def test_pairs_only_matching_seeds_and_reports_the_rest():
    long = long_rows({"b": {1: 0.1, 2: 0.2, 4: 0.4}, "v": {1: 0.3, 2: 0.45, 3: 9.0}})
    row = versus(long, {"v": "b"}, [("scr", "m", True)]).iloc[0]
    assert row["n"] == 2 and row["seeds"] == "1;2"
    assert row["difference"] == pytest.approx(0.225)  # seed 3's 9.0 never enters
    assert row["unpaired_seeds"] == "3 (variant only);4 (baseline only)"


def test_constant_differences_need_three_seeds():
    """A constant difference is no noise estimate at n = 2 (on a metric that moves on a grid two
    equal differences are common by chance); from three seeds on it is taken as exact."""
    same = long_rows({"b": {1: 0.5, 2: 0.6}, "v": {1: 0.5, 2: 0.6}})
    assert versus(same, {"v": "b"}, [("scr", "m", True)]).iloc[0]["verdict"] == S.NO_ESTIMATE
    gap = long_rows({"b": {1: 0.5, 2: 0.6}, "v": {1: 0.7, 2: 0.8}})
    assert versus(gap, {"v": "b"}, [("scr", "m", True)]).iloc[0]["verdict"] == S.NO_ESTIMATE
    gap3 = long_rows({"b": {1: 0.5, 2: 0.6, 3: 0.4}, "v": {1: 0.7, 2: 0.8, 3: 0.6}})
    row = versus(gap3, {"v": "b"}, [("scr", "m", True)]).iloc[0]
    assert row["verdict"] == S.BETTER and row["p_value"] == 0.0
    same3 = long_rows({"b": {1: 0.5, 2: 0.6, 3: 0.4}, "v": {1: 0.5, 2: 0.6, 3: 0.4}})
    assert versus(same3, {"v": "b"}, [("scr", "m", True)]).iloc[0]["verdict"] == S.WITHIN_NOISE


def test_p_value_is_scipys_paired_t_test():
    from scipy import stats

    base = {1: 0.61, 2: 0.39, 3: 0.45, 4: 0.52}
    other = {1: 0.66, 2: 0.41, 3: 0.49, 4: 0.60}
    row = versus(long_rows({"b": base, "v": other}), {"v": "b"}, [("scr", "m", True)]).iloc[0]
    expected = stats.ttest_rel(list(other.values()), list(base.values())).pvalue
    assert row["p_value"] == pytest.approx(expected) and row["method"] == "paired t-test"


def test_pairwise_wins_need_three_seeds_for_a_constant_difference():
    by_seed = pd.DataFrame({"a": [0.6, 0.7], "b": [0.5, 0.6]}, index=[1, 2])
    assert not S.pairwise_beats(by_seed, True).loc["a", "b"]
    by_seed = pd.DataFrame({"a": [0.6, 0.7, 0.8], "b": [0.5, 0.6, 0.7]}, index=[1, 2, 3])
    assert S.pairwise_beats(by_seed, True).loc["a", "b"]


def test_summarize_lists_seeds_and_n():
    long = long_rows({"a": {1: 1.0, 2: 3.0}, "b": {7: 2.0}})
    table = S.summarize(long).set_index("variant")
    assert table.loc["a", "n"] == 2 and table.loc["a", "seeds"] == "1;2"
    assert table.loc["a", "std"] == pytest.approx(math.sqrt(2))
    assert table.loc["b", "n"] == 1 and math.isnan(table.loc["b", "ci_low"])


def test_clear_wins_counts_only_differences_outside_noise():
    """a beats b clearly; c is a, plus seed noise that swamps the gap; d has a single seed."""
    by_seed = pd.DataFrame(
        {
            "a": [0.60, 0.40, 0.50],
            "b": [0.50, 0.29, 0.41],
            "c": [0.70, 0.30, 0.55],
            "d": [0.99, None, None],
        },
        index=[1, 2, 3],
    )
    beaten_by = S.clear_wins(by_seed, higher_is_better=True)
    assert beaten_by["a"] == 0 and beaten_by["c"] == 0 and beaten_by["d"] == 0
    assert beaten_by["b"] == 1  # by a only: c - b = [0.2, 0.01, 0.14] is within noise
    for a, b in [("a", "b"), ("c", "b")]:  # agrees with the interval of versus_baseline
        long = long_rows({"x": by_seed[a].to_dict(), "y": by_seed[b].to_dict()})
        v = versus(long, {"x": "y"}, [("scr", "m", True)]).iloc[0]["verdict"]
        assert (v == S.BETTER) == (a == "a")
    lower = S.clear_wins(by_seed, higher_is_better=False)
    assert lower["a"] == 1 and lower["b"] == 0


def test_t_tail_and_quantile_equal_scipy_stats():
    """The direct calls (replicates.t_sf / t_quantile) give scipy.stats.t's values, bit for bit,
    and NaN for a degenerate df (scipy.stats: NaN too)."""
    import math

    from scipy import stats

    from workflow_scripts.results import replicates

    for df in (1, 2, 3.5, 7, 40, 1000):
        for x in (-3.0, -0.2, 0.0, 0.7, 2.5, 12.0):
            assert replicates.t_sf(x, df) == float(stats.t.sf(x, df))
        for q in (0.025, 0.5, 0.975, 0.999):
            assert replicates.t_quantile(q, df) == float(stats.t.ppf(q, df))
    assert math.isnan(replicates.t_sf(1.0, 0)) and math.isnan(float(stats.t.sf(1.0, 0)))
