"""Time `snakemake -n` (DAG building, what a user waits for before any job) on a large plan.

The default config with 21 IHTP and 21 MPSAE values and five replicate seeds: 55 variants x
(core + 4 seed-dependent evals x 5 seeds) = 1,155 evaluation jobs, about 1,210 in all. With
`--against DIR` (another checkout of this workflow, e.g. `git worktree add /tmp/main main`) both
are timed in the same run, interleaved, and the ratio of the medians is printed.

Usage: .venv/bin/python -m workflow_scripts.tools.bench_dry_run [--runs 3] [--against DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCALE = {
    "sae_variants": {
        "ihtp": {"enabled": True, "k_values": list(range(5, 110, 5))},
        "mpsae": {"enabled": True, "s_values": list(range(10, 220, 10))},
    },
    "replicates": {"seeds": [42, 43, 44, 45, 46]},
}


def dry_run(repo: Path, workdir: Path) -> tuple[float, int]:
    """(seconds, planned jobs) of one `snakemake -n` of the scale config with `repo`'s Snakefile."""
    overlay = workdir / "scale.yaml"
    overlay.write_text(yaml.safe_dump(SCALE))
    config = workdir / "config"
    if not config.exists():
        config.symlink_to(repo / "config")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-n", "--quiet"]
    cmd += ["rules", "--directory", str(workdir), "--configfile", str(overlay)]
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"{repo}: snakemake -n failed:\n{result.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.M)
    return elapsed, int(total.group(1)) if total else -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, timed in the same run")
    args = parser.parse_args(argv)
    repos = {"this checkout": REPO}
    if args.against:
        repos["against"] = args.against.resolve()
    times = {name: [] for name in repos}
    jobs = {}
    for run in range(args.runs):
        for name, repo in repos.items():  # interleaved: machine noise hits both alike
            with tempfile.TemporaryDirectory() as tmp:
                seconds, jobs[name] = dry_run(repo, Path(tmp))
            times[name].append(seconds)
            print(f"run {run + 1}: {name}: {seconds:.1f} s ({jobs[name]} jobs)", flush=True)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.1f} s of {values} ({jobs[name]} jobs)")
    if args.against:
        ratio = statistics.median(times["this checkout"]) / statistics.median(times["against"])
        print(f"RESULT dry-run time, this checkout / against: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
