"""What one job per (SAE, eval type) costs against one process for all SAEs, on the same SAEs.

    python -m workflow_scripts.tools.bench_per_pair --workdir demo-run \
        --configfile config/demo.yaml [--eval-types core,sparse_probing] [--repeats 1]

`--workdir` is a folder where the workflow has built its SAE folders (`results/saes/*`), e.g.
`demo-run/` after `snakemake --cores 2 --directory demo-run --configfile config/demo.yaml
--until derive_sae` (it needs a `config/` there: the script links the repo's when missing).
For each eval type, interleaved `--repeats` times:

- per pair: the workflow's own `evaluate` jobs for every SAE folder, run by Snakemake with
  `--cores 1 --forcerun evaluate` (fresh activation caches, so the first job fills them as in a
  run); the time is the sum of the jobs' wall times (Snakemake's benchmark files);
- one process: every SAE in one SAE Bench call, as SAE Bench's own runner does (its
  `selected_saes` list; activations computed once), with the same settings, patches and a fresh
  cache, timed as a subprocess from interpreter start to exit.

Prints per eval type the medians and their ratio, the jobs' median `startup_s` (process start to
SAE Bench's call, from each job's record) and `eval_s`, what `import torch, transformer_lens`
alone costs here (median of 3 fresh interpreters), and last one machine-readable line
`RESULT per_pair_vs_one_process=<ratio over all types> median_startup_s=<s> import_floor_s=<s>`.
`--repo` runs the per-pair jobs with another checkout's Snakefile (e.g. the previous commit's, for
a before/after); the one-process side always runs this checkout's code.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMPORT_FLOOR = "import torch, transformer_lens"


def snakemake(repo: Path, workdir: Path, configs: list[str], *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile")]
    cmd += ["--directory", str(workdir), "--configfile", *configs, "--rerun-triggers", "mtime"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=workdir)


def job_commands(repo, workdir, configs, targets) -> list[list[str]]:
    """The `evaluate` jobs' command lines for `targets`, from Snakemake's dry run."""
    # --cores 1 as in `per_pair`, so the one-process side gets the jobs' thread count
    result = snakemake(
        repo, workdir, configs, "-n", "-p", "--cores", "1", "--forcerun", "evaluate", "--", *targets
    )
    if result.returncode:
        sys.exit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    lines = [
        line for line in result.stdout.splitlines() if "workflow_scripts.steps.evaluate" in line
    ]
    return [parse_job_line(line) for line in lines]


def parse_job_line(line: str) -> list[str]:
    """The arguments after `-m` of one printed `evaluate` command, without its log redirection."""
    return shlex.split(line.split(" -m ", 1)[1].split(" > ", 1)[0])


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def per_pair(repo, workdir, configs, eval_type, variants, artifacts) -> dict:
    """Run the type's evaluate jobs through Snakemake; the sum of their wall times and records."""
    shutil.rmtree(workdir / artifacts, ignore_errors=True)
    targets = [f"results/evals/{eval_type}/{v}.json" for v in variants]
    started = time.perf_counter()
    result = snakemake(
        repo, workdir, configs, "--cores", "1", "--forcerun", "evaluate", "--", *targets
    )
    wall = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"the {eval_type} jobs failed:\n{result.stderr[-4000:]}")
    jobs, startup, evals = 0.0, [], []
    for variant in variants:
        bench = workdir / "benchmarks" / "evaluate" / eval_type / f"{variant}.tsv"
        jobs += float(bench.read_text().splitlines()[1].split("\t")[0])
        record = workdir / "results" / "workflow_metrics" / eval_type / f"{variant}.json"
        record = json.loads(record.read_text())
        if "startup_s" in record:  # absent in records of older checkouts
            startup.append(record["startup_s"])
            evals.append(record["eval_s"])
    return {"jobs_s": jobs, "snakemake_s": wall, "startup_s": startup, "eval_s": evals}


def one_process(workdir: Path, argv: list[list[str]], eval_type: str) -> float:
    """Every SAE of the type's jobs in one subprocess (see `run_together`); its wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-one-process-", dir=workdir) as tmp:
        spec = {
            "eval_type": eval_type,
            "settings": json.loads(option(argv[0], "--settings")),
            "threads": int(option(argv[0], "--threads")),
            "saes": {option(a, "--variant"): str(workdir / option(a, "--sae-dir")) for a in argv},
            "artifacts_root": str(Path(tmp) / "artifacts"),
            "work_dir": str(Path(tmp) / "work"),
        }
        started = time.perf_counter()
        cmd = [sys.executable, "-m", "workflow_scripts.tools.bench_per_pair", "--together"]
        result = subprocess.run(
            [*cmd, json.dumps(spec)], capture_output=True, text=True, cwd=workdir,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        wall = time.perf_counter() - started
        if result.returncode:
            sys.exit(f"one-process {eval_type} failed:\n{result.stderr[-4000:]}")
        return wall


def run_together(spec: dict) -> None:
    """Inside the one-process subprocess: the job's own preparation and environment
    (steps/evaluate.py's `prepare_process` and `eval_environment`), for all SAEs in one SAE
    Bench call."""
    # lazy, as every project import here: this runs in the one-process subprocess alone
    from workflow_scripts.steps import evaluate as step

    settings = spec["settings"]
    entry = step.prepare_process(spec["eval_type"], settings)
    import dataclasses

    import torch

    # after prepare_process (the offline variables): SAE Lens and SAE Bench
    from workflow_scripts.evals.base import EvalJob  # (see above)
    from workflow_scripts.saes import loading, sae_folder  # (see above)

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    model = settings["model"]
    dtype = getattr(torch, model["torch_dtype"])
    loaded = {
        name: loading.load_for_eval(Path(folder), model["device"], dtype, settings["offline"])
        for name, folder in spec["saes"].items()
    }
    described = sae_folder.read_config(Path(next(iter(spec["saes"].values()))))

    @dataclasses.dataclass
    class AllSaes(EvalJob):
        saes: list = dataclasses.field(default_factory=list)

        @property
        def selected_saes(self):
            return self.saes

    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True)
    roots = Path(spec["artifacts_root"])
    with step.eval_environment(entry, settings, described["hook_name"], roots) as artifacts:
        job = AllSaes(
            spec["eval_type"],
            None,
            "all",
            settings,
            work_dir,
            artifacts,
            d_sae=min(int(sae.cfg.d_sae) for sae, _ in loaded.values()),
            saes=[published or (name, sae) for name, (sae, published) in loaded.items()],
        )
        entry.run(job)
    produced = list(work_dir.rglob("*_eval_results.json"))
    if len(produced) != len(loaded):
        sys.exit(f"{len(produced)} result files for {len(loaded)} SAEs")


def import_floor(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORT_FLOOR], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--together", help=argparse.SUPPRESS)  # the one-process subprocess
    ap.add_argument("--workdir", type=Path, default=Path("demo-run"))
    ap.add_argument("--configfile", nargs="+", default=["config/demo.yaml"])
    ap.add_argument("--eval-types", default="core,sparse_probing,scr,tpp,sparse_probing_sae_probes")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose jobs run per pair")
    args = ap.parse_args(argv)
    if args.together:
        run_together(json.loads(args.together))
        return 0
    workdir = args.workdir.resolve()
    if not (workdir / "config").exists():  # the Snakefile reads config/config.yaml from there
        (workdir / "config").symlink_to(args.repo / "config")
    configs = [str(Path(c).resolve()) for c in args.configfile]
    saes = sorted(p.name for p in (workdir / "results" / "saes").iterdir() if p.is_dir())
    if not saes:
        sys.exit(f"no SAE folders under {workdir}/results/saes: run the workflow there first")
    print(f"{len(saes)} SAEs: {', '.join(saes)}", flush=True)
    rows, all_jobs, all_one, startups = [], 0.0, 0.0, []
    for eval_type in args.eval_types.split(","):
        targets = [f"results/evals/{eval_type}/{v}.json" for v in saes]
        commands = job_commands(args.repo, workdir, configs, targets)
        artifacts = Path(option(commands[0], "--artifacts-root"))  # relative to the workdir
        pairs, ones = [], []
        for _ in range(args.repeats):
            pairs.append(per_pair(args.repo, workdir, configs, eval_type, saes, artifacts))
            ones.append(one_process(workdir, commands, eval_type))
        jobs = statistics.median(p["jobs_s"] for p in pairs)
        one = statistics.median(ones)
        startup = [s for p in pairs for s in p["startup_s"]]
        evals = [s for p in pairs for s in p["eval_s"]]
        startups += startup
        all_jobs, all_one = all_jobs + jobs, all_one + one
        rows.append((eval_type, jobs, one, startup, evals))
        print(
            f"{eval_type:<26} per pair {jobs:7.1f} s (Snakemake wall "
            f"{statistics.median(p['snakemake_s'] for p in pairs):.1f} s)  one process "
            f"{one:6.1f} s  ratio {jobs / one:5.2f}  job startup "
            + (f"{statistics.median(startup):.1f} s, in SAE Bench {statistics.median(evals):.1f} s"
               if startup else "n/a (records without startup_s)"),
            flush=True,
        )  # fmt: skip
    floor = import_floor()
    median_startup = statistics.median(startups) if startups else float("nan")
    print(
        f"all                        per pair {all_jobs:7.1f} s  one process {all_one:6.1f} s  "
        f"ratio {all_jobs / all_one:5.2f}\n"
        f"median job startup {median_startup:.1f} s, of which `{IMPORT_FLOOR}` alone "
        f"{floor:.1f} s (median of 3 fresh interpreters)"
    )
    print(
        f"RESULT per_pair_vs_one_process={all_jobs / all_one:.3f} "
        f"median_startup_s={median_startup:.2f} import_floor_s={floor:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
