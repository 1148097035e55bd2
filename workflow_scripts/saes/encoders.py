"""IHTP and MP-SAE variants: SAE Bench SAEs that encode with a trained baseline's decoder only.

See docs/variants.md for what each family computes. A variant copies W_enc, b_enc, W_dec, b_dec
from the baseline (W_enc/b_enc only so SAE Bench's weight-based metrics have something to read),
keeps its integer parameter (`k` or `s`) as a buffer so it travels with the state dict, and
encodes by pursuit over W_dec on x - b_dec. Families:
  ihtp          IHTPSAE(k)        support = union of each token's top-k, least squares per token
  mpsae         MPSAE(s)          signed matching pursuit, argmax |c|, exactly s steps
  mpsae_nonneg  MPSAENonNeg(s)    Costa et al. 2025 / SAE Lens reading: argmax relu(c), codes >= 0
"""

import torch
from sae_bench.custom_saes.base_sae import BaseSAE

from workflow_scripts.saes import pursuit


class _DecoderPursuitSAE(BaseSAE):
    """Common part: the parameter buffer, the architecture label, decode and forward."""

    architecture: str = ""
    param_name: str = ""

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        param: int,
        model_name: str,
        hook_layer: int,
        device: torch.device,
        dtype: torch.dtype,
        hook_name: str | None = None,
    ):
        if isinstance(param, bool) or not isinstance(param, int) or param <= 0:
            raise ValueError(
                f"{type(self).__name__}: {self.param_name} must be a positive int, got {param!r}"
            )
        super().__init__(d_in, d_sae, model_name, hook_layer, device, dtype, hook_name)
        self.register_buffer(self.param_name, torch.tensor(param, dtype=torch.int64, device=device))
        self.cfg.architecture = self.architecture

    @property
    def param(self) -> int:
        return int(getattr(self, self.param_name))

    def _codes_dtype(self, x: torch.Tensor) -> torch.dtype:
        # like ReluSAE: (x - b_dec) promotes, so a bf16 input to an fp32 SAE gives fp32 codes
        return torch.promote_types(x.dtype, self.W_dec.dtype)

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        # centre in the compute dtype (fp32, or fp64 if either side is fp64), not in bf16
        dt = torch.promote_types(pursuit.compute_dtype(x), pursuit.compute_dtype(self.W_dec))
        return x.to(dt) - self.b_dec.to(dt)

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        return feature_acts @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class MPSAE(_DecoderPursuitSAE):
    """Signed matching pursuit with exactly `s` steps (reference reading of MP-SAE)."""

    architecture = "mpsae"
    param_name = "s"
    nonneg = False

    def __init__(self, d_in, d_sae, s, model_name, hook_layer, device, dtype, hook_name=None):
        super().__init__(d_in, d_sae, s, model_name, hook_layer, device, dtype, hook_name)
        self._gram_key = None
        self._gram = None  # not a buffer: derived from W_dec, never saved

    def gram(self) -> torch.Tensor | None:
        """W_dec W_dec^T in float32 (d_sae^2 floats), cached until W_dec changes (in-place edits
        bump its version counter; load_state_dict and .to() do too or swap the tensor); None when
        it does not fit pursuit.GRAM_BUDGET_BYTES (wide SAEs: then the bounded-memory path)."""
        W = self.W_dec
        if not pursuit.gram_fits(W.shape[0], torch.float32):
            return None
        key = (W.data_ptr(), W._version, W.device, W.dtype)
        if self._gram_key != key:
            self._gram = pursuit.decoder_gram(W.detach(), torch.float32)
            self._gram_key = key
        return self._gram

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, d_in) or (N, d_in) -> codes (..., d_sae); each token independently."""
        xc = self._centre(x)
        z = pursuit.matching_pursuit(
            xc, self.W_dec, self.param, nonneg=self.nonneg, gram=self.gram()
        )
        return z.to(self._codes_dtype(x))


class MPSAENonNeg(MPSAE):
    """Non-negative matching pursuit (argmax relu(c), codes >= 0) as in Costa et al. 2025."""

    architecture = "mpsae_nonneg"
    nonneg = True


class IHTPSAE(_DecoderPursuitSAE):
    """Instance hard thresholding pursuit: per-sequence support from each token's top-k."""

    architecture = "ihtp"
    param_name = "k"

    def __init__(self, d_in, d_sae, k, model_name, hook_layer, device, dtype, hook_name=None):
        super().__init__(d_in, d_sae, k, model_name, hook_layer, device, dtype, hook_name)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, d_in), B sequences, or (N, d_in) taken as ONE sequence of N tokens (so
        forward on a flattened single sequence equals encode on it, as BaseSAE.test_sae checks).
        Flattening several sequences into (N, d_in) therefore changes the support."""
        xc = self._centre(x)
        z = pursuit.ihtp(xc, self.W_dec, self.param)
        return z.to(self._codes_dtype(x))
