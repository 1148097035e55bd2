"""The GPU check: the speed figures that need a CUDA machine, in one run of under 10 minutes.

    .venv/bin/python -m workflow_scripts.tools.gpu_check [--workdir gpu-check] [--cores 8]

Needs the installed environment (`bash envs/install.sh`, which takes a CUDA build of torch on a
CUDA machine) and no network: the demo builds its own model and data. In order, each step timed:

1. `tools/bench_pursuit --device cuda`: matching pursuit and IHTP against a ReLU encode;
2. the offline demo with `model.device: cuda` (`config/demo.yaml` plus an overlay written into
   the workdir), `snakemake --cores <cores>`: its wall time and every output;
3. `tools/bench_per_pair` on that demo's SAEs for core and sparse probing: per-pair jobs against
   one process, on the GPU.

Prints each step's own report, then one line
`RESULT gpu=<name> mp_vs_relu=<x> ihtp_speedup=<x> demo_s=<s> per_pair_vs_one_process=<x>
median_startup_s=<s>` (a step that failed reads `failed`), and exits non-zero if one failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEP_LIMIT_S = {"pursuit": 180, "demo": 360, "per_pair": 240}  # 13 minutes at most in all


def run_step(name: str, cmd: list[str], cwd: Path) -> tuple[float, str, bool]:
    """Run `cmd`, echo its output, return (wall seconds, output, succeeded)."""
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=STEP_LIMIT_S[name]
        )
        output, ok = done.stdout + done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as error:
        output, ok = f"{error.stdout or ''}\ntimed out after {STEP_LIMIT_S[name]} s", False
    wall = time.perf_counter() - started
    print(output[-4000:], flush=True)
    print(f"== {name}: {'ok' if ok else 'FAILED'} in {wall:.0f} s", flush=True)
    return wall, output, ok


def result_fields(output: str) -> dict[str, str]:
    """`key=value` pairs of the last `RESULT ...` line in output."""
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1])) if lines else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=REPO / "gpu-check")
    ap.add_argument("--cores", type=int, default=8)
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(
            f"no CUDA device visible to torch {torch.__version__} (a CPU build, or "
            "CUDA_VISIBLE_DEVICES empty): run this on a CUDA machine after envs/install.sh"
        )
        return 2
    gpu = torch.cuda.get_device_name(0).replace(" ", "_")
    python = sys.executable
    fields = {"gpu": gpu}
    failed = []

    _, out, ok = run_step(
        "pursuit", [python, "-m", "workflow_scripts.tools.bench_pursuit", "--device", "cuda"], REPO
    )
    found = result_fields(out) if ok else {}
    fields["mp_vs_relu"] = found.get("mp_vs_relu", "failed")
    fields["ihtp_speedup"] = found.get("ihtp_speedup", "failed")
    failed += [] if found else ["pursuit"]

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(REPO / "config")
    overlay = workdir / "cuda.yaml"
    overlay.write_text("model:\n  device: cuda\n")
    configs = [str(REPO / "config" / "demo.yaml"), str(overlay)]
    snakemake = [python, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory"]
    wall, _, ok = run_step(
        "demo",
        [*snakemake, str(workdir), "--cores", str(args.cores), "--configfile", *configs],
        workdir,
    )
    fields["demo_s"] = f"{wall:.0f}" if ok else "failed"
    failed += [] if ok else ["demo"]

    if ok:
        _, out, ok = run_step(
            "per_pair",
            [
                python, "-m", "workflow_scripts.tools.bench_per_pair", "--workdir", str(workdir),
                "--configfile", *configs, "--eval-types", "core,sparse_probing",
            ],
            REPO,
        )  # fmt: skip
        found = result_fields(out) if ok else {}
    else:
        found = {}
    fields["per_pair_vs_one_process"] = found.get("per_pair_vs_one_process", "failed")
    fields["median_startup_s"] = found.get("median_startup_s", "failed")
    failed += [] if found else ["per_pair"]

    print("RESULT " + " ".join(f"{key}={value}" for key, value in fields.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
