"""The demo runs end to end through Snakemake, offline, and reruns only what changed.

One demo run (module fixture) feeds every test here; it takes a few minutes on 2 cores.
"""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake, write_config
from workflow_scripts.evals.registry import REGISTRY

DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
EVAL_TYPES = [e for e, on in DEMO["eval_types"].items() if on]
VARIANTS = (
    ["baseline"]
    + [f"ihtp_k{k}" for k in DEMO["sae_variants"]["ihtp"]["k_values"]]
    + [f"mpsae_s{s}" for s in DEMO["sae_variants"]["mpsae"]["s_values"]]
)


def executed_jobs(output: str) -> dict[str, int]:
    """rule -> count from the 'Job stats' table Snakemake prints at the start of a run."""
    stats = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*total", output, re.S)
    if not stats:
        return {}
    return {
        rule: int(n) for rule, n in (line.split() for line in stats.group(1).strip().splitlines())
    }


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    network_log = workdir / "network.log"
    env = {
        "PYTHONPATH": str(REPO / "tests" / "network_guard"),
        "WORKFLOW_TEST_NETWORK_LOG": str(network_log),
    }
    config = write_config(workdir / "demo.yaml", "demo.yaml")
    result = run_snakemake(
        ["--cores", "2", "--configfile", str(config)], workdir, env=env, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return {
        "workdir": workdir,
        "config": config,
        "env": env,
        "network_log": network_log,
        "output": result.stdout + result.stderr,
    }


def test_every_output_exists(demo_run):
    out = demo_run["workdir"] / "results"
    for variant in VARIANTS:
        assert (out / "saes" / variant / "sae.safetensors").is_file()
        assert json.loads((out / "saes" / variant / "config.json").read_text())["d_sae"] > 0
        for eval_type in EVAL_TYPES:
            result = json.loads((out / "evals" / eval_type / f"{variant}.json").read_text())
            assert result["eval_result_metrics"], (eval_type, variant)
            assert logs_exist(demo_run["workdir"], eval_type, variant)
    assert (out / "merged" / "metrics.csv").is_file() and (
        out / "merged" / "metrics.json"
    ).is_file()
    for eval_type in EVAL_TYPES:
        plot = out / "plots" / f"l0_vs_{eval_type}.png"
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def logs_exist(workdir, eval_type, variant):
    return (workdir / "logs" / "evaluate" / eval_type / f"{variant}.log").is_file() and (
        workdir / "benchmarks" / "evaluate" / eval_type / f"{variant}.tsv"
    ).is_file()


def test_merged_table_has_every_variant_and_metric(demo_run):
    out = demo_run["workdir"] / "results"
    table = pd.read_csv(out / "merged" / "metrics.csv")
    assert sorted(table["variant"]) == sorted(VARIANTS)
    row = table.set_index("variant")
    for variant in VARIANTS:
        for eval_type in EVAL_TYPES:
            result = json.loads((out / "evals" / eval_type / f"{variant}.json").read_text())
            for group, metrics in result["eval_result_metrics"].items():
                for name, value in metrics.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        assert row.loc[variant, f"{eval_type}.{group}.{name}"] == pytest.approx(
                            value
                        )
            for metric in REGISTRY[eval_type].headline:
                assert not pd.isna(row.loc[variant, f"{eval_type}.{metric.key}"])
    assert set(row.loc[VARIANTS, "architecture"]) == {"standard", "ihtp", "mpsae"}


def test_metrics_mean_something(demo_run):
    table = pd.read_csv(demo_run["workdir"] / "results" / "merged" / "metrics.csv").set_index(
        "variant"
    )
    baseline = table.loc["baseline"]
    assert baseline["core.reconstruction_quality.explained_variance"] > 0.7
    assert (
        baseline["sparse_probing.llm.llm_test_accuracy"] > 0.6
    )  # 5 classes one-vs-rest: chance 0.5
    # MP with s steps never activates more than s latents per token
    for s in DEMO["sae_variants"]["mpsae"]["s_values"]:
        assert table.loc[f"mpsae_s{s}", "core.sparsity.l0"] <= s + 1e-6


def test_no_network_connection_was_attempted(demo_run):
    assert not demo_run["network_log"].exists(), demo_run["network_log"].read_text()


def test_rerun_does_nothing(demo_run):
    result = run_snakemake(
        ["--cores", "2", "--configfile", str(demo_run["config"])],
        demo_run["workdir"],
        env=demo_run["env"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_variant_runs_only_its_jobs(demo_run):
    workdir = demo_run["workdir"]
    ks = DEMO["sae_variants"]["ihtp"]["k_values"] + [3]
    config = write_config(
        workdir / "demo_plus.yaml",
        "demo.yaml",
        sae_variants={**DEMO["sae_variants"], "ihtp": {"enabled": True, "k_values": ks}},
    )
    before = {p: p.stat().st_mtime for p in (workdir / "results" / "evals").rglob("*.json")}
    result = run_snakemake(
        ["--cores", "2", "--configfile", str(config)], workdir, env=demo_run["env"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = executed_jobs(result.stdout + result.stderr)
    assert jobs == {
        "derive_sae": 1,
        "evaluate": len(EVAL_TYPES),
        "aggregate": 1,
        "plot": 1,
        "all": 1,
    }
    assert all(p.stat().st_mtime == t for p, t in before.items())  # nothing else was recomputed
    table = pd.read_csv(workdir / "results" / "merged" / "metrics.csv")
    assert "ihtp_k3" in set(table["variant"])
