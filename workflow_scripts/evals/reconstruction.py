"""Reconstruction statistics the workflow records beside SAE Bench's core result.

SAE Bench 0.6.0's core eval reports two numbers it calls explained variance, and neither is the
explained variance of the activations (core/main.py ~566-625): `explained_variance` divides by
E‖x‖² − (mean_d E[x_d²])², which is close to the variance about zero, so a predictor of the mean
activation scores near 1 on residual streams with a large mean; `explained_variance_legacy`
averages a per-token ratio against a per-batch variance. Its feature density counts
`codes > 0` (~607), so negative codes of signed SAEs (MPSAE, IHTP) are not counted, while its L0
counts `codes != 0`.

`ReconstructionStats` is fed, batch by batch, the tokens, SAE inputs, codes and reconstructions
of core's own sparsity/variance pass (see `patches.record_core_reconstruction`), so it sees
exactly the tokens SAE Bench evaluates and excludes the special tokens SAE Bench excludes (its
`ignore_tokens`). From them:

- `explained_variance_centered` = 1 − Σ_t ‖x_t − x̂_t‖² / Σ_t ‖x_t − x̄‖², x̄ the mean activation over
  the same tokens (the textbook definition; the one SAE Lens adopted for the same bug, its PR #665);
  a mean predictor scores 0, a perfect reconstruction 1. Sums are accumulated in float64.
- density over |code| > 0: `frac_alive`, `freq_over_1_percent`, `freq_over_10_percent`
  (as SAE Bench's misc_metrics, but counting negative codes), and `frac_negative_codes`, the
  share of active codes that are negative (0 for a ReLU SAE, where both countings agree).

Per batch, for a noise estimate of differences (results/core_noise.py bootstraps over batches):
`ReconstructionStats.batch_record()` gives each batch's token count, Σ‖x − x̂‖² and Σ‖x − x̄‖²,
and `CELossBatches` records, per batch of core's downstream reconstruction pass, what SAE Bench's
`ce_loss_score` is computed from (see its docstring).
"""

from __future__ import annotations

import math


class ReconstructionStats:
    """Running sums over evaluated tokens; `metrics()` turns them into the recorded numbers."""

    def __init__(self, keep_batches: bool = False):
        self.tokens = 0
        self.sum_x = None  # (d_in,) float64
        self.sum_sq_x = 0.0  # Σ‖x‖²
        self.sum_sq_resid = 0.0  # Σ‖x − x̂‖²
        self.active = None  # (d_sae,) tokens where |code| > 0, per latent
        self.active_positive = 0.0
        self.active_negative = 0.0
        self.batches = [] if keep_batches else None  # (tokens, mask) per batch, for tests
        # per batch, in SAE Bench's order (batch_record): n_b, Σ‖x − x̂‖², Σ‖x‖², and Σx, which
        # stays in memory (d_in float64 per batch, CPU) and is not recorded
        self.batch_tokens: list[int] = []
        self.batch_sse: list[float] = []
        self.batch_sum_sq_x: list[float] = []
        self.batch_sum_x: list = []

    def add(self, tokens, x, codes, x_hat, ignore_tokens) -> None:
        """One batch: tokens (B, L) int; x, x_hat (B, L, d_in); codes (B, L, d_sae).

        Tokens whose id is in `ignore_tokens` (None entries skipped) are left out, as SAE Bench's
        core masks them in this pass."""
        import torch

        ignore = [t for t in ignore_tokens if t is not None]
        mask = torch.ones_like(tokens, dtype=torch.bool)
        if ignore:
            mask = ~torch.isin(tokens, torch.tensor(ignore, device=tokens.device))
        mask = mask.to(x.device).reshape(-1)
        x = x.detach().reshape(-1, x.shape[-1])[mask].double()
        x_hat = x_hat.detach().to(x.device).reshape(-1, x_hat.shape[-1])[mask].double()
        codes = codes.detach().reshape(-1, codes.shape[-1])[mask.to(codes.device)]
        if self.sum_x is None:
            self.sum_x = torch.zeros(x.shape[-1], dtype=torch.float64)
            self.active = torch.zeros(codes.shape[-1], dtype=torch.float64)
        n, sum_x = int(x.shape[0]), x.sum(0).cpu()
        sum_sq_x, sse = float(x.pow(2).sum()), float((x - x_hat).pow(2).sum())
        self.tokens += n
        self.sum_x += sum_x
        self.sum_sq_x += sum_sq_x
        self.sum_sq_resid += sse
        self.batch_tokens.append(n)
        self.batch_sse.append(sse)
        self.batch_sum_sq_x.append(sum_sq_x)
        self.batch_sum_x.append(sum_x)
        self.active += (codes != 0).sum(0).double().cpu()
        self.active_positive += float((codes > 0).sum())
        self.active_negative += float((codes < 0).sum())
        if self.batches is not None:
            self.batches.append((tokens.cpu(), mask.cpu().reshape(tokens.shape)))

    def metrics(self) -> dict[str, dict[str, float]]:
        """`{group: {name: value}}` in the layout of SAE Bench's eval_result_metrics."""
        if not self.tokens:
            raise ValueError("no tokens were recorded: SAE Bench's core pass did not run")
        mean = self.sum_x / self.tokens
        total = self.sum_sq_x - self.tokens * float(mean.pow(2).sum())  # Σ‖x − x̄‖²
        density = self.active / self.tokens
        nonzero = self.active_positive + self.active_negative
        return {
            "workflow_reconstruction": {
                "explained_variance_centered": 1.0 - self.sum_sq_resid / total
                if total > 0
                else math.nan,
                "tokens": float(self.tokens),
            },
            "workflow_density_abs": {
                "frac_alive": float((density > 0).double().mean()),
                "freq_over_1_percent": float((density > 0.01).double().mean()),
                "freq_over_10_percent": float((density > 0.1).double().mean()),
                "frac_negative_codes": self.active_negative / nonzero if nonzero else 0.0,
                "l0": float(self.active.sum()) / self.tokens,
            },
        }

    def batch_record(self) -> dict[str, list]:
        """Per batch b: `tokens` n_b, `sse` Σ_t‖x_t − x̂_t‖² and `sst` Σ_t‖x_t − x̄‖² over its
        evaluated tokens, with x̄ the mean over all the run's tokens (that of `metrics()`):
        sst_b = Σ‖x‖²_b − 2 x̄·Σx_b + n_b‖x̄‖². Σ_b sst_b is `metrics()`'s total sum of squares up
        to float64 rounding, so 1 − Σ sse_b / Σ sst_b is its explained_variance_centered. A
        bootstrap over batches (results/core_noise.py) treats x̄ as fixed: it is not re-estimated
        on each resample (re-estimating it would lower a resample's Σ sst by a relative O(1/n),
        n the batches, against sampling noise of O(1/√n): a second-order effect)."""
        import torch

        if not self.tokens:
            raise ValueError("no tokens were recorded: SAE Bench's core pass did not run")
        mean = self.sum_x / self.tokens
        sums = torch.stack(self.batch_sum_x)  # (batches, d_in) float64
        n = torch.tensor(self.batch_tokens, dtype=torch.float64)
        sst = torch.tensor(self.batch_sum_sq_x, dtype=torch.float64)
        sst = sst - 2 * (sums @ mean) + n * float(mean.pow(2).sum())
        return {"tokens": list(self.batch_tokens), "sse": list(self.batch_sse), "sst": sst.tolist()}


# SAE Bench's per-token losses of its downstream reconstruction pass (get_recons_loss, core/main.py
# :783-786) -> the names they are recorded under
CE_LOSSES = {
    "ce_loss_without_sae": "without_sae",
    "ce_loss_with_sae": "with_sae",
    "ce_loss_with_ablation": "with_ablation",
}


class CELossBatches:
    """Per batch of core's downstream reconstruction pass, what its `ce_loss_score` is made of.

    SAE Bench (core/main.py:367-434) keeps, per batch, the per-token CE losses of the model as it
    is, with the SAE spliced in and with the hooked activations zero-ablated (get_recons_loss,
    :654, :752, :760), each masked by its `ignore_tokens` (:404-416: a loss is dropped where the
    *input* token at that position is a special token, the mask cut to the L − 1 predicted
    positions); it then concatenates all batches, takes each loss's mean over tokens (:422) and
    scores (mean_ablation − mean_sae) / (mean_ablation − mean_clean) (:429-432): a ratio of
    token-weighted means, not a mean of per-batch ratios. So each batch is recorded as its number
    of kept positions (`tokens`) and the float64 sums of the three losses over them
    (`without_sae`, `with_sae`, `with_ablation`, nats): Σ over batches of the sums, divided by
    the Σ of `tokens`, are SAE Bench's means (which it takes in the model's dtype). Sums stay on
    the device until `record()`, so recording adds no synchronisation to the pass.
    """

    def __init__(self):
        self.rows: list = []  # per batch: tensor [tokens, without_sae, with_sae, with_ablation]

    def add(self, tokens, losses, ignore_tokens) -> None:
        """One batch: the batch tokens (B, L), the dict `get_recons_loss` returned and the
        ignore_tokens SAE Bench passed it. Without CE losses in it (compute_ce_loss off) nothing
        is recorded."""
        import torch

        if not all(key in losses for key in CE_LOSSES):
            return
        ignore = [t for t in ignore_tokens if t is not None]
        keep = None
        if ignore:
            keep = ~torch.isin(tokens, torch.tensor(ignore, device=tokens.device))
        row = []
        for key in CE_LOSSES:
            value = losses[key].detach().double()
            if keep is None:
                mask = torch.ones_like(value, dtype=torch.bool)
            else:  # as SAE Bench: the mask cut to the losses' L - 1 positions
                mask = (keep if keep.shape[1] == value.shape[1] else keep[:, :-1]).to(value.device)
            if not row:
                row.append(mask.sum().double())
            row.append(torch.where(mask, value, 0.0).sum())
        self.rows.append(torch.stack(row))

    def record(self) -> dict[str, list]:
        """`{"tokens": [...], "without_sae": [...], "with_sae": [...], "with_ablation": [...]}`,
        one entry per batch (tokens as int, the loss sums as float)."""
        import torch

        if not self.rows:
            return {"tokens": [], **{name: [] for name in CE_LOSSES.values()}}
        table = torch.stack(self.rows).cpu()
        record = {"tokens": [int(t) for t in table[:, 0].tolist()]}
        for column, name in enumerate(CE_LOSSES.values(), start=1):
            record[name] = table[:, column].tolist()
        return record
