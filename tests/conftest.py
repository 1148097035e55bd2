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


def write_config(path: Path, base: str | Path | None = None, **overrides) -> Path:
    """A config file: `base` (a file name in config/, or a path) with top-level sections replaced
    or merged."""
    source = base if isinstance(base, Path) else REPO / "config" / str(base)
    config = yaml.safe_load(source.read_text()) if base else {}
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

    Built by the workflow's own rule (`snakemake --until build_demo_assets` on the demo config,
    as README command 1 does first), then kept for the session. The build is bitwise
    deterministic for a seed (tests/workflow/test_demo_assets.py checks it), so a copy is what
    the rule would write in any test's folder.
    """
    import hashlib
    import tempfile

    demo = REPO / "workflow_scripts" / "demo"
    code = b"".join(
        p.read_bytes() for p in sorted(demo.glob("*.*")) if p.suffix in (".py", ".yaml")
    )
    code += (REPO / "rules" / "demo.smk").read_bytes()
    seed = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["demo"]["seed"]
    key = hashlib.sha256(code + str(seed).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"sae-workflow-demo-assets-{key}"
    if not (cache / "manifest.json").is_file():
        build = cache.with_name(cache.name + f".build-{os.getpid()}")
        build.mkdir(parents=True)
        result = run_snakemake(
            [
                "--cores",
                "2",
                "--configfile",
                str(REPO / "config" / "demo.yaml"),
                "--until",
                "build_demo_assets",
            ],
            build,
            timeout=1200,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(build / "resources" / "demo", cache)
        shutil.rmtree(build, ignore_errors=True)
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


# ------------------------------------------------------------------ the session's shared demo run
# One Snakemake run of the demo, offline under the network guard, feeds test_demo_workflow.py,
# test_more_evals.py and test_report.py: the README's demo config with every one of its eval
# types plus absorption and meta-structure, on one variant of each family (the config's others
# add jobs, not paths). Tests that change a run work on a copy (`copy_run`).
_DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
_SHARED_ON = {e for e, on in _DEMO["eval_types"].items() if on} | {"absorption", "meta_structure"}


def _registry_order(names: set[str]) -> list[str]:
    from workflow_scripts.evals.registry import REGISTRY  # the order of the run's tables

    return [e for e in REGISTRY if e in names]


SHARED_EVAL_TYPES = _registry_order(_SHARED_ON)
SHARED_SAE_VARIANTS = {
    **_DEMO["sae_variants"],
    "ihtp": {"enabled": True, "k_values": _DEMO["sae_variants"]["ihtp"]["k_values"][:1]},
    "mpsae": {"enabled": True, "s_values": _DEMO["sae_variants"]["mpsae"]["s_values"][:1]},
}
SHARED_VARIANTS = (
    ["baseline"]
    + [f"ihtp_k{k}" for k in SHARED_SAE_VARIANTS["ihtp"]["k_values"]]
    + [f"mpsae_s{s}" for s in SHARED_SAE_VARIANTS["mpsae"]["s_values"]]
)


def evaluated_variants(eval_type: str, variants=SHARED_VARIANTS) -> list[str]:
    """The variants with a job of `eval_type`: a decoder-only eval (meta-structure) skips the
    derived variants, which share their baseline's decoder."""
    from workflow_scripts.evals.registry import REGISTRY

    if REGISTRY[eval_type].decoder_only:
        return [v for v in variants if v == "baseline"]
    return list(variants)


def shared_demo_config(path: Path, **overrides) -> Path:
    return write_config(
        path,
        "demo.yaml",
        eval_types={e: True for e in SHARED_EVAL_TYPES},
        sae_variants=SHARED_SAE_VARIANTS,
        **overrides,
    )


@pytest.fixture(scope="session")
def shared_demo_run(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("shared_demo")
    network_log = workdir / "network.log"
    env = {
        "PYTHONPATH": str(REPO / "tests" / "network_guard"),
        "WORKFLOW_TEST_NETWORK_LOG": str(network_log),
    }
    config = shared_demo_config(workdir / "demo.yaml")
    seed_demo_assets(workdir)
    result = run_snakemake(
        ["--cores", "2", "--configfile", str(config)], workdir, env=env, timeout=1800
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return {
        "workdir": workdir,
        "out": workdir / "results",
        "config": config,
        "env": env,
        "network_log": network_log,
        "stdout": result.stdout,
        "output": result.stdout + result.stderr,
    }


def copy_run(run: dict, target: Path) -> dict:
    """A copy of a run's folder (file times kept, so Snakemake sees it as up to date; the
    activation caches left out) to change without touching the shared run."""
    shutil.copytree(
        run["workdir"],
        target,
        symlinks=True,
        ignore=lambda folder, names: ["artifacts"] if Path(folder).name == "results" else [],
    )
    config = target / run["config"].name
    return {**run, "workdir": target, "out": target / "results", "config": config}
