"""The one place that writes and reads an SAE folder (baseline, variants, comparison SAEs).

A folder holds `sae.safetensors` (the state dict, buffers included) and `config.json`:
{"architecture", "d_in", "d_sae", "model_name", "hook_layer", "hook_name", "dtype",
 "params": {...}, "metadata": {...}}. Only safetensors and JSON are read: no pickle.

A published SAE (any SAE Lens release) is a folder with `config.json` alone, architecture
"sae_lens" and `metadata.sae_lens` = {"release", "sae_id"}: SAE Bench loads it itself from the
HuggingFace cache (saes/saelens.py), as its own runner does.
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE
from safetensors.torch import load_file, save_file

from workflow_scripts.saes import architectures

WEIGHTS = "sae.safetensors"
CONFIG = "config.json"
SAE_LENS = "sae_lens"  # architecture of a published SAE folder (no weights file)


def _write_folder(folder: Path, config: dict, tensors: dict | None) -> Path:
    """config.json (+ sae.safetensors) into a temporary sibling renamed into place."""
    text = json.dumps(config, indent=2)  # fails early on non-JSON metadata
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if tensors is not None:
            save_file(tensors, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(text + "\n")
        old = None
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(folder, old)
        os.rename(tmp, folder)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def save_published(folder: str | Path, described: dict, sae_lens: dict, metadata=None) -> Path:
    """The folder of an SAE that SAE Lens loads: `described` (saelens.describe) and where
    from, `sae_lens` = {"release", "sae_id"} or {"path"} (a local SAE Lens folder)."""
    config = {
        "architecture": SAE_LENS,
        **described,
        "params": {},
        "metadata": {**(metadata or {}), "sae_lens": sae_lens},
    }
    return _write_folder(Path(folder), config, None)


def read_config(folder: str | Path) -> dict:
    """config.json of an SAE folder; errors name the file."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing file (every SAE folder has its {CONFIG})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None


def published_ids(config: dict) -> tuple[str, str] | None:
    """(release, sae_id) of a published SAE folder's config, else None."""
    source = saelens_source(config)
    return (source["release"], source["sae_id"]) if source and "release" in source else None


def saelens_source(config: dict) -> dict | None:
    """{"release", "sae_id"} or {"path"} of an SAE Lens folder's config, else None."""
    if config.get("architecture") != SAE_LENS:
        return None
    return config["metadata"]["sae_lens"]


def variant_metadata(variant: dict, **where_from) -> dict:
    """A folder's metadata for a variant-table row: where it came from, then its id, family and
    parameter."""
    return {
        **where_from,
        "variant": variant["id"],
        "family": variant["family"],
        "param_name": variant.get("param_name"),
        "param": variant.get("param"),
    }


def save_sae(sae: BaseSAE, folder: str | Path, metadata: dict | None = None) -> Path:
    """Write `folder/sae.safetensors` and `folder/config.json` atomically.

    Both files are written into a temporary sibling folder which is then renamed into place, so a
    killed job leaves either the old folder, the new one, or a stray `.tmp-` sibling, never a half
    written `folder`. An existing folder is replaced.
    """
    folder = Path(folder)
    if not sae.cfg.architecture:
        raise ValueError(f"{folder}: sae.cfg.architecture is empty; set it before saving")
    config = {
        "architecture": sae.cfg.architecture,
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
        "model_name": sae.cfg.model_name,
        "hook_layer": int(sae.cfg.hook_layer),
        "hook_name": sae.cfg.hook_name,
        "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
        "params": architectures.saved_params(sae),
        "metadata": metadata or {},
    }
    # clone: safetensors refuses tensors that share memory
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in sae.state_dict().items()}
    return _write_folder(folder, config, tensors)


def load_sae(folder: str | Path, device="cpu", dtype: torch.dtype = torch.float32) -> BaseSAE:
    """Rebuild the SAE saved by save_sae, on `device` in `dtype` (integer buffers keep theirs).
    A published SAE's folder (config only) is loaded by saes/loading.py, through SAE Lens."""
    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG, folder / WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: missing file (an SAE folder needs {CONFIG} and {WEIGHTS})"
            )
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: not valid JSON: {e}") from None
    missing = [
        k for k in ("architecture", "d_in", "d_sae", "model_name", "hook_layer") if k not in config
    ]
    if missing:
        raise ValueError(f"{cfg_path}: missing keys {missing}")
    sae = architectures.build(config, cfg_path, device="cpu", dtype=torch.float32)
    tensors = load_file(str(w_path), device="cpu")
    expected = sae.state_dict()
    if set(tensors) != set(expected):
        raise ValueError(
            f"{w_path}: keys do not match architecture {config['architecture']!r}: "
            f"missing {sorted(set(expected) - set(tensors))}, "
            f"unexpected {sorted(set(tensors) - set(expected))}"
        )
    for name, t in tensors.items():
        if t.shape != expected[name].shape:
            raise ValueError(
                f"{w_path}: shape mismatch for {name}: file {tuple(t.shape)}, "
                f"config (d_in={config['d_in']}, d_sae={config['d_sae']}) expects "
                f"{tuple(expected[name].shape)}"
            )
    sae.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()})
    sae.to(device=device, dtype=dtype)
    sae.cfg.architecture = config["architecture"]
    sae.cfg.dtype = str(dtype).removeprefix("torch.")
    return sae
