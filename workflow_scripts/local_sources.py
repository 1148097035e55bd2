"""Make SAE Bench load local models and datasets instead of the Hugging Face Hub.

This module is the one place where the workflow redirects SAE Bench's loaders:

* ``local_models({"demo-tiny-lm": "demo/model"})`` patches
  ``HookedTransformer.from_pretrained_no_processing`` and ``HookedTransformer.from_pretrained``
  (every SAE Bench eval loads its language model through one of them) so a registered name is
  built from its folder; any other name goes to the original classmethod.
* ``local_datasets({"LabHC/bias_in_bios_class_set1": "demo/datasets/LabHC/bias_in_bios"})``
  patches the module-level ``load_dataset`` names SAE Bench imported so a registered hub name
  returns a ``datasets.DatasetDict`` read from local ``{train,test}.jsonl``; other names go to the
  original function.

Model folder layout (written by ``workflow_scripts.demo_assets``)::

    model/config.json        {"hooked_transformer_config": {...HookedTransformerConfig fields...},
                              "tokenizer_path": "../tokenizer"}   (relative to the model folder)
    model/model.safetensors  HookedTransformer state dict

Only safetensors and JSON are read (no pickles). Both context managers restore what they replaced
on exit, also when the body raises, and may be nested.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Modules that did ``from datasets import load_dataset`` and load hub datasets SAE Bench needs.
REQUIRED_DATASET_MODULES = (
    "sae_bench.sae_bench_utils.dataset_utils",
    "sae_bench.evals.scr_and_tpp.dataset_creation",
)
# Patched too when already imported (importing them is slow or has side effects).
OPTIONAL_DATASET_MODULES = (
    "sae_bench.evals.unlearning.utils.metrics",
    "sae_bench.evals.unlearning.utils.feature_activation",
)

_SUFFIXES = re.compile(r"(_class_set\d+|_sentiment)$")


def _base_name(name: str) -> str:
    """SAE Bench task name -> the name it passes to load_dataset
    (``LabHC/bias_in_bios_class_set1`` -> ``LabHC/bias_in_bios``,
    ``canrager/amazon_reviews_mcauley_1and5_sentiment`` -> ``canrager/amazon_reviews_mcauley_1and5``;
    see sae_bench/sae_bench_utils/dataset_utils.py:325 and :350)."""
    return _SUFFIXES.sub("", name)


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------


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


def load_local_model(folder: str | Path, device: Any = None, dtype: Any = None,
                     default_padding_side: str | None = "left", **_ignored: Any):
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
    tokenizer = AutoTokenizer.from_pretrained(str(tok_path), add_bos_token=True,
                                              padding_side="left")
    cfg = HookedTransformerConfig(**cfg_fields, device="cpu")
    model = HookedTransformer(cfg, tokenizer=tokenizer,
                              default_padding_side=default_padding_side or "left")
    state = load_file(str(folder / "model.safetensors"), device="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()
    if device is not None:
        model = model.to(device)
    torch_dtype = _to_dtype(dtype)
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    return model


@contextlib.contextmanager
def local_models(models: Mapping[str, str | Path]) -> Iterator[dict[str, Path]]:
    """Within the block, ``HookedTransformer.from_pretrained[_no_processing](name, ...)`` builds a
    registered ``name`` from its local folder; any other name calls the original method."""
    from transformer_lens import HookedTransformer

    # absolute: a runner may change the working directory (absorption, unlearning) before loading
    registry = {str(k): Path(v).resolve() for k, v in models.items()}
    for name, folder in registry.items():
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"{name}: {folder} lacks config.json or model.safetensors")

    # keep the descriptors as stored on the class (classmethod objects, or whatever a test put there)
    orig_fp = HookedTransformer.__dict__["from_pretrained"]
    orig_fpnp = HookedTransformer.__dict__["from_pretrained_no_processing"]

    def _call_original(descriptor, cls, *args, **kwargs):
        return descriptor.__get__(None, cls)(*args, **kwargs)

    def from_pretrained(cls, model_name, *args, **kwargs):
        if str(model_name) in registry:
            return load_local_model(registry[str(model_name)], **kwargs)
        return _call_original(orig_fp, cls, model_name, *args, **kwargs)

    def from_pretrained_no_processing(cls, model_name, *args, **kwargs):
        if str(model_name) in registry:
            return load_local_model(registry[str(model_name)], **kwargs)
        return _call_original(orig_fpnp, cls, model_name, *args, **kwargs)

    HookedTransformer.from_pretrained = classmethod(from_pretrained)
    HookedTransformer.from_pretrained_no_processing = classmethod(from_pretrained_no_processing)
    try:
        yield registry
    finally:
        HookedTransformer.from_pretrained = orig_fp
        HookedTransformer.from_pretrained_no_processing = orig_fpnp


# ------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_local_dataset(folder: str | Path, split: str | None = None, streaming: bool = False,
                       **_ignored: Any):
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


@contextlib.contextmanager
def local_datasets(datasets: Mapping[str, str | Path]) -> Iterator[dict[str, Path]]:
    """Within the block, SAE Bench's ``load_dataset(name, ...)`` returns the local stand-in for a
    registered hub name. A registered SAE Bench task name such as
    ``LabHC/bias_in_bios_class_set1`` also registers the name SAE Bench actually loads
    (``LabHC/bias_in_bios``) unless that is registered itself. Other names (and the core eval's
    local corpus folder) go to the original ``load_dataset``."""
    registry: dict[str, Path] = {str(k): Path(v).resolve() for k, v in datasets.items()}
    for name, folder in list(registry.items()):
        if not folder.is_dir():
            raise FileNotFoundError(f"{name}: {folder} is not a folder")
        registry.setdefault(_base_name(name), folder)

    targets = []
    for mod_name in REQUIRED_DATASET_MODULES:
        targets.append(importlib.import_module(mod_name))
    for mod_name in OPTIONAL_DATASET_MODULES:
        if mod_name in sys.modules:
            targets.append(sys.modules[mod_name])
    import datasets as hf_datasets

    targets.append(hf_datasets)

    saved = [(mod, mod.load_dataset) for mod in targets]

    def make_patch(original):
        def load_dataset(path, *args, **kwargs):
            name = str(path)
            folder = registry.get(name)
            if folder is not None:
                return load_local_dataset(folder, split=kwargs.get("split"),
                                          streaming=kwargs.get("streaming", False))
            return original(path, *args, **kwargs)

        load_dataset.__wrapped__ = original  # type: ignore[attr-defined]
        return load_dataset

    try:
        for mod, original in saved:
            mod.load_dataset = make_patch(original)
        yield registry
    finally:
        for mod, original in saved:
            mod.load_dataset = original
