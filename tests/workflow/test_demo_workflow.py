"""The demo runs end to end through Snakemake, offline, and reruns only what changed.

The session's shared demo run (tests/conftest.py: the README's demo config with every one of its
eval types plus absorption and meta-structure, on one variant of each family; the session's
demo build, made by the build rule, seeded in) feeds every test here.
"""

import json
import re

import pandas as pd
import pytest
import torch
import yaml

from conftest import (
    SHARED_EVAL_TYPES,
    SHARED_SAE_VARIANTS,
    SHARED_VARIANTS,
    evaluated_variants,
    run_snakemake,
    write_config,
)
from workflow_scripts.evals.registry import REGISTRY

EVAL_TYPES = SHARED_EVAL_TYPES
SAE_VARIANTS = SHARED_SAE_VARIANTS
VARIANTS = SHARED_VARIANTS


def executed_jobs(output: str) -> dict[str, int]:
    """rule -> count from the 'Job stats' table Snakemake prints at the start of a run (and of
    a dry run)."""
    stats = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*total", output, re.S)
    if not stats:
        return {}
    return {
        rule: int(n) for rule, n in (line.split() for line in stats.group(1).strip().splitlines())
    }


@pytest.fixture(scope="module")
def demo_run(shared_demo_run):
    return shared_demo_run


def test_every_output_exists(demo_run):
    out = demo_run["workdir"] / "results"
    for variant in VARIANTS:
        assert (out / "saes" / variant / "sae.safetensors").is_file()
        assert json.loads((out / "saes" / variant / "config.json").read_text())["d_sae"] > 0
        for eval_type in [e for e in EVAL_TYPES if variant in evaluated_variants(e)]:
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
            # a decoder-only eval's derived variants show their baseline's result
            source = variant if variant in evaluated_variants(eval_type) else "baseline"
            result = json.loads((out / "evals" / eval_type / f"{source}.json").read_text())
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
    assert baseline["core.workflow_reconstruction.explained_variance_centered"] > 0.7
    assert baseline["core.reconstruction_quality.explained_variance"] > 0.7  # SAE Bench's own
    assert (
        baseline["sparse_probing.llm.llm_test_accuracy"] > 0.6
    )  # 5 classes one-vs-rest: chance 0.5
    # MP with s steps never activates more than s latents per token
    for s in SAE_VARIANTS["mpsae"]["s_values"]:
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


def test_adding_a_variant_plans_only_its_jobs(demo_run):
    """With one more IHTP k, Snakemake plans its derivation and evaluations, then the aggregation
    and plots: nothing else (the dry run lists exactly what a run would execute)."""
    workdir = demo_run["workdir"]
    ks = SAE_VARIANTS["ihtp"]["k_values"] + [3]
    config = write_config(
        workdir / "demo_plus.yaml",
        demo_run["config"],
        sae_variants={**SAE_VARIANTS, "ihtp": {"enabled": True, "k_values": ks}},
    )
    result = run_snakemake(["-n", "--configfile", str(config)], workdir, env=demo_run["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert executed_jobs(output) == {
        "derive_sae": 1,
        "evaluate": len([e for e in EVAL_TYPES if not REGISTRY[e].decoder_only]),
        "aggregate": 1,
        "plot": 1,
        "all": 1,
    }
    planned = set(re.findall(r"wildcards: .*variant=(\S+)", output))
    assert planned == {"ihtp_k3"}


def test_centered_explained_variance_equals_a_direct_computation(demo_run, monkeypatch):
    """The recorded value (results/workflow_metrics/core/baseline.json) equals 1 - SSE/SST
    computed here from scratch over the tokens SAE Bench's core pass draws: the model run on
    them, the SAE applied, special tokens masked, sums in float64."""
    import sae_bench.evals.core.main as core_main
    from transformers import AutoTokenizer

    from workflow_scripts.evals import core, patches, registry
    from workflow_scripts.evals.base import EvalJob
    from workflow_scripts.evals.local_loaders import load_local_model
    from workflow_scripts.evals.reconstruction import ReconstructionStats
    from workflow_scripts.plan.config import validate_config
    from workflow_scripts.saes import sae_folder

    workdir = demo_run["workdir"]
    monkeypatch.chdir(workdir)  # the demo config's paths are relative to the run's folder
    config = validate_config(yaml.safe_load(demo_run["config"].read_text()))
    job_settings = registry.job_settings(config, "core")
    sae = sae_folder.load_sae(workdir / "results" / "saes" / "baseline", device="cpu")
    model_dir = config["model"]["local_dir"]
    stats = ReconstructionStats(keep_batches=True)
    job = EvalJob("core", sae, "baseline", job_settings, workdir / "direct_core", None)
    with patches.local_models({config["model"]["name"]: model_dir}):
        with patches.record_core_reconstruction(core_main, stats):
            core._multiple_evals(core_main, job, job_settings["section_values"], config["model"])

    model = load_local_model(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(workdir / "resources" / "demo" / "tokenizer"))
    special = torch.tensor([tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id])
    x_all, x_hat_all = [], []
    with torch.no_grad():
        for tokens, recorded_mask in stats.batches:
            mask = ~torch.isin(tokens, special)
            assert torch.equal(mask, recorded_mask)  # the special tokens SAE Bench leaves out
            _, cache = model.run_with_cache(tokens, names_filter=[sae.cfg.hook_name])
            x = cache[sae.cfg.hook_name]
            x_all.append(x[mask].double())
            x_hat_all.append(sae.decode(sae.encode(x))[mask].double())
    x, x_hat = torch.cat(x_all), torch.cat(x_hat_all)
    direct = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    record = json.loads(
        (workdir / "results" / "workflow_metrics" / "core" / "baseline.json").read_text()
    )
    recorded = record["eval_result_metrics"]["workflow_reconstruction"]
    assert recorded["explained_variance_centered"] == pytest.approx(float(direct), abs=1e-4)
    assert recorded["tokens"] == len(x)
    saebench = json.loads((workdir / "results" / "evals" / "core" / "baseline.json").read_text())
    uncentered = saebench["eval_result_metrics"]["reconstruction_quality"]["explained_variance"]
    assert abs(uncentered - float(direct)) > 1e-3  # SAE Bench's number is another quantity
