#!/usr/bin/env bash
# Create (or update) the two Python environments of the workflow:
#   bash envs/install.sh [SAEBENCH_VENV] [SCHEDULER_VENV]     (default .venv and .venv-scheduler)
# - .venv: SAE Bench, SAE Lens, TransformerLens, torch (CPU build unless one is there) and
#   Snakemake: every job's Python step runs here (config key `saebench_python`), and so do local
#   runs (`--cores N`, the demo) and the tests;
# - .venv-scheduler: Snakemake with the maintained SLURM executor plugin (2.8.0, numpy 2, which
#   sae-bench forbids beside it) for `snakemake --profile profiles/slurm`; no torch, no SAE Bench.
# Both install the exact versions of their lock file without resolving dependencies again,
# because sae-bench's unpinned torchvision dependency would otherwise pull a torchvision that
# breaks `import transformer_lens` beside a CPU torch (see README, "Environment").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-.venv}"
scheduler="${2:-.venv-scheduler}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch==2.13.0
"$venv/bin/python" -m pip install --quiet --no-deps -r "$here/requirements.lock"
"$venv/bin/python" -c "import sae_bench, transformer_lens, snakemake; print('environment ready')"
[ -x "$scheduler/bin/python" ] || python3 -m venv "$scheduler"
"$scheduler/bin/python" -m pip install --quiet --upgrade pip
"$scheduler/bin/python" -m pip install --quiet --no-deps -r "$here/scheduler.lock"
"$scheduler/bin/python" -c "import snakemake, snakemake_executor_plugin_slurm; print('scheduler environment ready')"
