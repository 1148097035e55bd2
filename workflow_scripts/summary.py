"""The headline metrics of a run, ranked: `summary.md` (printed at the end of a run), `summary.rst`
(embedded in the Snakemake report) and `summary.html`.

Headline metrics are the registry's (`evals.registry.REGISTRY[...].headline`) of the enabled eval
types. SCR and TPP report a score per number N of ablated latents; the headline uses
N = `visualization.headline_threshold` (default 20).

Ranking rule: for every headline metric except L0, variants are ranked 1 (best, in the metric's
better direction) to n (ties share the better rank); a variant's score is the mean of its ranks
over the metrics it has (missing pairs are left out). Variants are sorted by that mean rank, ties
broken by lower L0, then by variant id. L0 is sparsity, a design choice rather than a quality, so it
is shown beside the ranking but does not enter it; read it with the L0 plots' Pareto frontiers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from workflow_scripts.evals.registry import REGISTRY

L0 = "core.sparsity.l0"
DEFAULT_THRESHOLD = 20
MISSING = "missing"
RANKING_RULE = (
    "Ranked by mean rank over the headline metrics other than L0 (rank 1 = best in the "
    "metric's direction; ties share the better rank; a missing metric is left out of that "
    "variant's mean); ties broken by lower L0, then variant id. L0 is shown for context, not "
    "ranked: compare variants at similar L0 (see the Pareto plots)."
)


@dataclass(frozen=True)
class Headline:
    eval_type: str
    key: str  # "<group>.<metric>" inside SAE Bench's eval_result_metrics
    label: str
    higher_is_better: bool

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
            headlines.append(Headline(eval_type, key, label, metric.higher_is_better))
    return headlines


def rank_variants(table: pd.DataFrame, headlines: list[Headline]) -> pd.DataFrame:
    """`table` sorted by the ranking rule, with `mean_rank` and `rank` (1 = best) columns."""
    ranked = table.copy()
    quality = [h for h in headlines if h.column != L0 and h.column in ranked]
    ranks = pd.DataFrame(index=ranked.index)
    for h in quality:
        ranks[h.column] = pd.to_numeric(ranked[h.column], errors="coerce").rank(
            ascending=not h.higher_is_better, method="min"
        )
    ranked["mean_rank"] = ranks.mean(axis=1, skipna=True) if quality else math.nan
    l0 = (
        pd.to_numeric(ranked[L0], errors="coerce")
        if L0 in ranked
        else pd.Series(math.nan, ranked.index)
    )
    order = sorted(
        ranked.index,
        key=lambda i: (
            _last_if_nan(ranked.at[i, "mean_rank"]),
            _last_if_nan(l0[i]),
            str(ranked.at[i, "variant"]),
        ),
    )
    ranked = ranked.loc[order].reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked


def _last_if_nan(value) -> float:
    return math.inf if value is None or pd.isna(value) else float(value)


def _format(value) -> str:
    if value is None or pd.isna(value):
        return MISSING
    value = float(value)
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.001):
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _param(row) -> str:
    if pd.isna(row.get("param")) or not row.get("param_name") or pd.isna(row.get("param_name")):
        return ""
    param = int(row["param"]) if float(row["param"]).is_integer() else row["param"]
    return f"{row['param_name']}={param}"


def summary_rows(
    table: pd.DataFrame, headlines: list[Headline]
) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, formatted cells and which cells are the best of their column (for bold)."""
    ranked = rank_variants(table, headlines)
    header = (
        ["rank", "variant", "architecture", "parameter"]
        + [f"{h.label} {h.arrow}" for h in headlines]
        + ["mean rank"]
    )
    best = {}
    for h in headlines:
        values = pd.to_numeric(ranked[h.column], errors="coerce") if h.column in ranked else None
        if values is not None and values.notna().any() and h.column != L0:
            best[h.column] = values.max() if h.higher_is_better else values.min()
    cells, bold = [], []
    for _, row in ranked.iterrows():
        line = [str(row["rank"]), str(row["variant"]), str(row["architecture"]), _param(row)]
        marks = [False] * 4
        for h in headlines:
            value = row.get(h.column)
            line.append(_format(value))
            marks.append(h.column in best and not pd.isna(value) and float(value) == best[h.column])
        line.append("" if pd.isna(row["mean_rank"]) else f"{row['mean_rank']:.2f}")
        marks.append(False)
        cells.append(line)
        bold.append(marks)
    return header, cells, bold


def _notes(missing: list[tuple[str, str]], threshold: int, eval_types: list[str]) -> list[str]:
    notes = [RANKING_RULE, "Bold: best value of the column (L0 excepted)."]
    if {"scr", "tpp"} & set(eval_types):
        notes.append(
            f"SCR/TPP: score with the top {threshold} latents ablated "
            "(`visualization.headline_threshold`)."
        )
    if "core" not in eval_types:
        notes.append("The core eval is disabled: no L0 (sparsity) to compare at.")
    if missing:
        pairs = ", ".join(f"{e}/{v}" for e, v in missing)
        notes.append(
            f"**Missing pairs** (allow_missing: true; shown as `{MISSING}`, their metrics left "
            f"out of the variant's mean rank): {pairs}."
        )
    return notes


def markdown(
    table: pd.DataFrame,
    headlines: list[Headline],
    missing: list[tuple[str, str]],
    threshold: int,
    eval_types: list[str],
) -> str:
    header, cells, bold = summary_rows(table, headlines)
    lines = [
        "# SAE Bench comparison",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i == 0 or i >= 4 else "---" for i in range(len(header))) + "|",
    ]
    for line, marks in zip(cells, bold):
        lines.append("| " + " | ".join(f"**{c}**" if b else c for c, b in zip(line, marks)) + " |")
    lines.append("")
    lines += [f"- {note}" for note in _notes(missing, threshold, eval_types)]
    return "\n".join(lines) + "\n"


def _rst_cell(text: str, bold: bool) -> str:
    text = text.replace("*", r"\*").replace("`", r"\`")
    return f"**{text}**" if bold and text else (text or r"\ ")


def rst(
    table: pd.DataFrame,
    headlines: list[Headline],
    missing: list[tuple[str, str]],
    threshold: int,
    eval_types: list[str],
) -> str:
    """A list-table of the summary, for the Snakemake report's workflow description."""
    header, cells, bold = summary_rows(table, headlines)
    lines = [
        ".. list-table:: Headline metrics, ranked (↑ higher is better, ↓ lower is better)",
        "   :header-rows: 1",
        "",
    ]
    for line, marks in [(header, [False] * len(header)), *zip(cells, bold)]:
        for j, (cell, mark) in enumerate(zip(line, marks)):
            lines.append(f"   {'* -' if j == 0 else '  -'} {_rst_cell(cell, mark)}")
    lines.append("")
    for note in _notes(missing, threshold, eval_types):
        lines.append(f"- {note.replace('`', '``')}")
    return "\n".join(lines) + "\n"


def html(rst_text: str) -> str:
    """A standalone HTML page of the summary (docutils), for the report's result list."""
    from docutils.core import publish_string

    page = "SAE Bench comparison\n====================\n\n" + rst_text
    return publish_string(
        page,
        writer="html5",
        settings_overrides={
            "output_encoding": "unicode",
            "report_level": 5,
            "embed_stylesheet": True,
        },
    )
