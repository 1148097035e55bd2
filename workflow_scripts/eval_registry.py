"""The one place that knows each SAE Bench eval type.

For every eval type: how to run it through SAE Bench's Python API, which config section holds its
settings, its headline metrics (for the summary and the plots), and what it needs before any job
may start. The rules, the config checks, the aggregation and the plots all read this registry;
adding an eval type means adding one entry here plus its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Metric:
    key: str  # "<group>.<metric>" inside SAE Bench's eval_result_metrics
    label: str
    higher_is_better: bool


@dataclass(frozen=True)
class EvalType:
    name: str
    section: str  # config section with this eval's settings
    headline: tuple[Metric, ...]
    run: Callable[..., None]  # (job: EvalJob) -> writes one SAE Bench JSON under job.work_dir
    problems: Callable[[dict], list[str]] = lambda config: []
    shares_llm_cache: bool = False  # caches LLM activations under artifacts_dir


@dataclass
class EvalJob:
    """Everything one (variant, eval type) job needs; built by `evaluate.py`."""

    eval_type: str
    sae: object
    sae_name: str
    settings: dict  # output of job_settings()
    work_dir: Path  # private folder that SAE Bench writes its result JSON into
    artifacts_dir: Path | None  # shared LLM activation cache, or None


def _saebench_config(cls, job: EvalJob, **fixed):
    """Build an SAE Bench eval config from the config section; name the key if SAE Bench refuses it."""
    model = job.settings["model"]
    fields = dict(
        model_name=model["name"],
        llm_batch_size=model["llm_batch_size"],
        llm_dtype=model["torch_dtype"],
        random_seed=job.settings["random_seed"],
    )
    fields.update(job.settings["section_values"])
    fields.update(fixed)
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"config key '{job.settings['section']}.{unknown[0]}' is not a field of SAE Bench's "
            f"{cls.__name__} (fields: {', '.join(sorted(known))})"
        )
    return cls(**{k: v for k, v in fields.items() if k in known})


def _run_core(job: EvalJob) -> None:
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
        exclude_special_tokens_from_reconstruction=core["exclude_special_tokens_from_reconstruction"],
        dataset=core["dataset"],
        context_size=core["context_size"],
        output_folder=str(job.work_dir),
        dtype=model["torch_dtype"],
        device=model["device"],
        force_rerun=True,
    )


def _run_sparse_probing(job: EvalJob) -> None:
    from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig
    from sae_bench.evals.sparse_probing.main import run_eval

    run_eval(
        _saebench_config(SparseProbingEvalConfig, job),
        [(job.sae_name, job.sae)],
        device=job.settings["model"]["device"],
        output_path=str(job.work_dir),
        force_rerun=True,
        clean_up_activations=False,
        save_activations=job.artifacts_dir is not None,
        artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"),
    )


def _run_scr_or_tpp(perform_scr: bool) -> Callable[[EvalJob], None]:
    def run(job: EvalJob) -> None:
        from sae_bench.evals.scr_and_tpp.eval_config import ScrAndTppEvalConfig
        from sae_bench.evals.scr_and_tpp.main import run_eval

        run_eval(
            _saebench_config(ScrAndTppEvalConfig, job, perform_scr=perform_scr),
            [(job.sae_name, job.sae)],
            device=job.settings["model"]["device"],
            output_path=str(job.work_dir),
            force_rerun=True,
            clean_up_activations=False,
            save_activations=job.artifacts_dir is not None,
            artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"),
        )

    return run


def _not_wired(name: str, needs: str) -> Callable[[dict], list[str]]:
    def problems(config: dict) -> list[str]:
        return [f"eval type '{name}' cannot run in this workflow yet: {needs}"]

    return problems


def _refuse(job: EvalJob) -> None:
    raise RuntimeError(f"eval type {job.eval_type} has no runner")


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
            _run_core,
        ),
        EvalType(
            "sparse_probing",
            "sparse_probing",
            (Metric("sae.sae_top_1_test_accuracy", "top-1 SAE probe accuracy", True),),
            _run_sparse_probing,
            shares_llm_cache=True,
        ),
        EvalType(
            "scr",
            "scr",
            (Metric("scr_metrics.scr_metric_threshold_20", "SCR (top 20 latents)", True),),
            _run_scr_or_tpp(True),
            shares_llm_cache=True,
        ),
        EvalType(
            "tpp",
            "tpp",
            (Metric("tpp_metrics.tpp_threshold_20_total_metric", "TPP (top 20 latents)", True),),
            _run_scr_or_tpp(False),
            shares_llm_cache=True,
        ),
        EvalType(
            "absorption",
            "absorption",
            (Metric("mean.mean_absorption_fraction_score", "absorption fraction", False),),
            _refuse,
            _not_wired("absorption", "its probe caches live inside the installed package and its "
                       "silent empty result is not yet guarded; disable eval_types.absorption"),
        ),
        EvalType(
            "autointerp",
            "autointerp",
            (Metric("autointerp.autointerp_score", "autointerp score", True),),
            _refuse,
            _not_wired("autointerp", "it needs an OpenAI API key handling that is not built yet; "
                       "disable eval_types.autointerp"),
        ),
        EvalType(
            "unlearning",
            "unlearning",
            (Metric("unlearning.unlearning_score", "unlearning score", True),),
            _refuse,
            _not_wired("unlearning", "it needs gemma-2-2b-it/9b-it and the WMDP forget corpus, not "
                       "validated yet; disable eval_types.unlearning"),
        ),
    ]
}


def enabled_eval_types(config: dict) -> list[str]:
    return [name for name in REGISTRY if config["eval_types"].get(name)]


def check_requirements(config: dict) -> None:
    """Refuse, before any job starts, an enabled eval whose requirements are not met."""
    from workflow_scripts.settings import ConfigError

    problems = [p for name in enabled_eval_types(config) for p in REGISTRY[name].problems(config)]
    if problems:
        raise ConfigError("; ".join(problems))


def job_settings(config: dict, eval_type: str) -> dict:
    """The part of the config one evaluation job depends on (Snakemake reruns it when this changes)."""
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
    merged = dict(config["resources"]["default"])
    merged.update(config["resources"].get(eval_type, {}))
    return merged
