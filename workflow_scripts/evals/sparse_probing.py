"""SAE Bench's probing evals: `sparse_probing` (its own datasets through the hub) and
`sparse_probing_sae_probes` (the sae-probes package's k-sparse probing on 113 shipped datasets)."""

from __future__ import annotations

from pathlib import Path

from workflow_scripts.evals.base import EvalJob, saebench_config


def llm_cache_run_kwargs(job: EvalJob) -> dict:
    """run_eval arguments shared by sparse_probing and scr/tpp: a fresh result in the job's work
    folder, LLM activations read from / written to the shared cache when the job has one."""
    return dict(
        device=job.device,
        output_path=str(job.work_dir),
        force_rerun=True,
        clean_up_activations=False,
        save_activations=job.artifacts_dir is not None,
        artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"),
    )


def run(job: EvalJob) -> None:
    from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig
    from sae_bench.evals.sparse_probing.main import run_eval

    run_eval(
        saebench_config(SparseProbingEvalConfig, job),
        job.selected_saes,
        **llm_cache_run_kwargs(job),
    )


def run_sae_probes(job: EvalJob) -> None:
    from sae_bench.evals.sparse_probing_sae_probes.eval_config import (
        SparseProbingSaeProbesEvalConfig,
    )
    from sae_bench.evals.sparse_probing_sae_probes.main import run_eval

    # Its datasets ship inside the sae-probes wheel (sae_probes/data/cleaned_data): no hub access.
    # SAE Bench's defaults put its results and model activations under ./artifacts relative to the
    # working directory (eval_config.py:52 and :58): the model activations go to the job's shared
    # artifacts folder (keyed and locked by evaluate.py), the per-SAE probe results to the private
    # work folder.
    config = saebench_config(
        SparseProbingSaeProbesEvalConfig,
        job,
        results_path=str(job.work_dir.resolve() / "sae_probes_results"),
        model_cache_path=str(job.artifacts / "model_activations"),
    )
    run_eval(
        config,
        job.selected_saes,
        device=job.device,
        output_path=str(job.work_dir.resolve()),
        force_rerun=True,
    )


def sae_probes_datasets() -> list[str]:
    """The binary datasets shipped inside the sae-probes wheel, read from its master table the way
    sae_probes.utils_data.get_numbered_binary_tags does (without importing torch)."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("sae_probes")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    table = pd.read_csv(data / "probing_datasets_MASTER.csv.zst", compression="zstd")
    names = table[table["Data type"] == "Binary Classification"]["Dataset save name"]
    return [name.split("/")[-1].split(".")[0] for name in names]


def sae_probes_problems(config: dict, widths: dict) -> list[str]:
    listed = config.get("sparse_probing_sae_probes", {}).get("dataset_names")
    if listed is None:
        return []
    known = sae_probes_datasets()
    if not known:
        return [
            "eval type 'sparse_probing_sae_probes' needs the sae-probes package "
            "(pip install sae-probes)"
        ]
    unknown = [name for name in listed if name not in known]
    if unknown:
        return [
            f"config key 'sparse_probing_sae_probes.dataset_names': "
            f"{', '.join(map(repr, unknown))} is not one of the {len(known)} datasets shipped "
            f"with sae-probes (e.g. {', '.join(known[:3])}; the file names in "
            "sae_probes/data/cleaned_data without .csv.zst)"
        ]
    return []
