"""The verdict tables of a run: every variant against its baseline (`versus_baseline.csv`) and
against the reference frontier at its L0 (`matched_l0.csv`), each row a test in the run's family
(multiplicity.py), with its p-value, adjusted p-value and verdict.

Per seed-dependent metric the noise is estimated once from every SAE of the run (significance.py:
a two-way model, or per-pair tests where the noise differs across SAEs); core's metrics are
measured once per SAE (no seed noise): with the per-batch records of core's jobs, a paired
bootstrap over evaluation batches (core_noise.py) gives their intervals and p-values, which cover
the sampling of the evaluation tokens, not training runs; without them, "no noise estimate".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workflow_scripts.results import core_noise, frontier, multiplicity, replicates, significance

VERSUS_COLUMNS = ["variant", "baseline", "eval_type", "metric", "family", "n", "difference"]
VERSUS_COLUMNS += ["std", "ci_low", "ci_high", "p_value", "p_adjusted", "method", "verdict"]
VERSUS_COLUMNS += ["seeds", "unpaired_seeds"]


@dataclass
class Metric:
    """One headline metric as the verdicts need it."""

    eval_type: str
    key: str
    higher_is_better: bool
    column: str = ""

    def __post_init__(self):
        self.column = self.column or f"{self.eval_type}.{self.key}"


@dataclass
class Settings:
    """`statistics` config section, and what the family is made of."""

    correction: str = "holm"
    pooled_noise: bool = True
    families: dict[str, str] = field(default_factory=dict)  # variant id -> variant-table family
    ranked_columns: list[str] = field(default_factory=list)


def noise_models(
    long: pd.DataFrame, metrics: list[Metric], variants: list[str], pooled: bool = True
) -> dict[str, significance.NoiseModel]:
    """Per metric column, its noise model over every SAE of the run."""
    tables = by_seed_tables(long, metrics, variants)
    return {m.column: significance.fit(tables[m.column], pooled) for m in metrics}


def by_seed_tables(long, metrics, variants) -> dict[str, pd.DataFrame]:
    """Per metric column, its seeds x variants values (NaN where a pair is missing), from one
    pivot of the long table."""
    wide = long.pivot_table(
        index="seed", columns=["eval_type", "metric", "variant"], values="value", aggfunc="first"
    )
    tables = {}
    for m in metrics:
        try:
            part = wide[(m.eval_type, m.key)]
        except KeyError:
            part = pd.DataFrame(index=wide.index)
        tables[m.column] = part.reindex(columns=variants)
    return tables


def versus_baseline(
    long: pd.DataFrame,
    baseline_of: dict[str, str],
    metrics: list[Metric],
    settings: Settings,
    models: dict[str, significance.NoiseModel],
    shared: set[tuple[str, str]] = frozenset(),
) -> pd.DataFrame:
    """Per variant (other than its baseline) and metric: variant − baseline (raw sign), its 95%
    interval, p-value, family and method (`verdict` filled in by `finish`). No row for the
    (eval_type, variant) pairs in `shared`: their value is the baseline's by construction."""
    variants = list(dict.fromkeys([*baseline_of, *baseline_of.values()]))
    tables = by_seed_tables(long, metrics, variants)
    rows = []
    for metric in metrics:
        table = tables[metric.column]
        seeds = list(table.index)
        values = {v: table[v].to_numpy(dtype="float64") for v in variants}
        model = models.get(metric.column) or significance.NoiseModel(False)
        for variant, baseline in baseline_of.items():
            if variant == baseline or (metric.eval_type, variant) in shared:
                continue
            mine, theirs = values[variant], values[baseline]
            if np.isnan(mine).all() and np.isnan(theirs).all():
                continue
            row = {"variant": variant, "baseline": baseline, "eval_type": metric.eval_type}
            row["metric"] = metric.key
            row["family"] = multiplicity.family_of(
                settings.families.get(variant, ""), metric.column, settings.ranked_columns
            )
            row.update(significance.compare_arrays(model, variant, baseline, seeds, mine, theirs))
            row["_better"] = metric.higher_is_better
            rows.append(row)
    return pd.DataFrame(rows, columns=[*VERSUS_COLUMNS, "df", "_better"])


def matched_l0(
    table: pd.DataFrame,
    long: pd.DataFrame,
    metrics: list[Metric],
    reference: list[str],
    settings: Settings,
) -> tuple[pd.DataFrame, list[str]]:
    """frontier.matched_table with each row's family (`verdict` filled in by `finish`)."""
    triples = [(m.eval_type, m.key, m.higher_is_better) for m in metrics]
    matched, problems = frontier.matched_table(table, long, triples, reference)
    columns = [m.column for m in metrics]
    matched.insert(
        matched.columns.get_loc("verdict"),
        "family",
        [
            multiplicity.family_of(
                settings.families.get(v, ""), f"{e}.{k}", settings.ranked_columns
            )
            if f"{e}.{k}" in columns
            else multiplicity.DESCRIPTIVE
            for v, e, k in zip(matched["variant"], matched["eval_type"], matched["metric"])
        ],
    )
    return matched, problems


def finish(versus: pd.DataFrame, matched: pd.DataFrame, correction: str):
    """Adjust the family's p-values together and write every row's verdict."""
    versus, matched = multiplicity.apply([versus, matched], correction)
    versus["verdict"] = [_versus_verdict(r) for _, r in versus.iterrows()]
    matched["verdict"] = [
        r["verdict"]
        if isinstance(r["verdict"], str)
        else _descriptive(frontier.verdict(r["difference"], r["p_adjusted"], r["n"]), r)
        for _, r in matched.iterrows()
    ]
    versus = versus.drop(columns=["_better"])
    matched.insert(matched.columns.get_loc("verdict"), "p_adjusted", matched.pop("p_adjusted"))
    return versus[[c for c in VERSUS_COLUMNS + ["df"] if c in versus]], matched


def _versus_verdict(row) -> str:
    signed = row["difference"] if row["_better"] else -row["difference"]
    claim = multiplicity.verdict(
        signed,
        row["p_adjusted"],
        replicates.BETTER,
        replicates.WORSE,
        replicates.WITHIN_NOISE,
        replicates.NO_ESTIMATE,
    )
    return _descriptive(claim, row)


def _descriptive(claim: str, row) -> str:
    """A descriptive row names the direction it sees, as no claim: never plain better/worse."""
    if row["family"] != multiplicity.DESCRIPTIVE:
        return claim
    if claim in (replicates.BETTER, replicates.WORSE, frontier.ABOVE, frontier.BELOW):
        return f"{claim} (descriptive, uncorrected)"
    return claim


def detectable(
    models: dict[str, significance.NoiseModel],
    metrics: list[Metric],
    n_variants: int,
    seeds: list[int],
    family_size: int,
) -> list[tuple[Metric, int, float]]:
    """(metric, seeds, smallest difference detected at 80% power) for the run's seed count and
    two more, from each pooled model's residual sd, at the strictest level of the family's
    correction (alpha / family size: Holm's first step)."""
    found = []
    alpha = 0.05 / max(family_size, 1)
    for metric in metrics:
        model = models.get(metric.column)
        if model is None or not model.pooled:
            continue
        for n in dict.fromkeys([len(seeds), len(seeds) + 2]):
            df = significance.pooled_df(n_variants, n)
            found.append((metric, n, significance.detectable_difference(model.sigma, n, df, alpha)))
    return [f for f in found if not math.isnan(f[2])]


# core headline metric key -> its function of the per-batch record (core_noise.py)
CORE_METRICS = {
    "workflow_reconstruction.explained_variance_centered": core_noise.explained_variance,
    "model_performance_preservation.ce_loss_score": core_noise.ce_loss_score,
}
BOOTSTRAP = "paired bootstrap over evaluation batches"
# fewer batches than this give no noise estimate: a percentile interval over a handful of
# resampling units is too narrow (as a bootstrap over 3 seeds would be, replicates.py)
MIN_BATCHES = 20


def enough_batches(batches: dict, variants) -> bool:
    """Whether every one of `variants` has per-batch records of at least MIN_BATCHES batches."""
    return all(v in batches and len(batches[v]["tokens"]) >= MIN_BATCHES for v in variants)


def core_metric(column: str):
    """The core_noise function of a core headline column (`core.<key>`), else None."""
    eval_type, _, key = column.partition(".")
    return CORE_METRICS.get(key) if eval_type == "core" else None


def _bootstrap_row(row: dict, result: dict) -> dict:
    return {
        **row,
        "difference": result["difference"],
        "ci_low": result["ci_low"],
        "ci_high": result["ci_high"],
        "p_value": result["p_value"],
        "n": result["n_batches"],
        "method": BOOTSTRAP,
    }


def _too_few(row: dict, n_batches: int) -> dict:
    """A core row whose records have too few batches for a bootstrap: no noise estimate."""
    return {
        **row,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "n": n_batches,
        "method": f"no bootstrap: {n_batches} evaluation batches, fewer than {MIN_BATCHES}",
    }


def core_versus(versus: pd.DataFrame, batches: dict) -> pd.DataFrame:
    """Core rows of the versus table with a paired bootstrap over batches where both SAEs have
    per-batch records (variant − baseline, raw sign); the others unchanged."""
    rows = []
    for _, r in versus.iterrows():
        metric = core_metric(f"{r['eval_type']}.{r['metric']}")
        row = r.to_dict()
        if metric and r["variant"] in batches and r["baseline"] in batches:
            if not enough_batches(batches, [r["variant"], r["baseline"]]):
                rows.append(_too_few(row, len(batches[r["variant"]]["tokens"])))
                continue
            result = core_noise.paired_bootstrap(
                batches[r["variant"]], batches[r["baseline"]], metric
            )
            row = _bootstrap_row(row, result)
            row.update(std=math.nan, df=math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=versus.columns)


def _frontier_at(l0s, values, higher_is_better, l0) -> float:
    return frontier.Frontier.from_points(l0s, values, higher_is_better).at(l0)


def core_matched(matched: pd.DataFrame, table: pd.DataFrame, batches: dict) -> pd.DataFrame:
    """Core rows of the matched-L0 table with a paired bootstrap over batches (the same batch
    indices for the variant and every reference SAE, the frontier refitted per resample) where
    all of them have per-batch records; the others unchanged."""
    l0 = pd.to_numeric(table.set_index("variant").get("core.sparsity.l0"), errors="coerce")
    rows = []
    for _, r in matched.iterrows():
        metric = core_metric(f"{r['eval_type']}.{r['metric']}")
        row = r.to_dict()
        refs = [x for x in str(r["reference"]).split(";") if x]
        usable = metric and not isinstance(r["verdict"], str) and r["variant"] in batches
        if usable and refs and all(x in batches for x in refs):
            if not enough_batches(batches, [r["variant"], *refs]):
                rows.append(_too_few(row, len(batches[r["variant"]]["tokens"])))
                continue
            result = core_noise.bootstrap_against_frontier(
                batches[r["variant"]],
                float(r["l0"]),
                {x: batches[x] for x in refs},
                {x: float(l0[x]) for x in refs},
                metric,
                _frontier_at,
                higher_is_better=True,  # both core headline metrics
            )
            row = _bootstrap_row(row, result)
            # value and frontier value from the same batch sums as the difference, so that they
            # add up (SAE Bench's own CE score rounds its means in the model's dtype: ~1e-6)
            row["value"] = float(metric(batches[r["variant"]]))
            row["frontier_value"] = row["value"] - result["difference"]
        rows.append(row)
    return pd.DataFrame(rows, columns=matched.columns)


def bootstrap_wins(column: str, batches: dict, variants, headline) -> pd.DataFrame:
    """wins.loc[a, b]: the paired bootstrap interval of a − b (in the better direction) over
    core's batches excludes 0."""
    metric = core_metric(column)
    sign = 1.0 if headline.higher_is_better else -1.0
    wins = pd.DataFrame(False, index=variants, columns=variants)
    names = list(variants)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            result = core_noise.paired_bootstrap(
                batches[a], batches[b], metric, sign=sign, n_resamples=999
            )
            wins.loc[a, b] = result["ci_low"] > 0
            wins.loc[b, a] = result["ci_high"] < 0
    return wins
