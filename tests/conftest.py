"""Shared test helpers: run Snakemake as a user would, from a copy-free workdir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

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

# The slow tests' groups for `pytest -m slow -n auto --dist loadgroup` (README's test command):
# every test of a group runs on one worker, so module fixtures (a Snakemake run, a SLURM
# cluster) are made once, and workers take the groups in this order. Why this order, on two
# workers: run one at a time, the slow tests kept the machine's two cores only 55% busy
# (single-threaded dry runs and Snakemake start-ups, SLURM polling), so the first worker builds
# the demo and makes the shared demo run (the longest chain) while the second runs what needs
# neither, then the SLURM tests, which compare with the shared run at their end, when it is done.
SLOW_GROUPS = {  # module -> group
    "test_demo_workflow": "shared_demo",  # the three modules of the shared demo run
    "test_more_evals": "shared_demo",
    "test_report": "shared_demo",
    "test_dry_run": "dry_run",  # no demo build needed: runs while it is made
    "test_eval_requirements": "eval_requirements",
    "test_hub_sources": "hub_sources",
    "test_published_workflow": "published",
    "test_slurm": "slurm",  # one SLURM cluster at a time
    "test_slurm_harness": "slurm",
    "test_replicates_workflow": "replicates",
    "test_demo_assets": "demo_assets",
}
GROUP_ORDER = list(dict.fromkeys(SLOW_GROUPS.values()))


def slow_group(nodeid: str) -> str | None:
    return SLOW_GROUPS.get(Path(nodeid.split("::", 1)[0]).stem)


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/workflow/ and tests/slurm/ `slow`, so `-m "not slow"` runs the
    unit tests alone (seconds to a few minutes) and `-m slow` the rest; order the slow tests by
    group (stable: file order within a group), the order in which workers take them."""
    for item in items:
        if Path(item.path).parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
            assert slow_group(item.nodeid), f"{item.nodeid}: add its module to SLOW_GROUPS"
    rank = {group: i for i, group in enumerate(GROUP_ORDER)}
    items.sort(key=lambda item: rank.get(slow_group(item.nodeid), -1))


def pytest_configure(config):
    # keep GROUP_ORDER: pytest-xdist's loadgroup otherwise starts the groups with the most tests
    if getattr(config.option, "dist", "no") == "loadgroup":
        config.option.loadscopereorder = False


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` with the groups of SLOW_GROUPS, read from each test's module.

    Not pytest-xdist's own `xdist_group` marks: xdist 3.8.0 groups by appending the mark's name to
    the node id (xdist/remote.py:254, `item._nodeid = ...`), which pytest 9.2 ignores (node ids
    are structured, `Node._id`), so the marks are silently dropped and a module's tests spread
    over the workers, each making the module's Snakemake run again (pytest-xdist issue #1386).
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SlowGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return slow_group(nodeid) or nodeid  # any other test is a unit of its own

    return SlowGroupScheduling(config, log)


def shared_folder(tmp_path_factory) -> Path:
    """This session's temporary folder, the same for every pytest-xdist worker (each worker's
    own folder is a subfolder of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


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
    with FileLock(f"{cache}.lock"):  # pytest-xdist workers: one builds, the others wait
        if not (cache / "manifest.json").is_file():
            _build_demo_cache(cache)
    return cache


def _build_demo_cache(cache: Path) -> None:
    """Build the demo by its rule in a private folder, then move it into place."""
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
    """The run, made once per session: under pytest-xdist the first worker that needs it runs
    it in the session's shared folder (the others wait on the lock, then read its record)."""
    import json

    root = shared_folder(tmp_path_factory)
    workdir = root / "shared_demo"
    record = root / "shared_demo.json"  # written once the run ended, whatever its outcome
    env = {
        "PYTHONPATH": str(REPO / "tests" / "network_guard"),
        "WORKFLOW_TEST_NETWORK_LOG": str(workdir / "network.log"),
    }
    config = workdir / "demo.yaml"
    with FileLock(f"{record}.lock"):
        if not record.is_file():
            workdir.mkdir(parents=True)
            shared_demo_config(config)
            seed_demo_assets(workdir)
            result = run_snakemake(
                ["--cores", "2", "--configfile", str(config)], workdir, env=env, timeout=1800
            )
            record.write_text(
                json.dumps(
                    {"rc": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
                )
            )
    result = json.loads(record.read_text())
    assert result["rc"] == 0, result["stdout"][-5000:] + result["stderr"][-5000:]
    return {
        "workdir": workdir,
        "out": workdir / "results",
        "config": config,
        "env": env,
        "network_log": workdir / "network.log",
        "stdout": result["stdout"],
        "output": result["stdout"] + result["stderr"],
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
