"""An encoder family defined outside the project: per-token top-k decoder correlations.

Each token keeps the k latents whose decoder rows correlate most (in absolute value) with the
centred input, with those correlations as codes (signed). It is one step of a k-atom pursuit
without the orthogonalisation: simple, but a real encoder over the baseline's dictionary.

Use it with (paths relative to where Snakemake runs, or absolute):

    encoder_families:
      topk_corr:
        class: docs/examples/topk_correlation.py:TopKCorrelationSAE
        param_name: k
        values: [8, 16]

The contract it follows is in docs/encoder-families.md.
"""

import torch
from sae_bench.custom_saes.base_sae import BaseSAE


class TopKCorrelationSAE(BaseSAE):
    architecture = "topk_corr"  # its label in tables and plots
    param_name = "k"  # its one integer parameter, kept as a buffer of that name

    def __init__(self, d_in, d_sae, k, model_name, hook_layer, device, dtype, hook_name=None):
        super().__init__(d_in, d_sae, model_name, hook_layer, device, dtype, hook_name)
        self.register_buffer("k", torch.tensor(k, dtype=torch.int64, device=device))
        self.cfg.architecture = self.architecture

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., d_in) -> codes (..., d_sae), at most k non-zero per token."""
        c = (x.to(self.W_dec.dtype) - self.b_dec) @ self.W_dec.T  # (..., d_sae)
        top = c.abs().topk(int(self.k), dim=-1).indices
        return torch.zeros_like(c).scatter(-1, top, c.gather(-1, top))

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        return feature_acts @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
