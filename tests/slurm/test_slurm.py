"""`snakemake --profile profiles/slurm` runs the demo workflow on a real SLURM cluster.

slurm_cluster.py (beside this file) starts munged, slurmctld and slurmd on this machine (Debian's
slurm-wlm and munge if missing; root needed, otherwise these tests skip) with one node that has
two fake GPUs, and stops them by pid afterwards: Slurm 22.05 (Debian bookworm, the host's) and
Slurm 24.11 (Debian trixie, in a debootstrap chroot); every run test runs on both. Snakemake runs
in the scheduler's environment (.venv-scheduler: SLURM executor plugin 2.8.0, jobstep 0.6.1),
the jobs' Python steps in the SAE Bench environment (.venv). The workflow runs through
profiles/slurm plus slurm_overlay/ (partition, fast polling) on the demo config reduced by
tests/slurm/slurm_overlay/demo_small.yaml to 2 variants x core, under `timeout -s INT`.

- tests/slurm/test_slurm_harness.py: the harness ends every daemon and step by pid, and undoes the
  chroot's mounts, when a test fails.
- test_*: one SLURM run from scratch (demo assets seeded), compared with the session's shared
  local demo run (`--cores 2`, tests/conftest.py), whose config holds these pairs with the same
  settings. The controller's records show one sbatch job per (variant, eval type) pair, each
  granted one GPU, and no GPU for the other rules (the sbatch logs print each step's
  CUDA_VISIBLE_DEVICES, the evaluation prints its own); the results match the local run's.
- test_cancelled_evaluation_*: (22.05) a second SLURM run (demo assets and SAEs copied from
  the first) in which one evaluation job is cancelled with scancel while SAE Bench runs:
  Snakemake resubmits it with twice the memory and finishes with every output, the same numbers,
  no leftovers.
- test_a_status_outage_*: (24.11) the same, with `squeue` failing for 30 s from the moment an
  evaluation job runs: the run ends by itself with every result.
- test_submission_rate_*: (24.11) 41 evaluation jobs submitted at once, stopped with SIGINT once
  all are queued (which cancels them); prints the seconds per submitted job.

What "match" means: SAE folders are byte-identical; eval JSONs are equal field by field except
SAE Bench's random `eval_id` and its timestamp, numbers within rel 1e-5 (the demo evals repeated
to the last bit across local, SLURM and retried runs; the tolerance only allows for a site whose
cgroups give a job fewer threads, which changes float32 summation order); the merged table's
rows and columns of these pairs are equal with the same tolerance; every file of the SLURM run
exists in the local run under results/ (but the activation cache), and the retried runs have
exactly the SLURM run's files.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import (
    REPO,
    SHARED_EVAL_TYPES,
    SHARED_VARIANTS,
    run_snakemake,
    seed_demo_assets,
    shared_demo_config,
    snakemake_env,
    write_config,
)
from slurm_cluster import SlurmCluster, SlurmUnavailable

pytestmark = pytest.mark.slow

OVERLAY = REPO / "tests" / "slurm" / "slurm_overlay"
SMALL = yaml.safe_load((OVERLAY / "demo_small.yaml").read_text())
VARIANTS = ["baseline"] + [f"ihtp_k{k}" for k in SMALL["sae_variants"]["ihtp"]["k_values"]]
EVAL_TYPES = [e for e, on in SMALL["eval_types"].items() if on]
# ... and every other eval type off, whatever config.yaml and demo.yaml enable
SMALL["eval_types"] = {
    e: e in EVAL_TYPES
    for c in ("config.yaml", "demo.yaml")
    for e in yaml.safe_load((REPO / "config" / c).read_text())["eval_types"]
}
PAIRS = {f"{e}_{v}": (e, v) for e in EVAL_TYPES for v in VARIANTS}  # sbatch comment -> pair
# the rules these runs send to SLURM: the rest are localrules, and the demo assets are seeded
# (build_demo_assets would be a third sbatch job without a GPU, like derive_sae)
SLURM_RULES = {"derive_sae", "evaluate"}
RUN_TIMEOUT = 600  # seconds, hard: `timeout -s INT` (Ctrl-C: Snakemake scancels its jobs)
VOLATILE = {"eval_id", "datetime_epoch_millis"}  # differ between any two SAE Bench runs
REL_TOL = 1e-5
RERUN = VARIANTS[:1]  # the fault test evaluates these again, and cancels one of their jobs
# Snakemake and its SLURM plugin (2.8.0, numpy 2) run in the scheduler's environment, the jobs'
# Python steps in the SAE Bench environment (.venv, config key saebench_python): envs/install.sh
SCHEDULER_PYTHON = REPO / ".venv-scheduler" / "bin" / "python"
OUTAGE_SECONDS = 30  # the status command fails this long in the middle of a run
# every run test on both; the cancelled job on 22.05, the outage and submission rate on 24.11
RELEASES = ["22.05", "24.11"]


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", params=RELEASES)
def cluster(request):
    """Slurm 22.05 (the host's, Debian bookworm) or 24.11 (Debian trixie's, in a chroot into which
    the project and the Python installation are mounted at the same paths)."""
    try:
        with SlurmCluster(
            gpus=2, partition="gputest", release=request.param, binds=[REPO, sys.base_prefix]
        ) as running:
            yield running
    except SlurmUnavailable as error:
        pytest.skip(f"no SLURM {request.param} test cluster here: {error}")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("config") / "demo_small.yaml", "demo.yaml", **SMALL)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory, cluster):
    """slurm_overlay/ + profiles/slurm's default-resources with the partition filled in."""
    folder = tmp_path_factory.mktemp("overlay")
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    settings = yaml.safe_load((OVERLAY / "config.yaml").read_text())
    settings["default-resources"] = {
        **profile["default-resources"],
        "slurm_partition": cluster.partition,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


@pytest.fixture(scope="module")
def runs(cluster, config_file, overlay, tmp_path_factory):
    """The SLURM run. Its local reference is the session's shared demo run (tests/conftest.py),
    whose config is this one's with more eval types and variants, every setting of these pairs
    the same (checked here on the configs); the tests that compare with it come last in this
    file, so that on several workers it has been made by then (tests/conftest.py, SLOW_GROUPS)."""
    assert set(VARIANTS) <= set(SHARED_VARIANTS) and set(EVAL_TYPES) <= set(SHARED_EVAL_TYPES)
    from workflow_scripts.evals.registry import job_settings
    from workflow_scripts.plan.config import validate_config

    shared = shared_demo_config(tmp_path_factory.mktemp("shared_config") / "demo.yaml")
    mine, reference = (
        validate_config(yaml.safe_load(Path(c).read_text())) for c in (config_file, shared)
    )
    for eval_type in EVAL_TYPES:  # every setting an evaluation job of these pairs depends on
        assert job_settings(mine, eval_type) == job_settings(reference, eval_type), eval_type
    slurm_dir = tmp_path_factory.mktemp(f"slurm{cluster.release}")
    # the session's demo build (made by the build rule, tests/conftest.py): as a SLURM job it
    # would only add two minutes of CI time; derive_sae shows a job without a GPU
    seed_demo_assets(slurm_dir)
    slurm = None
    try:
        slurm = start_slurm_run(cluster, slurm_dir, config_file, overlay)
        slurm_result = finish(slurm)
    finally:
        if slurm is not None:
            stop(slurm)
    return {"slurm": slurm_result, "jobs": run_jobs(cluster, slurm_result)}


# ------------------------------------------------------------------------------------ helpers
def start_snakemake(
    workdir: Path,
    args: list[str],
    timeout: int = RUN_TIMEOUT,
    python: Path | str = sys.executable,
    env: dict | None = None,
) -> dict:
    """`timeout -s INT <timeout> python -m snakemake ...` in the background, output to a file."""
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(REPO / "config")
    env = snakemake_env(env)
    env.pop("CUDA_VISIBLE_DEVICES", None)  # --export=ALL would hand it to every sbatch job
    # --foreground: a SIGINT reaches Snakemake once (without it, timeout passes it on to the
    # child and to its whole process group, and a second SIGINT interrupts Snakemake's scancel)
    cmd = [
        "timeout",
        "--foreground",
        "-s",
        "INT",
        "-k",
        "60",
        str(timeout),
        str(python),
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    log = workdir / "snakemake.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return {"proc": proc, "log": log, "workdir": workdir, "start": time.time(), "timeout": timeout}


def start_slurm_run(
    cluster: SlurmCluster,
    workdir: Path,
    config_file: Path,
    overlay: Path,
    env: dict | None = None,
    python=None,
) -> dict:
    """profiles/slurm (+ the test overlay) run by Snakemake in the scheduler's environment, with
    the cluster's client commands first on its PATH."""
    assert SCHEDULER_PYTHON.exists(), "run `bash envs/install.sh`: it creates .venv-scheduler"
    env = dict(env or {})
    path = env.get("PATH", snakemake_env()["PATH"])
    if cluster.bin_dir is None or str(cluster.bin_dir) not in path.split(":"):
        path = cluster.client_path(path)
    env["PATH"] = path
    return start_snakemake(
        workdir,
        [
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--profile",
            str(overlay),
            "--configfile",
            str(config_file),
        ],
        python=python or SCHEDULER_PYTHON,
        env=env,
    )


def finish(run: dict) -> dict:
    rc = run["proc"].wait(timeout=run["timeout"] + 120)
    output = run["log"].read_text(errors="replace")
    seconds = (
        run["log"].stat().st_mtime - run["start"]
    )  # its last output: it may have ended earlier
    print(f"{run['workdir'].name}: rc {rc} after {seconds:.0f} s")
    uuid = re.search(r"SLURM run ID: (\S+)", output)
    return {**run, "rc": rc, "output": output, "seconds": seconds, "uuid": uuid and uuid.group(1)}


def stop(run: dict) -> None:
    if run["proc"].poll() is None:
        run["proc"].send_signal(signal.SIGINT)
        try:
            run["proc"].wait(timeout=60)
        except subprocess.TimeoutExpired:
            run["proc"].kill()


def run_jobs(cluster: SlurmCluster, result: dict) -> list[dict]:
    """The controller's records of this run's jobs (the plugin names every job by the run id)."""
    assert result["uuid"], result["output"][-3000:]
    jobs = [j for j in cluster.jobs() if j.get("JobName") == result["uuid"]]
    for job in jobs:
        comment = job.get("Comment", "")
        rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
        job.update(
            rule=rule,
            wildcards=wildcards,
            pair=PAIRS.get(wildcards) if rule == "evaluate" else None,
        )
        log = Path(job.get("StdOut", ""))
        job["log"] = log.read_text(errors="replace") if log.is_file() else ""
        job["devices"] = re.findall(
            r"\[slurm-task\] job=\d+ step=\S+ CUDA_VISIBLE_DEVICES=(\S+)", job["log"]
        )
    return jobs


def tres(job: dict) -> str:
    """The job's trackable resources: `TRES=` up to Slurm 22.05, `ReqTRES=` / `AllocTRES=`
    since 23.02 (the allocation once it started, else the request)."""
    return job.get("TRES") or job.get("AllocTRES") or job.get("ReqTRES", "")


def slurm_failure(result: dict, cluster: SlurmCluster) -> str:
    return f"rc {result['rc']}\n{result['output'][-6000:]}\n{cluster.logs()[-4000:]}"


def results_files(workdir: Path) -> set[str]:
    out = workdir / "results"
    return {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] not in ("artifacts", "prefetch")
    }


def assert_same_json(a, b, where=""):
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), where
        for key in a:
            if key not in VOLATILE:
                assert_same_json(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_json(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=REL_TOL, abs=1e-7), (
            where
        )
    else:
        assert a == b, where


def assert_same_results(workdir: Path, reference: Path, pairs=None):
    for variant in VARIANTS:
        for name in ("sae.safetensors", "config.json"):
            assert (workdir / "results" / "saes" / variant / name).read_bytes() == (
                reference / "results" / "saes" / variant / name
            ).read_bytes(), (variant, name)
    for eval_type, variant in pairs or PAIRS.values():
        path = Path("results") / "evals" / eval_type / f"{variant}.json"
        assert_same_json(
            json.loads((workdir / path).read_text()),
            json.loads((reference / path).read_text()),
            str(path),
        )
    mine = (
        pd.read_csv(workdir / "results" / "merged" / "metrics.csv")
        .set_index("variant")
        .sort_index()
    )
    theirs = pd.read_csv(reference / "results" / "merged" / "metrics.csv").set_index("variant")
    # the reference may hold more variants and eval types: these rows and columns must agree
    theirs = theirs.loc[mine.index, mine.columns]
    pd.testing.assert_frame_equal(mine, theirs, rtol=REL_TOL, check_exact=False)


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


# ------------------------------------------------------------------------------------ the run
def test_profile_run_ends_by_itself(runs, cluster):
    slurm = runs["slurm"]
    assert slurm["rc"] == 0, slurm_failure(slurm, cluster)
    assert slurm["seconds"] < RUN_TIMEOUT
    assert "Trying to restart" not in slurm["output"]  # nothing needed a retry


def test_one_sbatch_job_per_pair(runs):
    jobs = runs["jobs"]
    evals = [j for j in jobs if j["rule"] == "evaluate"]
    assert sorted(j["pair"] for j in evals) == sorted(PAIRS.values()), [
        j.get("Comment") for j in jobs
    ]
    assert all(j["JobState"] == "COMPLETED" and j["ExitCode"] == "0:0" for j in jobs), jobs
    # the derived SAE was an sbatch job too; localrules never reached SLURM
    assert {j["rule"] for j in jobs} == SLURM_RULES
    assert sorted(j["wildcards"] for j in jobs if j["rule"] == "derive_sae") == VARIANTS[1:]
    # and the executor kept one sbatch log per pair
    for wildcards in PAIRS:
        logs = list(
            (
                runs["slurm"]["workdir"] / ".snakemake" / "slurm_logs" / "rule_evaluate" / wildcards
            ).glob("*.log")
        )
        assert len(logs) == 1, (wildcards, logs)


def test_each_evaluation_job_got_one_gpu_and_nothing_else_did(runs):
    workdir = runs["slurm"]["workdir"]
    evals = []
    for job in runs["jobs"]:
        # the batch step and the srun step that runs the rule both print their CUDA_VISIBLE_DEVICES
        assert len(job["devices"]) == 2, job["log"]
        if job["rule"] == "evaluate":
            # asked: sbatch --gpus=1 (22.05 writes gres:gpu:1, 24.11 gres/gpu:1)
            assert job.get("TresPerJob") in ("gres:gpu:1", "gres/gpu:1"), job
            assert job.get("JOB_GRES") == "gpu:fake:1", job  # granted: one of the node's GPUs
            device = job["devices"][0]
            assert device in ("0", "1") and job["devices"] == [device, device], job["log"]
            eval_type, variant = job["pair"]
            own_log = (workdir / "logs" / "evaluate" / eval_type / f"{variant}.log").read_text()
            assert f"CUDA_VISIBLE_DEVICES={device}\n" in own_log, own_log[:2000]
            evals.append((timestamp(job["StartTime"]), timestamp(job["EndTime"]), device))
        else:
            assert "gpu" not in job.get("TresPerJob", "") + job.get("JOB_GRES", "") + tres(job), job
            assert job["devices"] == ["<unset>", "<unset>"], (job["rule"], job["log"])
    # evaluation jobs that ran at the same time had different GPUs (two at once on 2 CPUs)
    overlapping = [
        (a, b) for i, a in enumerate(evals) for b in evals[i + 1 :] if a[0] < b[1] and b[0] < a[1]
    ]
    print(f"evaluation jobs (start, end, GPU): {sorted(evals)}")
    assert all(a[2] != b[2] for a, b in overlapping), evals


# ------------------------------------------------------------------------------------ the fault
def rerun_workdir(runs, workdir: Path) -> Path:
    """The first run's workdir without RERUN's evaluations, aggregate and plots (copies keep
    their mtimes, so nothing else reruns; fewer jobs keep the fault tests short)."""
    assert runs["slurm"]["rc"] == 0, "the first SLURM run failed"
    first = runs["slurm"]["workdir"]
    shutil.copytree(first / "resources", workdir / "resources")  # copy2 keeps the mtimes
    for done in ("saes", "prefetch"):  # the SAEs, and the local prefetch step's manifest
        if (first / "results" / done).exists():
            shutil.copytree(first / "results" / done, workdir / "results" / done)
    for eval_type, variant in PAIRS.values():
        if variant not in RERUN:  # SAE Bench's JSON and the workflow's record of the job
            for folder in ("evals", "workflow_metrics"):
                (workdir / "results" / folder / eval_type).mkdir(parents=True, exist_ok=True)
                shutil.copy2(
                    first / "results" / folder / eval_type / f"{variant}.json",
                    workdir / "results" / folder / eval_type / f"{variant}.json",
                )
    return workdir


@pytest.fixture(scope="module")
def cancelled_run(runs, cluster, config_file, overlay, tmp_path_factory):
    """The first run's workdir without the baseline's evaluations, aggregate and plots, run
    again through SLURM; its evaluation job is scancelled as soon as SAE Bench works
    on it. (Copies keep their mtimes, so nothing else reruns; fewer jobs keep the test short.)
    On Slurm 22.05 only, as the status outage runs on 24.11 only: each fault on one release."""
    if cluster.release != RELEASES[0]:
        pytest.skip(f"the cancelled job runs on Slurm {RELEASES[0]} only (CI time)")
    workdir = rerun_workdir(runs, tmp_path_factory.mktemp("cancelled"))
    run = start_slurm_run(cluster, workdir, config_file, overlay)
    victim = None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while victim is None and run["proc"].poll() is None and time.monotonic() < deadline:
            for job in cluster.jobs():
                wildcards = job.get("Comment", "").removeprefix("rule_evaluate_wildcards_")
                if job.get("JobState") != "RUNNING" or wildcards not in PAIRS:
                    continue
                eval_type, variant = PAIRS[wildcards]
                log = workdir / "logs" / "evaluate" / eval_type / f"{variant}.log"
                # SAE Bench is at work once the SAE is loaded and the private work folder exists
                if "[evaluate]" in (log.read_text(errors="replace") if log.exists() else ""):
                    cluster.run(["scancel", job["JobId"]], check=True, timeout=30)
                    victim = {
                        "pair": (eval_type, variant),
                        "job_id": job["JobId"],
                        "at": time.time() - run["start"],
                    }
                    break
            time.sleep(1)
        result = finish(run)
    finally:
        stop(run)
    print(f"cancelled {victim}")
    return {
        **result,
        "victim": victim,
        "config_file": config_file,
        "jobs": run_jobs(cluster, result) if result["uuid"] else [],
    }


def test_cancelled_evaluation_is_retried_and_completes(cancelled_run, cluster):
    run = cancelled_run
    assert run["victim"], "no evaluation job was seen running:\n" + run["output"][-5000:]
    assert run["rc"] == 0, slurm_failure(run, cluster)
    evals = [j for j in run["jobs"] if j["rule"] == "evaluate"]
    assert {j["rule"] for j in run["jobs"]} == {"evaluate"}  # nothing else was redone
    by_pair = {
        pair: [j for j in evals if j["pair"] == pair] for pair in PAIRS.values() if pair[1] in RERUN
    }
    assert len(evals) == len(by_pair) + 1
    victim_jobs = sorted(by_pair.pop(run["victim"]["pair"]), key=lambda j: int(j["JobId"]))
    # the cancelled job, then its resubmission with the attempt-scaled memory
    assert [j["JobState"] for j in victim_jobs] == ["CANCELLED", "COMPLETED"], victim_jobs
    assert victim_jobs[0]["JobId"] == run["victim"]["job_id"]
    memory = [int(re.search(r"mem=(\d+)M", tres(j)).group(1)) for j in victim_jobs]
    assert memory[1] == 2 * memory[0], memory
    assert all(
        len(jobs) == 1 and jobs[0]["JobState"] == "COMPLETED" for jobs in by_pair.values()
    ), by_pair
    assert f"SLURM-job '{run['victim']['job_id']}' failed" in run["output"]
    assert "Trying to restart job" in run["output"]


# ----------------------------------------------------------------- the status command fails
SQUEUE_SHIM = """#!/bin/sh
# squeue, failing while the outage flag exists (what a restarting slurmctld looks like)
if [ -e "$SQUEUE_OUTAGE_FLAG" ]; then
    echo "$(date +%s)" >> "$SQUEUE_OUTAGE_LOG"
    echo "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation" >&2
    exit 1
fi
exec {real} "$@"
"""


@pytest.fixture(scope="module")
def status_outage_run(runs, cluster, config_file, overlay, tmp_path_factory):
    """RERUN's evaluations again, with `squeue` (the profile's status command) failing for
    OUTAGE_SECONDS from the moment an evaluation job runs: a shim first on the Snakemake
    process's PATH."""
    if cluster.release != "24.11":
        pytest.skip("the status outage runs on Slurm 24.11 only (CI time)")
    workdir = rerun_workdir(runs, tmp_path_factory.mktemp("outage"))
    shims = tmp_path_factory.mktemp("shims")
    real = cluster.bin_dir / "squeue"
    (shims / "squeue").write_text(SQUEUE_SHIM.format(real=real))
    (shims / "squeue").chmod(0o755)
    flag, failures = shims / "outage", shims / "failures.log"
    env = {
        "PATH": f"{shims}:{cluster.client_path(snakemake_env()['PATH'])}",
        "SQUEUE_OUTAGE_FLAG": str(flag),
        "SQUEUE_OUTAGE_LOG": str(failures),
    }
    run = start_slurm_run(cluster, workdir, config_file, overlay, env=env)
    window = None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while window is None and run["proc"].poll() is None and time.monotonic() < deadline:
            if any(
                j.get("JobState") == "RUNNING" and j.get("Comment", "").startswith("rule_evaluate")
                for j in cluster.jobs()
            ):
                flag.touch()
                started = time.time()
                time.sleep(OUTAGE_SECONDS)
                flag.unlink()
                window = (started, time.time())
            time.sleep(1)
        result = finish(run)
    finally:
        if flag.exists():
            flag.unlink()
        stop(run)
    failed = [float(t) for t in failures.read_text().split()] if failures.exists() else []
    print(f"squeue outage {window}; failed status queries at {failed}")
    return {**result, "window": window, "failed_queries": failed, "config_file": config_file}


# ----------------------------------------------------------------- submission rate
N_RATE_JOBS = 40
RATE_SETTLE_S = 5  # between the last submission logged and the SIGINT (see submission_run)


@pytest.fixture(scope="module")
def submission_run(runs, cluster, overlay, tmp_path_factory):
    """N_RATE_JOBS + 1 core evaluations (the baseline and N_RATE_JOBS reference SAEs that are all
    the demo's SAE, their folders copied from the first run) submitted at once; stopped with
    SIGINT, which scancels them, once every one is in the controller's queue and Snakemake has
    logged its submission, plus a few seconds: plugin 2.8.0 submits from threads and adds each
    job to the list it cancels later, on its event loop (__init__.py ~779-786, ~1236), so a
    SIGINT right after the burst missed jobs on a slow machine (docs/slurm.md says so)."""
    if cluster.release != "24.11":
        pytest.skip("the submission rate is measured on Slurm 24.11 only (CI time)")
    assert runs["slurm"]["rc"] == 0, "the first SLURM run failed"
    first = runs["slurm"]["workdir"]
    workdir = tmp_path_factory.mktemp("rate")
    shutil.copytree(first / "resources", workdir / "resources")
    shutil.copytree(first / "results" / "prefetch", workdir / "results" / "prefetch")
    names = [f"ref_{i:02d}" for i in range(N_RATE_JOBS)]
    for name in ["baseline", *names]:
        shutil.copytree(
            first / "results" / "saes" / "baseline", workdir / "results" / "saes" / name
        )
    config_file = write_config(
        workdir / "rate.yaml",
        "demo.yaml",
        **{
            **SMALL,
            "eval_types": {e: e == "core" for e in SMALL["eval_types"]},
            "sae_variants": {"ihtp": {"enabled": False}, "mpsae": {"enabled": False}},
            "reference_frontier": {
                "baselines": True,
                "local_saes": [
                    {"name": n, "local_dir": "resources/demo/sae", "hook_layer": 0} for n in names
                ],
            },
        },
    )
    run = start_slurm_run(cluster, workdir, config_file, overlay)
    jobs = []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while run["proc"].poll() is None and time.monotonic() < deadline:
            output = run["log"].read_text(errors="replace")
            uuid = re.search(r"SLURM run ID: (\S+)", output)
            jobs = [j for j in cluster.jobs() if uuid and j.get("JobName") == uuid.group(1)]
            logged = output.count("has been submitted with SLURM")
            if len(jobs) >= N_RATE_JOBS + 1 and logged >= N_RATE_JOBS + 1:
                time.sleep(RATE_SETTLE_S)
                break
            time.sleep(0.5)
    finally:
        stop(run)  # SIGINT: Snakemake cancels what it submitted
    result = finish(run)
    return {**result, "jobs": run_jobs(cluster, result) if result["uuid"] else []}


def test_submission_rate_of_many_evaluation_jobs(submission_run, cluster):
    jobs = [j for j in submission_run["jobs"] if j["rule"] == "evaluate"]
    assert len(jobs) == N_RATE_JOBS + 1, submission_run["output"][-3000:]
    submitted = sorted(timestamp(j["SubmitTime"]) for j in jobs)
    per_job = (submitted[-1] - submitted[0]) / (len(submitted) - 1)
    print(
        f"submission: {len(jobs)} evaluation jobs in {submitted[-1] - submitted[0]:.0f} s, "
        f"{per_job:.2f} s per job (controller SubmitTime, 1 s resolution)"
    )
    # SIGINT cancelled every one of them: nothing of this run is left in the queue
    ids = {j["JobId"] for j in jobs}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {j["JobState"] for j in cluster.jobs() if j["JobId"] in ids}
        if states <= {"CANCELLED", "COMPLETED", "FAILED"}:
            break
        time.sleep(1)
    left = sorted(
        j["JobId"]
        for j in cluster.jobs()
        if j["JobId"] in ids and j["JobState"] not in {"CANCELLED", "COMPLETED", "FAILED"}
    )
    if left:  # not to slow the tests after this one down
        cluster.run(["scancel", *left], capture_output=True, timeout=30)
    assert not left, f"SIGINT left SLURM jobs {left} in the queue ({states})"


# ----------------------------------------------- against the local run (last: see `runs`)
def test_results_match_a_local_run(runs, shared_demo_run):
    slurm, local = runs["slurm"]["workdir"], shared_demo_run["workdir"]
    assert results_files(slurm) <= results_files(local)  # the local run has more pairs
    assert {f"plots/l0_vs_{e}.png" for e in EVAL_TYPES} <= results_files(slurm)
    assert_same_results(slurm, local)


def test_cancelled_run_lost_nothing_and_left_nothing_partial(cancelled_run, runs, shared_demo_run):
    workdir = cancelled_run["workdir"]
    assert cancelled_run["rc"] == 0
    assert results_files(workdir) == results_files(runs["slurm"]["workdir"])
    # no private SAE Bench work folder, no stray file next to the results, nothing incomplete
    evals = workdir / "results" / "evals"
    assert sorted(str(p.relative_to(evals)) for p in evals.rglob("*")) == sorted(
        [*EVAL_TYPES, *(f"{e}/{v}.json" for e, v in PAIRS.values())]
    )
    incomplete = workdir / ".snakemake" / "incomplete"
    assert not incomplete.exists() or not any(incomplete.iterdir())
    # the retried pair has the same numbers as the undisturbed runs
    assert_same_results(workdir, shared_demo_run["workdir"])
    # and Snakemake agrees that nothing is left to do
    dry = run_snakemake(
        ["-n", "--configfile", str(cancelled_run["config_file"])], workdir, timeout=300
    )
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[
        -3000:
    ]


def test_a_status_outage_is_survived_with_every_result(
    status_outage_run, runs, cluster, shared_demo_run
):
    """The plugin (2.8.0, __init__.py ~1339-1460) retries a failed status query up to
    `slurm-status-attempts` times per round and otherwise drops that round's jobs from tracking
    (the run would wait forever); the profile's one query per `1/max-status-checks-per-second`
    seconds spreads those attempts over longer than the outage."""
    run = status_outage_run
    assert run["window"], "no evaluation job was seen running:\n" + run["output"][-5000:]
    assert run["failed_queries"], "the status command was not called during the outage"
    assert run["rc"] == 0, slurm_failure(run, cluster)
    assert run["seconds"] < RUN_TIMEOUT
    assert results_files(run["workdir"]) == results_files(runs["slurm"]["workdir"])
    assert_same_results(run["workdir"], shared_demo_run["workdir"])
