"""A derived variant: a trained baseline's dictionary with another encoder (docs/variants.md)."""

from __future__ import annotations

import torch
from sae_bench.custom_saes.base_sae import BaseSAE

from workflow_scripts.saes import architectures


@torch.no_grad()
def derive_variant(family: str, param: int, base: BaseSAE, cls: type | None = None) -> BaseSAE:
    """Build a variant of `family` with parameter `param` from a trained baseline SAE.

    `cls` is the family's class (saes/family_classes.py, for a family named in the config);
    without it, the built-in family's (plan/families.BUILTIN, registered in saes/architectures).
    Copies W_enc, b_enc, W_dec, b_dec (same device and dtype as the base) and keeps the base's
    model_name, hook_layer and hook_name. The decoder rows should be unit norm (docs/variants.md
    assumes it; SAE Bench loaders normalise them).
    """
    if cls is None:
        cls = architectures.family_class(family)
    sae = cls(
        base.cfg.d_in,
        base.cfg.d_sae,
        param,
        model_name=base.cfg.model_name,
        hook_layer=base.cfg.hook_layer,
        device=base.W_dec.device,
        dtype=base.W_dec.dtype,
        hook_name=base.cfg.hook_name,
    )
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        getattr(sae, name).data.copy_(getattr(base, name).data)
    return sae
