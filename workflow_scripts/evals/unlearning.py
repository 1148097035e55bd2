"""SAE Bench's unlearning eval (`sae_bench.evals.unlearning`): only for gemma-2-2b-it /
gemma-2-9b-it, with the gated WMDP bio forget corpus."""

from __future__ import annotations

from pathlib import Path

from workflow_scripts.evals import patches
from workflow_scripts.evals.base import EvalJob, saebench_config

MODELS = ("gemma-2-2b-it", "gemma-2-9b-it")  # the only models its metrics support
WORKFLOW_KEYS = ("forget_corpus_path",)


def problems(config: dict, widths: dict) -> list[str]:
    found = []
    name = config["model"]["name"]
    if name not in MODELS:
        found.append(
            f"eval type 'unlearning' needs an instruction-tuned {' or '.join(MODELS)} "
            f"as model.name (got {name!r})"
        )
    corpus = config.get("unlearning", {}).get("forget_corpus_path")
    if not corpus or not Path(corpus).is_file():
        where = f"{corpus!r} does not exist" if corpus else "it is not set"
        found.append(
            "eval type 'unlearning' needs the WMDP bio forget corpus (bio-forget-corpus.jsonl, "
            "gated on the hub: cais/wmdp-bio-forget-corpus) at config key "
            f"'unlearning.forget_corpus_path' ({where})"
        )
    return found


def run(job: EvalJob) -> None:
    from sae_bench.evals.unlearning.eval_config import UnlearningEvalConfig
    from sae_bench.evals.unlearning.main import run_eval

    # SAE Bench reads the forget corpus from ./sae_bench/evals/unlearning/data/ relative to the
    # working directory: give it a private working directory that links the configured file.
    corpus = Path(job.settings["section_values"]["forget_corpus_path"]).resolve()
    cwd = (job.work_dir / "cwd").resolve()
    data = cwd / "sae_bench" / "evals" / "unlearning" / "data"
    data.mkdir(parents=True)
    (data / "bio-forget-corpus.jsonl").symlink_to(corpus)
    artifacts = str(job.artifacts)  # resolved before changing directory
    output_path = str(job.work_dir.resolve() / "results")
    config = saebench_config(UnlearningEvalConfig, job, WORKFLOW_KEYS)
    with patches.working_directory(cwd):
        run_eval(
            config,
            job.selected_saes,
            device=job.device,
            output_path=output_path,
            force_rerun=True,
            clean_up_artifacts=False,
            artifacts_path=artifacts,
        )
