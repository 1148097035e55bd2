#!/usr/bin/env bash
# Create (or update) the Python environment the workflow and its tests use: `bash envs/install.sh [VENV]`.
# Installs the exact versions in envs/requirements.lock without resolving dependencies again,
# because sae-bench's unpinned torchvision dependency would otherwise pull a torchvision that
# breaks `import transformer_lens` beside a CPU torch (see README, "Environment").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch==2.13.0
"$venv/bin/python" -m pip install --quiet --no-deps -r "$here/requirements.lock"
"$venv/bin/python" -c "import sae_bench, transformer_lens, snakemake; print('environment ready')"
