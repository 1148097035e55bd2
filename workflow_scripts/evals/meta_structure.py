"""SAE Bench's meta-structure eval (`sae_bench.evals.meta_structure`): a BatchTopK meta-SAE
(width `width_ratio` x d_sae, k latents per row) is trained on the rows of the SAE's decoder
`W_dec` (d_sae x d_in) and the headline is the fraction of the decoder's variance about its mean
row that the meta-SAE explains (`meta_structure.decoder_fraction_variance_explained`,
meta_structure/main.py ~94-115): how much the dictionary's directions are built from fewer,
shared ones.

No language model and no dataset: it reads the decoder alone. Two consequences the workflow acts
on: SAE Bench's `run_eval` does not seed the meta-SAE's initialisation or its row sampling
(torch's global generator; it seeds only under `__main__`, :292-296 called at :323), so the
job's seeding of the global generators (steps/evaluate.eval_environment) makes it reproducible;
and a derived variant, which reuses its baseline's decoder, has its baseline's value by
construction, so it is not evaluated again (registry: `decoder_only`).
"""

from __future__ import annotations

from workflow_scripts.evals.base import EvalJob, saebench_config


def run(job: EvalJob) -> None:
    import sae_bench.evals.meta_structure.main as meta_structure
    from sae_bench.evals.meta_structure.eval_config import MetaStructureEvalConfig

    meta_structure.run_eval(
        saebench_config(MetaStructureEvalConfig, job),
        job.selected_saes,
        device=job.device,
        output_path=str(job.work_dir),
        force_rerun=True,
    )
