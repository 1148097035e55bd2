"""Load a dictionary_learning checkpoint (`ae.pt` + sibling `config.json`) through SAE Bench's own
loaders, safely, with errors that name the file.

The loaders are SAE Bench's `TRAINER_LOADERS` (custom_saes/run_all_evals_dictionary_learning_saes.py
~58): Standard, StandardAprilUpdate, PAnneal, TopK, BatchTopK (encodes with its stored global
`threshold`), MatryoshkaBatchTopK, JumpRelu and Gated. Around them, in one place:
- the files come from the workflow's fetch (HuggingFace cache or a local folder), not from their
  own download into `./downloaded_saes` (`patches.checkpoint_files`);
- every `torch.load` they make is weights-only (`patches.weights_only_loads`): a pickled object is
  refused with a `CheckpointError` naming the file, never executed;
- their bare asserts (layer, model name) are checked first here, with messages naming the config.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE

from workflow_scripts.evals import patches


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def trainer_loaders() -> dict:
    """SAE Bench's trainer_class -> loader table (importing it imports every eval: seconds)."""
    from sae_bench.custom_saes.run_all_evals_dictionary_learning_saes import TRAINER_LOADERS

    return TRAINER_LOADERS


def read_config(config_path: Path) -> dict:
    """The checkpoint's config.json; CheckpointError naming it when missing or malformed."""
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


def load_dictionary_learning_sae(
    ae_path: Path | str,
    model_name: str,
    hook_layer: int,
    config_path: Path | str | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> BaseSAE:
    """SAE Bench's loader for the checkpoint's `trainer_class`, on `ae_path` and `config_path`
    (default: `config.json` beside `ae_path`).

    `model_name` must be part of the config's `lm_name` (TransformerLens names are often
    shortened: pythia-70m-deduped vs EleutherAI/pythia-70m-deduped) and `hook_layer` equal to its
    `layer`. Returns the SAE Bench SAE (`cfg.architecture` set by the loader, e.g. "standard",
    "batch_topk", "gated") on `device` in `dtype`. Raises CheckpointError naming the file for a
    missing or malformed file, an unknown trainer class, a layer or model mismatch, a pickled
    object, tensors that do not fit the trainer's layout, or decoder rows that are not unit norm.
    """
    ae_path = Path(ae_path)
    config_path = Path(config_path) if config_path else ae_path.with_name("config.json")
    trainer = read_config(config_path)["trainer"]
    trainer_class = trainer["trainer_class"]
    loaders = trainer_loaders()
    if trainer_class not in loaders:
        raise CheckpointError(
            f"{config_path}: trainer_class {trainer_class!r} has no SAE Bench loader "
            f"(known: {', '.join(loaders)})"
        )
    if int(trainer["layer"]) != int(hook_layer):
        raise CheckpointError(
            f"{config_path}: trained on layer {trainer['layer']}, but the config asks for "
            f"hook_layer {hook_layer}"
        )
    if model_name not in trainer["lm_name"]:
        raise CheckpointError(
            f"{config_path}: trained on {trainer['lm_name']!r}, but the config's model is "
            f"{model_name!r}"
        )
    if not ae_path.is_file():
        raise CheckpointError(f"{ae_path}: missing")
    loader = loaders[trainer_class]
    files = {"ae.pt": ae_path, "config.json": config_path}
    try:
        with (
            patches.checkpoint_files(sys.modules[loader.__module__], files),
            patches.weights_only_loads(),
        ):
            sae = loader(
                repo_id=str(ae_path.parent),
                filename="ae.pt",
                model_name=model_name,
                device=device,
                dtype=dtype,
                layer=int(trainer["layer"]),
            )
    except pickle.UnpicklingError as error:  # what torch raises when weights_only refuses
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"{ae_path}: not a plain tensor state dict, refusing to unpickle it ({first_line})"
        ) from None
    except (KeyError, RuntimeError, AssertionError, ValueError, IndexError) as error:
        # missing/unexpected keys or shapes (load_state_dict), SAE Bench's asserts, its
        # "Decoder vectors are not normalized" check
        raise CheckpointError(
            f"{ae_path}: does not load as a {trainer_class} checkpoint with SAE Bench's loader "
            f"({type(error).__name__}: {str(error).strip()[:400]})"
        ) from None
    return sae
