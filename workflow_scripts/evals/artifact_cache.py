"""Shared LLM-activation caches that concurrent jobs can use without reading half-written files.

SAE Bench's sparse_probing/scr/tpp cache LLM activations under `artifacts_path/<eval>/<model>/
<hook>/` keyed without seed, sizes or dtype, and reuse whatever file exists. We therefore give it
a folder keyed by a hash of every setting that changes the activations, and build each folder
under an exclusive lock: the first job fills it and marks it complete; jobs that find the mark read
it in parallel without the lock; a job that died half-way leaves no mark, so the next one wipes
the folder and builds it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

COMPLETE = ".complete"


def files_digest(folder: str | None) -> str | None:
    """Content hash of the files under `folder` (None for None): a rebuilt local model or
    stand-in dataset at the same path must not reuse what was cached from the old one."""
    if not folder:
        return None
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(settings: dict) -> str:
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_folder(root: Path | str, eval_type: str, settings: dict) -> Path:
    return Path(root) / eval_type / cache_key(settings)


@contextlib.contextmanager
def shared_cache(folder: Path | str, report: dict | None = None) -> Iterator[Path]:
    """Yield `folder` for the eval to read or fill; only complete folders are ever shared.

    `report["built"]` is set to whether this call filled the folder (True) or read a complete
    one (False)."""
    report = report if report is not None else {}
    report["built"] = False
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if (folder / COMPLETE).exists():
        yield folder
        return
    lock_path = folder.with_name(folder.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if we are killed
        try:
            if (folder / COMPLETE).exists():  # another job built it while we waited
                fcntl.flock(lock, fcntl.LOCK_UN)
                yield folder
                return
            shutil.rmtree(folder, ignore_errors=True)  # leftovers of a job that died
            folder.mkdir(parents=True)
            report["built"] = True
            yield folder
            (folder / COMPLETE).write_text("")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
