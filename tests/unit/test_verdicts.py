"""The verdicts of a whole run, simulated with known truth through the project's own functions
(verdicts.py, significance.py, multiplicity.py, ranking.py): error control over the family, the
pooled noise model and its fallback, power, and a ranking that neither rewards noise nor moves
when reference SAEs are added.

Each simulated run: a baseline and 16 variants, evaluated at the same seeds on 4 seed-dependent
metrics, value = true mean + seed effect (shared by every SAE at that seed) + noise (sd 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.plan.headlines import Headline
from workflow_scripts.results import multiplicity, ranking, significance, verdicts


@pytest.fixture(autouse=True)
def no_gc_per_holm_call(monkeypatch):
    """statsmodels' Holm branch runs gc.collect() on every call (statsmodels/stats/multitest.py
    ~184 and ~246, 0.15-0.3 s in a test process): harmless once per aggregation, it would
    dominate a thousand simulated runs. The adjusted p-values do not depend on it."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


METRICS = [verdicts.Metric("sparse_probing", f"sae.m{i}", True) for i in range(4)]
VARIANTS = ["baseline"] + [f"v{i:02d}" for i in range(16)]
RUNS = 1000


def simulate(rng, seeds, effects=None, noise=None, variants=VARIANTS) -> pd.DataFrame:
    """The long table of one run: effects[variant] (per metric, in sd units) and noise[variant]
    (its sd) default to 0 and 1."""
    effects, noise = effects or {}, noise or {}
    rows = []
    for m in METRICS:
        seed_effect = rng.normal(0, 3, len(seeds))  # shared by all SAEs, larger than the noise
        for v in variants:
            values = (
                effects.get(v, 0.0) + seed_effect + rng.normal(0, noise.get(v, 1.0), len(seeds))
            )
            rows += [(v, m.eval_type, m.key, s, x) for s, x in zip(seeds, values)]
    return pd.DataFrame(rows, columns=["variant", "eval_type", "metric", "seed", "value"])


def run_verdicts(long, correction="holm", pooled=True, variants=VARIANTS):
    settings = verdicts.Settings(
        correction,
        pooled,
        {v: "baseline" if v == "baseline" else "ihtp" for v in variants},
        [m.column for m in METRICS],
    )
    models = verdicts.noise_models(long, METRICS, variants, pooled)
    baseline_of = {v: "baseline" for v in variants if v != "baseline"}
    table = verdicts.versus_baseline(long, baseline_of, METRICS, settings, models)
    empty = pd.DataFrame(columns=[*verdicts.frontier.COLUMNS, "family"])
    return verdicts.finish(table, empty, correction)[0], models


def claims(table) -> pd.Series:
    return table["verdict"].isin(["better", "worse"])


def test_holm_bounds_the_chance_of_any_false_claim_in_a_null_run():
    """16 variants x 4 metrics, no true difference anywhere, 3 seeds, 1,000 runs: without a
    correction most runs make a false claim; with Holm (pooled noise) at most about 5%."""
    rng = np.random.default_rng(0)
    any_false = {"holm": 0, "none": 0}
    pooled_used = 0
    for _ in range(RUNS):
        table, models = run_verdicts(simulate(rng, [42, 43, 44]), "holm")
        any_false["holm"] += bool(claims(table).any())
        any_false["none"] += bool((table["p_value"] < 0.05).any())  # each test on its own
        pooled_used += sum(m.pooled for m in models.values())
    rate = {k: v / RUNS for k, v in any_false.items()}
    print(f"\nruns with >= 1 false claim: holm {rate['holm']:.3f}, none {rate['none']:.3f}")
    assert rate["holm"] <= 0.06
    assert rate["none"] >= 0.5  # what the correction protects against
    # equal noise: the pooled model is used (the check rejects about 0.1% at 3 seeds)
    assert pooled_used / (RUNS * len(METRICS)) >= 0.98


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_power_for_a_two_sd_effect(n_seeds):
    """One variant truly better by 2 sd on every metric, the rest null: how often Holm calls it
    better (printed), never worse, and the rest stay within the family-wise bound."""
    rng = np.random.default_rng(n_seeds)
    seeds = list(range(n_seeds))
    found, false, runs = 0, 0, 150
    for _ in range(runs):
        table, _ = run_verdicts(simulate(rng, seeds, effects={"v00": 2.0}))
        mine = table["variant"] == "v00"
        found += int((table[mine]["verdict"] == "better").sum())
        false += bool(claims(table[~mine]).any())
    power = found / (runs * len(METRICS))
    # Holm's first step is Bonferroni at 0.05/64; its later steps only add power
    df = significance.pooled_df(17, n_seeds)
    d_at = significance.detectable_difference  # inverse of the power curve below
    bonferroni = _power(2.0, n_seeds, df, 0.05 / 64)
    print(
        f"\npower at a 2 sd effect, n = {n_seeds}, Holm over 64 tests: {power:.2f} "
        f"(Bonferroni bound {bonferroni:.2f}; 80% power needs Δ ≥ "
        f"{d_at(1.0, n_seeds, df, 0.05 / 64):.1f} sd)"
    )
    mc = 3 * np.sqrt(bonferroni * (1 - bonferroni) / (runs * len(METRICS)))
    assert bonferroni - mc <= power <= _power(2.0, n_seeds, df, 0.05) + mc
    assert false / runs <= 0.08


def _power(d, n, df, alpha):
    """Power of a two-sided paired test with pooled df at a true difference of d sd."""
    from scipy import stats

    crit = stats.t.ppf(1 - alpha / 2, df)
    delta = d / np.sqrt(2 / n)
    return float(stats.nct.sf(crit, df, delta) + stats.nct.cdf(-crit, df, delta))


def test_unequal_noise_falls_back_to_per_pair_tests():
    rng = np.random.default_rng(7)
    fallbacks = 0
    for _ in range(100):
        long = simulate(rng, [42, 43, 44, 45, 46], noise={"v00": 8.0})
        fallbacks += sum(
            not m.pooled for m in verdicts.noise_models(long, METRICS, VARIANTS).values()
        )
    assert fallbacks / (100 * len(METRICS)) >= 0.9
    model = verdicts.noise_models(long, METRICS, VARIANTS)[METRICS[0].column]
    assert "unequal noise" in model.reason


def test_pooled_contrast_is_the_mean_paired_difference_with_more_df():
    rng = np.random.default_rng(3)
    while True:  # a draw where the equal-noise check keeps the pooled model (99% of them)
        long = simulate(rng, [42, 43, 44])
        table, models = run_verdicts(long, "none")
        if models[METRICS[0].column].pooled:
            break
    row = table[(table["variant"] == "v03") & (table["metric"] == METRICS[0].key)].iloc[0]
    wide = long[long["metric"] == METRICS[0].key].pivot(
        index="seed", columns="variant", values="value"
    )
    assert row["difference"] == pytest.approx((wide["v03"] - wide["baseline"]).mean())
    assert row["method"] == significance.POOLED and row["df"] == (17 - 1) * (3 - 1)
    # the same contrast as statsmodels' formula API and its t_test
    import statsmodels.formula.api as smf

    data = long[long["metric"] == METRICS[0].key].assign(seed=lambda d: d["seed"].astype(str))
    fit = smf.ols("value ~ C(variant) + C(seed)", data=data).fit()
    test = fit.t_test("C(variant)[T.v03] = 0")  # baseline is the reference level
    assert row["difference"] == pytest.approx(float(test.effect[0]))
    assert row["p_value"] == pytest.approx(float(test.pvalue))


def test_detectable_difference_matches_a_simulated_power():
    """The noncentral-t formula against brute force: at the printed difference a paired test
    with pooled df rejects in about 80% of simulated draws."""
    sigma, n, df, alpha = 1.0, 3, 32, 0.05 / 64
    d = significance.detectable_difference(sigma, n, df, alpha)
    rng = np.random.default_rng(11)
    from scipy import stats

    se = sigma * np.sqrt(2 / n)
    estimates = rng.normal(d, se, 20000)
    s = np.sqrt(rng.chisquare(df, 20000) / df) * se
    p = 2 * stats.t.sf(np.abs(estimates / s), df)
    assert np.mean(p < alpha) == pytest.approx(0.8, abs=0.02)


def test_bh_controls_the_false_discovery_rate():
    rng = np.random.default_rng(5)
    fdp = []
    for _ in range(150):
        effects = {f"v{i:02d}": 2.5 for i in range(4)}  # 4 of 16 truly better
        table, _ = run_verdicts(simulate(rng, [42, 43, 44, 45, 46], effects=effects), "bh")
        called = table[claims(table)]
        false = (~called["variant"].isin(effects)).sum()
        fdp.append(false / max(len(called), 1))
    assert np.mean(fdp) <= 0.05


def test_descriptive_rows_are_never_claims():
    assert multiplicity.family_of("reference", "x.y", ["x.y"]) == multiplicity.DESCRIPTIVE
    assert multiplicity.family_of("ihtp", "scr.z", ["x.y"]) == multiplicity.DESCRIPTIVE
    assert multiplicity.family_of("comparison", "x.y", ["x.y"]) == multiplicity.CONFIRMATORY
    p = multiplicity.adjust([0.01, 0.02, float("nan"), 0.04], "holm")
    assert list(p[[0, 1, 3]]) == pytest.approx([0.03, 0.04, 0.04]) and np.isnan(p[2])
    with pytest.raises(ValueError, match="statistics.correction"):
        multiplicity.adjust([0.1], "bonferonni")


# --- ranking ---------------------------------------------------------------------------------


def comparison_of(long, variants, families, l0=None):
    wide = long.pivot_table(index="variant", columns=["eval_type", "metric"], values="value")
    table = pd.DataFrame({"variant": variants, "family": [families[v] for v in variants]})
    table["architecture"] = "x"
    table["core.sparsity.l0"] = [(l0 or {}).get(v, 10.0 + i) for i, v in enumerate(variants)]
    for m in METRICS:
        table[m.column] = [wide.loc[v, (m.eval_type, m.key)] for v in variants]
    headlines = [Headline(m.eval_type, m.key, m.key, True) for m in METRICS]
    return ranking.Comparison(
        table,
        headlines,
        ["sparse_probing"],
        long=long,
        seeds=sorted(long["seed"].unique()),
        ranking=[m.column for m in METRICS],
    )


def test_a_noisy_worst_variant_is_not_ranked_first():
    """16 variants spread over 4 sd of true quality, and one truly worst by 3 sd below the
    lowest but five times noisier: nobody beats it outside noise, and it beats nobody."""
    rng = np.random.default_rng(21)
    variants = [f"v{i:02d}" for i in range(16)] + ["noisy"]
    effects = {f"v{i:02d}": 4.0 * i / 15 for i in range(16)} | {"noisy": -3.0}
    first, runs = 0, 150
    for _ in range(runs):
        long = simulate(rng, [42, 43, 44], effects=effects, noise={"noisy": 5.0}, variants=variants)
        ranked = ranking.rank_variants(
            *_args(comparison_of(long, variants, dict.fromkeys(variants, "ihtp")))
        )
        first += int(ranked.set_index("variant").loc["noisy", "rank"] == 1)
    print(f"\nnoisy worst variant ranked first in {first / runs:.3f} of runs")
    assert first / runs <= 0.02


def _args(c):
    return c.table, c.headlines, c


def test_adding_reference_saes_leaves_the_ranks_unchanged():
    rng = np.random.default_rng(4)
    variants = VARIANTS[:6]
    refs = [f"ref{i:02d}" for i in range(11)]
    effects = {v: 0.5 * i for i, v in enumerate(variants)}
    long = simulate(rng, [42, 43, 44], effects=effects, variants=variants + refs)
    families = {v: "ihtp" for v in variants} | {r: "reference" for r in refs}
    alone = ranking.rank_variants(
        *_args(comparison_of(long[long["variant"].isin(variants)], variants, families))
    )
    with_refs = ranking.rank_variants(*_args(comparison_of(long, variants + refs, families)))
    assert list(with_refs["variant"]) == list(alone["variant"])
    assert list(with_refs["rank"]) == list(alone["rank"]) and "ref00" not in set(
        with_refs["variant"]
    )


# --- core: a noise estimate from the per-batch records --------------------------------------

EV = "workflow_reconstruction.explained_variance_centered"


def core_comparison(rng, unexplained: dict[str, float], l0: dict[str, float], families):
    """One-seed core results of SAEs on the same 400 batches, with their per-batch records."""
    from test_core_noise import simulated

    names = list(unexplained)
    records = dict(zip(names, simulated(rng, 400, [unexplained[v] for v in names])))
    from workflow_scripts.results import core_noise

    values = {v: core_noise.explained_variance(records[v]) for v in names}
    long = pd.DataFrame(
        [(v, "core", EV, 42, values[v]) for v in names],
        columns=["variant", "eval_type", "metric", "seed", "value"],
    )
    table = pd.DataFrame(
        {
            "variant": names,
            "family": [families[v] for v in names],
            "architecture": "x",
            "hook": "h",
            "core.sparsity.l0": [l0[v] for v in names],
            f"core.{EV}": [values[v] for v in names],
        }
    )
    headlines = [Headline("core", "sparsity.l0", "L0", False), Headline("core", EV, "EV", True)]
    comparison = ranking.Comparison(
        table,
        headlines,
        ["core"],
        long=long,
        seeds=[42],
        baseline_of={v: "b" for v in names},
        reference=[v for v in names if families[v] in ("reference", "baseline")],
        core_batches=records,
    )
    return comparison, records


def test_core_verdicts_come_from_a_paired_bootstrap_over_batches():
    from workflow_scripts.results import core_noise

    rng = np.random.default_rng(8)
    unexplained = {"b": 0.2, "better": 0.15, "same": 0.2, "r1": 0.3, "r2": 0.1}
    families = {"b": "baseline", "better": "ihtp", "same": "ihtp", "r1": "reference"}
    families["r2"] = "reference"
    l0 = {"b": 20.0, "better": 20.0, "same": 20.0, "r1": 5.0, "r2": 80.0}
    comparison, records = core_comparison(rng, unexplained, l0, families)
    results = ranking.compute(comparison)
    versus = results.versus.set_index("variant")
    direct = core_noise.paired_bootstrap(
        records["better"], records["b"], core_noise.explained_variance
    )
    assert versus.loc["better", "method"] == verdicts.BOOTSTRAP
    assert versus.loc["better", "difference"] == pytest.approx(direct["difference"])
    assert versus.loc["better", "ci_low"] == pytest.approx(direct["ci_low"])
    assert versus.loc["better", "verdict"] == "better"
    assert versus.loc["same", "verdict"] == "within noise"
    itself = core_noise.paired_bootstrap(records["b"], records["b"], core_noise.explained_variance)
    assert (itself["difference"], itself["ci_low"], itself["ci_high"]) == (0.0, 0.0, 0.0)
    matched = results.matched.set_index("variant")
    assert matched.loc["better", "method"] == verdicts.BOOTSTRAP
    assert matched.loc["better", "value"] - matched.loc["better", "frontier_value"] == (
        pytest.approx(matched.loc["better", "difference"], abs=1e-12)
    )
    assert matched.loc["better", "verdict"] in ("above the frontier", "within noise")
    # the ranking's core wins need the bootstrap too: "same" and "b" tie, "better" beats both
    ranked = results.ranked.set_index("variant")
    assert ranked.loc["better", "rank"] == 1
    assert ranked.loc["same", "score"] == ranked.loc["b", "score"]
