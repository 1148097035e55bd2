"""Noise estimates for SAE Bench's core metrics: a paired bootstrap over evaluation batches.

What the intervals cover: the sampling of the evaluation tokens, for the given trained SAEs. SAE
Bench's core eval reads its corpus in a fixed shuffled order (core/main.py:1088,
`shuffle_input_dataset(seed=42)`) and rewinds it between its two passes (:192), so every SAE
evaluated with the same core config and model sees the same batches. An interval here says how far
a difference between these SAEs could move had another evaluation set of the same size been drawn
from the same corpus. It does NOT cover training-run variability (another seed, initialisation or
data order of the SAEs' training: that needs trained replicates, results/replicates.py), nor the
noise of the L0 axis (L0s are taken as given).

Input is a record's `core_batches` (steps/evaluate.py `write_workflow_record`), per batch b:
`tokens` n_b, `sse` Σ‖x − x̂‖², `sst` Σ‖x − x̄‖² (x̄ the run's mean, held fixed under resampling:
evals/reconstruction.py `batch_record`), and `ce`: {`tokens`, `without_sae`, `with_sae`,
`with_ablation`}, per-batch sums of SAE Bench's per-token CE losses. The metrics, from batch sums:

- explained variance (centered) = 1 − Σ_b sse_b / Σ_b sst_b (the workflow's
  explained_variance_centered);
- ce_loss_score = (Σ_b abl_b − Σ_b sae_b) / (Σ_b abl_b − Σ_b clean_b): SAE Bench's ratio of token
  means (core/main.py:422, :429-432) with the token counts cancelled.

Batches are resampled with replacement, the same indices for every SAE compared (paired: what
both SAEs share, e.g. batches of harder text, cancels in the difference); batches, not tokens, are
the unit because tokens of a context are correlated. Percentile interval and bootstrap p-value:
Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13 and 16; Davison & Hinkley
(1997), Bootstrap Methods and their Application, §5.3.1 and ch. 4 (the Monte Carlo p-value
(1 + #)/(R + 1), never 0; past the resampled range, the normal tail of the same distribution,
§16.4 of Efron & Tibshirani, so that a family-wise correction can reach it).

Why the percentile method and not BCa (`scipy.stats.bootstrap(method="percentile")`): the p-value
is read from the same bootstrap distribution, so the interval and the test agree (0 outside the
95% interval exactly when p < 0.05, up to the +1 correction and the interpolation of quantiles);
BCa is undefined when the bootstrap distribution is degenerate (an SAE against itself: scipy
returns NaN) and assumes a smooth statistic, which a frontier interpolated between reference SAEs
need not be; and with hundreds to thousands of batches these ratio statistics are close to
normal, where the two intervals' endpoints differ by a relative O(1/√n) of their width. The
coverage is checked by simulation (tests/unit/test_core_noise.py: ~94.4% at 300 batches).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RTOL = 1e-9  # identical tokens give identical sst and clean/ablation losses (x ignores the SAE)


def _column(batches: Mapping, *keys: str) -> np.ndarray:
    value = batches
    for key in keys:
        value = value[key]
    return np.asarray(value, dtype=np.float64)


def _sums(values: np.ndarray, index) -> np.ndarray | float:
    return values.sum() if index is None else values[np.asarray(index)].sum(axis=-1)


def _scalar(value):
    return float(value) if np.ndim(value) == 0 else value


def explained_variance(batches: Mapping, index=None):
    """1 − Σ sse_b / Σ sst_b over all batches (`index` None: a float, the recorded
    explained_variance_centered up to float64 rounding), or over the batch indices `index`
    (shape (..., n): an array of shape (...), one value per resample)."""
    sse, sst = _column(batches, "sse"), _column(batches, "sst")
    return _scalar(1.0 - _sums(sse, index) / _sums(sst, index))


def ce_loss_score(batches: Mapping, index=None):
    """SAE Bench's ce_loss_score, (Σ abl − Σ sae) / (Σ abl − Σ clean) of the per-batch loss sums
    in `batches["ce"]`, over all batches or the batch indices `index` (as `explained_variance`).
    On all batches it is SAE Bench's value up to the rounding of its means in the model's dtype
    (float32: a few 1e-7 when the clean-to-ablated gap is a nat or more; a bfloat16 model's means
    are rounded to ~0.4%, so SAE Bench's score is then the coarser of the two)."""
    clean = _sums(_column(batches, "ce", "without_sae"), index)
    sae = _sums(_column(batches, "ce", "with_sae"), index)
    ablation = _sums(_column(batches, "ce", "with_ablation"), index)
    return _scalar((ablation - sae) / (ablation - clean))


# per metric: the per-batch columns that do not depend on the SAE (equal for the same tokens)
_TOKEN_COLUMNS = {
    explained_variance: [("tokens",), ("sst",)],
    ce_loss_score: [("ce", "tokens"), ("ce", "without_sae"), ("ce", "with_ablation")],
}


def check_same_tokens(
    batches_a: Mapping, batches_b: Mapping, metric: Callable, rtol: float = RTOL
) -> int:
    """The number of batches; ValueError naming the problem when the two records did not see the
    same tokens: other batch counts, or per-batch token counts or SAE-independent sums (sst; the
    clean and zero-ablation CE losses) that differ beyond `rtol` relative. A metric of one's own
    is checked on the columns of both built-in metrics that the two records hold."""
    columns = _TOKEN_COLUMNS.get(metric)
    columns = columns or _TOKEN_COLUMNS[explained_variance] + _TOKEN_COLUMNS[ce_loss_score]
    n = None
    for keys in columns:
        try:
            a, b = _column(batches_a, *keys), _column(batches_b, *keys)
        except KeyError:
            if metric in _TOKEN_COLUMNS:
                raise
            continue
        name = ".".join(keys)
        if len(a) != len(b):
            raise ValueError(
                f"the records did not see the same tokens: {len(a)} vs {len(b)} batches ({name})"
            )
        if not len(a):
            raise ValueError(f"the records hold no batches ({name})")
        off = np.abs(a - b) > rtol * np.maximum(np.abs(a), np.abs(b))
        if off.any():
            first = int(np.argmax(off))
            raise ValueError(
                f"the records did not see the same tokens: per-batch {name} differs beyond "
                f"{rtol:g} relative in {int(off.sum())} of {len(a)} batches (first: batch "
                f"{first}, {a[first]!r} vs {b[first]!r})"
            )
        n = len(a) if n is None else n
    if n is None:
        raise ValueError("the records hold none of the per-batch columns to compare")
    return n


def _bootstrap(statistic: Callable, n: int, n_resamples: int, seed: int) -> dict:
    """Percentile interval and two-sided p-value of `statistic(index)` (vectorized over
    resamples: index (..., n) -> (...)) under resampling of the n batches."""
    difference = float(statistic(np.arange(n)))
    result = stats.bootstrap(
        (np.arange(n),),
        lambda index, axis=-1: statistic(index),
        n_resamples=n_resamples,
        vectorized=True,
        batch=max(1, 4_000_000 // n),  # resamples per call: index arrays of <= 32 MB
        paired=True,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    resampled = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    if np.all(resampled == resampled[0]):  # e.g. an SAE against itself: every resample equal
        low = high = float(resampled[0])
    else:
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    below, above = np.count_nonzero(resampled <= 0), np.count_nonzero(resampled >= 0)
    share = (1 + min(below, above)) / (len(resampled) + 1)
    p_value = min(1.0, 2 * share)
    # The Monte Carlo p-value cannot go below 2 / (R + 1) (0.001 at R = 2000), and the run's
    # family multiplies the smallest p by its size (Holm): over 84 tests no core claim could ever
    # be made. Past the resampled range, the normal approximation of the same bootstrap
    # distribution (its standard error) gives the tail: Efron & Tibshirani (1993) §16.4.
    se = float(resampled.std(ddof=1)) if len(resampled) > 1 else 0.0
    if min(below, above) == 0:
        p_value = (
            1.0
            if difference == 0
            else (float(2 * stats.norm.sf(abs(difference) / se)) if se > 0 else 0.0)
        )
    return {
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "n_batches": n,
    }


def paired_bootstrap(
    batches_a: Mapping,
    batches_b: Mapping,
    metric: Callable,
    sign: int = +1,
    n_resamples: int = 2000,
    seed: int = 0,
    rtol: float = RTOL,
) -> dict:
    """sign · (metric(a) − metric(b)) with its 95% percentile interval and two-sided bootstrap
    p-value, resampling batches (the same indices for both records).

    `metric(batches, index)` is `explained_variance`, `ce_loss_score` or one alike (vectorized
    over `index`'s leading axes); `sign` +1 for a metric where higher is better (the difference is
    then better-is-positive), −1 otherwise. Returns {difference, ci_low, ci_high, p_value,
    n_batches}; raises ValueError when the records did not see the same tokens
    (`check_same_tokens`)."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, not {sign!r}")
    n = check_same_tokens(batches_a, batches_b, metric, rtol)

    def statistic(index):
        return sign * (metric(batches_a, index) - metric(batches_b, index))

    return _bootstrap(statistic, n, n_resamples, seed)


def bootstrap_against_frontier(
    variant_batches: Mapping,
    variant_l0: float,
    reference_batches: Mapping,
    reference_l0: Mapping,
    metric: Callable,
    frontier_at: Callable,
    higher_is_better: bool,
    n_resamples: int = 2000,
    seed: int = 0,
    rtol: float = RTOL,
) -> dict:
    """The variant's distance to the reference SAEs' frontier at its L0, better-is-positive, with
    its 95% percentile interval and two-sided bootstrap p-value.

    Per resample of the batches (the same indices for the variant and every reference): every
    reference's metric, then `frontier_at(reference L0s, reference values, higher_is_better,
    variant_l0)` (the caller's frontier, in the metric's own sign; the L0s are fixed), and the
    difference variant − frontier (frontier − variant when lower is better).
    `reference_batches` and `reference_l0` are keyed alike (by reference id). Returns
    {difference, ci_low, ci_high, p_value, n_batches}; raises ValueError when some record did not
    see the variant's tokens."""
    ids = sorted(reference_batches, key=str)
    if not ids or set(ids) != set(reference_l0):
        raise ValueError(
            "reference_batches and reference_l0 must hold the same, non-empty set of ids "
            f"(got {sorted(map(str, reference_batches))} and {sorted(map(str, reference_l0))})"
        )
    n = None
    for key in ids:
        try:
            n = check_same_tokens(variant_batches, reference_batches[key], metric, rtol)
        except ValueError as error:
            raise ValueError(f"reference {key!r} against the variant: {error}") from None
    l0s = [float(reference_l0[key]) for key in ids]
    direction = 1.0 if higher_is_better else -1.0

    def statistic(index):
        index = np.asarray(index)
        flat = index.reshape(-1, index.shape[-1])
        variant = np.atleast_1d(metric(variant_batches, flat))
        references = np.stack([np.atleast_1d(metric(reference_batches[k], flat)) for k in ids])
        frontier = np.array(
            [
                frontier_at(l0s, references[:, r].tolist(), higher_is_better, float(variant_l0))
                for r in range(flat.shape[0])
            ],
            dtype=np.float64,
        )
        return (direction * (variant - frontier)).reshape(index.shape[:-1])

    return _bootstrap(statistic, n, n_resamples, seed)
