"""SAE Bench's core eval (L0, reconstruction, CE loss recovery): `sae_bench.evals.core.main`.

Core has no `run_eval`; it is run through `multiple_evals` with the `core_eval` section's values.
While it runs, `patches.record_core_reconstruction` feeds its sparsity/variance pass to
`reconstruction.ReconstructionStats`: the centered explained variance and the |code| > 0 density
that the workflow records beside SAE Bench's JSON; and `patches.record_core_ce_loss` feeds its
downstream reconstruction pass to `reconstruction.CELossBatches`. Both passes' per-batch numbers
go into the record's `core_batches` (`BATCHES_KEY`), for results/core_noise.py's bootstrap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from workflow_scripts.evals import patches
from workflow_scripts.evals.base import EvalJob
from workflow_scripts.evals.reconstruction import CELossBatches, ReconstructionStats

# the key of `run`'s result that the evaluation step writes as a top-level key of its record
BATCHES_KEY = "core_batches"


def run(job: EvalJob) -> dict | None:
    """Run SAE Bench's core eval; return the workflow's reconstruction metrics
    (`{group: {name: value}}`) and, under `BATCHES_KEY`, the per-batch record
    (`{"tokens", "sse", "sst": [...], "ce": {...}}`, see `batches`), or None when core's
    sparsity/variance pass did not run."""
    import sae_bench.evals.core.main as core_main

    core = job.settings["section_values"]
    model = job.settings["model"]
    with recording(core_main) as (stats, ce):
        _multiple_evals(core_main, job, core, model)
    if not stats.tokens:
        return None
    return {**stats.metrics(), BATCHES_KEY: batches(stats, ce)}


@contextlib.contextmanager
def recording(core_main) -> Iterator[tuple[ReconstructionStats, CELossBatches]]:
    """Both recorders, fed by SAE Bench's two passes within the block."""
    stats, ce = ReconstructionStats(), CELossBatches()
    with patches.record_core_reconstruction(core_main, stats):
        with patches.record_core_ce_loss(core_main, ce):
            yield stats, ce


def batches(stats: ReconstructionStats, ce: CELossBatches) -> dict:
    """`{"tokens", "sse", "sst": [per batch of the sparsity/variance pass], "ce": {"tokens",
    "without_sae", "with_sae", "with_ablation": [per batch of the reconstruction pass]}}`."""
    return {**stats.batch_record(), "ce": ce.record()}


def _multiple_evals(core_main, job: EvalJob, core: dict, model: dict) -> None:
    core_main.multiple_evals(
        selected_saes=job.selected_saes,
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
