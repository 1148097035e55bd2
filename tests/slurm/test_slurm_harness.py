"""The SLURM test clusters (slurm_cluster.py) clean up after a failing test: every daemon and
job step ended by pid, /etc/slurm restored, the scratch folder removed, and for Slurm 24.11 the
chroot's mounts undone. A module of its own: the harness holds a machine-wide lock, so it must not
run while tests/slurm/test_slurm.py's cluster is up."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from slurm_cluster import SlurmCluster, SlurmUnavailable

pytestmark = pytest.mark.slow
RELEASES = ["22.05", "24.11"]


@pytest.mark.parametrize("release", RELEASES)
def test_cluster_is_stopped_by_pid_even_when_a_test_fails(release):
    from slurm_cluster import TRIXIE_ROOT, _mounts_under

    conf = Path("/etc/slurm/slurm.conf")
    before = conf.read_bytes() if conf.exists() else None
    seen = {}
    try:
        with pytest.raises(RuntimeError, match="a failing test"):
            with SlurmCluster(
                gpus=1, partition="gputest", release=release, binds=[REPO, sys.base_prefix]
            ) as cluster:
                seen["pids"] = {name: child.pid for name, child in cluster._children.items()}
                seen["scratch"] = cluster.scratch
                seen["mounted"] = cluster.root is not None and bool(_mounts_under(cluster.root))
                # a job still running at the stop: its step daemon must go too
                cluster.run(
                    [
                        "sbatch",
                        "-p",
                        "gputest",
                        "--gpus=1",
                        "-o",
                        "/dev/null",
                        "--wrap",
                        "sleep 300",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
                deadline = time.monotonic() + 30
                while not cluster._stray_stepds() and time.monotonic() < deadline:
                    time.sleep(0.5)
                seen["stepds"] = cluster._stray_stepds()
                raise RuntimeError("a failing test")
    except SlurmUnavailable as error:
        pytest.skip(f"no SLURM test cluster here: {error}")
    assert set(seen["pids"]) == {"munged", "slurmctld", "slurmd"} and seen["stepds"]
    for pid in [*seen["pids"].values(), *seen["stepds"]]:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    assert not seen["scratch"].exists()
    assert (conf.read_bytes() if conf.exists() else None) == before
    if release == "24.11":  # the chroot's mounts (proc, sys, dev, /tmp, project, Python) undone
        assert seen["mounted"] and not _mounts_under(TRIXIE_ROOT)
