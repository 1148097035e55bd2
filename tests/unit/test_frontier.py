"""Matched-L0 verdicts on synthetic frontiers: interpolation in log L0, the monotone fit, the
range, ties, one-point frontiers, and verdicts with and without replicates (the frontier's bias
under noise is simulated in test_frontier_bias.py)."""

import math

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.results import frontier as F


def test_interpolates_linearly_in_log_l0_between_pareto_points():
    f = F.Frontier.from_points([10, 100], [0.5, 0.8])
    assert f.at(math.sqrt(10 * 100)) == pytest.approx(0.65)  # halfway in log L0
    assert f.at(10) == pytest.approx(0.5) and f.at(100) == pytest.approx(0.8)
    assert f.at(20) == pytest.approx(0.5 + 0.3 * math.log(2) / math.log(10))  # not linear in L0


def test_a_point_below_a_sparser_one_is_pooled_with_it_not_dropped():
    """Isotonic fit: a denser point worse than a sparser one is averaged with it (pool adjacent
    violators), where the upper envelope would drop it and keep the noise-lifted point."""
    f = F.Frontier.from_points([10, 50, 100, 200], [0.5, 0.4, 0.8, 0.7])
    assert list(f.points_l0) == [10, 50, 100, 200]
    assert list(f.points_value) == pytest.approx([0.45, 0.45, 0.75, 0.75])
    assert f.at(150) == pytest.approx(0.75) and (f.l0_low, f.l0_high) == (10, 200)
    assert np.all(np.diff(f.points_value) >= 0)


def test_the_fit_is_scipys_isotonic_regression():
    from scipy.optimize import isotonic_regression

    l0 = [5, 10, 20, 40, 80, 160]
    values = [0.31, 0.29, 0.45, 0.44, 0.52, 0.61]
    f = F.Frontier.from_points(l0, values)
    assert list(f.points_value) == pytest.approx(list(isotonic_regression(values).x))


def test_points_at_equal_l0_are_averaged_with_their_weight():
    f = F.Frontier.from_points([10, 10, 100], [0.3, 0.5, 0.8])
    assert list(f.points_l0) == [10, 100] and f.at(10) == pytest.approx(0.4)


def test_lower_is_better_metrics_fit_a_non_increasing_curve():
    f = F.Frontier.from_points([10, 100, 100], [2.0, 1.0, 1.5], higher_is_better=False)
    assert f.at(10) == pytest.approx(2.0) and f.at(100) == pytest.approx(1.25)
    assert f.at(math.sqrt(1000)) == pytest.approx(1.625)


@pytest.mark.parametrize("l0s", [[20], [20, 20], [20, float("nan")]])
def test_a_frontier_of_one_point_refuses_and_says_why(l0s):
    with pytest.raises(F.FrontierError, match="two or more L0 values"):
        F.Frontier.from_points(l0s, [0.5] * len(l0s), names=[f"sae{i}" for i in range(len(l0s))])


def test_outside_the_range_is_refused_not_extrapolated():
    f = F.Frontier.from_points([10, 100], [0.5, 0.8])
    for l0 in (9.9, 100.1):
        assert not f.contains(l0)
        with pytest.raises(ValueError, match="outside the reference range"):
            f.at(l0)


SEEDS = [42, 43, 44]
REF_L0 = pd.Series({"ref_a": 10.0, "ref_b": 100.0})


def references(seed_noise):
    """Two reference SAEs whose values move together with each seed's noise."""
    return pd.DataFrame(
        {"ref_a": [0.5 + e for e in seed_noise], "ref_b": [0.8 + e for e in seed_noise]},
        index=SEEDS,
    )


@pytest.mark.parametrize(
    "offsets, expected",
    [
        ([0.05, 0.06, 0.04], F.ABOVE),
        ([-0.05, -0.06, -0.04], F.BELOW),
        ([0.02, -0.03, 0.01], F.WITHIN),
    ],
)
def test_verdicts_with_replicates_pair_each_seed_with_that_seeds_frontier(offsets, expected):
    noise = [0.0, 0.2, -0.2]  # seed noise far larger than the offsets, shared by all SAEs
    l0 = math.sqrt(1000)  # frontier 0.65 (+ noise) there
    variant = pd.Series([0.65 + e + o for e, o in zip(noise, offsets)], index=SEEDS)
    result = F.matched_difference(l0, variant, REF_L0, references(noise), True)
    assert result["verdict"] is None  # the family decides (verdicts.finish)
    assert F.verdict(result["difference"], result["p_value"], result["n"]) == expected
    assert result["n"] == 3 and result["difference"] == pytest.approx(np.mean(offsets))
    assert result["ci_low"] <= result["difference"] <= result["ci_high"]
    # the columns add up: value and frontier value are means over the seeds the difference uses
    assert result["frontier_value"] == pytest.approx(0.65)
    assert result["value"] - result["frontier_value"] == pytest.approx(result["difference"])


def test_seeds_without_a_frontier_or_without_the_variant_are_named():
    refs = references([0.0, 0.1, -0.1])
    refs.loc[43, "ref_b"] = float("nan")  # seed 43: one reference point, no frontier
    variant = pd.Series([0.7, 0.7], index=[42, 43])  # seed 44: the references only
    result = F.matched_difference(31.6, variant, REF_L0, refs, True)
    assert result["n"] == 1 and result["seeds"] == "42"
    assert result["unpaired_seeds"] == "43 (no frontier);44 (references only)"


def test_outside_the_reference_range_gets_no_verdict():
    variant = pd.Series([0.99, 0.99, 0.99], index=SEEDS)
    result = F.matched_difference(146.0, variant, REF_L0, references([0, 0, 0]), True)
    assert result["verdict"] == F.OUTSIDE and math.isnan(result["difference"])


def test_measured_once_says_above_or_below_without_a_noise_estimate():
    refs = references([0.0]).iloc[:1]
    above = F.matched_difference(10.0, pd.Series([0.6], index=[42]), REF_L0, refs, True)
    assert above["n"] == 1 and math.isnan(above["p_value"])
    assert F.verdict(above["difference"], above["p_value"], 1) == F.ABOVE + F.NO_ESTIMATE_SUFFIX
    on = F.matched_difference(100.0, pd.Series([0.8], index=[42]), REF_L0, refs, True)
    assert F.verdict(on["difference"], on["p_value"], 1) == F.ON


def test_matched_table_compares_each_hook_with_its_own_references():
    table = pd.DataFrame(
        {
            "variant": ["ref_a", "ref_b", "v", "w", "other_hook"],
            "hook": ["h1", "h1", "h1", "h1", "h2"],
            "core.sparsity.l0": [10.0, 100.0, 31.6227766, 500.0, 30.0],
        }
    )
    values = {"ref_a": 0.5, "ref_b": 0.8, "v": 0.7, "w": 0.9, "other_hook": 0.9}
    long = pd.DataFrame(
        [("core", "m.ev", v, 42, x) for v, x in values.items()],
        columns=["eval_type", "metric", "variant", "seed", "value"],
    )
    rows, notes = F.matched_table(table, long, [("core", "m.ev", True)], ["ref_a", "ref_b"])
    assert list(rows["variant"]) == ["v", "w"]  # references are the frontier, not compared
    v = rows.set_index("variant").loc["v"]
    assert v["difference"] == pytest.approx(0.05) and v["reference"] == "ref_a;ref_b"
    assert rows.set_index("variant").loc["w", "verdict"] == F.OUTSIDE
    assert notes == ["h2, core.m.ev: no reference SAE on this hook point"]


def test_plot_draws_the_reference_frontier_and_each_matched_difference():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workflow_scripts.results import plot_l0, plot_style, ranking

    (ev,) = [h for h in ranking.headline_metrics(["core"]) if "explained" in h.label.lower()]
    table = pd.DataFrame(
        {
            "variant": ["ref_a", "ref_b", "ref_c", "inside", "outside"],
            "family": ["baseline", "reference", "reference", "ihtp", "ihtp"],
            "architecture": ["standard", "standard", "standard", "ihtp", "ihtp"],
            "baseline": ["ref_a"] * 5,
            "hook": ["h"] * 5,
            "param_name": [None, None, None, "k", "k"],
            "param": [None, None, None, 5, 50],
            "core.sparsity.l0": [10.0, 40.0, 100.0, 20.0, 300.0],
            ev.column: [0.5, 0.7, 0.8, 0.75, 0.9],
        }
    )
    style = plot_style.Style({}, sorted(table["architecture"].unique()))
    fig, ax = plt.subplots()
    handles = plot_l0.scatter_panel(ax, table, ev, style, ["ref_a", "ref_b", "ref_c"])
    labels = [h.get_label() for h in handles]
    assert any(label.startswith("reference frontier") for label in labels)
    assert "matched-L0 difference to the frontier" in labels
    assert not any(label.startswith("Pareto frontier") for label in labels)
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1  # "inside" only: "outside" is past the densest reference SAE
    f = F.Frontier.from_points([10, 40, 100], [0.5, 0.7, 0.8])
    assert list(dotted[0].get_ydata()) == pytest.approx([f.at(20.0), 0.75])
    plt.close(fig)


def test_a_variant_without_l0_says_so():
    variant = pd.Series([0.7], index=[42])
    result = F.matched_difference(float("nan"), variant, REF_L0, references([0.0]).iloc[:1], True)
    assert result["verdict"] == F.NO_L0
