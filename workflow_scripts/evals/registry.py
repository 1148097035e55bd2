"""The one place that lists each SAE Bench eval type the workflow offers.

For every eval type: its runner and up-front checks (in the eval's own module), which config
section holds its settings, its headline metrics (for the summary and the plots), and the job
settings and resources of its jobs. The rules, the config checks, the aggregation and the plots all
read this registry; adding an eval type means adding its module, one entry here, and its test.
Importing it imports neither torch nor SAE Bench (it is read at DAG time).
"""

from __future__ import annotations

from workflow_scripts.evals import (
    absorption,
    autointerp,
    core,
    meta_structure,
    ravel,
    scr_tpp,
    sparse_probing,
    unlearning,
)
from workflow_scripts.evals.base import EvalType, Metric
from workflow_scripts.plan.config import ConfigError

AUDIT = 'Chanin 2026, "Are Sparse Autoencoder Benchmarks Reliable?", arXiv 2605.18229'
RESEED_NOISE = f"noisier under reseeding than the field assumes ({AUDIT}): replicate seeds"
FIXED_TOKENS = (
    "deterministic for a fixed SAE: SAE Bench's core reads its corpus shuffled with a fixed seed "
    "(core/main.py ~1088, shuffle_input_dataset(seed=42)), so it is not replicated"
)

REGISTRY: dict[str, EvalType] = {
    e.name: e
    for e in [
        EvalType(
            "core",
            "core_eval",
            (
                # core's metrics are measured once (seed_note below, shown in the summary)
                Metric("sparsity.l0", "L0 (active latents per token)", False),
                # the workflow's centered value (evals/reconstruction.py): SAE Bench 0.6.0's
                # explained_variance divides by the variance about zero (core/main.py ~566-625)
                Metric(
                    "workflow_reconstruction.explained_variance_centered",
                    "explained variance",
                    True,
                ),
                Metric("model_performance_preservation.ce_loss_score", "CE loss score", True),
            ),
            core.run,
            core.problems,
            seed_dependent=False,
            seed_note=FIXED_TOKENS,
            saebench_module="sae_bench.evals.core.main",
        ),
        EvalType(
            "sparse_probing",
            "sparse_probing",
            (
                Metric(
                    "sae.sae_top_1_test_accuracy", "top-1 SAE probe accuracy", True, RESEED_NOISE
                ),
            ),
            sparse_probing.run,
            shares_llm_cache=True,
            seed_note="samples its train/test rows and trains probes with random_seed "
            "(sparse_probing/main.py ~246-247, sae_bench_utils/dataset_utils.py ~96-105)",
            saebench_module="sae_bench.evals.sparse_probing.main",
        ),
        EvalType(
            "scr",
            "scr",
            (
                Metric(
                    "scr_metrics.scr_metric_threshold_20",
                    "SCR (top 20 latents)",
                    True,
                    f"fails the audit's reliability tests at its canonical settings ({AUDIT}); "
                    "shown, left out of the default ranking",
                    ranked_by_default=False,
                ),
            ),
            scr_tpp.runner(perform_scr=True),
            scr_tpp.n_values_fit("scr"),
            shares_llm_cache=True,
            seed_note="samples its datasets and trains probes with random_seed "
            "(scr_and_tpp/main.py ~690-691)",
            saebench_module="sae_bench.evals.scr_and_tpp.main",
        ),
        EvalType(
            "tpp",
            "tpp",
            (
                Metric(
                    "tpp_metrics.tpp_threshold_20_total_metric",
                    "TPP (top 20 latents)",
                    True,
                    f"fails the audit's reliability tests at its canonical settings ({AUDIT}); "
                    "shown, left out of the default ranking",
                    ranked_by_default=False,
                ),
            ),
            scr_tpp.runner(perform_scr=False),
            scr_tpp.n_values_fit("tpp"),
            shares_llm_cache=True,
            seed_note="samples its datasets and trains probes with random_seed "
            "(scr_and_tpp/main.py ~690-691)",
            saebench_module="sae_bench.evals.scr_and_tpp.main",
        ),
        EvalType(
            "absorption",
            "absorption",
            (
                Metric(
                    "mean.mean_absorption_fraction_score",
                    "absorption fraction",
                    False,
                    RESEED_NOISE,
                ),
            ),
            absorption.run,
            shares_llm_cache=True,  # its probe cache, see absorption.folders
            seed_note="shuffles the vocabulary and trains its probes with random_seed (seeded "
            "by the workflow: SAE Bench leaves them unseeded)",
            saebench_module="sae_bench.evals.absorption.main",
        ),
        EvalType(
            "sparse_probing_sae_probes",
            "sparse_probing_sae_probes",
            (
                Metric(
                    "sae.sae_top_1_test_accuracy",
                    "top-1 SAE probe accuracy (sae-probes)",
                    True,
                    f"the most reliable metric of the audit ({AUDIT})",
                ),
            ),
            sparse_probing.run_sae_probes,
            sparse_probing.sae_probes_problems,
            shares_llm_cache=True,
            seed_note="splits its datasets and trains probes with random_seed "
            "(sparse_probing_sae_probes/main.py ~136, ~202)",
            saebench_module="sae_bench.evals.sparse_probing_sae_probes.main",
        ),
        EvalType(
            "autointerp",
            "autointerp",
            (
                Metric(
                    "autointerp.autointerp_score",
                    "autointerp score",
                    True,
                    "an LLM judge scores explanations; the judge's own randomness is not seeded",
                ),
            ),
            autointerp.run,
            autointerp.problems,
            workflow_keys=autointerp.WORKFLOW_KEYS,
            seed_note="samples latents and examples with random_seed (autointerp/main.py ~524)",
            saebench_module="sae_bench.evals.autointerp.main",
        ),
        EvalType(
            "unlearning",
            "unlearning",
            (Metric("unlearning.unlearning_score", "unlearning score", True, RESEED_NOISE),),
            unlearning.run,
            unlearning.problems,
            workflow_keys=unlearning.WORKFLOW_KEYS,
            seed_note="seeds random and torch with random_seed (unlearning/main.py ~146-147)",
            saebench_module="sae_bench.evals.unlearning.main",
        ),
        EvalType(
            "meta_structure",
            "meta_structure",
            (
                Metric(
                    "meta_structure.decoder_fraction_variance_explained",
                    "decoder variance explained by a meta-SAE",
                    # lower is better in the reading of the paper this eval reproduces
                    # (Bussmann et al., ICML 2025, App. D.1: Matryoshka SAEs share less
                    # information between latents); SAE Bench's README says only that higher
                    # means more shared structure. Not one of the SAE Bench paper's 8 metrics.
                    False,
                    "lower: less of each decoder direction is built from directions shared with "
                    "others (Bussmann et al., ICML 2025, App. D.1); "
                    "a meta-SAE trained on the decoder's rows (width_ratio x d_sae latents, k "
                    "per row, train_steps steps): it moves with the meta-SAE's initialisation "
                    "and sampling (seeded by the workflow), and a wide dictionary's rows are few "
                    "samples for small SAEs; it reads only the decoder, so variants that reuse "
                    "their baseline's decoder share its value; shown, left out of the default "
                    "ranking",
                    ranked_by_default=False,
                ),
            ),
            meta_structure.run,
            seed_note="trains its meta-SAE from torch's global generator, which SAE Bench's "
            "run_eval leaves unseeded (it seeds only under __main__, meta_structure/main.py "
            ":292-296, :323): the workflow seeds it with random_seed",
            saebench_module="sae_bench.evals.meta_structure.main",
            decoder_only=True,
        ),
        EvalType(
            "ravel",
            "ravel",
            (
                Metric(
                    "ravel.disentanglement_score",
                    "RAVEL disentanglement",
                    True,
                    "mean of the cause and isolation scores of a latent mask trained per "
                    "attribute on the prompts the model answers correctly; 0.5 is what a mask "
                    "that moves nothing (or everything) scores; measured on few prompts for "
                    "small models: replicate seeds",
                ),
            ),
            ravel.run,
            ravel.problems,
            seed_note="samples and shuffles prompt pairs and trains its mask with random_seed "
            "(ravel/main.py ~404-406, intervention.py ~35-70)",
            saebench_module="sae_bench.evals.ravel.main",
        ),
    ]
}


# SAE Bench evals the workflow does not run, and why (each has a key under `eval_types` so that
# turning it on names these reasons instead of "unknown key").
NOT_OFFERED: dict[str, str] = {
    "mdl": (
        "SAE Bench 0.6.0's evals/mdl/main.py cannot run as a library: it imports loguru (:16), "
        "which sae-bench does not depend on; calculate_dl (~116) and "
        "check_quantised_features_reach_mse_threshold (~249) read a module-global `config` that "
        "only its `__main__` block defines (~611-631); it calls .cuda() unconditionally (~174), "
        "so it cannot run on CPU; and it writes its own JSON (~502-517), not SAE Bench's "
        "eval_result_metrics form, so no headline could be read from it"
    ),
}


def enabled_eval_types(config: dict) -> list[str]:
    return [name for name in REGISTRY if config["eval_types"].get(name)]


def not_offered_problems(config: dict) -> list[str]:
    """An enabled `eval_types` key of an SAE Bench eval the workflow refuses, with the reasons."""
    return [
        f"config key 'eval_types.{name}': eval type '{name}' is not offered: {reason}"
        for name, reason in NOT_OFFERED.items()
        if config["eval_types"].get(name)
    ]


def check_requirements(config: dict, widths: dict | None = None) -> None:
    """Refuse, before any job starts, an enabled eval whose requirements are not met.

    `widths` maps variant ids to the SAE widths known when the DAG is built (SAE folders already
    written, the demo's manifest); the evaluation job checks the rest before it starts.
    Raises ConfigError naming the config key.
    """
    problems = (
        not_offered_problems(config)
        + resource_problems(config)
        + [
            p
            for name in enabled_eval_types(config)
            for p in REGISTRY[name].problems(config, widths or {})
        ]
    )
    if problems:
        raise ConfigError("; ".join(problems))


def replicate_seeds(config: dict) -> list[int]:
    """The seeds every seed-dependent eval type runs with: `replicates.seeds`, or the one
    `random_seed`."""
    return list((config.get("replicates") or {}).get("seeds") or [config["random_seed"]])


def replicate_problems(config: dict) -> list[str]:
    """The main seed's results keep the plain paths, so `random_seed` must be one of the seeds."""
    seeds = replicate_seeds(config)
    if config["random_seed"] in seeds:
        return []
    return [
        f"config key 'replicates.seeds': {seeds} must include random_seed "
        f"({config['random_seed']}), whose results keep the paths "
        "results/evals/<eval_type>/<variant>.json"
    ]


def job_settings(config: dict, eval_type: str, seed: int | None = None) -> dict:
    """The part of the config one evaluation job depends on (Snakemake reruns it when this
    changes); `seed` replaces `random_seed` for a replicate."""
    entry = REGISTRY[eval_type]
    return {
        "eval_type": eval_type,
        "section": entry.section,
        "section_values": dict(config.get(entry.section, {})),
        "model": dict(config["model"]),
        "random_seed": config["random_seed"] if seed is None else seed,
        "local_datasets": dict(config["local_datasets"]),
        "offline": config["offline_jobs"],
        "save_activations": config["activation_caching"]["save_activations"],
    }


# what a retry may ask for at most: config key resources.<this>, per resource it caps
RETRY_CAPS = {"mem_mb": "max_mem_mb", "runtime": "max_runtime"}


def job_resources(config: dict, eval_type: str, attempt: int = 1) -> dict:
    """Memory (MB), runtime (minutes) and CPUs of one evaluation job of `eval_type` at its
    `attempt` (1 = first): memory and runtime scale with the attempt, so a retry after an
    out-of-memory kill or a timeout gets 2x, then 3x, but never more than the caps
    `resources.max_mem_mb` / `resources.max_runtime`: a request above a partition's MaxTime or
    a node's memory would pend forever or be rejected (plugin 2.8.0 counts even a transient
    sbatch failure as a failed attempt)."""
    resources = config["resources"]
    merged = dict(resources["default"])
    merged.update(resources.get(eval_type, {}))
    for name, cap in RETRY_CAPS.items():
        merged[name] = min(merged[name] * attempt, max(resources[cap], merged[name]))
    return merged


def resource_problems(config: dict) -> list[str]:
    """A first attempt that already asks for more than its cap (the cap would never apply)."""
    problems = []
    for eval_type in enabled_eval_types(config):
        first = dict(config["resources"]["default"])
        first.update(config["resources"].get(eval_type, {}))
        for name, cap in RETRY_CAPS.items():
            if first[name] > config["resources"][cap]:
                problems.append(
                    f"config key 'resources.{cap}': {config['resources'][cap]} is below "
                    f"{eval_type}'s {name} ({first[name]}); raise it (sinfo -o '%P %l %m' shows "
                    f"each partition's MaxTime and node memory) or lower resources.{eval_type}"
                )
    return problems
