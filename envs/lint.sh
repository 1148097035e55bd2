#!/usr/bin/env bash
# Check formatting and lint over the whole tree, as CI does: `bash envs/lint.sh`.
# snakefmt and ruff (pinned in envs/lint.lock, installed into .venv-lint), then Snakemake's own
# --lint with the workflow's environment (.venv, from envs/install.sh). Fix with
# `.venv-lint/bin/snakefmt . && .venv-lint/bin/ruff format . && .venv-lint/bin/ruff check --fix .`
set -uo pipefail
cd "$(dirname "$0")/.."
lint=.venv-lint
if [ ! -x "$lint/bin/ruff" ] || [ ! -x "$lint/bin/snakefmt" ]; then
  python3 -m venv "$lint" || exit 1
  # uv from envs/install.sh when it is there (seconds), pip otherwise
  if ! { [ -x .venv/bin/uv ] &&
    .venv/bin/uv pip install --quiet --python "$lint/bin/python" --no-deps -r envs/lint.lock; }; then
    "$lint/bin/python" -m pip install --quiet --no-deps -r envs/lint.lock || exit 1
  fi
fi
failed=0
step() {
  echo "== $*"
  "$@" || { echo "FAILED: $* (the files are named above)"; failed=1; }
}
step "$lint/bin/snakefmt" --check .
step "$lint/bin/ruff" format --check .
step "$lint/bin/ruff" check .
step .venv/bin/snakemake --lint
step .venv/bin/snakemake --lint --configfile config/demo.yaml
exit $failed
