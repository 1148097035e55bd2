"""Published SAEs (any SAE Lens release, whatever its conversion) loaded the way SAE Bench's own
runner loads them.

SAE Bench evaluates a published SAE when it is handed the strings `(release, sae_id)`: every eval
calls `general_utils.load_and_format_sae` (sae_bench_utils/general_utils.py ~134), which loads it
through `SAE.from_pretrained_with_cfg_and_sparsity` and folds the decoder norms into the encoder
(`fold_W_dec_norm`). The workflow does the same: `load` calls that function, and evaluation jobs
pass the strings, so SAE Bench's result JSON carries the real `sae_lens_release_id` /
`sae_lens_id` and equals what its runner writes.

Files come from the HuggingFace cache: the prefetch step (login node) loads each SAE once, which
downloads exactly the files its SAE Lens loader reads; offline jobs then read them from the cache.
Every `torch.load` on the way is weights-only (`patches.weights_only_loads`).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from huggingface_hub.errors import LocalEntryNotFoundError

from workflow_scripts.evals import patches
from workflow_scripts.hub import PREFETCH_HINT, NotCachedError
from workflow_scripts.saes.dictionary_learning import CheckpointError


def load(release: str, sae_id: str, device: str = "cpu"):
    """(sae, log sparsity or None) of one published SAE, via SAE Bench's `load_and_format_sae`.

    Raises `hub.NotCachedError` naming the release, SAE id and missing file (with the
    prefetch hint) when the hub cannot be reached and the cache lacks a file, and
    `CheckpointError` naming them when a file holds a pickled object.
    """
    # lazy: importing general_utils imports SAE Lens's release directory (seconds)
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    try:
        with patches.weights_only_loads():
            _, sae, sparsity = load_and_format_sae(release, sae_id, device)
    except LocalEntryNotFoundError as error:
        raise NotCachedError(
            f"SAE Lens release {release!r}, SAE {sae_id!r}: not in the HuggingFace cache "
            f"({os.environ.get('HF_HOME', 'HF_HOME unset')}) and the hub is not reachable "
            f"({str(error).strip().splitlines()[0]}); {PREFETCH_HINT}"
        ) from None
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"SAE Lens release {release!r}, SAE {sae_id!r}: a checkpoint file holds a pickled "
            f"object, refusing to unpickle it ({str(error).strip().splitlines()[0]})"
        ) from None
    refuse_unevaluable(sae, f"SAE Lens release {release!r}, SAE {sae_id!r}")
    return sae, sparsity


class NotAnSAEError(ValueError):
    """An SAE Lens object SAE Bench cannot evaluate as an SAE of one hook point."""


def refuse_unevaluable(sae, what: str) -> None:
    """Raise NotAnSAEError naming `what` for a transcoder (SAE Lens's `Transcoder` and its
    subclasses, or any config with an output width `d_out`): it reads one hook and writes
    another, and SAE Bench 0.6.0, which has no transcoder code, would score its output as a
    reconstruction of its input."""
    from sae_lens.saes.transcoder import Transcoder  # lazy: seconds to import

    d_out = getattr(sae.cfg, "d_out", None)
    if isinstance(sae, Transcoder) or d_out is not None:
        architecture = sae.cfg.architecture()
        raise NotAnSAEError(
            f"{what}: SAE Lens loads it as a {type(sae).__name__} ({architecture}, d_in "
            f"{sae.cfg.d_in} -> d_out {d_out}), not an SAE: SAE Bench cannot evaluate "
            "transcoders; remove it from the config (or narrow the pattern that matched it)"
        )


def is_saelens_folder(folder) -> bool:
    """A local folder in SAE Lens's own format (what `SAE.save_model` writes)."""
    return (Path(folder) / "cfg.json").is_file()


def load_local(folder: str, device: str = "cpu"):
    """An SAE Lens folder via `SAE.load_from_disk`, decoder norms folded as `load` does."""
    from sae_lens import SAE  # lazy: seconds to import, only SAE Lens folders need it

    with patches.weights_only_loads():
        sae = SAE.load_from_disk(str(folder), device=device)
    refuse_unevaluable(sae, f"SAE Lens folder {folder}")
    try:  # as SAE Bench's load_and_format_sae (general_utils.py ~146): not every SAE can fold
        sae.fold_W_dec_norm()
    except NotImplementedError:
        print(f"[saelens] {folder}: its architecture cannot fold W_dec norms; kept as is")
    return sae


def dictionary_of(sae):
    """The dictionary of an SAE Lens SAE as an SAE Bench SAE, for deriving encoder families.

    The families need W_dec (unit-norm rows after `fold_W_dec_norm`), b_dec, the shapes and the
    hook; W_enc/b_enc are carried where the architecture has them (zeros otherwise, e.g. Gated).
    """
    from sae_bench.custom_saes.relu_sae import ReluSAE

    described = describe(sae)
    norms = sae.W_dec.detach().float().norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise ValueError(
            f"the SAE Lens baseline on {described['hook_name']} has decoder rows of norm "
            f"{float(norms.min()):.3g}-{float(norms.max()):.3g} after fold_W_dec_norm; the pursuit "
            "encoder families need unit-norm atoms (docs/variants.md): choose another baseline"
        )
    normalize = getattr(sae.cfg, "normalize_activations", "none")
    if normalize not in (None, "none"):
        raise ValueError(
            f"the SAE Lens baseline on {described['hook_name']} normalizes its input activations "
            f"({normalize!r}); the pursuit encoder families read raw activations: choose "
            "another baseline"
        )
    base = ReluSAE(
        described["d_in"],
        described["d_sae"],
        described["model_name"],
        described["hook_layer"],
        device=sae.W_dec.device,
        dtype=sae.W_dec.dtype,
        hook_name=described["hook_name"],
    )
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            if isinstance(getattr(sae, name, None), torch.Tensor):
                getattr(base, name).copy_(getattr(sae, name))
    base.cfg.architecture = described["sae_lens_architecture"]
    return base


def describe(sae) -> dict:
    """The SAE folder's config (sae_folder.save_published) from a loaded SAE Lens SAE."""
    cfg = sae.cfg
    hook_name = cfg.metadata.hook_name
    layer = hook_name.split(".")[1] if hook_name.startswith("blocks.") else -1
    return {
        "d_in": int(cfg.d_in),
        "d_sae": int(cfg.d_sae),
        "model_name": cfg.metadata.model_name,
        "hook_name": hook_name,
        "hook_layer": int(layer),
        "dtype": str(cfg.dtype).removeprefix("torch."),
        "sae_lens_architecture": cfg.architecture(),
    }
