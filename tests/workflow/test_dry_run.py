"""Dry runs plan exactly one evaluation job per (variant, enabled eval type), without GPU or
network."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake, write_config

DEFAULT_VARIANTS = {
    "baseline",
    "ihtp_k5",
    "ihtp_k10",
    "mpsae_s50",
    "mpsae_s100",
    "sae_bench_pythia70m_sweep_topk_ctx128_0730__blocks.4.hook_resid_post__trainer_8",
}
# the default reference frontier: the other 4096-latent trainers of the baseline's sweep, layer 4
REFERENCE_TRAINERS = (0, 1, 4, 5, 9, 12, 13, 16, 17, 20, 21)
DEFAULT_VARIANTS |= {
    f"sae_bench_pythia70m_sweep_standard_ctx128_0712__blocks.4.hook_resid_post__trainer_{t}"
    for t in REFERENCE_TRAINERS
}
N_DEFAULT_EVALS = len(DEFAULT_VARIANTS) * 5  # 17 variants x 5 default eval types


def planned_jobs(stdout: str) -> list[dict]:
    """(rule, wildcards) of every job in a `snakemake -n` listing."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout):
        match = re.match(r"(?:local)?rule (\w+):", block)
        if not match:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = dict(p.split("=", 1) for p in wildcards.group(1).split(", ")) if wildcards else {}
        jobs.append({"rule": match.group(1), **pairs})
    return jobs


def dry_run(tmp_path, *args):
    result = run_snakemake(["-n", *args], tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return planned_jobs(result.stdout)


def test_default_config_plans_one_evaluation_job_per_pair(tmp_path):
    jobs = dry_run(tmp_path, "--configfile", str(REPO / "config" / "config.yaml"))
    evals = [j for j in jobs if j["rule"] == "evaluate"]
    assert len(evals) == N_DEFAULT_EVALS == 85
    pairs = {(j["eval_type"], j["variant"]) for j in evals}
    default_types = ["core", "sparse_probing", "scr", "tpp", "sparse_probing_sae_probes"]
    assert pairs == {(e, v) for e in default_types for v in DEFAULT_VARIANTS}
    assert not [j for j in jobs if j["rule"] == "evaluate_replicate"]  # one seed by default
    built = {
        j.get("imported") or j.get("derived")
        for j in jobs
        if j["rule"] in ("import_sae", "derive_sae")
    }
    assert built == DEFAULT_VARIANTS
    assert sum(j["rule"] == "aggregate" for j in jobs) == 1


def test_slurm_profile_dry_run_needs_no_slurm(tmp_path):
    """In the scheduler's environment, which has the SLURM executor plugin."""
    result = scheduler_snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    assert sum(j["rule"] == "evaluate" for j in jobs) == N_DEFAULT_EVALS
    # every evaluation job asks for tasks_per_gpu=0 (no --ntasks-per-gpu: Slurm >= 23.11)
    blocks = [b for b in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout)]
    evaluations = [b for b in blocks if b.startswith("rule evaluate:")]
    assert len(evaluations) == N_DEFAULT_EVALS
    assert all(re.search(r"resources: .*\btasks_per_gpu=0\b", b) for b in evaluations)


def test_demo_config_dry_run(tmp_path):
    jobs = dry_run(tmp_path, "--configfile", str(REPO / "config" / "demo.yaml"))
    rules = [j["rule"] for j in jobs]
    assert rules.count("build_demo_assets") == 1
    evals = {(j["eval_type"], j["variant"]) for j in jobs if j["rule"] == "evaluate"}
    assert {"core", "sparse_probing"} <= {e for e, _ in evals}
    variants = {v for _, v in evals}
    assert {"baseline", "ihtp_k5", "mpsae_s10"} <= variants
    assert len(evals) == len(variants) * len({e for e, _ in evals})


def test_more_evals_overlay_plans_ravel_meta_structure_and_autointerp(tmp_path):
    """config/demo_more_evals.yaml: RAVEL and autointerp for every variant, meta-structure once
    per decoder (the derived variants reuse their baseline's), with the default demo's evals."""
    jobs = dry_run(
        tmp_path,
        "--configfile",
        str(REPO / "config" / "demo.yaml"),
        str(REPO / "config" / "demo_more_evals.yaml"),
    )
    evals = {(j["eval_type"], j["variant"]) for j in jobs if j["rule"] == "evaluate"}
    variants = {v for e, v in evals if e == "core"}
    assert {v for e, v in evals if e == "ravel"} == variants
    assert {v for e, v in evals if e == "autointerp"} == variants
    assert {v for e, v in evals if e == "meta_structure"} == {"baseline"}
    assert {"core", "sparse_probing", "scr", "tpp"} <= {e for e, _ in evals}


def test_replicates_run_seed_dependent_evals_once_per_extra_seed(tmp_path):
    """... and meta-structure, which reads only the decoder, once per decoder: never for the
    derived variants, which reuse their baseline's."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config = write_config(
        tmp_path / "seeds.yaml",
        "demo.yaml",
        replicates={"seeds": [42, 7, 9]},
        eval_types={**demo["eval_types"], "meta_structure": True},
    )
    result = run_snakemake(["-n", "-p", "--configfile", str(config)], tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    main = {(j["eval_type"], j["variant"]) for j in jobs if j["rule"] == "evaluate"}
    replicates = {
        (j["eval_type"], j["seed"], j["variant"]) for j in jobs if j["rule"] == "evaluate_replicate"
    }
    assert {v for e, v in main if e == "meta_structure"} == {"baseline"}
    assert {v for e, _, v in replicates if e == "meta_structure"} == {"baseline"}
    assert len({v for _, v in main}) > 1  # the derived variants exist and get the other evals
    seeded = {"sparse_probing", "scr", "tpp", "sparse_probing_sae_probes", "meta_structure"}
    assert {e for e, _ in main} == seeded | {"core"}
    assert replicates == {(e, s, v) for e, v in main if e in seeded for s in ("7", "9")}
    assert "results/evals/scr/seed_7/baseline.json" in result.stdout
    # the replicate's job settings carry its seed; the main job keeps random_seed
    assert '"random_seed": 7' in result.stdout and '"random_seed": 42' in result.stdout


@pytest.mark.parametrize(
    "overrides, key",
    [
        (
            {"sae_variants": {"ihtp": {"enabled": True, "k_values": []}}},
            "sae_variants.ihtp.k_values",
        ),
        (
            {"sae_variants": {"ihtp": {"enabled": True, "k_values": [5, 5]}}},
            "sae_variants.ihtp.k_values",
        ),
        ({"model": {"llm_batch_size": "big"}}, "model.llm_batch_size"),
        ({"eval_types": {"corr": True}}, "eval_types.corr"),
        ({"eval_types": {"mdl": True}}, "eval_types.mdl"),  # refused: SAE Bench's code cannot run
        ({"replicates": {"seeds": [1, 2, 3]}}, "replicates.seeds"),  # random_seed 42 not among them
        ({"replicates": {"seeds": [42, 42]}}, "replicates.seeds"),
        ({"ranking": {"metrics": ["scr.no_such_metric"]}}, "ranking.metrics"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, overrides, key):
    config = write_config(tmp_path / "bad.yaml", "config.yaml", **overrides)
    result = run_snakemake(["-n", "--configfile", str(config)], tmp_path, timeout=300)
    assert result.returncode != 0
    assert f"config key '{key}'" in result.stdout + result.stderr
    assert "rule evaluate" not in result.stdout


def test_dry_run_imports_neither_torch_nor_plotting(tmp_path):
    """Building the DAG reads the registry, variant table and config only: no torch, SAE Bench or
    matplotlib import (each costs seconds on a login node, and the scheduler may lack them)."""
    import subprocess
    import sys

    from conftest import snakemake_env

    (tmp_path / "config").symlink_to(REPO / "config")
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "-n",
            "-q",
        ],
        cwd=tmp_path,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "snakemake" in imported  # the import log is there at all
    heavy = {"torch", "matplotlib", "seaborn", "sae_bench", "transformer_lens", "sae_lens"}
    assert not heavy & {name.split(".")[0] for name in imported}


SCHEDULER_PYTHON = REPO / ".venv-scheduler" / "bin" / "python"


def scheduler_snakemake(tmp_path, *args, timeout=300):
    """`snakemake` in the scheduler's environment (envs/install.sh creates it)."""
    assert SCHEDULER_PYTHON.exists(), "run `bash envs/install.sh`: it creates .venv-scheduler"
    (tmp_path / "config").symlink_to(REPO / "config")
    cmd = [str(SCHEDULER_PYTHON), "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    cmd += ["--directory", str(tmp_path), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_scheduler_environment_plans_a_slurm_run_without_the_saebench_environment(tmp_path):
    """The scheduler's environment has the maintained SLURM plugin and numpy 2 and neither torch
    nor SAE Bench; a dry run there needs no SAE Bench environment at all."""
    probe = subprocess.run(
        [
            str(SCHEDULER_PYTHON),
            "-c",
            "import importlib.metadata as m, numpy;"
            "print(m.version('snakemake-executor-plugin-slurm'), numpy.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    plugin, numpy_version = probe.stdout.split()
    assert (
        tuple(map(int, plugin.split(".")[:2])) >= (2, 8) and int(numpy_version.split(".")[0]) >= 2
    )
    for module in ("torch", "sae_bench", "transformer_lens"):
        assert subprocess.run([str(SCHEDULER_PYTHON), "-c", f"import {module}"]).returncode != 0
    absent = tmp_path / "no_such_env" / "bin" / "python"
    result = scheduler_snakemake(
        tmp_path,
        "-n",
        "-p",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--config",
        f"saebench_python={absent}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = re.findall(
        r"^Shell command: (.*) -m workflow_scripts\.steps\.evaluate ", result.stdout, re.M
    )
    assert steps == ['"$SAEBENCH_PYTHON"'] * N_DEFAULT_EVALS  # the SAE Bench env's interpreter


def test_jobs_run_their_python_steps_with_the_configured_interpreter(tmp_path):
    """Snakemake in the scheduler's environment; the prefetch step in the SAE Bench environment,
    through a wrapper named by `saebench_python` that records how it was called."""
    calls = tmp_path / "calls.log"
    wrapper = tmp_path / "saebench-python"
    wrapper.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\nexec {REPO / ".venv" / "bin" / "python"} "$@"\n'
    )
    wrapper.chmod(0o755)
    result = scheduler_snakemake(
        tmp_path,
        "--cores",
        "1",
        "--configfile",
        str(REPO / "config" / "demo.yaml"),
        "--config",
        f"saebench_python={wrapper}",
        "--until",
        "prefetch",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = calls.read_text().splitlines()
    assert (
        lines[0].startswith("-c ") and "sae_bench" in lines[0]
    )  # onstart: can it import SAE Bench?
    assert any(line.startswith("-m workflow_scripts.steps.prefetch --plan ") for line in lines[1:])
    assert (tmp_path / "results" / "prefetch" / "manifest.json").is_file()


def test_a_real_run_without_the_saebench_environment_stops_naming_the_key(tmp_path):
    absent = tmp_path / "no_such_env" / "bin" / "python"
    result = scheduler_snakemake(
        tmp_path,
        "--cores",
        "1",
        "--configfile",
        str(REPO / "config" / "demo.yaml"),
        "--config",
        f"saebench_python={absent}",
    )
    assert result.returncode != 0
    assert "config key 'saebench_python'" in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists()  # stopped before any job


# Slurm's own message when a site enforces associations and sbatch gets no -A
INVALID_ACCOUNT = (
    "sbatch: error: Batch job submission failed: Invalid account or account/partition "
    "combination specified"
)


def slurm_shims(tmp_path):
    """sbatch/squeue/sacct/sacctmgr/sinfo/scontrol stand-ins on a PATH folder: every call is
    logged; sbatch rejects any job without -A with Slurm's message, as a site that requires an
    account does, and fails every other submission (nothing here may really run); sinfo knows
    one partition, gpu; sacctmgr and sshare know no associations."""
    calls = tmp_path / "slurm-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("squeue", "sacct", "scontrol"):
        shim = bin_dir / command
        shim.write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\nexit 1\n')
        shim.chmod(0o755)
    for command in ("sacctmgr", "sshare"):  # no association records: the plugin goes on
        shim = bin_dir / command
        shim.write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\n')
        shim.chmod(0o755)
    (bin_dir / "sinfo").write_text(f'#!/bin/sh\necho "sinfo $*" >> {calls}\necho "gpu*"\n')
    (bin_dir / "sinfo").chmod(0o755)
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        "#!/bin/sh\n"
        f'echo "sbatch $* frozen_config=$SAE_WORKFLOW_FROZEN_CONFIG" >> {calls}\n'
        'case " $* " in *" -A "*|*" --account"*) echo "sbatch: error: test stand-in" >&2 ;;\n'
        f'  *) echo "{INVALID_ACCOUNT}" >&2 ;;\nesac\nexit 1\n'
    )
    sbatch.chmod(0o755)
    return bin_dir, calls


def shim_env(bin_dir):
    """The scheduler environment's variables with `bin_dir`'s SLURM stand-ins first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def slurm_run(tmp_path, bin_dir, *args):
    """A real (not dry) run of the demo through profiles/slurm in the scheduler's environment,
    with the SLURM commands of `bin_dir`."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    return subprocess.run(
        [str(SCHEDULER_PYTHON), "-m", "snakemake", "-s", str(REPO / "Snakefile")]
        + ["--directory", str(workdir), "--profile", str(REPO / "profiles" / "slurm")]
        + ["--configfile", str(REPO / "config" / "demo.yaml"), "--retries", "0"]
        + ["--until", "build_demo_assets", *args],  # one job to submit
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=shim_env(bin_dir),
    )


def test_slurm_array_jobs_are_refused_before_any_submission(tmp_path):
    """Plugins 2.7.1-2.8.0 drop jobs from SLURM arrays (plugin issue #473): a real run with
    `--slurm-array-jobs` stops at start naming the setting; no sbatch is ever called."""
    bin_dir, calls = slurm_shims(tmp_path)
    result = slurm_run(tmp_path, bin_dir, "--slurm-array-jobs", "all")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "slurm-array-jobs is set ('all')" in output and "#473" in output
    assert "sbatch" not in (calls.read_text() if calls.exists() else "")


def test_a_site_that_requires_an_account_stops_the_run_at_start_naming_slurm_account(tmp_path):
    """Without slurm_account the plugin would submit every job without -A and burn each job's
    retries on the rejection; one `sbatch --test-only` at start stops the run instead."""
    bin_dir, calls = slurm_shims(tmp_path)
    result = slurm_run(tmp_path, bin_dir)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "`slurm_account`" in output and "Invalid account" in output
    submitted = [c for c in calls.read_text().splitlines() if c.startswith("sbatch")]
    assert len(submitted) == 1 and "--test-only" in submitted[0]  # nothing was submitted


def test_with_slurm_account_set_jobs_are_submitted_with_it(tmp_path):
    bin_dir, calls = slurm_shims(tmp_path)
    result = slurm_run(
        tmp_path,
        bin_dir,
        "--default-resources",
        "slurm_account=proj42",
        "slurm_partition=gpu",
        "--slurm-init-seconds-before-status-checks",
        "1",
    )
    assert result.returncode != 0  # the stand-in sbatch fails every submission
    submitted = [c for c in calls.read_text().splitlines() if c.startswith("sbatch")]
    assert submitted and not any("--test-only" in c for c in submitted)
    assert all("-A proj42" in c for c in submitted)
    # the job's own Snakemake may run its rule only, and gets the run's frozen config through
    # the environment sbatch exports (see the next test)
    job = submitted[0]
    assert "--allowed-rules build_demo_assets" in job and "--export=ALL" in job
    frozen = Path(job.split("frozen_config=")[1].strip())
    assert frozen.is_file() and frozen.parent.name == "frozen_config"


def test_a_config_edited_during_a_run_does_not_reach_its_jobs(tmp_path):
    """A job's Snakemake, started the way plugin 2.8.0 starts it (remote mode, its target job,
    `--allowed-rules`, `--configfiles` as given to the run), reads the config files again: an
    edit made after the run started reaches it (reproduced below without the frozen config).
    With the run's frozen config in the environment, it runs with the settings the run started
    with."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config").symlink_to(REPO / "config")
    config = workdir / "my.yaml"
    config.write_text((REPO / "config" / "demo.yaml").read_text())
    start = run_snakemake(["-n", "--configfile", str(config)], workdir)  # the run's start
    assert start.returncode == 0, start.stderr[-3000:]
    (frozen,) = (workdir / ".snakemake" / "frozen_config").glob("*.json")
    text = config.read_text()
    assert "probe_train_set_size: 400" in text
    config.write_text(text.replace("probe_train_set_size: 400", "probe_train_set_size: 123"))

    def job_settings(environment):
        job = run_snakemake(
            ["--target-jobs", "evaluate:eval_type=sparse_probing,variant=baseline"]
            + ["--allowed-rules", "evaluate", "--mode", "remote", "--force", "-n", "-p"]
            + ["--configfiles", str(config)],
            workdir,
            env=environment,
        )
        assert job.returncode == 0, job.stderr[-3000:]
        return re.findall(r'"probe_train_set_size": (\d+)', job.stdout)

    assert job_settings({"SAE_WORKFLOW_FROZEN_CONFIG": ""}) == ["123"]  # the hazard
    assert job_settings({"SAE_WORKFLOW_FROZEN_CONFIG": str(frozen)}) == ["400"]


def test_a_failed_submission_is_retried_with_more_resources_but_never_above_the_caps(tmp_path):
    """Plugin 2.8.0 counts a failed sbatch (a controller hiccup too) as a failed attempt, and
    evaluation jobs ask for attempt x their memory and runtime: the retries' requests stop at
    resources.max_mem_mb / max_runtime. (The SAE and the prefetch manifest are placeholders:
    the stand-in sbatch fails every submission, so no job runs.)"""
    bin_dir, calls = slurm_shims(tmp_path)
    workdir = tmp_path / "run"
    (workdir / "results" / "saes" / "baseline").mkdir(parents=True)
    (workdir / "results" / "saes" / "baseline" / "config.json").write_text('{"d_sae": 64}')
    (workdir / "results" / "prefetch").mkdir()
    (workdir / "results" / "prefetch" / "manifest.json").write_text("{}")
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config = write_config(
        tmp_path / "caps.yaml",
        "demo.yaml",
        demo={**demo["demo"], "build": False},
        sae_variants={"ihtp": {"enabled": False}, "mpsae": {"enabled": False}},
        eval_types={e: e == "core" for e in demo["eval_types"]},
        resources={
            "default": {"mem_mb": 1000, "runtime": 10, "cpus_per_task": 1},
            "core": {"mem_mb": 60000, "runtime": 30},
            "max_mem_mb": 100000,
            "max_runtime": 50,
        },
    )
    result = subprocess.run(
        [str(SCHEDULER_PYTHON), "-m", "snakemake", "-s", str(REPO / "Snakefile")]
        + ["--directory", str(workdir), "--profile", str(REPO / "profiles" / "slurm")]
        + ["--configfile", str(config), "--default-resources", "slurm_account=proj42"]
        + ["slurm_partition=gpu", "--slurm-init-seconds-before-status-checks", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=shim_env(bin_dir),
    )
    assert result.returncode != 0
    submitted = [c for c in calls.read_text().splitlines() if c.startswith("sbatch")]
    asked = [
        (int(re.search(r"--mem (\d+)", c).group(1)), int(re.search(r" -t (\d+)", c).group(1)))
        for c in submitted
        if "rule_evaluate" in c
    ]
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert len(asked) == 1 + profile["retries"] == 3
    assert asked == [(60000, 30), (100000, 50), (100000, 50)]  # 2x and 3x, capped
