"""Load a dictionary_learning checkpoint (`ae.pt` + sibling `config.json`) into an SAE Bench SAE.

SAE Bench's own loaders (`sae_bench.custom_saes.*.load_dictionary_learning_*`) call
`torch.load` without `weights_only=True`, i.e. they unpickle downloaded files, and check problems
with bare asserts. This module does the same key mapping with `weights_only=True` and turns every
problem into an error that names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE
from sae_bench.custom_saes.jumprelu_sae import JumpReluSAE
from sae_bench.custom_saes.relu_sae import ReluSAE
from sae_bench.custom_saes.topk_sae import TopKSAE


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


# trainer_class -> (layout, architecture label written to sae.cfg.architecture)
TRAINER_CLASSES = {
    "StandardTrainer": ("relu", "standard"),
    "StandardTrainerAprilUpdate": ("relu", "standard_april_update"),
    "PAnnealTrainer": ("relu", "p_anneal"),
    "TopKTrainer": ("topk", "topk"),
    "BatchTopKTrainer": ("topk", "batch_topk"),
    "JumpReluTrainer": ("jumprelu", "jumprelu"),
}

# layout -> {checkpoint key: (SAE Bench name, transpose?)}
KEY_MAPS = {
    "relu": {
        "encoder.weight": ("W_enc", True),
        "encoder.bias": ("b_enc", False),
        "decoder.weight": ("W_dec", True),
        "bias": ("b_dec", False),
    },
    "topk": {
        "encoder.weight": ("W_enc", True),
        "encoder.bias": ("b_enc", False),
        "decoder.weight": ("W_dec", True),
        "b_dec": ("b_dec", False),
    },
    "jumprelu": {
        "W_enc": ("W_enc", False),
        "b_enc": ("b_enc", False),
        "W_dec": ("W_dec", False),
        "b_dec": ("b_dec", False),
        "threshold": ("threshold", False),
    },
}


def read_config(config_path: Path) -> dict:
    try:
        config = json.loads(Path(config_path).read_text())
        trainer = config["trainer"]
        for key in ("trainer_class", "layer", "lm_name"):
            trainer[key]
    except FileNotFoundError:
        raise CheckpointError(
            f"{config_path}: missing (every ae.pt needs its config.json)"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{config_path}: not a dictionary_learning config ({error!r})"
        ) from None
    return config


def read_state_dict(ae_path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(ae_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{ae_path}: missing") from None
    except Exception as error:  # weights_only refuses anything but plain tensors
        raise CheckpointError(
            f"{ae_path}: not a plain tensor state dict, refusing to unpickle it ({error})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{ae_path}: not a plain tensor state dict")
    return state


def load_dictionary_learning_sae(
    ae_path: Path | str,
    model_name: str,
    hook_layer: int,
    config_path: Path | str | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> BaseSAE:
    """Checked load of `ae.pt`; `model_name` and `hook_layer` must agree with its config.json."""
    ae_path = Path(ae_path)
    config_path = Path(config_path) if config_path else ae_path.with_name("config.json")
    trainer = read_config(config_path)["trainer"]
    trainer_class = trainer["trainer_class"]
    if trainer_class not in TRAINER_CLASSES:
        raise CheckpointError(
            f"{config_path}: trainer_class {trainer_class!r} is not supported "
            f"(known: {', '.join(TRAINER_CLASSES)})"
        )
    if int(trainer["layer"]) != int(hook_layer):
        raise CheckpointError(
            f"{config_path}: trained on layer {trainer['layer']}, but the config asks for "
            f"hook_layer {hook_layer}"
        )
    # TransformerLens names are often shortened
    # (pythia-70m-deduped vs EleutherAI/pythia-70m-deduped)
    if model_name not in trainer["lm_name"]:
        raise CheckpointError(
            f"{config_path}: trained on {trainer['lm_name']!r}, but the config's model is "
            f"{model_name!r}"
        )

    layout, architecture = TRAINER_CLASSES[trainer_class]
    state = read_state_dict(ae_path)
    key_map = KEY_MAPS[layout]
    missing = sorted(set(key_map) - set(state))
    if missing:
        raise CheckpointError(
            f"{ae_path}: missing keys {missing} for a {trainer_class} checkpoint "
            f"(found {sorted(state)})"
        )
    params = {
        new: (state[old].T if transpose else state[old])
        for old, (new, transpose) in key_map.items()
    }
    d_sae, d_in = params["W_dec"].shape
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "b_dec": (d_in,)}
    if layout == "jumprelu":
        expected["threshold"] = (d_sae,)
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise CheckpointError(
                f"{ae_path}: {name} has shape {tuple(params[name].shape)}, expected {shape} "
                f"from the decoder's ({d_sae}, {d_in})"
            )

    common = dict(
        d_in=d_in,
        d_sae=d_sae,
        model_name=model_name,
        hook_layer=int(hook_layer),
        device=device,
        dtype=dtype,
    )
    if layout == "relu":
        sae = ReluSAE(**common)
    elif layout == "topk":
        k = int(state["k"]) if "k" in state else trainer.get("k")
        if k is None:
            raise CheckpointError(f"{ae_path}: a TopK checkpoint needs a 'k' buffer or trainer.k")
        sae = TopKSAE(k=int(k), **common)
    else:
        sae = JumpReluSAE(**common)
    sae.load_state_dict({**sae.state_dict(), **params})
    sae.to(device=device, dtype=dtype)
    sae.cfg.architecture = architecture
    if isinstance(sae, ReluSAE) and not sae.check_decoder_norms():
        sae.normalize_decoder()  # rescales encoder to match: same reconstructions
    elif not sae.check_decoder_norms():
        raise CheckpointError(f"{ae_path}: decoder rows are not unit norm")
    return sae
