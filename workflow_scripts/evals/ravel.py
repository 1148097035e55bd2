"""SAE Bench's RAVEL eval (`sae_bench.evals.ravel`): how well an SAE's latents keep one attribute
of an entity apart from the others (Huang et al. 2024, "RAVEL"; SAE Bench's disentanglement
score, the mean of its cause and isolation scores).

For each entity type (city, Nobel prize winner) it keeps the prompts the model answers correctly
("<city> is a city in the country of" -> "France"), then trains a binary mask over the SAE's
latents (MDBM) that moves one attribute from a source prompt into a base prompt at the entity's
last token: the cause score is how often the base prompt then names the source's value, the
isolation score how often the other attributes stay the base's.

What the workflow adds around SAE Bench's `run_eval`:

- the model: RAVEL loads a HuggingFace transformers model by `LLM_NAME_MAP` (ravel/main.py:48-51:
  gemma-2-2b and pythia-160m-deduped) whose decoder layers its hooks know (Gemma2ForCausalLM,
  GPTNeoXForCausalLM, sae_bench_utils/activation_collection.py:37-46). Any other hub model is
  refused when the DAG is built (`problems`); a local model folder (`model.local_dir`, e.g. the
  demo's GPT-NeoX) is added to the map by `patches.ravel_model_names`, and transformers 5's layer
  outputs are handed to RAVEL's hooks in the tuple form they index (`patches.ravel_layer_outputs`).
- the data: RAVEL's filtered datasets (the prompts the model knows, found by generating
  completions for every template x entity: SAE Bench's estimate is 45 minutes on an RTX 3090 for
  Gemma-2-2B) go to a shared folder keyed by everything that changes them (artifact_cache.py),
  built under its lock by the first job and read by the others; its prompts files
  (`adamkarvonen/ravel_prompts`) are copied in from the prefetched hub snapshot or a local
  stand-in (`local_datasets`), so RAVEL never downloads them itself (instance.py ~234-242).
  A job that finds the folder being built waits for it.
- its failures: a model that knows too few facts leaves a filtered dataset without prompts (SAE
  Bench then stops with a bare ValueError from max() or zip) or a validation split smaller than
  one batch (`np.mean([])` returns NaN, intervention.py ~139-141, and SAE Bench writes it as the
  score). Both stop the job with `RavelDataError`, saying what the model knew.
- `run_eval` overwrites `config.model_name` (ravel/main.py:468): each call gets its own config.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from workflow_scripts.evals import artifact_cache
from workflow_scripts.evals.base import EvalJob, EvalRequirementError, saebench_config

PROMPTS_DATASET = "adamkarvonen/ravel_prompts"  # also hub.SNAPSHOT_DATASETS["ravel"]
# ravel/main.py:48-51 and sae_bench_utils/activation_collection.py:37-46
SUPPORTED_MODELS = ("gemma-2-2b", "pythia-160m-deduped")
SUPPORTED_ARCHITECTURES = ("Gemma2ForCausalLM", "GPTNeoXForCausalLM")
# RAVEL's settings that change its filtered datasets (besides the model and the prompts files)
DATASET_KEYS = (
    "entity_attribute_selection",
    "top_n_entities",
    "full_dataset_downsample",
    "n_generated_tokens",
    "llm_batch_size",
)


class RavelDataError(EvalRequirementError):
    pass


def problems(config: dict, widths: dict) -> list[str]:
    """RAVEL's model requirement, checked when the DAG is built."""
    model = config["model"]
    local = model.get("local_dir")
    if not local:
        if model["name"] in SUPPORTED_MODELS:
            return []
        return [
            f"config key 'model.name': eval type 'ravel' runs only on the models SAE Bench's "
            f"RAVEL knows ({' and '.join(SUPPORTED_MODELS)}: its LLM_NAME_MAP, "
            f"ravel/main.py:48-51, and its layer hooks, activation_collection.py:37-46), not "
            f"{model['name']!r}; turn eval_types.ravel off for this model"
        ]
    config_json = Path(local) / "config.json"
    if not config_json.is_file():
        return []  # built by the workflow (the demo): the job checks it
    architectures = json.loads(config_json.read_text()).get("architectures") or []
    if not set(architectures) & set(SUPPORTED_ARCHITECTURES):
        return [
            f"config key 'model.local_dir': eval type 'ravel' needs a HuggingFace model whose "
            f"layers SAE Bench's RAVEL hooks ({', '.join(SUPPORTED_ARCHITECTURES)}, "
            f"activation_collection.py:37-46); {config_json} names {architectures or 'none'}"
        ]
    return []


def dataset_settings(job: EvalJob, prompts_digest: str | None) -> dict:
    """What RAVEL's filtered datasets depend on: the model, its dtype, the prompts files and
    RAVEL's dataset settings (the seed only where it samples: full_dataset_downsample)."""
    model = job.settings["model"]
    section = job.settings["section_values"]
    config = saebench_config(_config_class(), job)
    return {
        "model": model["name"],
        "local_model_files": artifact_cache.files_digest(model.get("local_dir")),
        "dtype": config.llm_dtype,
        "prompts": prompts_digest,
        **{key: getattr(config, key) for key in DATASET_KEYS},
        "seed": job.settings["random_seed"] if section.get("full_dataset_downsample") else None,
    }


def _config_class():
    from sae_bench.evals.ravel.eval_config import RAVELEvalConfig

    return RAVELEvalConfig


def prompts_folder(job: EvalJob) -> Path:
    """The folder with RAVEL's prompts files: a local stand-in, or the prefetched hub snapshot."""
    local = job.settings["local_datasets"].get(PROMPTS_DATASET)
    if local:
        return Path(local).resolve()
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            PROMPTS_DATASET,
            repo_type="dataset",
            allow_patterns="*.json",
            local_files_only=bool(job.settings.get("offline")),
        )
    )


def model_source(job: EvalJob) -> dict[str, str]:
    """LLM_NAME_MAP entries for a local model: its folder, relative to the working directory.

    Relative, because run_eval joins the mapped name under its artifacts path (ravel/main.py
    ~516-521, `os.makedirs` at ~416): an absolute one would make that folder inside the model's."""
    local = job.settings["model"].get("local_dir")
    if not local:
        return {}
    return {job.settings["model"]["name"]: os.path.relpath(Path(local).resolve())}


def run(job: EvalJob) -> None:
    import sae_bench.evals.ravel.main as ravel_main

    # lazy, as in the other runners: patches imports SAE Bench's modules when applied, and this
    # module is read at DAG time through the registry
    from workflow_scripts.evals import patches

    prompts = prompts_folder(job)
    root = job.shared_artifacts_root or job.work_dir / "artifacts"
    folder = artifact_cache.cache_folder(
        root, "ravel", dataset_settings(job, artifact_cache.files_digest(str(prompts)))
    )
    with (
        artifact_cache.shared_cache(folder) as data_dir,
        patches.ravel_model_names(model_source(job)),
        patches.ravel_layer_outputs(),
    ):
        base = data_dir / "base"  # where RAVEL looks for its prompts files (instance.py ~229)
        base.mkdir(exist_ok=True)
        for path in sorted(prompts.glob("*.json")):
            shutil.copy(path, base / path.name)
        config = saebench_config(_config_class(), job, artifact_dir=str(data_dir))
        try:
            ravel_main.run_eval(
                config,
                job.selected_saes,
                device=job.device,
                output_path=str(job.work_dir),
                force_rerun=True,
                artifacts_path=str(job.work_dir / "artifacts"),
            )
        except ValueError as error:
            raise RavelDataError(
                f"SAE Bench's RAVEL stopped ({type(error).__name__}: {error}); "
                + knowledge_report(data_dir, config.entity_attribute_selection)
            ) from error
    check_scores(job.work_dir, data_dir, config)


def knowledge_report(data_dir: Path, selection: dict[str, list[str]]) -> str:
    """How many prompts per entity type and attribute the model answered correctly (RAVEL's
    filtered datasets in `data_dir`), and what that means."""
    counts = []
    for entity_type, attributes in selection.items():
        files = sorted(data_dir.glob(f"{entity_type}_*_filtered_dataset.json"))
        prompts = json.loads(files[0].read_text())["prompts"] if files else []
        for attribute in attributes:
            n = sum(p["attribute_type"] == attribute for p in prompts)
            counts.append(f"{entity_type}/{attribute}: {n}")
    return (
        "prompts the model answered correctly, which RAVEL keeps: "
        + ", ".join(counts)
        + ". The model does not know enough of the entities' attributes for RAVEL (it needs, "
        "per attribute, prompts of at least two values and a validation split of at least one "
        "batch, ravel.llm_batch_size): use a larger model, or fewer attributes or a smaller "
        "ravel.llm_batch_size"
    )


def check_scores(work_dir: Path, data_dir: Path, config) -> None:
    """Stop on a NaN score instead of publishing it (a validation split smaller than one batch)."""
    for path in work_dir.rglob("*_eval_results.json"):
        result = json.loads(path.read_text())
        scores = result["eval_result_metrics"]["ravel"]
        bad = sorted(k for k, v in scores.items() if v is None or math.isnan(float(v)))
        if bad:
            path.unlink()  # never published
            raise RavelDataError(
                f"SAE Bench's RAVEL returned NaN for {', '.join(bad)}: an attribute's "
                f"validation split held fewer prompt pairs than one batch "
                f"(llm_batch_size {config.llm_batch_size}), so no pair was scored "
                "(intervention.py ~139-141); "
                + knowledge_report(data_dir, config.entity_attribute_selection)
            )
