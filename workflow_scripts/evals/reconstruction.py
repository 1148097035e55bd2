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
        self.tokens += int(x.shape[0])
        self.sum_x += x.sum(0).cpu()
        self.sum_sq_x += float(x.pow(2).sum())
        self.sum_sq_resid += float((x - x_hat).pow(2).sum())
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
