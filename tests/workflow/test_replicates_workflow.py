"""Replicate seeds and several baselines end to end on the demo: one job per (variant, eval
type, seed) for the seed-dependent evals, SAE Bench's JSONs at their documented paths, intervals
and verdicts in the merged outputs, error bars in the plots; each derived variant built from and
compared with its own baseline.

One cut-down run (config/demo_baselines.yaml's two baselines, each with the variant of the encoder
family defined outside the project, its MPSAE variants off (the shared demo run derives and
evaluates MPSAE); core + sparse probing; seeds 42/43) keeps it to minutes;
`config/demo_replicates.yaml` on the full demo is the README's command for replicates.
"""

import json

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, run_snakemake, seed_demo_assets, write_config

# two of the README's replicate seeds (config/demo_replicates.yaml has three): the fewest that
# pair, pool and test; each more seed adds a sparse-probing job per variant to the CI time
SEEDS = yaml.safe_load((REPO / "config" / "demo_replicates.yaml").read_text())["replicates"][
    "seeds"
][:2]
BASELINES = yaml.safe_load((REPO / "config" / "demo_baselines.yaml").read_text())
BASES = [b["name"] for b in BASELINES["baseline_saes"]]
VARIANT = "topk_corr_k8"  # each baseline's one derived variant
VARIANTS = [v for b in BASES for v in (b, f"{b}__{VARIANT}")]
FAMILY = BASELINES["encoder_families"]["topk_corr"]
REFERENCES = [r["name"] for r in BASELINES["reference_frontier"]["local_saes"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("replicates")
    config = write_config(
        workdir / "seeds.yaml",
        "demo.yaml",
        replicates={"seeds": SEEDS},
        baseline_saes=BASELINES["baseline_saes"],
        eval_types={
            "core": True,
            "sparse_probing": True,
            "scr": False,
            "tpp": False,
            "sparse_probing_sae_probes": False,
        },
        sae_variants={**BASELINES["sae_variants"], "mpsae": {"enabled": False}},
        reference_frontier=BASELINES["reference_frontier"],
        # the family's file is outside workflow_scripts/; the run's folder is elsewhere
        encoder_families={"topk_corr": {**FAMILY, "class": f"{REPO}/{FAMILY['class']}"}},
    )
    seed_demo_assets(workdir)
    result = run_snakemake(["--cores", "2", "--configfile", str(config)], workdir, timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return {"workdir": workdir, "out": workdir / "results", "output": result.stdout}


def test_one_job_per_seed_for_seed_dependent_evals_only(run):
    evals = run["out"] / "evals"
    for variant in VARIANTS:
        assert (evals / "core" / f"{variant}.json").is_file()
        assert not list(evals.glob(f"core/seed_*/{variant}.json"))  # core: measured once
        for seed in SEEDS:
            folder = "sparse_probing" if seed == SEEDS[0] else f"sparse_probing/seed_{seed}"
            result = json.loads((evals / folder / f"{variant}.json").read_text())
            # SAE Bench's own JSON, run with that seed
            assert result["eval_config"]["random_seed"] == seed
            assert result["eval_result_metrics"]["sae"]["sae_top_1_test_accuracy"] > 0.5
            record = json.loads(
                (run["out"] / "workflow_metrics" / folder / f"{variant}.json").read_text()
            )
            assert record["random_seed"] == seed


def test_merged_outputs_carry_intervals_and_verdicts(run):
    merged = run["out"] / "merged"
    table = pd.read_csv(merged / "metrics.csv").set_index("variant")
    long = pd.read_csv(merged / "metrics_long.csv")
    probe = "sparse_probing.sae.sae_top_1_test_accuracy"
    for variant in VARIANTS:
        rows = long[
            (long["variant"] == variant)
            & (long["eval_type"] == "sparse_probing")
            & (long["metric"] == "sae.sae_top_1_test_accuracy")
        ]
        assert sorted(rows["seed"]) == SEEDS
        assert table.loc[variant, probe] == pytest.approx(rows["value"].mean())
        assert table.loc[variant, f"{probe}_n"] == len(SEEDS)
        assert table.loc[variant, f"{probe}_ci_low"] <= table.loc[variant, probe]
        assert table.loc[variant, f"{probe}_ci_high"] >= table.loc[variant, probe]
    versus = pd.read_csv(merged / "versus_baseline.csv")
    # each derived variant against its own baseline, the baselines against nothing
    assert dict(zip(versus["variant"], versus["baseline"])) == {
        **{v: v.split("__")[0] for v in VARIANTS if "__" in v},
        **{r: BASES[0] for r in REFERENCES},  # reference SAEs: with the first, as comparisons
    }
    row = versus[
        (versus["metric"] == "sae.sae_top_1_test_accuracy")
        & (versus["variant"] == f"{BASES[0]}__{VARIANT}")
    ].iloc[0]
    assert row["n"] == len(SEEDS) and row["family"] == "confirmatory"
    assert row["verdict"] in {"better", "worse", "within noise"}
    claimed = row["p_adjusted"] < 0.05
    assert (row["verdict"] != "within noise") == claimed
    assert row["p_adjusted"] >= row["p_value"]  # Holm over the run's family
    text = (merged / "summary.md").read_text()
    assert f"seeds {', '.join(map(str, SEEDS))} (n = {len(SEEDS)})" in text
    assert " ± " in text and "## Versus the baseline point" in text
    assert f"({row['verdict']}, n={len(SEEDS)}, p=" in text
    assert "**Claims**" in text and "Holm" in text


def test_core_differences_are_a_paired_bootstrap_over_the_recorded_batches(run):
    """Core's rows against the baseline equal a direct paired bootstrap over the two jobs'
    recorded batches (the same tokens: the check in core_noise would refuse otherwise)."""
    from workflow_scripts.results import core_noise

    merged = run["out"] / "merged"
    versus = pd.read_csv(merged / "versus_baseline.csv")
    variant, base = f"{BASES[0]}__{VARIANT}", BASES[0]
    row = versus[
        (versus["variant"] == variant)
        & (versus["metric"] == "workflow_reconstruction.explained_variance_centered")
    ].iloc[0]
    records = {
        v: json.loads((run["out"] / "workflow_metrics" / "core" / f"{v}.json").read_text())
        for v in (variant, base)
    }
    direct = core_noise.paired_bootstrap(
        records[variant]["core_batches"],
        records[base]["core_batches"],
        core_noise.explained_variance,
    )
    assert row["method"] == "paired bootstrap over evaluation batches"
    for key in ("difference", "ci_low", "ci_high", "p_value"):
        assert row[key] == pytest.approx(direct[key])
    table = pd.read_csv(merged / "metrics.csv").set_index("variant")
    column = "core.workflow_reconstruction.explained_variance_centered"
    assert row["difference"] == pytest.approx(table.loc[variant, column] - table.loc[base, column])


def test_each_variant_is_derived_from_its_own_baseline(run):
    from safetensors.torch import load_file

    saes = run["out"] / "saes"
    decoders = {v: load_file(str(saes / v / "sae.safetensors"))["W_dec"] for v in VARIANTS}
    for base in BASES:
        assert torch.equal(decoders[f"{base}__{VARIANT}"], decoders[base])
    assert not torch.equal(decoders[BASES[0]], decoders[BASES[1]])  # two different dictionaries
    table = pd.read_csv(run["out"] / "merged" / "metrics.csv").set_index("variant")
    assert {v: table.loc[v, "baseline"] for v in VARIANTS} == {
        v: v.split("__")[0] for v in VARIANTS
    }
    # the outside family: its own architecture, at most k latents per token
    for base in BASES:
        assert table.loc[f"{base}__topk_corr_k8", "architecture"] == "topk_corr"
        assert table.loc[f"{base}__topk_corr_k8", "core.sparsity.l0"] <= 8 + 1e-6
    # the denser baseline (smaller L1) is denser
    assert table.loc[BASES[1], "core.sparsity.l0"] > table.loc[BASES[0], "core.sparsity.l0"]


def test_plots_exist(run):
    for name in ("l0_vs_core.png", "l0_vs_sparse_probing.png", "headline_heatmap.png"):
        path = run["out"] / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_summary_leads_with_matched_l0_verdicts_against_the_sweep_frontier(run):
    """Three reference SAEs (the two baselines and the sweep's sparsest) make the frontier; every
    derived variant is compared with it at its own L0, with a 95% interval over the seeds for the
    seed-dependent metric and a verdict that never extrapolates."""
    from workflow_scripts.results import frontier

    merged = run["out"] / "merged"
    matched = pd.read_csv(merged / "matched_l0.csv")
    table = pd.read_csv(merged / "metrics.csv").set_index("variant")
    derived = [v for v in VARIANTS if "__" in v]
    assert sorted(matched["variant"].unique()) == sorted(derived)
    references = [*BASES, *REFERENCES]
    assert set(matched["reference"]) == {";".join(references)}
    l0 = table.loc[references, "core.sparsity.l0"]
    allowed = {frontier.ABOVE, frontier.BELOW, frontier.WITHIN, frontier.OUTSIDE, frontier.ON}
    allowed |= {v + frontier.NO_ESTIMATE_SUFFIX for v in (frontier.ABOVE, frontier.BELOW)}
    for _, row in matched.iterrows():
        assert row["verdict"] in allowed
        inside = l0.min() <= row["l0"] <= l0.max()
        assert (row["verdict"] == frontier.OUTSIDE) == (not inside)
        if row["eval_type"] == "sparse_probing" and inside:
            assert row["n"] == len(SEEDS) and row["ci_low"] <= row["difference"] <= row["ci_high"]
        if row["eval_type"] == "core" and inside:  # a bootstrap over core's recorded batches
            assert row["method"] == "paired bootstrap over evaluation batches" and row["n"] >= 2
            assert row["ci_low"] <= row["difference"] <= row["ci_high"]
        if inside:  # the columns add up (both metrics of this run are higher-is-better)
            assert row["value"] - row["frontier_value"] == pytest.approx(row["difference"])
    # the frontier at a variant's L0 is the fit of the reference SAEs' own values, per seed
    probe = matched[
        (matched["metric"] == "sae.sae_top_1_test_accuracy")
        & (matched["verdict"] != "outside the reference range")
    ].iloc[0]
    long = pd.read_csv(merged / "metrics_long.csv")
    long = long[long["metric"] == "sae.sae_top_1_test_accuracy"]
    at_seed = []
    for seed in SEEDS:
        values = long[long["seed"] == seed].set_index("variant")["value"]
        fit = frontier.Frontier.from_points(l0, values[references])
        at_seed.append(fit.at(probe["l0"]))
    assert probe["frontier_value"] == pytest.approx(sum(at_seed) / len(at_seed))
    text = (merged / "summary.md").read_text()
    assert text.index("## At equal sparsity") < text.index("## All variants, ranked")
    assert text.index("## All variants, ranked") < text.index("## Versus the baseline point")
    assert "interpolated in log L0" in text
