"""Shared test helpers: run Snakemake as a user would, from a copy-free workdir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def snakemake_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    # Without a .venv beside the Snakefile, jobs call `python -m ...`: the tests' interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def run_snakemake(args: list[str], workdir: Path, env: dict | None = None, timeout: int = 900):
    """`snakemake -s <repo>/Snakefile --directory <workdir> ...`; returns the CompletedProcess.

    The workdir gets a link to the repo's config/, as a deployed project has its own config/.
    """
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(REPO / "config")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    return subprocess.run(
        cmd, cwd=workdir, env=snakemake_env(env), capture_output=True, text=True, timeout=timeout
    )


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


SLOW_FOLDERS = ("workflow", "slurm")  # tests/<folder>/: they run Snakemake or a SLURM cluster


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/workflow/ and tests/slurm/ `slow`, so `-m "not slow"` runs the
    unit tests alone (seconds to a few minutes) and `-m slow` the rest."""
    for item in items:
        if Path(item.path).parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def repo() -> Path:
    return REPO


def _demo_cache() -> Path:
    """The demo assets, built once per version of the builder's code and reused across modules.

    The build is bitwise deterministic for a seed (tests/workflow/test_demo_assets.py checks it),
    so a copy is what the `build_demo_assets` rule would write; the demo workflow test and the
    SLURM run still build it through the rule.
    """
    import hashlib
    import tempfile

    demo = REPO / "workflow_scripts" / "demo"
    code = b"".join(
        p.read_bytes() for p in sorted(demo.glob("*.*")) if p.suffix in (".py", ".yaml")
    )
    seed = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["demo"]["seed"]
    key = hashlib.sha256(code + str(seed).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"sae-workflow-demo-assets-{key}"
    if not (cache / "manifest.json").is_file():
        partial = cache.with_name(cache.name + f".partial-{os.getpid()}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "workflow_scripts.demo.build",
                "--out",
                str(partial),
                "--seed",
                str(seed),
            ],
            cwd=REPO,
            env=snakemake_env({"PYTHONPATH": str(REPO)}),
            check=True,
            capture_output=True,
            timeout=1200,
        )
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(partial, cache)
    return cache


def seed_demo_assets(workdir: Path) -> None:
    """Give a demo workdir its assets up front (saves each test module a 1-2 minute build)."""
    target = workdir / "resources" / "demo"
    if not target.exists():
        copy_demo_assets(target)


def copy_demo_assets(target: Path) -> dict:
    """A copy of the session's demo build at `target`, its manifest's paths pointing there (the
    builder writes absolute paths); returns the manifest."""
    import json

    cache = _demo_cache()
    shutil.copytree(cache, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    built_at = manifest["paths"]["root"]
    text = manifest_path.read_text().replace(json.dumps(built_at)[1:-1], str(target))
    manifest_path.write_text(text)
    return json.loads(text)
