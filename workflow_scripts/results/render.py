"""Format the computed comparison (ranking.Results) as `summary.md` (printed at the end of a
run), `summary.rst` (embedded in the Snakemake report) and `summary.html`; nothing here computes a
rank, an interval or a frontier."""

from __future__ import annotations

import math

import pandas as pd

from workflow_scripts.evals.registry import REGISTRY
from workflow_scripts.plan.headlines import L0
from workflow_scripts.results.formatting import MISSING, format_value
from workflow_scripts.results.ranking import Comparison, Results

UNRANKED_MARK = "†"


def _half_width(row, column: str) -> float:
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return math.nan
    return (float(high) - float(low)) / 2


def _cell(row, column: str) -> str:
    value = row.get(column)
    text = format_value(value)
    half = _half_width(row, column)
    if text != MISSING and not math.isnan(half):
        text += f" ± {format_value(half)}"
    return text


def _param(row) -> str:
    if pd.isna(row.get("param")) or not row.get("param_name") or pd.isna(row.get("param_name")):
        return ""
    param = int(row["param"]) if float(row["param"]).is_integer() else row["param"]
    return f"{row['param_name']}={param}"


def summary_rows(results: Results) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, formatted cells and which cells are bold, of the ranked table."""
    comparison, ranked = results.comparison, results.ranked
    ranked_columns = set(comparison.ranked_columns)
    header = ["rank", "variant", "architecture", "parameter"]
    for h in comparison.headlines:
        mark = "" if h.column in ranked_columns or h.column == L0 else UNRANKED_MARK
        header.append(f"{h.label} {h.arrow}{mark}")
    header.append("mean rank")
    bold = results.bold
    cells, marks_all = [], []
    for _, row in ranked.iterrows():
        line = [str(row["rank"]), str(row["variant"]), str(row["architecture"]), _param(row)]
        marks = [False] * 4
        for h in comparison.headlines:
            line.append(_cell(row, h.column))
            marks.append(row["variant"] in bold[h.column])
        line.append("" if pd.isna(row["mean_rank"]) else f"{row['mean_rank']:.2f}")
        marks.append(False)
        cells.append(line)
        marks_all.append(marks)
    return header, cells, marks_all


MATCHED_WHY = (
    "A variant that spends more active latents per token reconstructs better for that reason "
    "alone, so a comparison with one baseline point rewards whichever variant is denser. Each "
    "variant is therefore compared with the best the reference SAEs reach at the same L0: "
    "their frontier, interpolated in log L0 between neighbouring sweep points."
)


def matched_rows(results: Results) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, cells and notes of the matched-L0 table: Δ to the frontier ± half-width
    (verdict) per metric, each variant's L0 and the reference range."""
    comparison, table, problems = results.comparison, results.matched, results.matched_problems
    headlines = [h for h in comparison.headlines if h.column != L0]
    header = ["variant", "L0", "reference L0 range"]
    header += [f"Δ {h.label} {h.arrow}" for h in headlines]
    rows = []
    for variant in [v for v in comparison.table["variant"] if v in set(table["variant"])]:
        mine = table[table["variant"] == variant]
        first = mine.iloc[0]
        line = [
            variant,
            f"{float(first['l0']):.1f}",
            f"{float(first['frontier_l0_low']):.1f}–{float(first['frontier_l0_high']):.1f}",
        ]
        for h in headlines:
            match = mine[(mine["eval_type"] == h.eval_type) & (mine["metric"] == h.key)]
            if match.empty:
                line.append(MISSING)
                continue
            r = match.iloc[0]
            if pd.isna(r["difference"]):
                line.append(str(r["verdict"]))
                continue
            text = f"{float(r['difference']):+.3f}"
            if not pd.isna(r["ci_low"]):
                text += f" ± {(float(r['ci_high']) - float(r['ci_low'])) / 2:.3f}"
            line.append(f"{text} ({r['verdict']}, n={int(r['n'])})")
        rows.append(line)
    notes = [
        MATCHED_WHY,
        "Δ = variant − frontier at the variant's L0, signed so that + is better (↓ metrics: "
        "frontier − variant); with replicates, per seed against that seed's frontier, ± the "
        "half-width of the 95% t-interval: *above* / *below the frontier* when the interval "
        "excludes 0, *within noise* when it includes it; one seed: above/below without a noise "
        "estimate. A variant whose L0 is outside the reference SAEs' L0 range gets *outside the "
        "reference range*, never an extrapolated verdict.",
        f"Reference SAEs (`reference_frontier`): {', '.join(comparison.reference)}.",
    ]
    notes += [f"No frontier for {p}." for p in problems]
    return header, rows, notes


def versus_rows(results: Results) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the versus-baseline table: Δ ± half-width (verdict) per metric."""
    comparison, table = results.comparison, results.versus
    headlines = [h for h in comparison.headlines if h.column != L0]
    header = ["variant", "baseline"] + [f"Δ {h.label} {h.arrow}" for h in headlines]
    rows = []
    order = [v for v in comparison.table["variant"] if v in set(table.get("variant", []))]
    for variant in order:
        mine = table[table["variant"] == variant]
        line = [variant, str(mine["baseline"].iloc[0])]
        for h in headlines:
            match = mine[(mine["eval_type"] == h.eval_type) & (mine["metric"] == h.key)]
            if match.empty or pd.isna(match["difference"].iloc[0]):
                line.append(MISSING)
                continue
            r = match.iloc[0]
            text = f"{float(r['difference']):+.3f}"
            if not pd.isna(r["ci_low"]):
                text += f" ± {(float(r['ci_high']) - float(r['ci_low'])) / 2:.3f}"
            text += f" ({r['verdict']}, n={int(r['n'])})"
            line.append(text)
        rows.append(line)
    return header, rows


def _notes(comparison: Comparison) -> list[str]:
    c = comparison
    notes = []
    replicated = [e for e in c.eval_types if REGISTRY[e].seed_dependent]
    fixed = [e for e in c.eval_types if not REGISTRY[e].seed_dependent]
    if c.replicated:
        notes.append(
            f"**Replicates**: seeds {', '.join(map(str, c.seeds))} (n = {len(c.seeds)}) for "
            f"{', '.join(replicated) or 'no eval type'}; values are mean ± half-width of the "
            "95% t-interval of the mean over seeds."
        )
    else:
        seed = c.seeds[0] if c.seeds else "the configured seed"
        notes.append(
            f"**One seed ({seed}): no noise estimate exists.** Seed-dependent metrics are single "
            "draws of SAE Bench's data split and probe training; a difference between two "
            "variants may be seed noise. Set `replicates.seeds: [42, 43, 44]` (or more) to run "
            "them once per seed and get 95% intervals, paired verdicts and a ranking that "
            "counts only differences outside noise. No seed-dependent value is bolded."
        )
    for e in fixed:
        notes.append(f"`{e}` is measured once: {REGISTRY[e].seed_note}.")
    ranked = [h.label for h in c.headlines if h.column in set(c.ranked_columns)]
    rule = (
        "on a replicated metric a variant's rank is 1 + the number of variants that beat it "
        "outside noise (paired 95% interval of the difference excludes 0), so variants within "
        "noise of each other share a rank; on a metric measured once, by value"
        if c.replicated
        else "by value (rank 1 = best in the metric's direction, ties share the better rank); "
        "provisional with one seed"
    )
    notes.append(
        f"**Ranking**: mean rank over {', '.join(ranked) or 'no metric'} (`ranking.metrics`); "
        f"{rule}. A missing metric is left out of that variant's mean; equal means share the "
        "rank; the order breaks ties by lower L0, then variant id. L0 is shown, not ranked: "
        "compare variants at similar L0 (see the Pareto plots)."
    )
    notes.append(
        "**Bold**: a column's best value, only where it is clear: outside noise of every other "
        "variant (replicated metrics) or strictly best at the shown precision (metrics "
        "measured once that do not depend on the seed)."
    )
    for h in c.headlines:
        if h.reliability:
            mark = (
                f" {UNRANKED_MARK} not ranked"
                if h.column not in set(c.ranked_columns) and h.column != L0
                else ""
            )
            notes.append(f"*{h.label}*{mark}: {h.reliability}.")
    if "core" in c.eval_types:
        notes.append(
            "*Explained variance* is the workflow's centered value, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² "
            "over core's tokens (`core.workflow_reconstruction.explained_variance_centered`). "
            "SAE Bench 0.6.0's `core.reconstruction_quality.explained_variance` divides by the "
            "variance about zero (a mean predictor scores near 1 when activations have a large "
            "mean) and `explained_variance_legacy` averages per-token ratios; both stay in "
            "metrics.csv under SAE Bench's names."
        )
    if {"scr", "tpp"} & set(c.eval_types):
        notes.append(
            f"SCR/TPP: score with the top {c.threshold} latents ablated "
            "(`visualization.headline_threshold`)."
        )
    if "core" not in c.eval_types:
        notes.append("The core eval is disabled: no L0 (sparsity) to compare at.")
    if c.missing:
        pairs = ", ".join(f"{e}/{v}" for e, v in c.missing)
        notes.append(
            f"**Missing pairs** (allow_missing: true; shown as `{MISSING}`, their metrics left "
            f"out of the variant's mean rank): {pairs}."
        )
    if c.missing_replicates:
        runs = ", ".join(f"{e}/seed_{s}/{v}" for e, v, s in c.missing_replicates)
        notes.append(
            f"**Missing replicates** (allow_missing: true; their seeds are left out of the "
            f"means, intervals and pairings): {runs}."
        )
    return notes


def _versus_notes(results: Results) -> list[str]:
    notes = [
        "Δ = variant − its baseline on the same seeds (same data split and probe training), "
        "± half-width of the 95% t-interval of the paired differences; *better* / *worse* "
        "when that interval excludes 0 in the metric's direction, *within noise* when it "
        "includes 0, *no noise estimate* with fewer than two paired seeds (metrics measured "
        "once: the difference is exact for those tokens, its sampling error unknown)."
    ]
    unpaired = results.versus
    unpaired = unpaired[unpaired.get("unpaired_seeds", pd.Series(dtype=str)).fillna("") != ""]
    for _, r in unpaired.iterrows():
        notes.append(
            f"{r['variant']} vs {r['baseline']}, {r['eval_type']}: seeds without a partner, "
            f"left out of the pairing: {r['unpaired_seeds']}."
        )
    return notes


def markdown(results: Results) -> str:
    comparison = results.comparison
    header, cells, bold = summary_rows(results)
    lines = ["# SAE Bench comparison", ""]
    m_header, m_rows, m_notes = matched_rows(results) if comparison.reference else ([], [], [])
    if m_header:
        lines += ["## At equal sparsity: versus the reference frontier at each variant's L0", ""]
        if m_rows:
            lines.append("| " + " | ".join(m_header) + " |")
            lines.append("|" + "|".join("---" for _ in m_header) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in m_rows]
            lines.append("")
        lines += [f"- {note}" for note in m_notes]
        lines += ["", "## All variants, ranked", ""]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i == 0 or i >= 4 else "---" for i in range(len(header))) + "|",
    ]
    for line, marks in zip(cells, bold):
        lines.append("| " + " | ".join(f"**{c}**" if b else c for c, b in zip(line, marks)) + " |")
    lines.append("")
    lines += [f"- {note}" for note in _notes(comparison)]
    v_header, v_rows = versus_rows(results)
    if v_rows:
        lines += ["", "## Versus the baseline point (paired by seed, not matched in L0)", ""]
        lines.append("| " + " | ".join(v_header) + " |")
        lines.append("|" + "|".join("---" for _ in v_header) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in v_rows]
        lines.append("")
        lines += [f"- {note}" for note in _versus_notes(results)]
    return "\n".join(lines) + "\n"


def _rst_cell(text: str, bold: bool) -> str:
    text = text.replace("*", r"\*").replace("`", r"\`")
    return f"**{text}**" if bold and text else (text or r"\ ")


def _rst_table(title: str, header: list[str], cells, bold=None) -> list[str]:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    bold = bold or [[False] * len(header) for _ in cells]
    for line, marks in [(header, [False] * len(header)), *zip(cells, bold)]:
        for j, (cell, mark) in enumerate(zip(line, marks)):
            lines.append(f"   {'* -' if j == 0 else '  -'} {_rst_cell(cell, mark)}")
    return lines + [""]


def _rst_note(note: str) -> str:
    return "- " + note.replace("`", "``")


def rst(results: Results) -> str:
    """List-tables of the summary, for the Snakemake report's workflow description."""
    comparison = results.comparison
    header, cells, bold = summary_rows(results)
    lines = []
    if comparison.reference:
        m_header, m_rows, m_notes = matched_rows(results)
        if m_rows:
            lines += _rst_table(
                "At equal sparsity: Δ to the reference frontier at each variant's L0",
                m_header,
                m_rows,
            )
        lines += [_rst_note(note) for note in m_notes] + [""]
    lines += _rst_table(
        "Headline metrics, ranked (↑ higher is better, ↓ lower is better)", header, cells, bold
    )
    lines += [_rst_note(note) for note in _notes(comparison)]
    v_header, v_rows = versus_rows(results)
    if v_rows:
        lines += [""] + _rst_table(
            "Versus the baseline point (paired by seed, not matched in L0)", v_header, v_rows
        )
        lines += [_rst_note(note) for note in _versus_notes(results)]
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
