"""SAE Bench's spurious correlation removal (SCR) and targeted probe perturbation (TPP):
`sae_bench.evals.scr_and_tpp`, one entry point for both (`perform_scr`)."""

from __future__ import annotations

from collections.abc import Callable

from workflow_scripts.evals.base import EvalJob, saebench_config
from workflow_scripts.evals.sparse_probing import llm_cache_run_kwargs

DEFAULT_N_VALUES = [2, 5, 10, 20, 50, 100, 500]  # ScrAndTppEvalConfig.n_values default


def runner(perform_scr: bool) -> Callable[[EvalJob], None]:
    def run(job: EvalJob) -> None:
        from sae_bench.evals.scr_and_tpp.eval_config import ScrAndTppEvalConfig
        from sae_bench.evals.scr_and_tpp.main import run_eval

        config = saebench_config(ScrAndTppEvalConfig, job, perform_scr=perform_scr)
        if max(config.n_values) > job.d_sae:  # widths unknown when the DAG was built
            raise ValueError(
                f"config key '{job.settings['section']}.n_values': {max(config.n_values)} "
                f"exceeds the width {job.d_sae} of SAE '{job.sae_name}'"
            )
        run_eval(config, job.selected_saes, **llm_cache_run_kwargs(job))

    return run


def n_values_fit(section: str) -> Callable[[dict, dict], list[str]]:
    """SCR/TPP ablate the top-N latents for each N in n_values: N may not exceed the SAE width."""

    def problems(config: dict, widths: dict) -> list[str]:
        n_values = config.get(section, {}).get("n_values", DEFAULT_N_VALUES)
        return [
            f"config key '{section}.n_values': {max(n_values)} exceeds the width {width} of SAE "
            f"'{variant}' (SAE Bench's default n_values end at 500; set n_values to values "
            f"<= {width})"
            for variant, width in widths.items()
            if max(n_values) > width
        ][:1]

    return problems
