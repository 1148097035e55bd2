"""Fetch once on the login node everything the GPU jobs will read; check it is there offline.

Cluster compute nodes usually have no internet. The `prefetch` rule (a localrule) runs this module
where Snakemake runs: it fills the HuggingFace cache (`HF_HOME`, configurable so it can sit on
shared storage) with the language model and tokenizer, the baseline checkpoints, the files SAE
Lens reads for each published SAE (by loading it once) and the hub datasets of the enabled evals,
and writes a local sample of the core eval's text corpus, which SAE Bench otherwise streams from
the hub. Evaluation jobs then run with the HuggingFace offline variables and `check_cached` fails
them in seconds, with a hint to run the prefetch step, instead of letting SAE Bench retry the hub
for minutes.

Tokens: huggingface_hub reads HF_TOKEN or the standard token file itself; nothing here reads,
prints or records a token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PREFETCH_HINT = (
    "run the prefetch step first, on a node with network access (the login node): "
    "`snakemake --until prefetch` (with the same --configfile and HF_HOME / hf_home)"
)

# SAE Bench's default probing datasets per eval, when the config section does not name them.
DEFAULT_DATASETS = {
    "sparse_probing": ("sae_bench.evals.sparse_probing.eval_config", "SparseProbingEvalConfig"),
    "scr": ("sae_bench.evals.scr_and_tpp.eval_config", "ScrAndTppEvalConfig"),
    "tpp": ("sae_bench.evals.scr_and_tpp.eval_config", "ScrAndTppEvalConfig"),
}


# Hub datasets an eval reads as files of a snapshot (not through `load_dataset`), by eval type.
SNAPSHOT_DATASETS = {"ravel": "adamkarvonen/ravel_prompts"}  # evals/ravel.py PROMPTS_DATASET


class NotCachedError(RuntimeError):
    pass


def official_model_name(name: str) -> str:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    return get_official_model_name(name)


def eval_datasets(plan: dict) -> list[str]:
    """Hub probing datasets the enabled evals read (local stand-ins excluded)."""
    import importlib

    names = []
    for eval_type, section in plan["eval_sections"].items():
        if eval_type not in DEFAULT_DATASETS:
            continue
        listed = section.get("dataset_names")
        if listed is None:
            module, cls = DEFAULT_DATASETS[eval_type]
            listed = getattr(importlib.import_module(module), cls)().dataset_names
        names += [n for n in listed if n not in plan["local_datasets"]]
    return list(dict.fromkeys(names))


def eval_snapshots(plan: dict) -> list[str]:
    """Hub dataset snapshots the enabled evals read (local stand-ins excluded)."""
    return [
        name
        for eval_type, name in SNAPSHOT_DATASETS.items()
        if eval_type in plan["eval_sections"] and name not in plan["local_datasets"]
    ]


def sample_stream(dataset: str, tokenizer, n_tokens: int, folder: Path) -> int:
    """Write the first documents of a streamed hub dataset until they hold n_tokens tokens."""
    from datasets import load_dataset

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "train.jsonl.tmp"
    total = 0
    with open(tmp, "w") as handle:
        for row in load_dataset(dataset, split="train", streaming=True):
            text = row.get("text")
            if not text:
                continue
            handle.write(json.dumps({"text": text}) + "\n")
            total += len(tokenizer(text)["input_ids"])
            if total >= n_tokens:
                break
    os.replace(tmp, folder / "train.jsonl")
    return total


def prefetch(plan: dict, manifest: Path, load_published=None) -> dict:
    """Fetch everything in `plan` (plan/prefetch.py) and record what was fetched.

    `load_published(release, sae_id)` loads one published SAE (steps/prefetch.py passes
    saes.saelens.load): SAE Lens downloads exactly the files its loader reads. It is passed in
    so that this module imports nothing from saes/, which imports this one."""
    from datasets import load_dataset
    from huggingface_hub import hf_hub_download, snapshot_download
    from transformers import AutoTokenizer

    record = {
        "hf_home": os.environ.get("HF_HOME", "~/.cache/huggingface"),
        "files": [],
        "datasets": [],
    }
    tokenizer = None
    if plan["model"]:
        repo = official_model_name(plan["model"])
        print(f"[prefetch] model {plan['model']} -> {repo}", flush=True)
        # TransformerLens loads through transformers: config, tokenizer and weights.
        snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
        tokenizer = AutoTokenizer.from_pretrained(repo)
        record["model"] = repo
    for repo_id, filename in plan["files"]:
        print(f"[prefetch] {repo_id}/{filename}", flush=True)
        record["files"].append(
            {
                "repo_id": repo_id,
                "filename": filename,
                "path": hf_hub_download(repo_id=repo_id, filename=filename),
            }
        )
    for release, sae_id in plan.get("published", []):
        # SAE Lens's loader for the release downloads exactly the files it reads (and records
        # which optional ones the hub lacks), so the offline jobs find them all in the cache
        print(f"[prefetch] SAE Lens release {release}, SAE {sae_id}", flush=True)
        load_published(release, sae_id)
        record.setdefault("published", []).append({"release": release, "sae_id": sae_id})
    for name in eval_datasets(plan):
        print(f"[prefetch] dataset {name}", flush=True)
        load_dataset(name)  # fills the datasets cache that offline jobs read
        record["datasets"].append(name)
    for name in eval_snapshots(plan):
        print(f"[prefetch] dataset snapshot {name}", flush=True)
        snapshot_download(name, repo_type="dataset", allow_patterns="*.json")
        record["datasets"].append(name)
    core = plan.get("core_sample")
    if core:
        if tokenizer is None:
            raise ValueError(
                "a core dataset sample needs the model's tokenizer (model.local_dir is set)"
            )
        tokens = sample_stream(core["dataset"], tokenizer, core["tokens"], Path(core["folder"]))
        record["core_sample"] = {**core, "tokens_written": tokens}
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(record, indent=2))
    return record


def fetch_checkpoint(repo_id: str, filename: str) -> tuple[Path, Path]:
    """ae.pt and its sibling config.json through the HuggingFace cache.

    Raises NotCachedError naming the repo and file, with the prefetch hint, when the hub cannot
    be reached (no network, or HF_HUB_OFFLINE) and the cache lacks them, and FileNotFoundError
    naming them when the hub has no such repo or file; not huggingface_hub's bare traceback.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    paths = []
    for name in (filename, str(Path(filename).with_name("config.json"))):
        try:
            paths.append(Path(hf_hub_download(repo_id=repo_id, filename=name)))
        except LocalEntryNotFoundError as error:  # offline (or unreachable) and not cached
            raise NotCachedError(
                f"cannot fetch {repo_id}/{name}: the HuggingFace hub is not reachable from here "
                f"and the cache ({os.environ.get('HF_HOME', 'HF_HOME unset')}) lacks it "
                f"({type(error).__name__}); {PREFETCH_HINT}"
            ) from None
        except (RepositoryNotFoundError, EntryNotFoundError) as error:
            raise FileNotFoundError(
                f"{repo_id}/{name} does not exist on the HuggingFace hub (or needs a token): "
                f"{type(error).__name__}; check baseline_sae / baseline_saes"
            ) from None
    return paths[0], paths[1]


def check_cached(settings: dict) -> None:
    """In an offline job: fail in seconds, with the prefetch hint, when the cache lacks
    something."""
    model = settings["model"]
    missing = []
    if not model.get("local_dir"):
        from transformers import AutoConfig, AutoTokenizer

        repo = official_model_name(model["name"])
        try:
            AutoConfig.from_pretrained(repo)
            AutoTokenizer.from_pretrained(repo)
        except Exception as error:  # transformers raises OSError subclasses for cache misses
            missing.append(f"model {repo} ({type(error).__name__})")
    datasets = settings.get("hub_datasets", [])
    if datasets:
        from datasets import load_dataset_builder

        for name in datasets:
            try:
                load_dataset_builder(name)
            except Exception as error:
                missing.append(f"dataset {name} ({type(error).__name__})")
    for name in settings.get("hub_snapshots", []):
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(
                name, repo_type="dataset", allow_patterns="*.json", local_files_only=True
            )
        except Exception as error:  # LocalEntryNotFoundError when it was never fetched
            missing.append(f"dataset {name} ({type(error).__name__})")
    if missing:
        raise NotCachedError(
            f"not in the HuggingFace cache at {os.environ.get('HF_HOME', '~/.cache/huggingface')}: "
            f"{', '.join(missing)}; {PREFETCH_HINT}"
        )
