"""The end of the pipeline on real demo outputs: summary, plots, Snakemake report, SAE Bench's own
readers, and missing pairs both ways.

The session's shared demo run (tests/conftest.py) feeds every test; the missing-pair tests work
on a copy of it, because they remove a result.
"""

import base64
import json
import re

import matplotlib.image
import pandas as pd
import pytest

from conftest import (
    SHARED_EVAL_TYPES,
    SHARED_VARIANTS,
    copy_run,
    evaluated_variants,
    run_snakemake,
    write_config,
)
from workflow_scripts.plan.headlines import ranking_columns
from workflow_scripts.plan.outputs import plot_file_names
from workflow_scripts.results.ranking import headline_metrics

EVAL_TYPES = SHARED_EVAL_TYPES
VARIANTS = SHARED_VARIANTS


@pytest.fixture(scope="module")
def run(shared_demo_run):
    return shared_demo_run


def json_headlines(out, variant):
    """Headline values read straight from SAE Bench's JSONs (and the workflow's records, for
    the workflow's own metrics: the centered explained variance)."""
    values = {}
    for h in headline_metrics(EVAL_TYPES):
        folder = "workflow_metrics" if h.key.startswith("workflow_") else "evals"
        # a decoder-only eval's derived variants show their baseline's value
        source = variant if variant in evaluated_variants(h.eval_type) else "baseline"
        result = json.loads((out / folder / h.eval_type / f"{source}.json").read_text())
        group, name = h.key.split(".")
        values[h.column] = result["eval_result_metrics"][group][name]
    return values


def summary_rows(text):
    rows = [
        line.strip("|").split("|") for line in text.splitlines() if re.match(r"\| \d+ \|", line)
    ]
    return [[cell.strip().strip("*") for cell in row] for row in rows]


def test_summary_has_every_variant_ranked_by_the_rule(run):
    """The Copeland rule, recomputed here from the JSONs and the core records: wins − losses
    summed over the default ranking's headlines (not L0, not SCR/TPP/meta-structure); one seed,
    so the probes and absorption win by value (shown precision), and core's metrics by the paired
    bootstrap over its recorded batches from 20 batches on (by value below); ties -> lower L0."""
    from workflow_scripts.results import core_noise
    from workflow_scripts.results.formatting import format_value

    text = (run["out"] / "merged" / "summary.md").read_text()
    rows = summary_rows(text)
    headlines = headline_metrics(EVAL_TYPES)
    values = {v: json_headlines(run["out"], v) for v in VARIANTS}
    records = {
        v: json.loads((run["out"] / "workflow_metrics" / "core" / f"{v}.json").read_text())
        for v in VARIANTS
    }
    metric_of = {
        "workflow_reconstruction.explained_variance_centered": core_noise.explained_variance,
        "model_performance_preservation.ce_loss_score": core_noise.ce_loss_score,
    }
    score = dict.fromkeys(VARIANTS, 0)
    ranked = set(ranking_columns(headlines, None))  # the default: all but L0 and unreliable ones
    assert {"scr", "tpp", "meta_structure"}.isdisjoint({c.split(".")[0] for c in ranked})
    for h in [h for h in headlines if h.column in ranked]:
        for a in VARIANTS:
            for b in VARIANTS:
                if a == b:
                    continue
                batches = records[a]["core_batches"]
                if h.key in metric_of and len(batches["tokens"]) >= 20:  # verdicts.MIN_BATCHES
                    result = core_noise.paired_bootstrap(
                        records[a]["core_batches"],
                        records[b]["core_batches"],
                        metric_of[h.key],
                        n_resamples=999,
                    )
                    wins = result["ci_low"] > 0
                else:
                    x, y = values[a][h.column], values[b][h.column]
                    wins = format_value(x) != format_value(y) and (x > y) == h.higher_is_better
                score[a] += wins
                score[b] -= wins
    expected = sorted(VARIANTS, key=lambda v: (-score[v], values[v]["core.sparsity.l0"], v))
    assert [row[1] for row in rows] == expected
    for row in rows:
        shown = [float(cell) for cell in row[4 : 4 + len(headlines)]]
        assert shown == pytest.approx(
            [values[row[1]][h.column] for h in headlines], rel=2e-3, abs=1e-3
        )
        assert int(row[-1]) == score[row[1]]
    assert "**Ranking**: score = wins − losses" in text and "no noise estimate exists" in text


def test_the_run_prints_the_summary_at_the_end(run):
    stdout = run[
        "stdout"
    ]  # Snakemake logs to stderr; the summary is the run's last words on stdout
    assert stdout.rstrip().endswith("Summary written to results/merged/summary.md")
    printed = stdout[stdout.rindex("# SAE Bench comparison") :]
    assert printed.startswith((run["out"] / "merged" / "summary.md").read_text())
    for variant in VARIANTS:
        assert f"| {variant} |" in printed


def test_merged_table_matches_the_jsons(run):
    table = pd.read_csv(run["out"] / "merged" / "metrics.csv").set_index("variant")
    assert sorted(table.index) == sorted(VARIANTS)
    for variant in VARIANTS:
        for column, value in json_headlines(run["out"], variant).items():
            assert table.loc[variant, column] == pytest.approx(value)
    records = json.loads((run["out"] / "merged" / "metrics.json").read_text())
    assert {r["variant"] for r in records} == set(VARIANTS)


def test_every_plot_is_a_real_png(run):
    for name in plot_file_names(EVAL_TYPES):
        path = run["out"] / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000, name
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 400 and image.shape[1] > 600, name
        assert image[..., :3].std() > 0.05, f"{name} is (nearly) blank"


def test_report_is_self_contained_with_every_plot_the_summary_and_the_config(run):
    result = run_snakemake(
        ["--cores", "1", "--configfile", str(run["config"]), "--report", "results/report.html"],
        run["workdir"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    html = (run["out"] / "report.html").read_text()
    for name in plot_file_names(EVAL_TYPES):
        png = base64.b64encode((run["out"] / "plots" / name).read_bytes()[:300]).decode()[:200]
        assert name in html and png in html, f"{name} not embedded"
    assert "Headline metrics, ranked" in html  # the summary table on the workflow page
    assert "Pareto frontier" in html  # a plot caption
    assert "headline_threshold" in html  # the configuration of the run
    assert "summary.html" in html and "metrics.csv" in html
    assert '<script src="http' not in html  # nothing to fetch: self-contained


def test_saebench_graphing_utils_read_the_results(run):
    from sae_bench.sae_bench_utils import graphing_utils

    out = run["out"]
    # SAE Bench's own file names (links written by the aggregation)
    found = graphing_utils.find_eval_results_files([str(out / "saebench")])
    assert len(found) == sum(len(evaluated_variants(e)) for e in EVAL_TYPES)
    named = graphing_utils.get_eval_results(sorted(f for f in found if "/sparse_probing/" in f))
    assert set(named) == {f"{v}_custom_sae" for v in VARIANTS}
    assert named["baseline_custom_sae"]["sae_class"] == "standard"
    # ... or straight from results/evals/ with a glob
    direct = graphing_utils.get_eval_results(
        sorted(str(p) for p in (out / "evals" / "core").glob("*.json"))
    )
    core = graphing_utils.get_core_results(
        sorted(str(p) for p in (out / "evals" / "core").glob("*.json"))
    )
    assert direct["ihtp_k5.json"]["l0"] == pytest.approx(core["ihtp_k5.json"]["l0"])


@pytest.fixture
def failed_pair_run(run, tmp_path):
    """A copy of the run in which a pair's job failed (drop_pair)."""
    copy = copy_run(run, tmp_path / "run")
    drop_pair(copy)
    return copy


def drop_pair(run, eval_type="core", variant="ihtp_k5"):
    """A pair whose job failed: Snakemake removed its outputs, its log stays."""
    for folder in ("evals", "workflow_metrics"):
        path = run["out"] / folder / eval_type / f"{variant}.json"
        if path.exists():
            path.unlink()
    assert (run["workdir"] / "logs" / "evaluate" / eval_type / f"{variant}.log").is_file()


def test_a_missing_pair_is_an_error_naming_it_by_default(failed_pair_run):
    run = failed_pair_run
    # aggregation alone (the pair may not be recomputed): Snakemake names the missing pair
    result = run_snakemake(
        [
            "--cores",
            "1",
            "--configfile",
            str(run["config"]),
            "--forcerun",
            "aggregate",
            "--allowed-rules",
            "aggregate",
            "plot",
            "all",
        ],
        run["workdir"],
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert (
        "Missing input files for rule aggregate" in output
        and "results/evals/core/ihtp_k5.json" in output
    )


def test_allow_missing_marks_the_gap_in_table_plots_and_report(failed_pair_run):
    run = failed_pair_run
    config = write_config(run["workdir"] / "allow_missing.yaml", run["config"], allow_missing=True)
    result = run_snakemake(["--cores", "1", "--configfile", str(config)], run["workdir"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "rule evaluate" not in output  # the failed pair is not retried, the rest is reused
    table = pd.read_csv(run["out"] / "merged" / "metrics.csv").set_index("variant")
    assert table.loc["ihtp_k5", "missing"] == "core" and pd.isna(
        table.loc["ihtp_k5", "core.sparsity.l0"]
    )
    text = (run["out"] / "merged" / "summary.md").read_text()
    assert "core/ihtp_k5" in text and "missing" in next(
        r for r in text.splitlines() if "| ihtp_k5 |" in r
    )
    for name in plot_file_names(EVAL_TYPES):
        assert (run["out"] / "plots" / name).stat().st_size > 20_000
    result = run_snakemake(
        ["--cores", "1", "--configfile", str(config), "--report", "results/report.html"],
        run["workdir"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    html = (run["out"] / "report.html").read_text()
    assert "Missing pairs" in html and "core/ihtp_k5" in html
