"""What the prefetch step fetches for a config, built when the DAG is (no torch, no network).

The step itself (steps/prefetch.py, a local rule on the login node) runs `hub.prefetch` on this
plan; evaluation jobs read what it fetched with the HuggingFace offline variables set.
"""

from __future__ import annotations

import os
from pathlib import Path


def core_tokens_needed(core: dict) -> int:
    batches = core["n_eval_reconstruction_batches"] + core["n_eval_sparsity_variance_batches"]
    return int(1.2 * batches * core["eval_batch_size_prompts"] * core["context_size"])


def is_local(config: dict, path: str) -> bool:
    """A config path that is a local folder (or the demo builds it) rather than a hub name."""
    demo = config["demo"]
    return os.path.exists(path) or (demo["build"] and Path(path).is_relative_to(demo["dir"]))


def prefetch_plan(config: dict, variants: list, out_dir: str) -> dict:
    """What the prefetch step fetches for this config; cheap, so the DAG can build it."""
    files, published = [], []
    for variant in variants:
        source = variant.source
        if variant.family == "baseline" and source.get("release"):
            published.append((source["release"], source["sae_id"]))
        elif variant.family == "baseline" and not source.get("local_dir"):
            files += [
                (source["repo_id"], source["filename"]),
                (source["repo_id"], str(Path(source["filename"]).with_name("config.json"))),
            ]
        elif variant.family in ("comparison", "reference") and source.get("release"):
            published.append((source["release"], source["sae_id"]))
    enabled = [name for name, on in config["eval_types"].items() if on]
    core = config["core_eval"]
    core_sample = None
    if "core" in enabled and config["offline_jobs"] and not is_local(config, core["dataset"]):
        core_sample = {
            "dataset": core["dataset"],
            "tokens": core_tokens_needed(core),
            "folder": f"{out_dir}/prefetch/core_dataset",
        }
    return {
        "model": None if config["model"]["local_dir"] else config["model"]["name"],
        "files": files,
        "published": published,
        "eval_sections": {name: config.get(name, {}) for name in enabled},
        "local_datasets": config["local_datasets"],
        "core_sample": core_sample,
    }


def offline_job_settings(settings: dict, plan: dict) -> dict:
    """Point an evaluation job at the prefetched core sample instead of the streamed hub corpus."""
    if settings["eval_type"] == "core" and plan["core_sample"]:
        settings = {
            **settings,
            "section_values": {
                **settings["section_values"],
                "dataset": plan["core_sample"]["folder"],
            },
        }
    return settings
