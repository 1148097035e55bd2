"""The one place that lists each SAE Bench eval type the workflow offers.

For every eval type: its runner and up-front checks (in the eval's own module), which config
section holds its settings, its headline metrics (for the summary and the plots), and the job
settings and resources of its jobs. The rules, the config checks, the aggregation and the plots all
read this registry; adding an eval type means adding its module, one entry here, and its test.
Importing it imports neither torch nor SAE Bench (it is read at DAG time).
"""

from __future__ import annotations

from workflow_scripts.evals import absorption, autointerp, core, scr_tpp, sparse_probing, unlearning
from workflow_scripts.evals.base import EvalType, Metric

REGISTRY: dict[str, EvalType] = {
    e.name: e
    for e in [
        EvalType(
            "core",
            "core_eval",
            (
                Metric("sparsity.l0", "L0 (active latents per token)", False),
                Metric("reconstruction_quality.explained_variance", "explained variance", True),
                Metric("model_performance_preservation.ce_loss_score", "CE loss score", True),
            ),
            core.run,
            core.problems,
        ),
        EvalType(
            "sparse_probing",
            "sparse_probing",
            (Metric("sae.sae_top_1_test_accuracy", "top-1 SAE probe accuracy", True),),
            sparse_probing.run,
            shares_llm_cache=True,
        ),
        EvalType(
            "scr",
            "scr",
            (Metric("scr_metrics.scr_metric_threshold_20", "SCR (top 20 latents)", True),),
            scr_tpp.runner(perform_scr=True),
            scr_tpp.n_values_fit("scr"),
            shares_llm_cache=True,
        ),
        EvalType(
            "tpp",
            "tpp",
            (Metric("tpp_metrics.tpp_threshold_20_total_metric", "TPP (top 20 latents)", True),),
            scr_tpp.runner(perform_scr=False),
            scr_tpp.n_values_fit("tpp"),
            shares_llm_cache=True,
        ),
        EvalType(
            "absorption",
            "absorption",
            (Metric("mean.mean_absorption_fraction_score", "absorption fraction", False),),
            absorption.run,
            shares_llm_cache=True,  # its probe cache, see absorption.folders
        ),
        EvalType(
            "sparse_probing_sae_probes",
            "sparse_probing_sae_probes",
            (Metric("sae.sae_top_1_test_accuracy", "top-1 SAE probe accuracy (sae-probes)", True),),
            sparse_probing.run_sae_probes,
            sparse_probing.sae_probes_problems,
            shares_llm_cache=True,
        ),
        EvalType(
            "autointerp",
            "autointerp",
            (Metric("autointerp.autointerp_score", "autointerp score", True),),
            autointerp.run,
            autointerp.problems,
            workflow_keys=autointerp.WORKFLOW_KEYS,
        ),
        EvalType(
            "unlearning",
            "unlearning",
            (Metric("unlearning.unlearning_score", "unlearning score", True),),
            unlearning.run,
            unlearning.problems,
            workflow_keys=unlearning.WORKFLOW_KEYS,
        ),
    ]
}


def enabled_eval_types(config: dict) -> list[str]:
    return [name for name in REGISTRY if config["eval_types"].get(name)]


def check_requirements(config: dict, widths: dict | None = None) -> None:
    """Refuse, before any job starts, an enabled eval whose requirements are not met.

    `widths` maps variant ids to the SAE widths known when the DAG is built (SAE folders already
    written, the demo's manifest); the evaluation job checks the rest before it starts.
    Raises ConfigError naming the config key.
    """
    from workflow_scripts.settings import ConfigError

    problems = [
        p
        for name in enabled_eval_types(config)
        for p in REGISTRY[name].problems(config, widths or {})
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def job_settings(config: dict, eval_type: str) -> dict:
    """The part of the config one evaluation job depends on (Snakemake reruns it when this
    changes)."""
    entry = REGISTRY[eval_type]
    return {
        "eval_type": eval_type,
        "section": entry.section,
        "section_values": dict(config.get(entry.section, {})),
        "model": dict(config["model"]),
        "random_seed": config["random_seed"],
        "local_datasets": dict(config["local_datasets"]),
        "offline": config["offline_jobs"],
        "save_activations": config["activation_caching"]["save_activations"],
    }


def job_resources(config: dict, eval_type: str) -> dict:
    """Memory (MB), runtime (minutes) and CPUs of one evaluation job of `eval_type`."""
    merged = dict(config["resources"]["default"])
    merged.update(config["resources"].get(eval_type, {}))
    return merged
