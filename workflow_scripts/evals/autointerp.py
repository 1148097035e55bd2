"""SAE Bench's automated interpretability eval (`sae_bench.evals.autointerp`): an LLM judge
scores latent explanations; needs the judge's API key, never logged."""

from __future__ import annotations

import os
from pathlib import Path

from workflow_scripts.evals import patches
from workflow_scripts.evals.base import EvalJob, saebench_config

WORKFLOW_KEYS = ("api_key_env", "api_key_file", "judge_model")


def api_key(section: dict) -> str | None:
    """The judge's API key from the environment variable or file the config names; never logged."""
    key = os.environ.get(section.get("api_key_env", "OPENAI_API_KEY"), "").strip()
    key_file = section.get("api_key_file")
    if not key and key_file and Path(key_file).is_file():
        key = Path(key_file).read_text().strip()
    return key or None


def problems(config: dict, widths: dict) -> list[str]:
    section = config.get("autointerp", {})
    if api_key(section):
        return []
    env = section.get("api_key_env", "OPENAI_API_KEY")
    return [
        f"eval type 'autointerp' needs the judge's API key: set ${env} or point config key "
        "'autointerp.api_key_file' at a file holding it"
    ]


def run(job: EvalJob) -> None:
    import sae_bench.evals.autointerp.main as autointerp
    from sae_bench.evals.autointerp.eval_config import AutoInterpEvalConfig

    section = job.settings["section_values"]
    key = api_key(section)
    if not key:
        raise RuntimeError(problems({"autointerp": section}, {})[0])
    with patches.judge_model(autointerp, section.get("judge_model", "gpt-4o-mini")):
        autointerp.run_eval(
            saebench_config(AutoInterpEvalConfig, job, WORKFLOW_KEYS),
            job.selected_saes,
            device=job.device,
            api_key=key,
            output_path=str(job.work_dir),
            force_rerun=True,
            artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"),
        )
