"""SAE Bench's automated interpretability eval (`sae_bench.evals.autointerp`): an LLM judge
explains and scores latents. The judge is OpenAI's API, or any OpenAI-compatible server at
`autointerp.judge_base_url` (a vLLM server on the cluster's own network, which offline compute
nodes can reach). Its API key is read from the environment or a file, never logged or recorded."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from workflow_scripts.evals import patches
from workflow_scripts.evals.base import EvalJob, saebench_config

WORKFLOW_KEYS = ("api_key_env", "api_key_file", "judge_model", "judge_base_url")
# what the client sends to a judge at a base URL when no key is configured: a server started
# without a key (vLLM's default) accepts any, and the OpenAI client refuses to start without one
NO_KEY = "EMPTY"


def key_variable(section: dict) -> str | None:
    """The environment variable that holds the judge's key: `autointerp.api_key_env`, else
    OPENAI_API_KEY for OpenAI's API and none for a judge at `judge_base_url` (a user's OpenAI key
    must not travel, maybe over plain http, to a server on the cluster)."""
    if section.get("api_key_env"):
        return section["api_key_env"]
    return None if section.get("judge_base_url") else "OPENAI_API_KEY"


def api_key(section: dict) -> str | None:
    """The judge's API key from the environment variable or file the config names; never logged."""
    variable = key_variable(section)
    key = os.environ.get(variable, "").strip() if variable else ""
    key_file = section.get("api_key_file")
    if not key and key_file and Path(key_file).is_file():
        key = Path(key_file).read_text().strip()
    return key or None


def base_url_problem(url: str | None) -> str | None:
    """Why `autointerp.judge_base_url` cannot be used, or None (unset or an http(s) URL)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        parts = None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"config key 'autointerp.judge_base_url': {url!r} is not an http(s) URL such as "
            "http://judge-node:8000/v1"
        )
    if parts.query or parts.fragment:
        return (
            "config key 'autointerp.judge_base_url' has a query or fragment: give the base URL "
            "only (a key belongs in 'autointerp.api_key_env' or 'autointerp.api_key_file', "
            "never in the config, which reaches logs)"
        )
    if parts.username or parts.password:
        return (
            "config key 'autointerp.judge_base_url' holds a user name or password: it would "
            "reach logs and records; give the key in 'autointerp.api_key_env' or "
            "'autointerp.api_key_file' instead"
        )
    return None


def problems(config: dict, widths: dict) -> list[str]:
    section = config.get("autointerp", {})
    url_problem = base_url_problem(section.get("judge_base_url"))
    if url_problem:
        return [url_problem]
    if api_key(section) or section.get("judge_base_url"):
        return []
    env = key_variable(section) or "OPENAI_API_KEY"
    return [
        f"eval type 'autointerp' needs the judge's API key: set ${env} or point config key "
        "'autointerp.api_key_file' at a file holding it (or set 'autointerp.judge_base_url' "
        "to a judge on your network that needs none)"
    ]


def run(job: EvalJob) -> None:
    import sae_bench.evals.autointerp.main as autointerp
    from sae_bench.evals.autointerp.eval_config import AutoInterpEvalConfig

    section = job.settings["section_values"]
    found = problems({"autointerp": section}, {})
    if found:
        raise RuntimeError(found[0])
    base_url = section.get("judge_base_url")
    key = api_key(section) or NO_KEY
    with patches.judge_client(autointerp, section.get("judge_model", "gpt-4o-mini"), base_url):
        autointerp.run_eval(
            saebench_config(AutoInterpEvalConfig, job, WORKFLOW_KEYS),
            job.selected_saes,
            device=job.device,
            api_key=key,
            output_path=str(job.work_dir),
            force_rerun=True,
            artifacts_path=str(job.artifacts_dir or job.work_dir / "artifacts"),
        )
