"""What every eval type is made of: its registry entry, the job it runs, and the SAE Bench config.

Kept apart from `registry.py` so the per-eval modules can import these types without importing
each other. Nothing here imports torch or SAE Bench: the registry is read at DAG time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Metric:
    key: str  # "<group>.<metric>" inside eval_result_metrics (SAE Bench's, or the workflow's)
    label: str
    higher_is_better: bool
    # how far the number can be trusted, with its source; shown in the summary and report
    reliability: str = ""
    # counted by the default ranking (`ranking.metrics` unset); unreliable metrics are shown only
    ranked_by_default: bool = True


@dataclass(frozen=True)
class EvalType:
    name: str
    section: str  # config section with this eval's settings
    headline: tuple[Metric, ...]
    # (job: EvalJob) -> writes one SAE Bench JSON under job.work_dir; may return the workflow's
    # own metrics of that run ({group: {name: value}}), recorded beside SAE Bench's JSON
    run: Callable[..., dict | None]
    # (config, known SAE widths by variant) -> problems that must stop the run before any job
    problems: Callable[[dict, dict], list[str]] = lambda config, widths: []
    shares_llm_cache: bool = False  # caches LLM activations under artifacts_dir
    workflow_keys: tuple[str, ...] = ()  # keys of the config section that are ours, not SAE Bench's
    # whether SAE Bench's result changes with `random_seed` (then `replicates.seeds` runs it once
    # per seed), and why (the SAE Bench code that draws random numbers, or why none does)
    seed_dependent: bool = True
    seed_note: str = ""
    # SAE Bench's module of this eval, imported by the job before it times SAE Bench's run (so a
    # record's startup_s holds every import and eval_s the eval alone)
    saebench_module: str = ""
    # reads only the SAE's decoder: a derived variant, which reuses its baseline's decoder, has
    # its baseline's value by construction, so it gets no job of its own and no verdict against
    # that baseline (results/collect.py shares the value, the summary says so)
    decoder_only: bool = False


class EvalRequirementError(RuntimeError):
    """An eval's requirement that only the job can check is not met (the message says which)."""


@dataclass
class EvalJob:
    """Everything one (variant, eval type) job needs; built by `workflow_scripts.steps.evaluate`."""

    eval_type: str
    sae: object  # the SAE object; None for a published SAE, which SAE Bench loads itself
    sae_name: str
    settings: dict  # output of registry.job_settings()
    work_dir: Path  # private folder that SAE Bench writes its result JSON into
    artifacts_dir: Path | None  # shared LLM activation cache, or None
    d_sae: int = 0  # width (latents)
    published: tuple[str, str] | None = None  # (SAE Lens release, SAE id) of a published SAE
    # the workflow's shared artifacts folder, for evals that key and lock their own caches in it
    # (RAVEL); None when activation_caching.save_activations is off
    shared_artifacts_root: Path | None = None

    @property
    def selected_sae(self) -> tuple:
        """What SAE Bench's run functions take in `selected_saes`: (release, sae_id) strings for a
        published SAE, as SAE Bench's own runner passes them (it then loads the SAE through SAE
        Lens and folds W_dec norms, general_utils.py ~134), else (name, SAE object)."""
        return self.published or (self.sae_name, self.sae)

    @property
    def selected_saes(self) -> list[tuple]:
        """SAE Bench's `selected_saes` argument: this job's one SAE (tools/bench_per_pair.py
        passes several, as SAE Bench's own runner does)."""
        return [self.selected_sae]

    @property
    def device(self) -> str:
        return self.settings["model"]["device"]

    @property
    def artifacts(self) -> Path:
        """The shared artifacts folder, or a private one inside the work folder (absolute)."""
        return (self.artifacts_dir or self.work_dir / "artifacts").resolve()


def saebench_config(cls, job: EvalJob, workflow_keys: tuple[str, ...] = (), **fixed):
    """Build an SAE Bench eval config (dataclass `cls`) from the job's config section.

    Model name, LLM batch size and dtype and the seed come from the `model` section and
    `random_seed` (for the fields `cls` has); the section's own keys override them, except
    `workflow_keys`, which are ours; `fixed` wins over both. Raises ValueError naming the config
    key when a key is not a field of `cls`.
    """
    model = job.settings["model"]
    fields = dict(
        model_name=model["name"],
        llm_batch_size=model["llm_batch_size"],
        llm_dtype=model["torch_dtype"],
        random_seed=job.settings["random_seed"],
    )
    known = set(cls.__dataclass_fields__)
    fields = {k: v for k, v in fields.items() if k in known}  # not every eval has llm_batch_size
    fields.update(
        {k: v for k, v in job.settings["section_values"].items() if k not in workflow_keys}
    )
    fields.update(fixed)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"config key '{job.settings['section']}.{unknown[0]}' is not a field of SAE Bench's "
            f"{cls.__name__} (fields: {', '.join(sorted(known))})"
        )
    return cls(**fields)
