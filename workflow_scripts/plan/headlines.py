"""The headline metrics of a run: which numbers the summary, the plots and the report lead with,
and which of them the ranking counts. Read at DAG time too (config checks), so no pandas here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflow_scripts.evals.registry import REGISTRY

L0 = "core.sparsity.l0"
DEFAULT_THRESHOLD = 20


@dataclass(frozen=True)
class Headline:
    eval_type: str
    key: str  # "<group>.<metric>" inside eval_result_metrics (SAE Bench's or the workflow's)
    label: str
    higher_is_better: bool
    reliability: str = ""
    ranked_by_default: bool = True

    @property
    def column(self) -> str:
        return f"{self.eval_type}.{self.key}"

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.direction})"


def headline_metrics(eval_types: list[str], threshold: int = DEFAULT_THRESHOLD) -> list[Headline]:
    """The headline metrics of these eval types, SCR/TPP at `threshold` ablated latents."""
    headlines = []
    for eval_type in eval_types:
        for metric in REGISTRY[eval_type].headline:
            key, label = metric.key, metric.label
            if re.search(r"threshold_\d+", key):
                key = re.sub(r"threshold_\d+", f"threshold_{threshold}", key)
                label = re.sub(r"\b\d+ latents", f"{threshold} latents", label)
            headlines.append(
                Headline(
                    eval_type,
                    key,
                    label,
                    metric.higher_is_better,
                    metric.reliability,
                    metric.ranked_by_default,
                )
            )
    return headlines


def ranking_columns(headlines: list[Headline], configured: list[str] | None = None) -> list[str]:
    """The metrics.csv columns the ranking counts: `configured` (config key `ranking.metrics`) or,
    when unset, every headline metric but L0 that the registry does not mark unreliable."""
    if configured is not None:
        return list(configured)
    return [h.column for h in headlines if h.column != L0 and h.ranked_by_default]


def ranking_problems(config: dict, eval_types: list[str]) -> list[str]:
    """A `ranking.metrics` entry that is not a headline metric of an enabled eval type."""
    configured = (config.get("ranking") or {}).get("metrics")
    if configured is None:
        return []
    threshold = config.get("visualization", {}).get("headline_threshold", DEFAULT_THRESHOLD)
    known = [h.column for h in headline_metrics(eval_types, threshold)]
    unknown = [c for c in configured if c not in known]
    if not unknown:
        return []
    return [
        f"config key 'ranking.metrics': {unknown[0]!r} is not a headline metric of the enabled "
        f"eval types (choose from: {', '.join(known)})"
    ]
