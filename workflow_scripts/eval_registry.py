"""The one place that knows each SAE Bench eval type.

For every eval type: how to run it through SAE Bench's Python API, which config section holds its
settings, its headline metrics (for the summary and the plots), and what it needs before any job
may start. The rules, the config checks, the aggregation and the plots all read this registry;
adding an eval type means adding one entry here plus its test.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from types import SimpleNamespace
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
    # (config, known SAE widths by variant) -> problems that must stop the run before any job
    problems: Callable[[dict, dict], list[str]] = lambda config, widths: []
    shares_llm_cache: bool = False  # caches LLM activations under artifacts_dir
    workflow_keys: tuple[str, ...] = ()  # keys of the config section that are ours, not SAE Bench's


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
    known = set(cls.__dataclass_fields__)
    fields = {k: v for k, v in fields.items() if k in known}  # not every eval has llm_batch_size
    ours = REGISTRY[job.eval_type].workflow_keys
    fields.update({k: v for k, v in job.settings["section_values"].items() if k not in ours})
    fields.update(fixed)
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


def _llm_cache_run_kwargs(job: EvalJob) -> dict:
    """run_eval arguments shared by sparse_probing and scr/tpp: a fresh result in the job's work
    folder, LLM activations read from / written to the shared cache when the job has one."""
    return dict(
        device=job.settings["model"]["device"],
        output_path=str(job.work_dir),
        force_rerun=True,
        clean_up_activations=False,
        save_activations=job.artifacts_dir is not None,
        artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"),
    )


def _run_sparse_probing(job: EvalJob) -> None:
    from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig
    from sae_bench.evals.sparse_probing.main import run_eval

    run_eval(_saebench_config(SparseProbingEvalConfig, job), [(job.sae_name, job.sae)],
             **_llm_cache_run_kwargs(job))


def _run_scr_or_tpp(perform_scr: bool) -> Callable[[EvalJob], None]:
    def run(job: EvalJob) -> None:
        from sae_bench.evals.scr_and_tpp.eval_config import ScrAndTppEvalConfig
        from sae_bench.evals.scr_and_tpp.main import run_eval

        config = _saebench_config(ScrAndTppEvalConfig, job, perform_scr=perform_scr)
        if max(config.n_values) > job.sae.cfg.d_sae:  # widths unknown when the DAG was built
            raise ValueError(
                f"config key '{job.settings['section']}.n_values': {max(config.n_values)} exceeds "
                f"the width {job.sae.cfg.d_sae} of SAE '{job.sae_name}'")
        run_eval(config, [(job.sae_name, job.sae)], **_llm_cache_run_kwargs(job))

    return run


@contextlib.contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _run_unlearning(job: EvalJob) -> None:
    from sae_bench.evals.unlearning.eval_config import UnlearningEvalConfig
    from sae_bench.evals.unlearning.main import run_eval

    # SAE Bench reads the forget corpus from ./sae_bench/evals/unlearning/data/ relative to the
    # working directory: give it a private working directory that links the configured file.
    corpus = Path(job.settings["section_values"]["forget_corpus_path"]).resolve()
    cwd = (job.work_dir / "cwd").resolve()
    data = cwd / "sae_bench" / "evals" / "unlearning" / "data"
    data.mkdir(parents=True)
    (data / "bio-forget-corpus.jsonl").symlink_to(corpus)
    artifacts = (job.artifacts_dir or job.work_dir / "artifacts").resolve()
    config = _saebench_config(UnlearningEvalConfig, job)
    with _working_directory(cwd):
        run_eval(config, [(job.sae_name, job.sae)], device=job.settings["model"]["device"],
                 output_path=str(job.work_dir.resolve() / "results"), force_rerun=True,
                 clean_up_artifacts=False, artifacts_path=str(artifacts))


class AbsorptionGateError(RuntimeError):
    """SAE Bench's absorption found too few first-letter features and returned {} silently."""


def _absorption_dirs(job: EvalJob) -> dict[str, Path]:
    """Where absorption keeps its probe cache and its per-SAE experiment tables.

    SAE Bench keeps them inside the installed package (sae_bench/evals/absorption/common.py:33-34,
    RESULTS_DIR = <site-packages>/sae_bench/artifacts/absorption, PROBES_DIR = RESULTS_DIR/probes),
    keyed only by `model.cfg.model_name/layer_N`, and retrains the probe only when probe.pth is
    missing (force_rerun does not refresh it). The probe is the expensive, reusable part: it goes
    under the job's shared artifacts folder, which evaluate.py keys by artifact_cache.cache_key of
    (model name, local model dir, dtype, hook, the whole absorption section, seed) and builds under
    a lock, so a different model, layer or setting gets a different folder. The k-sparse-probing
    and feature-absorption tables depend on the SAE and are recomputed anyway (force=True): they
    stay in the job's private work folder.
    """
    shared = (job.artifacts_dir or job.work_dir / "artifacts").resolve()
    private = (job.work_dir / "absorption").resolve()
    return {"probes_dir": shared / "probes",
            "k_sparse": private / "k_sparse_probing",
            "feature_absorption": private / "feature_absorption",
            "cwd": private / "cwd"}


@contextlib.contextmanager
def absorption_paths(main_module, dirs: dict[str, Path]):
    """Pass our folders to the two experiment functions SAE Bench's absorption run_eval calls.

    Their folder defaults (`experiment_dir=RESULTS_DIR / ...`, `probes_dir=PROBES_DIR`) are bound
    when k_sparse_probing.py / feature_absorption.py are imported, so patching the constants would
    not reach them; the narrowest point is the two names absorption/main.py imported
    (main.py:23-26, called at main.py:82 and :120), wrapped to pass the folders explicitly.
    """
    k_sparse = main_module.run_k_sparse_probing_experiment
    feature = main_module.run_feature_absortion_experiment

    def run_k_sparse(*args, **kwargs):
        return k_sparse(*args, **kwargs, experiment_dir=dirs["k_sparse"],
                        probes_dir=dirs["probes_dir"])

    def run_feature(*args, **kwargs):
        return feature(*args, **kwargs, experiment_dir=dirs["feature_absorption"],
                       sparse_probing_experiment_dir=dirs["k_sparse"],
                       probes_dir=dirs["probes_dir"])

    main_module.run_k_sparse_probing_experiment = run_k_sparse
    main_module.run_feature_absortion_experiment = run_feature
    try:
        yield
    finally:
        main_module.run_k_sparse_probing_experiment = k_sparse
        main_module.run_feature_absortion_experiment = feature


def _absorption_gate_message(config, probe_table: Path) -> str:
    detail = ""
    if probe_table.is_file():
        import pandas as pd

        table = pd.read_json(probe_table)
        passed = table[table["f1_probe"] > config.min_GT_probe_f1]
        f1 = ", ".join(f"{r.letter}={r.f1_probe:.2f}" for r in table.itertuples())
        detail = (f": only {len(passed)} of {len(table)} letters ({''.join(passed['letter'])}) "
                  f"have probe F1 > {config.min_GT_probe_f1} (F1 by letter: {f1})")
    return (f"absorption cannot be evaluated on {config.model_name}: SAE Bench's gate found fewer "
            f"than min_feats_for_eval={config.min_feats_for_eval} first-letter features with "
            f"ground-truth probe F1 > min_GT_probe_f1={config.min_GT_probe_f1}{detail}. SAE Bench "
            "returns an empty result here without an error; lower absorption.min_GT_probe_f1 / "
            "absorption.min_feats_for_eval only for a model known to be weak at spelling (e.g. the demo)")


def _run_absorption(job: EvalJob) -> None:
    import random

    import torch

    import sae_bench.evals.absorption.main as absorption
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig

    config = _saebench_config(AbsorptionEvalConfig, job)
    # SAE Bench's absorption only prints a warning for a model whose name lacks "gemma"
    # (main.py:49, "we recommend >= 2B parameters"); it runs on any TransformerLens model.
    dirs = _absorption_dirs(job)
    dirs["cwd"].mkdir(parents=True, exist_ok=True)
    # it shuffles the vocabulary with `random` and trains probes with torch, unseeded
    random.seed(config.random_seed)
    torch.manual_seed(config.random_seed)
    # main.py writes `artifacts/absorption/<sae>_k_sparse_probing.json` relative to the working
    # directory (main.py:101-109): keep that in our private folder too.
    output_path = str(job.work_dir.resolve())  # before changing directory
    with absorption_paths(absorption, dirs), _working_directory(dirs["cwd"]):
        results = absorption.run_eval(config, [(job.sae_name, job.sae)],
                                      device=job.settings["model"]["device"],
                                      output_path=output_path, force_rerun=True)
    if not results:  # main.py:111-118: `break` and return {} without an error
        tables = sorted((dirs["cwd"] / "artifacts" / "absorption").glob("*_k_sparse_probing.json"))
        raise AbsorptionGateError(_absorption_gate_message(
            config, tables[0] if tables else dirs["cwd"] / "missing"))


def _run_sae_probes(job: EvalJob) -> None:
    from sae_bench.evals.sparse_probing_sae_probes.eval_config import (
        SparseProbingSaeProbesEvalConfig,
    )
    from sae_bench.evals.sparse_probing_sae_probes.main import run_eval

    # Its datasets ship inside the sae-probes wheel (sae_probes/data/cleaned_data): no hub access.
    # SAE Bench's defaults put its results and model activations under ./artifacts relative to the
    # working directory (eval_config.py:52 and :58): the model activations go
    # to the job's shared artifacts folder (keyed and locked by evaluate.py), the per-SAE probe
    # results to the private work folder.
    artifacts = (job.artifacts_dir or job.work_dir / "artifacts").resolve()
    config = _saebench_config(
        SparseProbingSaeProbesEvalConfig, job,
        results_path=str(job.work_dir.resolve() / "sae_probes_results"),
        model_cache_path=str(artifacts / "model_activations"))
    run_eval(config, [(job.sae_name, job.sae)], device=job.settings["model"]["device"],
             output_path=str(job.work_dir.resolve()), force_rerun=True)


@contextlib.contextmanager
def judge_model(module, model: str):
    """SAE Bench's autointerp hard-codes model="gpt-4o-mini" in its one API call
    (AutoInterp.get_api_response, autointerp/main.py:319-322: OpenAI(...).chat.completions.create);
    we wrap the `OpenAI` name that module calls so the configured judge model is used instead."""
    original = module.OpenAI

    class JudgeClient:
        def __init__(self, *args, **kwargs):
            client = original(*args, **kwargs)

            def create(**request):
                return client.chat.completions.create(**{**request, "model": model})

            self.chat = SimpleNamespace(completions=SimpleNamespace(create=create))

    module.OpenAI = JudgeClient
    try:
        yield
    finally:
        module.OpenAI = original


def _run_autointerp(job: EvalJob) -> None:
    import sae_bench.evals.autointerp.main as autointerp
    from sae_bench.evals.autointerp.eval_config import AutoInterpEvalConfig

    section = job.settings["section_values"]
    api_key = autointerp_api_key(section)
    if not api_key:
        raise RuntimeError(autointerp_problems({"autointerp": section}, {})[0])
    with judge_model(autointerp, section.get("judge_model", "gpt-4o-mini")):
        autointerp.run_eval(
            _saebench_config(AutoInterpEvalConfig, job), [(job.sae_name, job.sae)],
            device=job.settings["model"]["device"], api_key=api_key,
            output_path=str(job.work_dir), force_rerun=True,
            artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"))


SCR_TPP_DEFAULT_N_VALUES = [2, 5, 10, 20, 50, 100, 500]  # ScrAndTppEvalConfig.n_values default


def _n_values_fit(section: str) -> Callable[[dict, dict], list[str]]:
    """SCR/TPP ablate the top-N latents for each N in n_values: N may not exceed the SAE width."""

    def problems(config: dict, widths: dict) -> list[str]:
        n_values = config.get(section, {}).get("n_values", SCR_TPP_DEFAULT_N_VALUES)
        return [
            f"config key '{section}.n_values': {max(n_values)} exceeds the width {width} of SAE "
            f"'{variant}' (SAE Bench's default n_values end at 500; set n_values to values <= {width})"
            for variant, width in widths.items()
            if max(n_values) > width
        ][:1]

    return problems


UNLEARNING_MODELS = ("gemma-2-2b-it", "gemma-2-9b-it")  # the only models its metrics support


def core_problems(config: dict, widths: dict) -> list[str]:
    """SAE Bench 0.6.0's core eval builds MiscMetrics(**{}) when both featurewise flags are off,
    which fails validation (core/main.py ~897) inside its catch-all (~1139): no JSON, exit 0."""
    core = config["core_eval"]
    if core["compute_featurewise_density_statistics"] or core["compute_featurewise_weight_based_metrics"]:
        return []
    return ["config key 'core_eval.compute_featurewise_density_statistics': SAE Bench 0.6.0's core "
            "eval writes no result when it and compute_featurewise_weight_based_metrics are both "
            "false; set at least one to true"]


def unlearning_problems(config: dict, widths: dict) -> list[str]:
    problems = []
    name = config["model"]["name"]
    if name not in UNLEARNING_MODELS:
        problems.append(
            f"eval type 'unlearning' needs an instruction-tuned {' or '.join(UNLEARNING_MODELS)} "
            f"as model.name (got {name!r})")
    corpus = config.get("unlearning", {}).get("forget_corpus_path")
    if not corpus or not Path(corpus).is_file():
        where = f"{corpus!r} does not exist" if corpus else "it is not set"
        problems.append(
            "eval type 'unlearning' needs the WMDP bio forget corpus (bio-forget-corpus.jsonl, gated "
            f"on the hub: cais/wmdp-bio-forget-corpus) at config key 'unlearning.forget_corpus_path' ({where})")
    return problems


def autointerp_api_key(section: dict) -> str | None:
    """The judge's API key from the environment variable or file the config names; never logged."""
    key = os.environ.get(section.get("api_key_env", "OPENAI_API_KEY"), "").strip()
    key_file = section.get("api_key_file")
    if not key and key_file and Path(key_file).is_file():
        key = Path(key_file).read_text().strip()
    return key or None


def autointerp_problems(config: dict, widths: dict) -> list[str]:
    section = config.get("autointerp", {})
    if autointerp_api_key(section):
        return []
    env = section.get("api_key_env", "OPENAI_API_KEY")
    return [f"eval type 'autointerp' needs the judge's API key: set ${env} or point config key "
            "'autointerp.api_key_file' at a file holding it"]


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
        return ["eval type 'sparse_probing_sae_probes' needs the sae-probes package (pip install sae-probes)"]
    unknown = [name for name in listed if name not in known]
    if unknown:
        return [f"config key 'sparse_probing_sae_probes.dataset_names': {', '.join(map(repr, unknown))} "
                f"is not one of the {len(known)} datasets shipped with sae-probes (e.g. "
                f"{', '.join(known[:3])}; the file names in sae_probes/data/cleaned_data without .csv.zst)"]
    return []


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
            core_problems,
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
            _n_values_fit("scr"),
            shares_llm_cache=True,
        ),
        EvalType(
            "tpp",
            "tpp",
            (Metric("tpp_metrics.tpp_threshold_20_total_metric", "TPP (top 20 latents)", True),),
            _run_scr_or_tpp(False),
            _n_values_fit("tpp"),
            shares_llm_cache=True,
        ),
        EvalType(
            "absorption",
            "absorption",
            (Metric("mean.mean_absorption_fraction_score", "absorption fraction", False),),
            _run_absorption,
            shares_llm_cache=True,  # its probe cache, see _absorption_dirs
        ),
        EvalType(
            "sparse_probing_sae_probes",
            "sparse_probing_sae_probes",
            (Metric("sae.sae_top_1_test_accuracy", "top-1 SAE probe accuracy (sae-probes)", True),),
            _run_sae_probes,
            sae_probes_problems,
            shares_llm_cache=True,
        ),
        EvalType(
            "autointerp",
            "autointerp",
            (Metric("autointerp.autointerp_score", "autointerp score", True),),
            _run_autointerp,
            autointerp_problems,
            workflow_keys=("api_key_env", "api_key_file", "judge_model"),
        ),
        EvalType(
            "unlearning",
            "unlearning",
            (Metric("unlearning.unlearning_score", "unlearning score", True),),
            _run_unlearning,
            unlearning_problems,
            workflow_keys=("forget_corpus_path",),
        ),
    ]
}


def enabled_eval_types(config: dict) -> list[str]:
    return [name for name in REGISTRY if config["eval_types"].get(name)]


def check_requirements(config: dict, widths: dict | None = None) -> None:
    """Refuse, before any job starts, an enabled eval whose requirements are not met.

    `widths` maps variant ids to the SAE widths known when the DAG is built (SAE folders already
    written, the demo's manifest); the evaluation job checks the rest before it starts.
    """
    from workflow_scripts.settings import ConfigError

    problems = [p for name in enabled_eval_types(config)
                for p in REGISTRY[name].problems(config, widths or {})]
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
