"""Read the demo's (or any) local language model and datasets in the formats SAE Bench expects.

These are the loaders that `workflow_scripts.evals.patches.local_models` / `local_datasets` put in
place of the hub loaders; they never touch the network.

Model folder: a HuggingFace model saved with `save_pretrained` (config.json, model.safetensors)
with its tokenizer beside it, as `workflow_scripts.demo` writes it. transformers reads it as it
is (SAE Bench's RAVEL); TransformerLens converts it with its own functions for a local folder
(`get_pretrained_model_config` / `get_pretrained_state_dict`), because its `from_pretrained`
accepts only the names of its official models.

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
    model_name: str | None = None,
    **_ignored: Any,
):
    """A HookedTransformer of the HuggingFace model saved in ``folder``, named ``model_name``.

    The weights are converted exactly as saved: the folding/centering flags of ``from_pretrained``
    are ignored (the model is returned unprocessed). ``<bos>`` is prepended to text when the
    tokenizer adds one (the demo's model was trained so). The model is moved to ``device`` and
    then to ``dtype`` in two calls, because ``HookedTransformer.to(device=..., dtype=...)``
    raises TypeError. Raises FileNotFoundError when the folder lacks config.json.
    """
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder).resolve()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json (a save_pretrained model folder)")
    architectures = json.loads((folder / "config.json").read_text()).get("architectures")
    if not architectures:
        raise ValueError(
            f"{folder / 'config.json'} names no 'architectures': not a HuggingFace model folder "
            "(demo folders built before the demo's model became a GPT-NeoX: rebuild the demo)"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer.encode("a")[:1] == [bos]
    if adds_bos:  # say so, as TransformerLens reads it (else it fetches a tokenizer by name)
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), padding_side="left", add_bos_token=True
        )
    hf_model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    cfg = loading.get_pretrained_model_config(
        str(folder),
        device="cpu",
        default_prepend_bos=adds_bos,
        local_files_only=True,
    )
    if model_name:
        cfg.model_name = model_name
    state = loading.get_pretrained_state_dict(str(folder), cfg, hf_model=hf_model)
    model = HookedTransformer(
        cfg, tokenizer=tokenizer, default_padding_side=default_padding_side or "left"
    )
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
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
