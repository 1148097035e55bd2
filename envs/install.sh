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
# uv installs the locked wheels about 2x faster than pip (measured on a 2-core machine with empty
# caches: 115 -> 50 s and 40 -> 18 s). pip still installs torch, because only pip finds a local
# CPU wheel of torch or a site's pip configuration (index mirror); and when uv cannot reach the
# index (uv reads no pip.conf), pip installs the lock instead.
UV_VERSION=0.13.9
install_lock() { # python lockfile
  if [ -x "$venv/bin/uv" ] &&
    "$venv/bin/uv" pip install --quiet --python "$1" --no-deps --compile-bytecode -r "$2"; then
    return
  fi
  echo "uv could not install $2: installing it with pip"
  "$1" -m pip install --quiet --no-deps -r "$2"
}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet torch==2.13.0 "uv==$UV_VERSION" ||
  "$venv/bin/python" -m pip install --quiet torch==2.13.0
install_lock "$venv/bin/python" "$here/requirements.lock"
"$venv/bin/python" -c "import sae_bench, transformer_lens, snakemake; print('environment ready')"
[ -x "$scheduler/bin/python" ] || python3 -m venv "$scheduler"
install_lock "$scheduler/bin/python" "$here/scheduler.lock"
"$scheduler/bin/python" -c "import snakemake, snakemake_executor_plugin_slurm; print('scheduler environment ready')"
