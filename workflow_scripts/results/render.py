"""Format the computed comparison (ranking.Results) as `summary.md` (printed at the end of a
run), `summary.rst` (embedded in the Snakemake report) and `summary.html`; nothing here computes a
rank, an interval or a frontier."""

from __future__ import annotations

import math

import pandas as pd

from workflow_scripts.plan.headlines import L0
from workflow_scripts.results import notes
from workflow_scripts.results.formatting import MISSING, UNRANKED_MARK, format_value
from workflow_scripts.results.ranking import Results


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
    header.append("score (wins − losses)")
    bold = results.bold
    cells, marks_all = [], []
    for _, row in ranked.iterrows():
        line = [str(row["rank"]), str(row["variant"]), str(row["architecture"]), _param(row)]
        marks = [False] * 4
        for h in comparison.headlines:
            line.append(_cell(row, h.column))
            marks.append(row["variant"] in bold[h.column])
        line.append("" if pd.isna(row["score"]) else f"{row['score']:+.0f}")
        marks.append(False)
        cells.append(line)
        marks_all.append(marks)
    return header, cells, marks_all


def reference_rows(results: Results) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the reference SAEs' values (listed apart, not ranked)."""
    comparison = results.comparison
    header = ["reference SAE", "architecture", "parameter"]
    header += [f"{h.label} {h.arrow}" for h in comparison.headlines]
    cells = []
    for _, row in results.references.iterrows():
        line = [str(row["variant"]), str(row["architecture"]), _param(row)]
        cells.append(line + [_cell(row, h.column) for h in comparison.headlines])
    return header, cells


def _test_cell(r) -> str:
    """Δ ± half-width (verdict, n, adjusted p) of one versus or matched row."""
    text = f"{float(r['difference']):+.3f}"
    if not pd.isna(r["ci_low"]):
        text += f" ± {(float(r['ci_high']) - float(r['ci_low'])) / 2:.3f}"
    detail = [str(r["verdict"]), f"n={int(r['n'])}"]
    if not pd.isna(r.get("p_adjusted", math.nan)):
        detail.append(f"p={_p(r['p_adjusted'])}")
    return f"{text} ({', '.join(detail)})"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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
            line.append(_test_cell(r))
        rows.append(line)
    notes = [
        MATCHED_WHY,
        "The frontier is a monotone (isotonic) fit of each seed's reference values in L0 order, "
        "interpolated in log L0: not the upper envelope of the points, which noise lifts. "
        "Δ = variant − frontier at the variant's L0, signed so that + is better (↓ metrics: "
        "frontier − variant), per seed against that seed's frontier, ± the half-width of its "
        "95% t-interval over seeds; *above* / *below the frontier* when the adjusted p (p) of "
        "the run's family is below 0.05, *within noise* otherwise; one seed: the direction "
        "without a noise estimate. A variant whose L0 is outside the reference SAEs' L0 range "
        "gets *outside the reference range*, never an extrapolated verdict.",
        f"Reference SAEs (`reference_frontier`): {', '.join(comparison.reference)}.",
    ]
    notes += [f"No frontier for {p}." for p in problems]
    gaps = table[table.get("unpaired_seeds", pd.Series(dtype=str)).fillna("") != ""]
    for _, r in gaps.drop_duplicates(["variant", "eval_type", "unpaired_seeds"]).iterrows():
        notes.append(
            f"{r['variant']}, {r['eval_type']}: seeds left out of the matched difference: "
            f"{r['unpaired_seeds']}."
        )
    return header, rows, notes


def versus_rows(results: Results, references: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the versus-baseline table: Δ ± half-width (verdict) per metric; the
    reference SAEs' rows (descriptive) with `references`."""
    comparison, table = results.comparison, results.versus
    headlines = [h for h in comparison.headlines if h.column != L0]
    header = ["variant", "baseline"] + [f"Δ {h.label} {h.arrow}" for h in headlines]
    rows = []
    apart = set(results.references["variant"])
    order = [
        v
        for v in comparison.table["variant"]
        if v in set(table.get("variant", [])) and (v in apart) == references
    ]
    for variant in order:
        mine = table[table["variant"] == variant]
        line = [variant, str(mine["baseline"].iloc[0])]
        for h in headlines:
            match = mine[(mine["eval_type"] == h.eval_type) & (mine["metric"] == h.key)]
            if match.empty or pd.isna(match["difference"].iloc[0]):
                line.append(MISSING)
                continue
            line.append(_test_cell(match.iloc[0]))
        rows.append(line)
    return header, rows


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
    lines += [f"- {note}" for note in notes.summary_notes(results)]
    r_header, r_rows = reference_rows(results)
    if r_rows:
        lines += ["", "## Reference SAEs (the frontier's points; listed apart, not ranked)", ""]
        lines += _md_table(r_header, r_rows)
    v_header, v_rows = versus_rows(results)
    if v_rows:
        lines += ["", "## Versus the baseline point (paired by seed, not matched in L0)", ""]
        lines += _md_table(v_header, v_rows)
        lines += [f"- {note}" for note in notes.versus_notes(results)]
    d_header, d_rows = versus_rows(results, references=True)
    if d_rows:
        lines += ["", "## Reference SAEs versus the baseline (descriptive, not corrected)", ""]
        lines += _md_table(d_header, d_rows)
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


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
    lines += [_rst_note(note) for note in notes.summary_notes(results)]
    r_header, r_rows = reference_rows(results)
    if r_rows:
        title = "Reference SAEs (the frontier's points; listed apart, not ranked)"
        lines += [""] + _rst_table(title, r_header, r_rows)
    v_header, v_rows = versus_rows(results)
    if v_rows:
        lines += [""] + _rst_table(
            "Versus the baseline point (paired by seed, not matched in L0)", v_header, v_rows
        )
        lines += [_rst_note(note) for note in notes.versus_notes(results)]
    d_header, d_rows = versus_rows(results, references=True)
    if d_rows:
        title = "Reference SAEs versus the baseline (descriptive, not corrected)"
        lines += [""] + _rst_table(title, d_header, d_rows)
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
