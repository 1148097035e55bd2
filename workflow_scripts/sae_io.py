"""The one place that writes and reads an SAE folder (baseline, variants, comparison SAEs).

A folder holds `sae.safetensors` (the state dict, buffers included) and `config.json`:
{"architecture", "d_in", "d_sae", "model_name", "hook_layer", "hook_name", "dtype",
 "params": {...}, "metadata": {...}}. Only safetensors and JSON are read: no pickle.

A published SAE (any SAE Lens release) is a folder with `config.json` alone, architecture
"sae_lens" and `metadata.sae_lens` = {"release", "sae_id"}: SAE Bench loads it itself from the
HuggingFace cache (workflow_scripts/published_saes.py), as its own runner does.
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE
from sae_bench.custom_saes.batch_topk_sae import BatchTopKSAE
from sae_bench.custom_saes.gated_sae import GatedSAE
from sae_bench.custom_saes.jumprelu_sae import JumpReluSAE
from sae_bench.custom_saes.relu_sae import ReluSAE
from sae_bench.custom_saes.topk_sae import TopKSAE
from safetensors.torch import load_file, save_file

from workflow_scripts.variant_saes import VARIANT_FAMILIES

WEIGHTS = "sae.safetensors"
CONFIG = "config.json"
SAE_LENS = "sae_lens"  # architecture of a published SAE folder (no weights file)
# cfg.architecture as SAE Bench's dictionary_learning loaders set it -> class
RELU_ARCHITECTURES = ("standard", "relu", "p_anneal", "standard_april_update")
BATCH_TOPK_ARCHITECTURES = ("batch_topk", "matryoshka_batch_topk")  # global threshold at inference


def sae_params(sae: BaseSAE) -> dict:
    """The constructor parameters beyond the shapes: k / s for variants, k for TopK."""
    arch = sae.cfg.architecture
    name = getattr(sae, "param_name", None)  # encoder families keep it as a buffer
    if arch in VARIANT_FAMILIES or (name and isinstance(getattr(sae, name, None), torch.Tensor)):
        name = name or VARIANT_FAMILIES[arch].param_name
        return {name: int(getattr(sae, name))}
    if isinstance(sae, TopKSAE):
        return {"k": int(sae.k), "use_threshold": bool(sae.use_threshold)}
    if isinstance(sae, BatchTopKSAE):  # its threshold is a buffer, saved with the weights
        return {"k": int(sae.k)}
    return {}


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
    """The folder of an SAE that SAE Lens loads: `described` (published_saes.describe) and where
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
        "params": sae_params(sae),
        "metadata": metadata or {},
    }
    # clone: safetensors refuses tensors that share memory
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in sae.state_dict().items()}
    return _write_folder(folder, config, tensors)


def _build(config: dict, where: Path, device, dtype) -> BaseSAE:
    """An empty SAE of the class named by config["architecture"]."""
    arch = config["architecture"]
    params = config.get("params", {})
    common = dict(
        model_name=config["model_name"],
        hook_layer=int(config["hook_layer"]),
        device=device,
        dtype=dtype,
        hook_name=config.get("hook_name"),
    )
    d_in, d_sae = int(config["d_in"]), int(config["d_sae"])
    try:
        if arch in RELU_ARCHITECTURES:
            return ReluSAE(d_in, d_sae, **common)
        if arch == "topk":
            return TopKSAE(
                d_in,
                d_sae,
                int(params["k"]),
                use_threshold=bool(params.get("use_threshold", False)),
                **common,
            )
        if arch in BATCH_TOPK_ARCHITECTURES:
            return BatchTopKSAE(d_in, d_sae, int(params["k"]), **common)
        if arch == "jumprelu":
            return JumpReluSAE(d_in, d_sae, **common)
        if arch == "gated":
            return GatedSAE(d_in, d_sae, **common)
        class_path = config.get("metadata", {}).get("class")
        if class_path and arch not in VARIANT_FAMILIES:  # an encoder family from the config
            from workflow_scripts import families

            cls = families.load_class(class_path, f"{where} metadata")
            return cls(d_in, d_sae, int(params[cls.param_name]), **common)
        if arch in VARIANT_FAMILIES:
            fam = VARIANT_FAMILIES[arch]
            return fam.cls(d_in, d_sae, int(params[fam.param_name]), **common)
    except KeyError as e:
        raise ValueError(f"{where}: architecture {arch!r} needs params[{e.args[0]!r}]") from None
    known = sorted(
        [*RELU_ARCHITECTURES, *BATCH_TOPK_ARCHITECTURES, "topk", "jumprelu", "gated"]
        + [*VARIANT_FAMILIES]
    )
    raise ValueError(f"{where}: unknown architecture {arch!r}; known: {known}")


def load_sae(folder: str | Path, device="cpu", dtype: torch.dtype = torch.float32) -> BaseSAE:
    """Rebuild the SAE saved by save_sae, on `device` in `dtype` (integer buffers keep theirs);
    a published SAE's folder loads through SAE Lens as SAE Bench loads it (an SAE Lens SAE)."""
    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG, folder / WEIGHTS
    if cfg_path.is_file() and not w_path.exists():
        source = saelens_source(read_config(folder))
        if source:
            from workflow_scripts import published_saes

            if "path" in source:
                return published_saes.load_local(source["path"], str(device)).to(dtype=dtype)
            return published_saes.load(source["release"], source["sae_id"], str(device))[0].to(
                dtype=dtype
            )
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
    sae = _build(config, cfg_path, device="cpu", dtype=torch.float32)
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
