"""SAE Bench's core eval (L0, reconstruction, CE loss recovery): `sae_bench.evals.core.main`.

Core has no `run_eval`; it is run through `multiple_evals` with the `core_eval` section's values.
"""

from __future__ import annotations

from workflow_scripts.evals.base import EvalJob


def run(job: EvalJob) -> None:
    from sae_bench.evals.core.main import multiple_evals

    core = job.settings["section_values"]
    model = job.settings["model"]
    multiple_evals(
        selected_saes=[(job.sae_name, job.sae)],
        n_eval_reconstruction_batches=core["n_eval_reconstruction_batches"],
        n_eval_sparsity_variance_batches=core["n_eval_sparsity_variance_batches"],
        eval_batch_size_prompts=core["eval_batch_size_prompts"],
        compute_featurewise_density_statistics=core["compute_featurewise_density_statistics"],
        compute_featurewise_weight_based_metrics=core["compute_featurewise_weight_based_metrics"],
        exclude_special_tokens_from_reconstruction=core[
            "exclude_special_tokens_from_reconstruction"
        ],
        dataset=core["dataset"],
        context_size=core["context_size"],
        output_folder=str(job.work_dir),
        dtype=model["torch_dtype"],
        device=model["device"],
        force_rerun=True,
    )


def problems(config: dict, widths: dict) -> list[str]:
    """SAE Bench 0.6.0's core eval builds MiscMetrics(**{}) when both featurewise flags are off,
    which fails validation (core/main.py ~897) inside its catch-all (~1139): no JSON, exit 0."""
    core = config["core_eval"]
    if (
        core["compute_featurewise_density_statistics"]
        or core["compute_featurewise_weight_based_metrics"]
    ):
        return []
    return [
        "config key 'core_eval.compute_featurewise_density_statistics': SAE Bench 0.6.0's core "
        "eval writes no result when it and compute_featurewise_weight_based_metrics are both "
        "false; set at least one to true"
    ]
