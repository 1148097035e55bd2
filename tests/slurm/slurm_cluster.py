"""A real single-node SLURM cluster for tests: munged, slurmctld and slurmd on this machine.

    with SlurmCluster(gpus=2) as cluster:      # installs slurm-wlm + munge if missing (root)
        subprocess.run(["sbatch", "--gpus=1", ...])
        cluster.jobs()                          # the controller's record of every job

- Debian's `slurm-wlm` and `munge` are installed with apt-get when a binary is missing.
- Every daemon runs in the foreground as a child of the test process, with its state, spool,
  logs, pid files and munge socket in a scratch folder /tmp/slurm-test-*; stop() cancels the
  jobs, ends the daemons by pid (pid file, or the child's pid) and any step daemon that outlived
  slurmd, and removes the folder (set KEEP_SLURM_TEST_CLUSTER=1 to keep it); it is idempotent,
  so a fixture's teardown or a `finally:` always cleans up. Daemons of a session that was killed
  before its teardown are ended by their pid files when the next cluster starts.
- The node has `gpus` fake GPUs: gres `gpu:fake:N` backed by character devices made with mknod
  (SLURM rejects regular files), so `--gpus=1` jobs get `CUDA_VISIBLE_DEVICES` like on a GPU node.
- The configuration must be /etc/slurm/slurm.conf: the SLURM jobstep executor strips every
  `SLURM_*` variable (SLURM_CONF too) before its inner `srun`. An existing file there is backed up
  and restored, and a lock file serialises concurrent test sessions on one machine.
- A TaskProlog prints each task's job id, step and `CUDA_VISIBLE_DEVICES` into the job's output
  (the sbatch log), so a test can tell from the log which jobs were granted a GPU.
- No slurmdbd: `sacct` does not work, poll with `squeue`. MinJobAge is an hour, so the controller
  keeps finished jobs for `jobs()` (and for squeue-based status checks).
- `SlurmCluster(release="24.11")`: Debian trixie's Slurm 24.11 in a `debootstrap --variant=minbase
  trixie` chroot (`ensure_trixie_root`, built once per machine, about a minute), with /tmp, the
  project and the Python installation bind-mounted at the same paths (jobs run the same
  interpreters and workdirs), proc, sys and dev mounted, `/etc/hosts` and `/etc/resolv.conf`
  copied in (slurmd never registers if `localhost` does not resolve). Every daemon and client runs
  through `chroot`; `cluster.bin_dir` holds client shims (sbatch, squeue, ...) to put first on the
  PATH of a Snakemake process, and `cluster.run([...])` runs a client command. stop() also undoes
  the mounts, and the next start undoes those of a session that died.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ETC = Path("/etc/slurm")
BINARIES = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun"]
PACKAGES = ["slurm-wlm", "munge"]
LOCK_FILE = Path(tempfile.gettempdir()) / "workflow-tests-slurm-cluster.lock"
SCRATCH_PREFIX = "slurm-test-"


TRIXIE_ROOT = Path(
    os.environ.get("SLURM_TEST_TRIXIE_ROOT", "/var/cache/workflow-tests/trixie-slurm")
)
# slurm-wlm and munge, and the shared libraries a host-built CPython needs (minbase lacks them)
TRIXIE_PACKAGES = ["slurm-wlm", "munge", "libffi8", "libsqlite3-0", "libbz2-1.0", "libreadline8t64"]
CLIENTS = ["sbatch", "squeue", "scancel", "scontrol", "sinfo", "sacct", "srun", "salloc"]
SHIM = """#!/bin/sh
# {name} of the test cluster's Slurm {release}: through chroot from the host, in the caller's
# folder and environment; inside the chroot (a job's srun) the root is not visible: run it there.
if [ -d {root}/usr ]; then
    exec chroot {root} /bin/sh -c 'cd "$0" && exec "$@"' "$PWD" /usr/bin/{name} "$@"
fi
exec /usr/bin/{name} "$@"
"""


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == str(root) or point.startswith(str(root) + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(root: Path) -> None:
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)


# never bind these (or a folder above them) over the chroot's own system
SYSTEM_FOLDERS = ("/", "/usr", "/etc", "/lib", "/lib64", "/bin", "/sbin", "/var")


def mount_chroot(root: Path, binds=()) -> None:
    """proc, sys and dev into `root`, and each host folder of `binds` at the same path.

    sys and dev are recursive binds made slaves: unmounting them later must not propagate to the
    host's own /dev/pts, /dev/shm or /sys/fs/cgroup where the host's mounts are shared (systemd).
    """
    for folder in binds:
        resolved = os.path.realpath(folder)
        if any(resolved == f or f.startswith(resolved.rstrip("/") + "/") for f in SYSTEM_FOLDERS):
            raise ValueError(f"refusing to bind {folder} over the chroot's system folders")
    steps = [
        ["mount", "-t", "proc", "proc", str(root / "proc")],
        ["mount", "--rbind", "/sys", str(root / "sys")],
        ["mount", "--make-rslave", str(root / "sys")],
        ["mount", "--rbind", "/dev", str(root / "dev")],
        ["mount", "--make-rslave", str(root / "dev")],
    ]
    for folder in binds:
        target = root / str(folder).lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        steps.append(["mount", "--bind", str(folder), str(target)])
    for cmd in steps:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def _remove_tree(root: Path) -> None:
    """Delete a chroot folder, never while anything is still mounted under it (rmtree would walk
    into the host's /dev or /sys)."""
    unmount_all(root)
    if _mounts_under(root):
        raise RuntimeError(f"still mounted under {root}: {_mounts_under(root)}; not deleting it")
    shutil.rmtree(root, ignore_errors=True)


def ensure_trixie_root(root: Path = TRIXIE_ROOT, log=print) -> Path:
    """Debian trixie with Slurm 24.11 in a minbase chroot at `root`, made once (a marker file
    says it is complete: an interrupted build is started again)."""
    marker = root / ".workflow-tests-ready"
    if marker.exists():
        return root
    if os.geteuid() != 0 or not _which("apt-get"):
        raise SlurmUnavailable("a Slurm 24.11 chroot needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _which("debootstrap"):
        log("installing debootstrap")
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "debootstrap"],
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
    partial = root.with_name(root.name + ".partial")
    _remove_tree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap --variant=minbase trixie {partial}")
    started = time.monotonic()
    result = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "trixie",
            str(partial),
            "http://deb.debian.org/debian",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if result.returncode != 0:
        raise RuntimeError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    for name in ("hosts", "resolv.conf"):
        shutil.copy2(f"/etc/{name}", partial / "etc" / name)
    mount_chroot(partial)
    try:
        result = subprocess.run(
            [
                "chroot",
                str(partial),
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                *TRIXIE_PACKAGES,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        unmount_all(partial)
    if result.returncode != 0:
        raise RuntimeError(
            f"apt-get in the chroot failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    log(f"trixie chroot with Slurm 24.11 ready in {time.monotonic() - started:.0f} s")
    _remove_tree(root)
    os.replace(partial, root)
    marker.touch()
    return root


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (not root, no apt-get, no mknod)."""


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def ensure_installed(log=print) -> None:
    """Install Debian's slurm-wlm and munge with apt-get when one of their binaries is missing."""
    missing = [b for b in BINARIES if not _which(b)]
    if not missing:
        return
    if os.geteuid() != 0 or not _which("apt-get"):
        raise SlurmUnavailable(f"missing {missing}; installing them needs root and apt-get")
    log(f"installing {PACKAGES} (missing: {missing})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
    still = [b for b in BINARIES if not _which(b)]
    if still:
        raise RuntimeError(f"still missing after apt-get install: {still}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


class SlurmCluster:
    """One node `localhost` with `gpus` fake GPUs in partition `partition` (not the default one,
    so jobs must name it as a real site's profile does)."""

    def __init__(
        self,
        gpus: int = 2,
        partition: str = "gputest",
        cpus: int | None = None,
        memory_mb: int | None = None,
        lock_timeout: float = 1800,
        log=print,
        release: str = "22.05",
        binds=(),
    ):
        """release "22.05": the host's Slurm (Debian bookworm); "24.11": trixie's, in a chroot
        into which `binds` (host folders: the project, the Python installation) are mounted
        besides /tmp."""
        if release not in ("22.05", "24.11"):
            raise ValueError(f"release {release!r}: 22.05 (host) or 24.11 (trixie chroot)")
        self.release = release
        self.root: Path | None = None
        self.binds = tuple(binds)
        self.bin_dir: Path | None = None
        self.gpus = gpus
        self.partition = partition
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb or int(_memory_mb() * 0.8)
        self.lock_timeout = lock_timeout
        self.log = log
        self.scratch: Path | None = None
        self._children: dict[str, subprocess.Popen] = {}
        self._backups: dict[Path, Path | None] = {}
        self._lock = None
        self._started = False

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 90) -> None:
        if os.geteuid() != 0:
            raise SlurmUnavailable("the test cluster runs its daemons as root")
        if self.release == "22.05":
            ensure_installed(self.log)
        self._acquire_lock()
        if self.release == "24.11":
            self.root = ensure_trixie_root(log=self.log)
            unmount_all(self.root)  # a session that died before its stop()
        self._reap_stale()
        self.scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        self.scratch.chmod(0o755)  # munged runs as user munge and must reach its folder
        for sub in ("state", "spool", "log", "gpu", "bin"):
            (self.scratch / sub).mkdir()
        if self.root is not None:
            mount_chroot(self.root, [tempfile.gettempdir(), *self.binds])
            self._write_shims()
        self._make_gpus()
        self._start_munge()
        self._write_config()
        self._start_daemon("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld to answer")
        self._start_daemon("slurmd", ["slurmd", "-D", "-N", "localhost"])
        self._wait(self._node_ready, timeout, "node localhost to become idle")
        self._started = True
        self.log(
            f"SLURM {self.release} test cluster up in {self.scratch} ({self.cpus} CPUs, "
            f"{self.memory_mb} MB, {self.gpus} fake GPUs, partition {self.partition})"
        )

    def stop(self) -> None:
        """Cancel all jobs, end the daemons by pid, restore /etc/slurm. Safe to call twice."""
        try:
            if self._children.get("slurmctld") and _alive(self._children["slurmctld"].pid):
                self.run(
                    ["scancel", "--full", f"--partition={self.partition}"],
                    capture_output=True,
                    timeout=30,
                )
                self._wait(
                    lambda: (
                        not self._ok(["squeue", "-h", "-t", "PD,R,CG,CF", "-o", "%i"], None)
                        and not self._step_sockets()
                    ),
                    30,
                    "jobs to end",
                    fail=False,
                )
            for name in ("slurmd", "slurmctld"):
                self._stop_daemon(name)
            # a step daemon that outlived slurmd (it reparents to init): ours hold our logs open
            self._kill(self._stray_stepds())
            self._stop_daemon("munged")
        finally:
            self._restore_config()
            if self.root is not None:
                unmount_all(self.root)
            if self.scratch is not None and not os.environ.get("KEEP_SLURM_TEST_CLUSTER"):
                shutil.rmtree(self.scratch, ignore_errors=True)
            self._release_lock()
            self._started = False

    # ---------------------------------------------------------------- queries
    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller knows (`scontrol show job -d -o`), as key -> value dicts."""
        out = self.run(
            ["scontrol", "show", "job", "-d", "-o"], capture_output=True, text=True, timeout=30
        )
        if "No jobs in the system" in out.stdout + out.stderr:
            return []
        out.check_returncode()
        return [_parse_oneliner(line) for line in out.stdout.splitlines() if line.strip()]

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        """A client command (`sbatch`, `scancel`, ...) of this cluster's Slurm."""
        if self.root is None:
            return subprocess.run(cmd, **kwargs)
        return subprocess.run([str(self.bin_dir / cmd[0]), *cmd[1:]], **kwargs)

    def client_path(self, path: str | None = None) -> str:
        """PATH with this cluster's client commands first (the chroot's shims for 24.11)."""
        path = path if path is not None else os.environ.get("PATH", "")
        return f"{self.bin_dir}{os.pathsep}{path}" if self.bin_dir else path

    def env(self) -> dict[str, str]:
        """Variables for client commands (the config is at /etc/slurm/slurm.conf anyway)."""
        return {"SLURM_CONF": str(ETC / "slurm.conf")}

    def logs(self) -> str:
        """The daemons' logs, for a failure message."""
        parts = []
        for path in sorted((self.scratch / "log").glob("*")) if self.scratch else []:
            parts.append(f"==> {path.name} <==\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    # ---------------------------------------------------------------- internals
    def _acquire_lock(self) -> None:
        self._lock = open(LOCK_FILE, "w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another SLURM test cluster holds {LOCK_FILE}") from None
                time.sleep(2)

    def _reap_stale(self) -> None:
        """Daemons of a test session that died without stop() (we hold the lock, so no live
        session owns them): end them by their pid files, and drop their scratch folders."""
        for old in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
            for pid_file, name in (
                (old / "slurmd.pid", b"slurmd"),
                (old / "slurmctld.pid", b"slurmctld"),
                (old / "munge" / "munged.pid", b"munged"),
            ):
                try:
                    pid = int(pid_file.read_text().split()[0])
                    if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(name):
                        self.log(f"stopping stale {name.decode()} (pid {pid}) of {old}")
                        self._kill({pid})
                except (OSError, ValueError, IndexError):
                    pass
            self.scratch = old
            self._kill(self._stray_stepds())
            self.scratch = None
            shutil.rmtree(old, ignore_errors=True)

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _make_gpus(self) -> None:
        for i in range(self.gpus):
            path = self.scratch / "gpu" / f"fakegpu{i}"
            try:
                os.mknod(path, 0o666 | 0o020000, os.makedev(195, i))  # S_IFCHR, like /dev/nvidiaN
            except PermissionError as error:
                raise SlurmUnavailable(f"cannot mknod a fake GPU device: {error}") from None

    def _munge_ids(self) -> tuple[int, int]:
        """uid and gid of user munge, as the system the daemons run in knows it."""
        if self.root is None:
            munge = pwd.getpwnam("munge")
            return munge.pw_uid, munge.pw_gid
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "munge":
                return int(fields[2]), int(fields[3])
        raise RuntimeError(f"no user munge in {self.root}/etc/passwd")

    def _start_munge(self) -> None:
        uid, gid = self._munge_ids()
        folder = self.scratch / "munge"
        folder.mkdir()
        folder.chmod(0o711)  # munged wants the socket's folder searchable by all
        key = folder / "munge.key"
        subprocess.run(
            [*self._prefix(), self._binary("mungekey"), "--create", "--keyfile", str(key)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for path in (folder, key):
            os.chown(path, uid, gid)
        key.chmod(0o400)
        self.munge_socket = folder / "munge.socket"
        self._start_daemon(
            "munged",
            [
                "munged",
                "--foreground",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={folder / 'munged.pid'}",
                f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munged.seed'}",
                "--num-threads=2",
            ],
            user=uid,
            group=gid,
            pid_file=folder / "munged.pid",
        )
        self._wait(lambda: self.munge_socket.exists(), 30, "munged's socket")

    def _write_config(self) -> None:
        s = self.scratch
        prolog = s / "task_prolog.sh"
        prolog.write_text(
            "#!/bin/sh\n"
            "# Lines starting with 'print' go to the task's stdout, i.e. the job's log.\n"
            'echo "print [slurm-task] job=$SLURM_JOB_ID step=${SLURM_STEP_ID:-batch}'
            ' CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"\n'
        )
        prolog.chmod(0o755)
        self.ports = (_free_port(), _free_port())
        conf = f"""# Written by tests/slurm/slurm_cluster.py for a test cluster in {s}; removed when it stops.
ClusterName=workflowtest
SlurmctldHost=localhost
SlurmctldPort={self.ports[0]}
SlurmdPort={self.ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin=task/none
TaskProlog={prolog}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=3600
KillWait=5
ReturnToService=2
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
GresTypes=gpu
StateSaveLocation={s}/state
SlurmdSpoolDir={s}/spool
SlurmctldPidFile={s}/slurmctld.pid
SlurmdPidFile={s}/slurmd.pid
SlurmctldLogFile={s}/log/slurmctld.log
SlurmdLogFile={s}/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} Gres=gpu:fake:{self.gpus} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=NO MaxTime=INFINITE State=UP
"""
        gres = (
            f"AutoDetect=off\nNodeName=localhost Name=gpu Type=fake "
            f"File={s}/gpu/fakegpu[0-{self.gpus - 1}]\n"
        )
        etc = self.root / "etc" / "slurm" if self.root is not None else ETC
        etc.mkdir(parents=True, exist_ok=True)
        for name, text in (("slurm.conf", conf), ("gres.conf", gres)):
            path = etc / name
            backup = None
            if path.exists():
                backup = s / f"{name}.orig"
                shutil.copy2(path, backup)
            self._backups[path] = backup
            path.write_text(text)

    def _restore_config(self) -> None:
        for path, backup in self._backups.items():
            if backup is not None and backup.exists():
                shutil.copy2(backup, path)
            else:
                path.unlink(missing_ok=True)
        self._backups.clear()

    def _start_daemon(self, name, cmd, user=None, group=None, pid_file=None) -> None:
        out = open(self.scratch / "log" / f"{name}.out", "w")
        cmd = [self._binary(cmd[0]), *cmd[1:]]
        if self.root is not None:  # chroot needs root: it drops to the user itself
            spec = [f"--userspec={user}:{group}"] if user is not None else []
            cmd, user, group = ["chroot", *spec, str(self.root), *cmd], None, None
        self._children[name] = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user,
            group=group,
            start_new_session=True,
        )  # a Ctrl-C of the tests does not reach them
        self._children[name].pid_file = pid_file or self.scratch / f"{name}.pid"
        out.close()
        time.sleep(0.5)
        if self._children[name].poll() is not None:
            raise RuntimeError(f"{name} exited at start:\n{self.logs()}")

    def _prefix(self) -> list[str]:
        return ["chroot", str(self.root)] if self.root is not None else []

    def _binary(self, name: str) -> str:
        """Absolute path of a Slurm/munge binary on the system the daemons run in."""
        if self.root is None:
            return _which(name)
        for folder in ("usr/sbin", "usr/bin", "sbin", "bin"):
            if (self.root / folder / name).exists():
                return f"/{folder}/{name}"
        raise RuntimeError(f"{name} is not installed in {self.root}")

    def _write_shims(self) -> None:
        self.bin_dir = self.scratch / "bin"
        for name in CLIENTS:
            shim = self.bin_dir / name
            shim.write_text(SHIM.format(name=name, root=self.root, release=self.release))
            shim.chmod(0o755)

    def _stop_daemon(self, name: str) -> None:
        child = self._children.pop(name, None)
        if child is None:
            return
        pids = {child.pid}
        try:
            pids.add(int(child.pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        self._kill(pids, child)
        child.poll()

    def _step_sockets(self) -> list[Path]:
        spool = self.scratch / "spool" if self.scratch else None
        return [p for p in spool.glob("localhost_*")] if spool and spool.is_dir() else []

    def _stray_stepds(self) -> set[int]:
        pids = set()
        if self.scratch is None:
            return pids
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if not (proc / "cmdline").read_bytes().startswith(b"slurmstepd"):
                    continue
                roots = [str(self.scratch)]
                if self.root is not None:
                    roots.append(str(self.root) + str(self.scratch))
                if any(os.readlink(fd).startswith(tuple(roots)) for fd in (proc / "fd").iterdir()):
                    pids.add(int(proc.name))
            except OSError:
                continue
        return pids

    def _kill(self, pids: set[int], child: subprocess.Popen | None = None) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if child is not None:
                    child.poll()
                if not any(_alive(p) for p in pids):
                    return
                time.sleep(0.2)

    def _node_ready(self) -> bool:
        out = self.run(
            ["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        state = out[1] if len(out) >= 2 else ""
        if state.startswith(("down", "drain")):
            self.run(
                ["scontrol", "update", "nodename=localhost", "state=resume"],
                capture_output=True,
                timeout=30,
            )
        return state.startswith("idle")

    def _ok(self, cmd, needle) -> bool:
        try:
            result = self.run(cmd, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return False
        if needle is None:
            return result.returncode == 0 and bool(result.stdout.strip())
        return result.returncode == 0 and needle in result.stdout

    def _wait(self, ready, timeout, what, fail=True) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            for name, child in self._children.items():
                if child.poll() is not None and fail:
                    raise RuntimeError(f"{name} exited while waiting for {what}:\n{self.logs()}")
            time.sleep(0.5)
        if fail:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}:\n{self.logs()}")
        return False


def _parse_oneliner(line: str) -> dict[str, str]:
    """`scontrol -o` prints `Key=Value` pairs separated by spaces; a few values contain spaces
    (Command, Reason...): words that are no `Key=` are glued onto the previous value."""
    fields: dict[str, str] = {}
    key = None
    for word in line.split():
        name, eq, value = word.partition("=")
        if eq and re.fullmatch(r"[A-Za-z][\w/:]*", name):
            key = name
            fields[key] = value
        elif key is not None:
            fields[key] += " " + word
    return fields
