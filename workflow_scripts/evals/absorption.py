"""SAE Bench's feature absorption eval (`sae_bench.evals.absorption`), with its silent empty
result turned into an error and its probe cache moved out of the installed package."""

from __future__ import annotations

from pathlib import Path

from workflow_scripts.evals import patches
from workflow_scripts.evals.base import EvalJob, saebench_config


class AbsorptionGateError(RuntimeError):
    """SAE Bench's absorption found too few first-letter features and returned {} silently."""


def folders(job: EvalJob) -> dict[str, Path]:
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
    private = (job.work_dir / "absorption").resolve()
    return {
        "probes_dir": job.artifacts / "probes",
        "k_sparse": private / "k_sparse_probing",
        "feature_absorption": private / "feature_absorption",
        "cwd": private / "cwd",
    }


def gate_message(config, probe_table: Path) -> str:
    detail = ""
    if probe_table.is_file():
        import pandas as pd

        table = pd.read_json(probe_table)
        passed = table[table["f1_probe"] > config.min_GT_probe_f1]
        f1 = ", ".join(f"{r.letter}={r.f1_probe:.2f}" for r in table.itertuples())
        detail = (
            f": only {len(passed)} of {len(table)} letters ({''.join(passed['letter'])}) "
            f"have probe F1 > {config.min_GT_probe_f1} (F1 by letter: {f1})"
        )
    return (
        f"absorption cannot be evaluated on {config.model_name}: SAE Bench's gate found fewer "
        f"than min_feats_for_eval={config.min_feats_for_eval} first-letter features with "
        f"ground-truth probe F1 > min_GT_probe_f1={config.min_GT_probe_f1}{detail}. SAE Bench "
        "returns an empty result here without an error; lower absorption.min_GT_probe_f1 / "
        "absorption.min_feats_for_eval only for a model known to be weak at spelling "
        "(e.g. the demo)"
    )


def run(job: EvalJob) -> None:
    import random

    import sae_bench.evals.absorption.main as absorption
    import torch
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig

    config = saebench_config(AbsorptionEvalConfig, job)
    # SAE Bench's absorption only prints a warning for a model whose name lacks "gemma"
    # (main.py:49, "we recommend >= 2B parameters"); it runs on any TransformerLens model.
    dirs = folders(job)
    dirs["cwd"].mkdir(parents=True, exist_ok=True)
    # it shuffles the vocabulary with `random` and trains probes with torch, unseeded
    random.seed(config.random_seed)
    torch.manual_seed(config.random_seed)
    # main.py writes `artifacts/absorption/<sae>_k_sparse_probing.json` relative to the working
    # directory (main.py:101-109): keep that in our private folder too.
    output_path = str(job.work_dir.resolve())  # before changing directory
    with patches.absorption_paths(absorption, dirs), patches.working_directory(dirs["cwd"]):
        results = absorption.run_eval(
            config,
            job.selected_saes,
            device=job.device,
            output_path=output_path,
            force_rerun=True,
        )
    if not results:  # main.py:111-118: `break` and return {} without an error
        tables = sorted((dirs["cwd"] / "artifacts" / "absorption").glob("*_k_sparse_probing.json"))
        raise AbsorptionGateError(
            gate_message(config, tables[0] if tables else dirs["cwd"] / "missing")
        )
