"""Concurrent jobs never read a half-written shared cache; changed settings get a new folder."""

import multiprocessing
import time

from workflow_scripts.evals.artifact_cache import cache_folder, shared_cache


def fill_or_read(folder, log):
    with shared_cache(folder) as path:
        if not (path / "acts.txt").exists():
            with open(
                path / "acts.txt", "w"
            ) as handle:  # slow writer: a reader must never see half
                for i in range(5):
                    handle.write(f"{i}\n")
                    handle.flush()
                    time.sleep(0.1)
            log.put("built")
        else:
            log.put("read:" + (path / "acts.txt").read_text().replace("\n", ","))


def test_concurrent_jobs_build_once_and_read_whole_files(tmp_path):
    folder = tmp_path / "sparse_probing" / "key"
    log = multiprocessing.Queue()
    jobs = [multiprocessing.Process(target=fill_or_read, args=(folder, log)) for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(30)
    outcomes = sorted(log.get(timeout=5) for _ in jobs)
    assert outcomes == ["built", "read:0,1,2,3,4,", "read:0,1,2,3,4,"]
    assert (folder / ".complete").exists()


def test_a_job_that_died_leaves_no_reusable_cache(tmp_path):
    folder = tmp_path / "cache"
    try:
        with shared_cache(folder) as path:
            (path / "acts.txt").write_text("half")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert not (folder / ".complete").exists()
    with shared_cache(folder) as path:
        assert not (path / "acts.txt").exists()  # wiped before rebuilding


def test_changed_setting_changes_the_cache_path(tmp_path):
    settings = {
        "model": "m",
        "hook": "blocks.1.hook_resid_post",
        "section": {"context_length": 64},
        "seed": 42,
    }
    same = cache_folder(tmp_path, "scr", dict(settings))
    assert same == cache_folder(tmp_path, "scr", settings)
    assert cache_folder(tmp_path, "scr", {**settings, "seed": 43}) != same
    assert cache_folder(tmp_path, "scr", {**settings, "section": {"context_length": 128}}) != same
    assert cache_folder(tmp_path, "tpp", settings) != same
