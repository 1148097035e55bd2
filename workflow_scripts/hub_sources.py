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

import argparse
import json
import os
import sys
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


def core_tokens_needed(core: dict) -> int:
    batches = core["n_eval_reconstruction_batches"] + core["n_eval_sparsity_variance_batches"]
    return int(1.2 * batches * core["eval_batch_size_prompts"] * core["context_size"])


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


def prefetch(plan: dict, manifest: Path) -> dict:
    """Fetch everything in `plan` (see rules/prefetch.smk) and record what was fetched."""
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
        from workflow_scripts import published_saes

        # SAE Lens's loader for the release downloads exactly the files it reads (and records
        # which optional ones the hub lacks), so the offline jobs find them all in the cache
        print(f"[prefetch] SAE Lens release {release}, SAE {sae_id}", flush=True)
        published_saes.load(release, sae_id, device="cpu")
        record.setdefault("published", []).append({"release": release, "sae_id": sae_id})
    for name in eval_datasets(plan):
        print(f"[prefetch] dataset {name}", flush=True)
        load_dataset(name)  # fills the datasets cache that offline jobs read
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
    if missing:
        raise NotCachedError(
            f"not in the HuggingFace cache at {os.environ.get('HF_HOME', '~/.cache/huggingface')}: "
            f"{', '.join(missing)}; {PREFETCH_HINT}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="JSON built by the prefetch rule")
    parser.add_argument("--manifest", required=True, type=Path)
    args = parser.parse_args(argv)
    prefetch(json.loads(args.plan), args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())


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
