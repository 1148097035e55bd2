"""Read the demo's (or any) local language model and datasets in the formats SAE Bench expects.

These are the loaders that `workflow_scripts.evals.patches.local_models` / `local_datasets` put in
place of the hub loaders; they never touch the network.

Model folder layout (written by ``workflow_scripts.demo``)::

    model/config.json        {"hooked_transformer_config": {...HookedTransformerConfig fields...},
                              "tokenizer_path": "../tokenizer"}   (relative to the model folder)
    model/model.safetensors  HookedTransformer state dict

Dataset folder layout: ``{train,test,validation}.jsonl``, one JSON object a row, in the hub
dataset's schema. Only safetensors and JSON are read (no pickles).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _to_dtype(dtype: Any):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            return value
    raise ValueError(f"unsupported dtype {dtype!r}")


def load_local_model(
    folder: str | Path,
    device: Any = None,
    dtype: Any = None,
    default_padding_side: str | None = "left",
    **_ignored: Any,
):
    """Build a HookedTransformer from ``folder`` (config.json + model.safetensors).

    The weights are loaded exactly as saved: the folding/centering flags of ``from_pretrained``
    are ignored (the demo model is always returned unprocessed). The model is moved to ``device``
    and then to ``dtype`` in two calls, because ``HookedTransformer.to(device=..., dtype=...)``
    raises TypeError.
    """
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    folder = Path(folder)
    with open(folder / "config.json") as f:
        saved = json.load(f)
    cfg_fields = dict(saved.get("hooked_transformer_config", saved))
    cfg_fields.pop("device", None)
    tok_path = Path(saved.get("tokenizer_path", "../tokenizer"))
    if not tok_path.is_absolute():
        tok_path = (folder / tok_path).resolve()
    # add_bos_token=True keeps TransformerLens from re-downloading the tokenizer by name
    tokenizer = AutoTokenizer.from_pretrained(
        str(tok_path), add_bos_token=True, padding_side="left"
    )
    cfg = HookedTransformerConfig(**cfg_fields, device="cpu")
    model = HookedTransformer(
        cfg, tokenizer=tokenizer, default_padding_side=default_padding_side or "left"
    )
    state = load_file(str(folder / "model.safetensors"), device="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()
    if device is not None:
        model = model.to(device)
    torch_dtype = _to_dtype(dtype)
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    return model


def _read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_local_dataset(
    folder: str | Path, split: str | None = None, streaming: bool = False, **_ignored: Any
):
    """Read ``folder/{train,test,validation}.jsonl`` into a ``DatasetDict`` (or one split)."""
    from datasets import Dataset, DatasetDict, IterableDatasetDict

    folder = Path(folder)
    splits = {p.stem: Dataset.from_list(_read_jsonl(p)) for p in sorted(folder.glob("*.jsonl"))}
    if not splits:
        raise FileNotFoundError(f"no *.jsonl split files in {folder}")
    if split is not None:
        if split not in splits:
            raise ValueError(f"split {split!r} not in {sorted(splits)} ({folder})")
        ds = splits[split]
        return ds.to_iterable_dataset() if streaming else ds
    if streaming:
        return IterableDatasetDict({k: v.to_iterable_dataset() for k, v in splits.items()})
    return DatasetDict(splits)
