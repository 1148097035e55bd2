"""SAE Bench's unlearning eval (`sae_bench.evals.unlearning`): only for gemma-2-2b-it /
gemma-2-9b-it, with the gated WMDP bio forget corpus."""

from __future__ import annotations

import json
from pathlib import Path

from workflow_scripts.evals import patches
from workflow_scripts.evals.base import EvalJob, saebench_config

MODELS = ("gemma-2-2b-it", "gemma-2-9b-it")  # the only models its metrics support
WORKFLOW_KEYS = ("forget_corpus_path",)
KEY = "config key 'unlearning.forget_corpus_path'"
LINES_CHECKED = 5  # the first non-empty lines, parsed as SAE Bench parses every line
READER = "sae_bench/evals/unlearning/utils/feature_activation.py:39-41"


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
    else:
        found += corpus_format_problems(Path(corpus))
    return found


def corpus_format_problems(path: Path) -> list[str]:
    """What stops SAE Bench from reading `path` as its forget corpus, before any GPU job.

    SAE Bench reads the corpus line by line with `json.loads(line)["text"]` (`READER`: its file
    and lines), so the file must be JSON lines of objects with a string `text`. The hub's copy
    is now distributed as parquet (SAE Bench issue #86): such a file is refused with the one
    command that converts it.
    We refuse rather than convert because the corpus is gated and the user's own file: a copy
    in the artifacts folder would duplicate it outside the user's control, and the conversion (its
    column, its encoding) is better checked once by the person who requested access.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return [
            f"{KEY}: {str(path)!r} is a parquet file, but SAE Bench reads the forget corpus as "
            f'JSON lines ({READER}); convert it once with: python -c "import pandas as pd; '
            f"pd.read_parquet('{path}')[['text']].to_json('bio-forget-corpus.jsonl', "
            "orient='records', lines=True)\" and point the key at the result"
        ]
    if head[:2] == b"\x1f\x8b":
        return [f"{KEY}: {str(path)!r} is gzip-compressed; decompress it (gunzip) first"]
    checked = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                return [
                    f"{KEY}: line {number} of {str(path)!r} is not JSON ({error.msg}); SAE Bench "
                    f"reads one JSON object per line ({READER})"
                ]
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                return [
                    f"{KEY}: line {number} of {str(path)!r} has no string field 'text', which "
                    f"SAE Bench reads from every line ({READER})"
                ]
            checked += 1
            if checked == LINES_CHECKED:
                break
    if not checked:
        return [f"{KEY}: {str(path)!r} is empty"]
    return []


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
