"""The merged table reads every scalar metric back from SAE Bench's JSONs."""

import json

import pytest

from workflow_scripts.results.collect import merge, scalar_metrics


def test_scalar_metrics_flatten_groups_and_skip_non_scalars():
    result = {
        "eval_result_metrics": {
            "sparsity": {"l0": 12.5, "l1": 3},
            "misc": {"flag": True, "hist": [1, 2], "none": None},
        }
    }
    assert scalar_metrics("core", result) == {"core.sparsity.l0": 12.5, "core.sparsity.l1": 3.0}


def write_pair(root, eval_type, variant, metrics, own=None, seed=None):
    """SAE Bench's JSON of one job, and the workflow's record with `own` metrics beside it."""
    folder = eval_type if seed is None else f"{eval_type}/seed_{seed}"
    path = root / "evals" / folder / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"eval_type_id": eval_type, "eval_result_metrics": metrics}))
    record = root / "workflow_metrics" / folder / f"{variant}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"eval_result_metrics": own or {}}))


CENTERED = "core.workflow_reconstruction.explained_variance_centered"


def write_sae(root, variant, architecture):
    folder = root / "saes" / variant
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"architecture": architecture, "d_sae": 64, "hook_name": "blocks.1.hook_resid_post"}
        )
    )


def test_merge_one_row_per_variant(tmp_path):
    variants = [
        {"id": "baseline", "family": "baseline"},
        {"id": "ihtp_k5", "family": "ihtp", "param_name": "k", "param": 5},
    ]
    for v, arch, l0 in [("baseline", "standard", 30.0), ("ihtp_k5", "ihtp", 44.0)]:
        write_sae(tmp_path, v, arch)
        write_pair(tmp_path, "core", v, {"sparsity": {"l0": l0}})
        write_pair(tmp_path, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": l0 / 100}})
    table = merge(variants, tmp_path / "saes", tmp_path / "evals", ["core", "sparse_probing"])
    assert list(table["variant"]) == ["baseline", "ihtp_k5"]
    assert list(table["architecture"]) == ["standard", "ihtp"]
    assert list(table["core.sparsity.l0"]) == [30.0, 44.0]
    assert list(table["sparse_probing.sae.sae_top_1_test_accuracy"]) == [0.30, 0.44]
    assert table.loc[1, "param"] == 5


def test_missing_pair_is_an_error_naming_it(tmp_path):
    write_sae(tmp_path, "baseline", "standard")
    with pytest.raises(FileNotFoundError, match="core/baseline.json"):
        merge(
            [{"id": "baseline", "family": "baseline"}],
            tmp_path / "saes",
            tmp_path / "evals",
            ["core"],
        )


# --- missing pairs, ranking, plots: small hand-written JSONs -------------------------------------

import math  # noqa: E402
import os  # noqa: E402

import pandas as pd  # noqa: E402

from workflow_scripts.plan import outputs  # noqa: E402
from workflow_scripts.results import collect, plot_l0, ranking, render  # noqa: E402
from workflow_scripts.results.ranking import headline_metrics, rank_variants  # noqa: E402
from workflow_scripts.steps import aggregate  # noqa: E402
from workflow_scripts.steps import plot as plot_step  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def plan(root, variants, eval_types, outputs, **settings):
    """The aggregate step's plan (rules/common.smk builds it) for a run laid out under `root`."""
    return {
        "variants": variants,
        "eval_types": eval_types,
        "replicated": [],
        "saes_dir": str(root / "saes"),
        "evals_dir": str(root / "evals"),
        "records_dir": None,
        "main_seed": 42,
        "extra_seeds": [],
        "allow_missing": False,
        "threshold": 20,
        "ranking": None,
        "reference": [],
        "config": {},
        "outputs": {k: str(v) for k, v in outputs.items()},
        **settings,
    }


def small_run(root, with_core_for_k5=True):
    """baseline + ihtp k5/k10, core and sparse_probing; optionally without core for ihtp_k5."""
    variants = [
        {"id": "baseline", "family": "baseline"},
        {"id": "ihtp_k5", "family": "ihtp", "param_name": "k", "param": 5},
        {"id": "ihtp_k10", "family": "ihtp", "param_name": "k", "param": 10},
    ]
    values = {
        "baseline": (30.0, 0.80, 0.90, 0.70),
        "ihtp_k5": (5.0, 0.85, 0.95, 0.75),
        "ihtp_k10": (10.0, 0.90, 0.97, 0.72),
    }
    for v, (l0, ev, ce, acc) in values.items():
        write_sae(root, v, "standard" if v == "baseline" else "ihtp")
        if v != "ihtp_k5" or with_core_for_k5:
            write_pair(
                root,
                "core",
                v,
                {
                    "sparsity": {"l0": l0},
                    "reconstruction_quality": {"explained_variance": ev + 0.05},
                    "model_performance_preservation": {"ce_loss_score": ce},
                },
                own={"workflow_reconstruction": {"explained_variance_centered": ev}},
            )
        write_pair(root, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": acc}})
    return variants


def test_missing_pair_without_allow_missing_names_the_pair(tmp_path):
    variants = small_run(tmp_path, with_core_for_k5=False)
    with pytest.raises(
        collect.MissingPairError, match=r"pair \(core, ihtp_k5\).*core/ihtp_k5.json is missing"
    ):
        merge(variants, tmp_path / "saes", tmp_path / "evals", ["core", "sparse_probing"])


def test_a_json_without_metrics_is_a_missing_pair(tmp_path):
    variants = small_run(tmp_path)
    write_pair(tmp_path, "core", "ihtp_k5", {})
    with pytest.raises(collect.MissingPairError, match=r"\(core, ihtp_k5\).*has no metrics"):
        merge(variants, tmp_path / "saes", tmp_path / "evals", ["core", "sparse_probing"])
    table = merge(
        variants,
        tmp_path / "saes",
        tmp_path / "evals",
        ["core", "sparse_probing"],
        allow_missing=True,
    )
    assert table.attrs["missing"] == [("core", "ihtp_k5")]


def test_allow_missing_marks_the_gap(tmp_path):
    variants = small_run(tmp_path, with_core_for_k5=False)
    table = merge(
        variants,
        tmp_path / "saes",
        tmp_path / "evals",
        ["core", "sparse_probing"],
        allow_missing=True,
    )
    row = table.set_index("variant")
    assert row.loc["ihtp_k5", "missing"] == "core" and row.loc["baseline", "missing"] == ""
    assert math.isnan(row.loc["ihtp_k5", "core.sparsity.l0"])
    assert row.loc["ihtp_k5", "sparse_probing.sae.sae_top_1_test_accuracy"] == 0.75
    headlines = headline_metrics(["core", "sparse_probing"])
    text = render.markdown(
        ranking.compute(
            ranking.Comparison(
                table,
                headlines,
                ["core", "sparse_probing"],
                long=collect.collect(
                    variants,
                    tmp_path / "saes",
                    tmp_path / "evals",
                    ["core", "sparse_probing"],
                    allow_missing=True,
                ).long,
                seeds=[42],
                missing=table.attrs["missing"],
            )
        )
    )
    k5_line = next(line for line in text.splitlines() if "| ihtp_k5 |" in line)
    assert k5_line.count("missing") == 3 and "0.750" in k5_line
    assert "**Missing pairs**" in text and "core/ihtp_k5" in text


def test_step_fails_naming_the_pair_and_allow_missing_writes_everything(tmp_path, capsys):
    variants = small_run(tmp_path, with_core_for_k5=False)
    out = tmp_path / "merged"
    files = {
        "csv": out / "metrics.csv",
        "json": out / "metrics.json",
        "summary_md": out / "summary.md",
        "summary_rst": out / "summary.rst",
        "summary_html": out / "summary.html",
        "config": out / "config.yaml",
        "saebench": tmp_path / "saebench",
    }
    settings = plan(
        tmp_path, variants, ["core", "sparse_probing"], files, config={"allow_missing": True}
    )
    assert aggregate.run(settings) == 1
    assert "(core, ihtp_k5)" in capsys.readouterr().err and not (out / "metrics.csv").exists()
    assert aggregate.run({**settings, "allow_missing": True}) == 0
    records = json.loads((out / "metrics.json").read_text())
    assert [r["variant"] for r in records] == ["baseline", "ihtp_k5", "ihtp_k10"]
    assert records[1]["core.sparsity.l0"] is None and records[1]["missing"] == "core"
    assert "missing" in (out / "summary.rst").read_text()
    assert "<table" in (out / "summary.html").read_text()
    assert "allow_missing: true" in (out / "config.yaml").read_text()
    # SAE Bench's own names: links for the pairs that exist, none for the missing one
    links = sorted(p.name for p in (tmp_path / "saebench").rglob("*_eval_results.json"))
    assert "ihtp_k5_custom_sae_eval_results.json" not in os.listdir(tmp_path / "saebench" / "core")
    assert len(links) == 5
    link = tmp_path / "saebench" / "core" / "baseline_custom_sae_eval_results.json"
    assert json.loads(link.read_text())["eval_result_metrics"]["sparsity"]["l0"] == 30.0


def test_headline_threshold_selects_scr_and_tpp_keys():
    keys = {h.column: h.label for h in headline_metrics(["scr", "tpp"], threshold=10)}
    assert keys == {
        "scr.scr_metrics.scr_metric_threshold_10": "SCR (top 10 latents)",
        "tpp.tpp_metrics.tpp_threshold_10_total_metric": "TPP (top 10 latents)",
    }
    assert [h.column for h in headline_metrics(["scr"])] == [
        "scr.scr_metrics.scr_metric_threshold_20"
    ]


def ranking_table():
    return pd.DataFrame(
        [
            # variant, L0, explained variance (higher better), probe accuracy (higher better)
            {
                "variant": "a",
                "architecture": "x",
                "core.sparsity.l0": 10.0,
                CENTERED: 0.9,
                "sparse_probing.sae.sae_top_1_test_accuracy": 0.6,
            },
            {
                "variant": "b",
                "architecture": "x",
                "core.sparsity.l0": 50.0,
                CENTERED: 0.95,
                "sparse_probing.sae.sae_top_1_test_accuracy": 0.8,
            },
            {
                "variant": "c",
                "architecture": "x",
                "core.sparsity.l0": 20.0,
                CENTERED: 0.8,
                "sparse_probing.sae.sae_top_1_test_accuracy": 0.9,
            },
            {
                "variant": "d",
                "architecture": "x",
                "core.sparsity.l0": 5.0,
                CENTERED: 0.95,
                "sparse_probing.sae.sae_top_1_test_accuracy": float("nan"),
            },
        ]
    )


def test_ranking_rule():
    headlines = [h for h in headline_metrics(["core", "sparse_probing"]) if "ce_loss" not in h.key]
    ranked = rank_variants(ranking_table(), headlines)
    # one seed: wins by value. EV (b = d > a > c): b +2, d +2, a +1-2, c -3; accuracy (c > b > a,
    # d missing: not compared): c +2, b 0, a -2. Scores: b +2, d +2, c -1, a -3; b and d tie,
    # and the sparser d is listed first
    assert list(ranked["variant"]) == ["d", "b", "c", "a"]
    assert list(ranked["score"]) == [2.0, 2.0, -1.0, -3.0]
    assert list(ranked["rank"]) == [1, 1, 3, 4]


def test_ranking_ties_go_to_the_sparser_variant():
    table = ranking_table().iloc[:2].copy()
    table["sparse_probing.sae.sae_top_1_test_accuracy"] = [0.8, 0.6]  # a wins accuracy, b wins EV
    headlines = [h for h in headline_metrics(["core", "sparse_probing"]) if "ce_loss" not in h.key]
    assert list(rank_variants(table, headlines)["variant"]) == [
        "a",
        "b",
    ]  # both 0 (one win, one loss), a has lower L0


def test_lower_is_better_metrics_rank_ascending():
    table = pd.DataFrame(
        [
            {
                "variant": "a",
                "architecture": "x",
                "absorption.mean.mean_absorption_fraction_score": 0.3,
            },
            {
                "variant": "b",
                "architecture": "x",
                "absorption.mean.mean_absorption_fraction_score": 0.1,
            },
        ]
    )
    assert list(rank_variants(table, headline_metrics(["absorption"]))["variant"]) == ["b", "a"]


def test_pareto_front():
    import numpy as np

    x, y = np.array([5.0, 10.0, 20.0, 30.0]), np.array([0.5, 0.4, 0.9, 0.8])
    assert plot_l0.pareto_front(x, y, higher_is_better=True) == [0, 2]
    assert plot_l0.pareto_front(x, y, higher_is_better=False) == [0, 1]


def plot_table(tmp_path, eval_types, **kwargs):
    variants = small_run(tmp_path, **kwargs)
    table = merge(variants, tmp_path / "saes", tmp_path / "evals", eval_types, allow_missing=True)
    return collect.ensure_columns(table, [h.column for h in headline_metrics(eval_types)])


def assert_png(path):
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000, path


@pytest.mark.parametrize(
    "eval_types",
    [["core", "sparse_probing"], ["core"], ["sparse_probing"]],
    ids=["both", "core only", "no core"],
)
def test_plots_render_with_gaps_core_only_and_without_core(tmp_path, eval_types):
    table = plot_table(tmp_path, eval_types, with_core_for_k5=False)
    csv = tmp_path / "metrics.csv"
    table.to_csv(csv, index=False)
    ranks = tmp_path / "ranking.csv"
    headlines = headline_metrics(eval_types)
    ranking.compute(ranking.Comparison(table, headlines, eval_types)).ranks().to_csv(ranks)
    out = tmp_path / "plots"
    style = {
        "markers": {"standard": "o", "ihtp": "s"},
        "colors": {"standard": "#1f77b4"},
    }  # ihtp: fallback colour
    assert (
        plot_step.main(
            [
                "--table",
                str(csv),
                "--ranks",
                str(ranks),
                "--eval-types",
                *eval_types,
                "--style",
                json.dumps(style),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(os.listdir(out)) == sorted(outputs.plot_file_names(eval_types))
    for name in outputs.plot_file_names(eval_types):
        assert_png(out / name)


def test_a_headline_threshold_the_eval_did_not_compute_is_an_error(tmp_path, capsys):
    write_sae(tmp_path, "baseline", "standard")
    write_pair(
        tmp_path,
        "scr",
        "baseline",
        {"scr_metrics": {"scr_metric_threshold_10": 0.1, "scr_metric_threshold_20": 0.2}},
    )
    settings = plan(
        tmp_path,
        [{"id": "baseline", "family": "baseline"}],
        ["scr"],
        {"csv": tmp_path / "metrics.csv"},
    )
    assert aggregate.run({**settings, "threshold": 50}) == 1
    err = capsys.readouterr().err
    assert (
        "scr.scr_metrics.scr_metric_threshold_50" in err
        and "n_values" in err
        and "scr_metric_threshold_10" in err
    )
    assert aggregate.run({**settings, "threshold": 10}) == 0


# --- replicates: synthetic seed spreads ----------------------------------------------------------

SEEDS = [42, 43, 44]
BASE_SCR = {42: 0.610, 43: 0.387, 44: 0.454}
GAIN_SCR = {42: 0.116, 43: 0.099, 44: 0.111}  # mpsae - baseline: clear once paired
BASE_PROBE = {42: 0.958, 43: 0.958, 44: 0.970}
MP_PROBE = {42: 0.942, 43: 0.956, 44: 0.962}  # within noise of the baseline


def replicate_run(root, drop=None):
    """baseline and mpsae_s20 with core (once) and sparse_probing + scr at three seeds."""
    variants = [
        {"id": "baseline", "family": "baseline"},
        {"id": "mpsae_s20", "family": "mpsae", "param_name": "s", "param": 20},
    ]
    for v, arch, l0, ev in [
        ("baseline", "standard", 20.0, 0.89),
        ("mpsae_s20", "mpsae", 19.0, 0.97),
    ]:
        write_sae(root, v, arch)
        write_pair(
            root,
            "core",
            v,
            {"sparsity": {"l0": l0}, "model_performance_preservation": {"ce_loss_score": 0.99}},
            own={"workflow_reconstruction": {"explained_variance_centered": ev}},
        )
        for seed in SEEDS:
            if drop == (v, seed):
                continue
            where = None if seed == 42 else seed
            probe = BASE_PROBE[seed] if v == "baseline" else MP_PROBE[seed]
            scr = BASE_SCR[seed] + (GAIN_SCR[seed] if v == "mpsae_s20" else 0.0)
            write_pair(
                root, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": probe}}, seed=where
            )
            write_pair(
                root, "scr", v, {"scr_metrics": {"scr_metric_threshold_20": scr}}, seed=where
            )
    return variants


EVALS = ["core", "sparse_probing", "scr"]


def merged_replicates(root, **kwargs):
    return collect.collect(
        replicate_run(root, **kwargs),
        root / "saes",
        root / "evals",
        EVALS,
        main_seed=42,
        extra_seeds=[43, 44],
        replicated=["sparse_probing", "scr"],
        **({"allow_missing": True} if kwargs else {}),
    )


def test_replicates_give_means_intervals_and_a_long_table(tmp_path):
    table = merged_replicates(tmp_path).table.set_index("variant")
    probe = "sparse_probing.sae.sae_top_1_test_accuracy"
    values = pd.Series(BASE_PROBE)
    assert table.loc["baseline", probe] == pytest.approx(values.mean())
    assert table.loc["baseline", f"{probe}_std"] == pytest.approx(values.std())
    assert table.loc["baseline", f"{probe}_n"] == 3
    half = 4.302652729911275 * values.std() / math.sqrt(3)
    assert table.loc["baseline", f"{probe}_ci_high"] == pytest.approx(values.mean() + half)
    assert f"{CENTERED}_ci_low" not in table  # core is measured once: no interval columns
    long = merged_replicates(tmp_path / "again").long
    assert list(long.columns) == ["variant", "eval_type", "metric", "seed", "value"]
    rows = long[(long["metric"] == "sae.sae_top_1_test_accuracy") & (long["variant"] == "baseline")]
    assert dict(zip(rows["seed"], rows["value"])) == BASE_PROBE
    assert set(long[long["eval_type"] == "core"]["seed"]) == {42}


def test_a_missing_replicate_is_an_error_or_reported(tmp_path):
    with pytest.raises(collect.MissingPairError, match=r"seed 43.*seed_43/mpsae_s20.json"):
        merge(
            replicate_run(tmp_path, drop=("mpsae_s20", 43)),
            tmp_path / "saes",
            tmp_path / "evals",
            EVALS,
            extra_seeds=[43, 44],
            replicated=["sparse_probing", "scr"],
        )
    merged = merged_replicates(tmp_path / "b", drop=("mpsae_s20", 43))
    assert ("scr", "mpsae_s20", 43) in merged.missing_replicates
    compared = ranking.Comparison(
        merged.table,
        headline_metrics(EVALS),
        EVALS,
        long=merged.long,
        seeds=SEEDS,
        baseline_of={"baseline": "baseline", "mpsae_s20": "baseline"},
        missing_replicates=merged.missing_replicates,
    )
    text = render.markdown(ranking.compute(compared))
    assert "**Missing replicates**" in text and "scr/seed_43/mpsae_s20" in text
    assert "43 (baseline only)" in text  # the unpaired seed is named, not silently dropped
    versus = ranking.compute(compared).versus.set_index("metric")
    assert (
        versus.loc["scr_metrics.scr_metric_threshold_20", "n"] == 2
        and versus.loc["scr_metrics.scr_metric_threshold_20", "seeds"] == "42;44"
    )


def replicate_summary(root):
    merged = merged_replicates(root)
    compared = ranking.Comparison(
        merged.table,
        headline_metrics(EVALS),
        EVALS,
        long=merged.long,
        seeds=SEEDS,
        baseline_of={"baseline": "baseline", "mpsae_s20": "baseline"},
    )
    return compared, render.markdown(ranking.compute(compared))


def test_summary_with_replicates_claims_only_what_is_outside_noise(tmp_path):
    compared, text = replicate_summary(tmp_path)
    assert "seeds 42, 43, 44 (n = 3)" in text
    line = next(row for row in text.splitlines() if "| baseline |" in row and "±" in row)
    assert "0.962 ± 0.017" in line  # probe mean ± t half-width
    # the probe difference is within noise: no bold in that column, both share rank 1 there
    header, cells, bold = render.summary_rows(ranking.compute(compared))
    column = header.index("top-1 SAE probe accuracy ↑")
    assert not any(marks[column] for marks in bold)
    # SCR: shown with its reliability mark, never ranked by default
    assert any(h.startswith("SCR (top 20 latents) ↑†") for h in header)
    assert "fails the audit's reliability tests" in text
    # versus baseline: SCR clearly better when paired, but not ranked: descriptive, no claim
    versus = ranking.compute(compared).versus.set_index("metric")
    scr = "scr_metrics.scr_metric_threshold_20"
    assert versus.loc[scr, "verdict"] == "better (descriptive, uncorrected)"
    assert versus.loc["sae.sae_top_1_test_accuracy", "verdict"] == "within noise"
    assert versus.loc["workflow_reconstruction.explained_variance_centered", "verdict"] == (
        "no noise estimate"
    )
    assert "## Versus the baseline point" in text and "(better (descriptive" in text
    # ranked, SCR joins the family (with the probe: two tests, Holm) and its claim survives
    compared.ranking = [
        "scr.scr_metrics.scr_metric_threshold_20",
        "sparse_probing.sae.sae_top_1_test_accuracy",
    ]
    results = ranking.compute(compared)
    versus = results.versus.set_index("metric")
    assert results.family_size == 2 and versus.loc[scr, "family"] == "confirmatory"
    assert versus.loc[scr, "p_adjusted"] == pytest.approx(min(1.0, 2 * versus.loc[scr, "p_value"]))
    assert versus.loc[scr, "verdict"] == "better"
    compared.ranking = None
    # ranking: probe within noise -> shared rank; EV (core, measured once) by value -> mpsae wins
    ranked = ranking.rank_variants(compared.table, compared.headlines, compared)
    assert list(ranked["variant"]) == ["mpsae_s20", "baseline"]
    assert list(ranked["score"]) == [1.0, -1.0]  # EV: one win by value; probe, CE: no win


def test_summary_with_one_seed_says_there_is_no_noise_estimate(tmp_path):
    merged = collect.collect(
        replicate_run(tmp_path),
        tmp_path / "saes",
        tmp_path / "evals",
        EVALS,
    )
    compared = ranking.Comparison(
        merged.table,
        headline_metrics(EVALS),
        EVALS,
        long=merged.long,
        seeds=[42],
        baseline_of={"baseline": "baseline", "mpsae_s20": "baseline"},
    )
    text = render.markdown(ranking.compute(compared))
    assert "**One seed (42): no noise estimate exists.**" in text
    assert "replicates.seeds" in text
    header, cells, bold = render.summary_rows(ranking.compute(compared))
    probe = header.index("top-1 SAE probe accuracy ↑")
    ev = header.index("explained variance ↑")
    assert not any(marks[probe] for marks in bold)  # 0.958 vs 0.942: one seed, not bolded
    assert [marks[ev] for marks in bold] == [True, False]  # deterministic core: strictly best
    assert "±" not in "".join("".join(c) for c in cells)
    assert "(no noise estimate, n=1)" in text


def test_ranking_metrics_from_the_config_replace_the_default(tmp_path):
    compared, _ = replicate_summary(tmp_path)
    compared.ranking = ["scr.scr_metrics.scr_metric_threshold_20"]
    ranked = ranking.rank_variants(compared.table, compared.headlines, compared)
    assert list(ranked["variant"]) == ["mpsae_s20", "baseline"]  # paired SCR win counts
    assert list(ranked["rank"]) == [1, 2]
    header, _, _ = render.summary_rows(ranking.compute(compared))
    assert "SCR (top 20 latents) ↑" in header and "explained variance ↑†" in header


def test_cli_writes_long_and_versus_tables(tmp_path):
    variants = replicate_run(tmp_path)
    out = tmp_path / "merged"
    files = {"csv": out / "metrics.csv", "long": out / "long.csv", "versus": out / "versus.csv"}
    files.update(summary_md=out / "summary.md", ranks=out / "ranking.csv")
    settings = plan(tmp_path, variants, EVALS, files, extra_seeds=[43, 44])
    assert aggregate.run({**settings, "replicated": ["sparse_probing", "scr"]}) == 0
    long = pd.read_csv(out / "long.csv")
    assert len(long[(long["eval_type"] == "scr")]) == 6  # 2 variants x 3 seeds
    versus = pd.read_csv(out / "versus.csv")
    # SCR is not ranked by default: its rows are descriptive, never a claim
    assert set(versus["verdict"]) == {
        "better (descriptive, uncorrected)",
        "within noise",
        "no noise estimate",
    }
    scr = versus[versus["eval_type"] == "scr"]
    assert set(scr["family"]) == {"descriptive"}
    table = pd.read_csv(out / "metrics.csv")
    assert "scr.scr_metrics.scr_metric_threshold_20_ci_low" in table


def test_plots_draw_intervals_and_verdicts_with_replicates(tmp_path, monkeypatch):
    import matplotlib.axes

    variants = replicate_run(tmp_path)
    out = tmp_path / "merged"
    files = {"csv": out / "metrics.csv", "long": out / "long.csv", "versus": out / "versus.csv"}
    files["ranks"] = out / "ranking.csv"
    settings = plan(tmp_path, variants, EVALS, files, extra_seeds=[43, 44])
    assert aggregate.run({**settings, "replicated": ["sparse_probing", "scr"]}) == 0
    drawn, texts = [], []
    original_errorbar, original_text = matplotlib.axes.Axes.errorbar, matplotlib.axes.Axes.text

    def errorbar(self, x, y, yerr=None, **kwargs):
        drawn.append((self.get_title(), list(y), [list(e) for e in yerr]))
        return original_errorbar(self, x, y, yerr=yerr, **kwargs)

    def text(self, x, y, s, *a, **k):
        texts.append(str(s))
        return original_text(self, x, y, s, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", text)
    plots_dir = tmp_path / "plots"
    cli = ["--table", str(out / "metrics.csv"), "--ranks", str(out / "ranking.csv")]
    cli += ["--versus", str(out / "versus.csv"), "--eval-types", *EVALS]
    assert plot_step.main(cli + ["--out-dir", str(plots_dir)]) == 0
    for name in outputs.plot_file_names(EVALS):
        assert_png(plots_dir / name)
    titles = {title for title, _, _ in drawn}
    assert titles == {"top-1 SAE probe accuracy", "SCR (top 20 latents)"}  # not core: one value
    probe = [d for d in drawn if d[0] == "top-1 SAE probe accuracy"]
    half = 4.302652729911275 * pd.Series(BASE_PROBE).std() / math.sqrt(3)
    assert any(y == pytest.approx([pd.Series(BASE_PROBE).mean()]) for _, y, _ in probe)
    assert any(e[0] == pytest.approx([half]) for _, _, e in probe)
    cells = " ".join(texts)
    assert "▲" in cells and "≈" in cells  # SCR better, probe within noise (heat map)


# --- decoder-only evals (meta-structure): derived variants share their baseline's value ---------

META = "meta_structure.meta_structure.decoder_fraction_variance_explained"


def test_decoder_only_values_are_shared_not_measured_again_nor_compared(tmp_path):
    """A derived variant has no meta-structure job: the table shows its baseline's value (and
    interval), the long table (the noise, the verdicts) holds each measured value once, no
    verdict compares the variant with its own baseline on it, and the summary says why."""
    variants = [
        {"id": "baseline", "family": "baseline", "baseline": "baseline"},
        {"id": "mpsae_s20", "family": "mpsae", "baseline": "baseline"},
        {"id": "other", "family": "comparison", "baseline": "baseline"},
    ]
    meta = {"baseline": {42: 0.30, 43: 0.32, 44: 0.31}, "other": {42: 0.20, 43: 0.22, 44: 0.19}}
    for v in ("baseline", "mpsae_s20", "other"):
        write_sae(tmp_path, v, "standard")
        for seed in SEEDS:
            where = None if seed == 42 else seed
            write_pair(
                tmp_path, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": 0.9}}, seed=where
            )
            if v in meta:  # the derived variant has no result of its own
                write_pair(
                    tmp_path,
                    "meta_structure",
                    v,
                    {"meta_structure": {"decoder_fraction_variance_explained": meta[v][seed]}},
                    seed=where,
                )
    eval_types = ["sparse_probing", "meta_structure"]
    merged = collect.collect(
        variants,
        tmp_path / "saes",
        tmp_path / "evals",
        eval_types,
        extra_seeds=[43, 44],
        replicated=eval_types,
        decoder_only=["meta_structure"],
    )
    assert merged.shared == [("meta_structure", "mpsae_s20", "baseline")]
    table = merged.table.set_index("variant")
    for column in (META, f"{META}_ci_low", f"{META}_n"):
        assert table.loc["mpsae_s20", column] == table.loc["baseline", column]
    assert table.loc["baseline", META] == pytest.approx(0.31)
    # seed counts stay integers although derived variants have no meta-structure rows
    probe_n = "sparse_probing.sae.sae_top_1_test_accuracy_n"
    assert str(table[probe_n].dtype) == "Int64" and table.loc["mpsae_s20", probe_n] == 3
    long = merged.long
    assert long[(long["eval_type"] == "meta_structure") & (long["variant"] == "mpsae_s20")].empty
    compared = ranking.Comparison(
        merged.table,
        headline_metrics(eval_types),
        eval_types,
        long=merged.long,
        seeds=SEEDS,
        baseline_of={v["id"]: "baseline" for v in variants},
        shared=merged.shared,
    )
    results = ranking.compute(compared)
    versus = results.versus
    meta_rows = versus[versus["eval_type"] == "meta_structure"]
    assert list(meta_rows["variant"]) == ["other"]  # the comparison SAE is compared; mpsae is not
    probe_rows = versus[versus["eval_type"] == "sparse_probing"]
    assert set(probe_rows["variant"]) == {"mpsae_s20", "other"}
    text = render.markdown(results)
    assert "mpsae_s20 reuse their baseline's decoder" in text and "by construction" in text


def test_a_shared_value_is_missing_where_its_baselines_is(tmp_path):
    variants = [
        {"id": "baseline", "family": "baseline", "baseline": "baseline"},
        {"id": "mpsae_s20", "family": "mpsae", "baseline": "baseline"},
    ]
    for v in ("baseline", "mpsae_s20"):
        write_sae(tmp_path, v, "standard")
        write_pair(tmp_path, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": 0.9}})
    # the baseline's meta-structure job failed (no JSON); allow_missing aggregates without it
    merged = collect.collect(
        variants,
        tmp_path / "saes",
        tmp_path / "evals",
        ["sparse_probing", "meta_structure"],
        allow_missing=True,
        decoder_only=["meta_structure"],
    )
    table = merged.table.set_index("variant")
    assert table.loc["baseline", "missing"] == "meta_structure"
    assert table.loc["mpsae_s20", "missing"] == "meta_structure"
    assert merged.missing == [("meta_structure", "baseline")]
