"""The one place that decides how the SAE of a folder `results/saes/{variant}/` is loaded; the
derive and evaluate steps both ask it.

A folder holds either weights (`sae.safetensors` + `config.json`, read by sae_folder) or a
reference that SAE Lens resolves (`config.json` alone, architecture "sae_lens"): a release's SAE
(`{"release", "sae_id"}`, loaded as SAE Bench loads it) or a local SAE Lens folder (`{"path"}`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE

from workflow_scripts.saes import sae_folder, saelens


def load(folder: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """The SAE of `folder` on `device` in `dtype`: an SAE Bench SAE for a folder with weights, an
    SAE Lens SAE (decoder norms folded) for a published or local SAE Lens one.

    Raises FileNotFoundError / ValueError naming the file for a broken folder, and what
    saelens.load raises (NotCachedError, CheckpointError) for a release."""
    source = sae_folder.saelens_source(sae_folder.read_config(folder))
    if source is None:
        return sae_folder.load_sae(folder, device=device, dtype=dtype)
    if "path" in source:
        return saelens.load_local(source["path"], str(device)).to(dtype=dtype)
    return saelens.load(source["release"], source["sae_id"], str(device))[0].to(dtype=dtype)


def load_dictionary(folder: str | Path) -> BaseSAE:
    """The baseline's dictionary that derived variants reuse, as an SAE Bench SAE on the CPU:
    its own SAE, or an SAE Lens SAE's W_dec/b_dec (unit-norm rows, raw inputs: checked)."""
    sae = load(folder)
    if sae_folder.saelens_source(sae_folder.read_config(folder)):
        return saelens.dictionary_of(sae)
    return sae


def load_for_eval(folder: str | Path, device: str, dtype: torch.dtype, offline: bool):
    """(sae or None, (release, sae_id) or None) for an evaluation job.

    A release's SAE is handed to SAE Bench as its `(release, sae_id)` strings, as SAE Bench's
    runner does, so its JSON carries the real ids: no SAE object then, but offline it is loaded
    once here so that a cache miss fails now, naming the release, not inside SAE Bench's eval."""
    published = sae_folder.published_ids(sae_folder.read_config(folder))
    if published is None:
        return load(folder, device, dtype), None
    if offline:
        saelens.load(*published, device="cpu")
    return None, published
