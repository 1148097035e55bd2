"""Shared test helpers: run Snakemake as a user would, from a copy-free workdir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def snakemake_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    # Jobs call `python -m ...`: make it the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def run_snakemake(args: list[str], workdir: Path, env: dict | None = None, timeout: int = 900):
    """`snakemake -s <repo>/Snakefile --directory <workdir> ...`; returns the CompletedProcess.

    The workdir gets a link to the repo's config/, as a deployed project has its own config/.
    """
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(REPO / "config")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
           str(workdir), *args]
    return subprocess.run(cmd, cwd=workdir, env=snakemake_env(env), capture_output=True,
                          text=True, timeout=timeout)


def write_config(path: Path, base: str | None = None, **overrides) -> Path:
    """A config file: `base` (a file in config/) with top-level sections replaced or merged."""
    config = yaml.safe_load((REPO / "config" / base).read_text()) if base else {}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def repo() -> Path:
    return REPO
