"""Time README command 1 after install: the offline demo from nothing, as a new user runs it.

    python -m workflow_scripts.tools.bench_demo [--runs 3] [--cores 2] [--against DIR
        [--against-cores 1]]

Each run starts in a fresh folder (no results, no demo build, no caches) and runs
`snakemake --cores <cores> --configfile config/demo.yaml` with this checkout's Snakefile (and,
with `--against DIR`, the same with another checkout's, interleaved run by run so that a load
change on a shared machine hits both; `--keep DIR` keeps each run's merged tables, to compare
metrics.csv between checkouts). Prints per run the wall time and the summed job time of
each rule (Snakemake's benchmark files), then the medians, and last
`RESULT demo_median_s=<s> [against_median_s=<s> ratio=<this / against>]`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def demo_run(repo: Path, cores: int, keep: Path | None = None) -> tuple[float, dict[str, float]]:
    """One fresh demo run with `repo`'s workflow: (wall seconds, job seconds by rule). With
    `keep`, the run's merged tables (results/merged/*.csv) are copied there first."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        workdir = Path(tmp)
        (workdir / "config").symlink_to(repo / "config")
        cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile")]
        cmd += ["--directory", str(workdir), "--cores", str(cores)]
        cmd += ["--configfile", str(repo / "config" / "demo.yaml")]
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"the demo failed with {repo}:\n{done.stderr[-4000:]}")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for table in (workdir / "results" / "merged").glob("*.csv"):
                shutil.copy2(table, keep / table.name)
        by_rule: dict[str, float] = defaultdict(float)
        for tsv in (workdir / "benchmarks").rglob("*.tsv"):
            rule = tsv.relative_to(workdir / "benchmarks").parts[0].removesuffix(".tsv")
            by_rule[rule] += float(tsv.read_text().splitlines()[1].split("\t")[0])
        return wall, dict(by_rule)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--keep", type=Path, help="copy each run's merged tables to KEEP/<checkout>-<run>/"
    )
    ap.add_argument("--cores", type=int, default=2, help="as README command 1")
    ap.add_argument("--against", type=Path, help="another checkout of the workflow")
    ap.add_argument(
        "--against-cores", type=int, help="--cores for the other checkout (its README's)"
    )
    args = ap.parse_args(argv)
    checkouts = {"this": (REPO, args.cores)}
    if args.against:
        checkouts["against"] = (args.against.resolve(), args.against_cores or args.cores)
    walls: dict[str, list[float]] = defaultdict(list)
    for run in range(1, args.runs + 1):
        for name, (repo, cores) in checkouts.items():
            keep = args.keep / f"{name}-{run}" if args.keep else None
            wall, by_rule = demo_run(repo, cores, keep)
            walls[name].append(wall)
            rules = ", ".join(f"{r} {s:.0f}" for r, s in sorted(by_rule.items()))
            print(f"run {run} {name}: {wall:.0f} s (job seconds by rule: {rules})", flush=True)
    this = statistics.median(walls["this"])
    line = f"RESULT demo_median_s={this:.0f}"
    if args.against:
        against = statistics.median(walls["against"])
        line += f" against_median_s={against:.0f} ratio={this / against:.3f}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
