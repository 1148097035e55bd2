"""Run one SAE Bench eval on one SAE folder and publish SAE Bench's result JSON unchanged.

Usage (what the `evaluate` rule runs):
    python -m workflow_scripts.steps.evaluate --eval-type core --sae-dir results/saes/baseline \
        --variant baseline --settings '<json>' --output results/evals/core/baseline.json

SAE Bench writes its JSON into a private work folder; we move it to `--output` only when it exists
(core catches every exception per SAE and returns normally, so "no file" is how its failures show)
and remove the work folder, so a failed or killed job never leaves a result behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from workflow_scripts import hub
from workflow_scripts.evals import artifact_cache, patches
from workflow_scripts.evals.base import EvalJob, EvalRequirementError, EvalType
from workflow_scripts.evals.registry import REGISTRY
from workflow_scripts.hub import NotCachedError
from workflow_scripts.steps import exit_without_teardown

OFFLINE_VARIABLES = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# keys a runner's result may hold beside its metric groups, written as top-level keys of the record
RECORD_KEYS = ("core_batches",)  # evals/core.py BATCHES_KEY


class NoResultError(RuntimeError):
    pass


def _sources(settings: dict):
    """Make SAE Bench read the local model/datasets named in the config instead of the hub."""
    stack = contextlib.ExitStack()
    model = settings["model"]
    if model.get("local_dir"):
        stack.enter_context(patches.local_models({model["name"]: model["local_dir"]}))
    if settings["local_datasets"]:
        stack.enter_context(patches.local_datasets(settings["local_datasets"]))
    return stack


def _cache_settings(settings: dict, hook_name: str) -> dict:
    """Everything that changes cached LLM activations: model, hook, eval section, seed."""
    model = settings["model"]
    return {
        "model": model["name"],
        "local_model": model.get("local_dir"),
        "local_model_files": artifact_cache.files_digest(model.get("local_dir")),
        "local_dataset_files": {
            name: artifact_cache.files_digest(folder)
            for name, folder in sorted(settings["local_datasets"].items())
        },
        "dtype": model["torch_dtype"],
        "hook": hook_name,
        "section": settings["section_values"],
        "seed": settings["random_seed"],
        "datasets": settings["local_datasets"],
    }


def prepare_process(eval_type: str, settings: dict) -> EvalType:
    """What a process does before it runs SAE Bench's `eval_type`: the offline variables (before
    torch, transformers and huggingface_hub are imported: they read them once), SAE Bench's
    selection utilities without their import-time release table and sae-probes without its
    import-time read of every dataset (patches), and the eval's SAE Bench module, imported here
    so that a record's eval_s is SAE Bench's run alone. Returns the registry entry."""
    if settings.get("offline"):
        os.environ.update(OFFLINE_VARIABLES)
    patches.selection_utils_without_release_table()  # before any SAE Bench eval module
    patches.sae_probes_sizes_on_demand()  # before sae_probes (sparse_probing_sae_probes)
    entry = REGISTRY[eval_type]
    if entry.saebench_module:
        importlib.import_module(entry.saebench_module)
    return entry


@contextlib.contextmanager
def eval_environment(
    entry: EvalType, settings: dict, hook_name: str, artifacts_root: Path, cache: dict | None = None
) -> Iterator[Path | None]:
    """Everything one SAE Bench call runs inside; yields the shared activation cache folder (or
    None): the local model and datasets, the cache folder for this model, hook, section and seed
    (filled under its lock; `cache["built"]` says whether this call filled it), the seed for the
    global generators (SAE Bench seeds what it draws with random_seed; a library it calls that
    draws from python's, numpy's or torch's global generator gets the seed too), and weights-only
    torch.load (SAE Lens's loaders call it bare; torch's default holds)."""
    from transformers import set_seed

    with contextlib.ExitStack() as stack:
        stack.enter_context(_sources(settings))
        artifacts = None
        if entry.shares_llm_cache and settings["save_activations"]:
            folder = artifact_cache.cache_folder(
                artifacts_root, entry.name, _cache_settings(settings, hook_name)
            )
            artifacts = stack.enter_context(artifact_cache.shared_cache(folder, cache))
        set_seed(settings["random_seed"])
        stack.enter_context(patches.weights_only_loads(force=False))
        yield artifacts


def evaluate(
    eval_type: str,
    sae_dir: Path,
    variant: str,
    settings: dict,
    output: Path,
    artifacts_root: Path,
    workflow_output: Path | None = None,
) -> Path:
    """Run one pair; publish SAE Bench's JSON at `output` and, when asked, the workflow's own
    record of the run at `workflow_output` (see `write_workflow_record`)."""
    started = time.time()
    entry = prepare_process(eval_type, settings)
    import torch

    # lazy, after prepare_process: saes/ imports huggingface_hub, SAE Lens and SAE Bench
    from workflow_scripts.saes import loading, sae_folder

    if settings.get("offline"):
        # SAE Bench retries a missing model for minutes; find out in seconds instead.
        plan = {
            "eval_sections": {eval_type: settings["section_values"]},
            "local_datasets": settings["local_datasets"],
        }
        hub.check_cached(
            {
                **settings,
                "hub_datasets": hub.eval_datasets(plan),
                "hub_snapshots": hub.eval_snapshots(plan),
            }
        )
    model = settings["model"]
    described = sae_folder.read_config(sae_dir)
    sae, published = loading.load_for_eval(
        sae_dir,
        model["device"],
        getattr(torch, model["torch_dtype"]),
        bool(settings.get("offline")),
    )
    output = Path(output)
    work_dir = output.parent / f".{output.stem}.work"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    eval_s = 0.0
    saebench_started = None
    try:
        for _ in range(2):
            cache = {}
            with eval_environment(
                entry, settings, described["hook_name"], artifacts_root, cache
            ) as artifacts:
                print(
                    f"[evaluate] {eval_type} on {variant} "
                    f"({described['architecture']}, d_sae={described['d_sae']})",
                    flush=True,
                )
                job = EvalJob(
                    eval_type,
                    sae,
                    variant,
                    settings,
                    work_dir,
                    artifacts,
                    d_sae=int(described["d_sae"]),
                    published=published,
                    shared_artifacts_root=(
                        Path(artifacts_root).resolve() if settings["save_activations"] else None
                    ),
                )
                run_started = time.time()
                saebench_started = saebench_started or run_started
                own_metrics = entry.run(job)
                eval_s += time.time() - run_started
            if not cache.get("built"):
                break
            # This job filled the shared cache. SAE Bench takes another path when it fills a
            # cache than when it reads one, and draws other random numbers on it (sparse
            # probing trains the LLM probes before the SAE's only on a miss, sparse_probing/
            # main.py ~113-175; SCR/TPP alike), so a pair's numbers would depend on which job
            # came first (seen: top-1 probe accuracy 0.886 vs 0.902 for the same SAE and seed).
            # Run again on the cache, as every other job does, and publish that run.
            print(
                "[evaluate] this job filled the shared cache; running again on it so that this "
                "pair is computed like every other",
                flush=True,
            )
            shutil.rmtree(work_dir)
            work_dir.mkdir(parents=True)
        results = sorted(work_dir.rglob("*_eval_results.json"))
        if len(results) != 1:
            raise NoResultError(
                f"SAE Bench's {eval_type} eval produced {len(results)} result files for {variant} "
                "instead of one; SAE Bench logs some failures and returns normally, so the cause "
                "is in the log above"
            )
        json.loads(results[0].read_text())  # a truncated file must not be published
        output.parent.mkdir(parents=True, exist_ok=True)
        if workflow_output is not None:
            own_metrics = dict(own_metrics or {})
            # lists, kept out of eval_result_metrics (the aggregation reads its scalars)
            extra = {key: own_metrics.pop(key) for key in RECORD_KEYS if key in own_metrics}
            record = {
                "eval_type": eval_type,
                "variant": variant,
                "random_seed": settings["random_seed"],
                "saebench_result": os.path.relpath(output, Path(workflow_output).parent),
                "elapsed_s": round(time.time() - started, 1),
                # what the job paid before SAE Bench's eval began (interpreter start, imports,
                # offline checks, loading the SAE) and the time inside SAE Bench's eval call(s)
                "startup_s": round(saebench_started - process_started(started), 2),
                "eval_s": round(eval_s, 2),
                "eval_result_metrics": own_metrics,
                **extra,
            }
            write_workflow_record(Path(workflow_output), record)
        os.replace(results[0], output)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return output


def process_started(fallback: float) -> float:
    """When this process started (epoch seconds; psutil reads /proc), else `fallback`."""
    try:
        import psutil

        return psutil.Process().create_time()
    except (ImportError, OSError):
        return fallback


def write_workflow_record(path: Path, record: dict) -> None:
    """The workflow's own file beside SAE Bench's JSON (written atomically): which seed the pair
    ran with, how long it took, and `eval_result_metrics` the workflow computed itself (core: the
    centered explained variance and |code| > 0 density of evals/reconstruction.py), in SAE Bench's
    `{group: {name: value}}` layout so the aggregation reads both files the same way.

    Core's record also has `core_batches` (evals/core.py `batches`), per batch of SAE Bench's two
    passes, for results/core_noise.py: `tokens`, `sse`, `sst` (sparsity/variance pass) and
    `ce`: {`tokens`, `without_sae`, `with_sae`, `with_ablation`} (reconstruction pass), floats in
    full repr (they round-trip exactly). As written here (indent 2, one number a line) that is
    7 numbers, ~160 bytes, per batch (both passes): ~0.32 MB at the default 2000 + 2000 batches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-type", required=True)
    parser.add_argument("--sae-dir", required=True, type=Path)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--settings", required=True, help="JSON from evals.registry.job_settings")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument(
        "--workflow-output", type=Path, help="the workflow's own record of the run (JSON)"
    )
    parser.add_argument("--artifacts-root", type=Path, default=Path("results/artifacts"))
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (the job's share; 0 keeps torch's default)",
    )
    args = parser.parse_args(argv)
    settings = json.loads(args.settings)
    if settings.get("offline"):  # before the imports below: huggingface_hub reads them once
        os.environ.update(OFFLINE_VARIABLES)
    print(
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}", flush=True
    )  # GPU granted to this job
    if args.threads:  # the job's share of the node's cores (threads: in the rule)
        import torch

        torch.set_num_threads(args.threads)
    # lazy: importing it imports torch, which must come after the offline variables are set
    from workflow_scripts.saes.dictionary_learning import CheckpointError

    try:
        evaluate(
            args.eval_type,
            args.sae_dir,
            args.variant,
            settings,
            args.output,
            args.artifacts_root,
            args.workflow_output,
        )
    except (NoResultError, NotCachedError, CheckpointError, EvalRequirementError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())  # outputs are written; skip the ~1.8 s interpreter teardown
