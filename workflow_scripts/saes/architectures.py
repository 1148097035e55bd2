"""The one table of SAE architectures an SAE folder can hold: name -> SAE Bench class and the
constructor parameters beyond the shapes, as SAE Lens's `registry.py` keeps one table of its
SAE classes. A second registration of a name fails.

Names are `cfg.architecture` as SAE Bench's dictionary_learning loaders set it (standard, topk,
batch_topk, gated, ...) and the encoder families' `architecture` attributes (ihtp, mpsae,
mpsae_nonneg; docs/variants.md). An encoder family named by an import path in the config is not
registered: its folder names its class (`metadata.class`), which `build` imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE
from sae_bench.custom_saes.batch_topk_sae import BatchTopKSAE
from sae_bench.custom_saes.gated_sae import GatedSAE
from sae_bench.custom_saes.jumprelu_sae import JumpReluSAE
from sae_bench.custom_saes.relu_sae import ReluSAE
from sae_bench.custom_saes.topk_sae import TopKSAE

from workflow_scripts.plan.families import BUILTIN
from workflow_scripts.saes.family_classes import load_class


@dataclass(frozen=True)
class Architecture:
    """`cls(d_in, d_sae, *[params[p] for p in positional], **options, **common)`.

    positional: integer constructor parameters (k, s) saved in the folder's `params`;
    options: keyword parameters with their defaults (TopK's use_threshold), saved too."""

    name: str
    cls: type
    positional: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)

    def build(self, d_in: int, d_sae: int, params: dict, common: dict) -> BaseSAE:
        args = [int(params[p]) for p in self.positional]
        kwargs = {k: type(v)(params.get(k, v)) for k, v in self.options.items()}
        return self.cls(d_in, d_sae, *args, **kwargs, **common)

    def saved_params(self, sae: BaseSAE) -> dict:
        saved = {p: int(getattr(sae, p)) for p in self.positional}
        saved.update({k: type(v)(getattr(sae, k)) for k, v in self.options.items()})
        return saved


REGISTRY: dict[str, Architecture] = {}


def register(name: str, cls: type, positional=(), options=None) -> Architecture:
    """Add one architecture; ValueError if `name` is registered already."""
    if name in REGISTRY:
        raise ValueError(
            f"SAE architecture {name!r} is registered already (as {REGISTRY[name].cls.__name__})"
        )
    REGISTRY[name] = Architecture(name, cls, tuple(positional), dict(options or {}))
    return REGISTRY[name]


for _name in ("standard", "relu", "p_anneal", "standard_april_update"):
    register(_name, ReluSAE)
register("topk", TopKSAE, ("k",), {"use_threshold": False})
# BatchTopK encodes with its global threshold at inference (a buffer, saved with the weights)
register("batch_topk", BatchTopKSAE, ("k",))
register("matryoshka_batch_topk", BatchTopKSAE, ("k",))
register("jumprelu", JumpReluSAE)
register("gated", GatedSAE)
# the built-in encoder families of plan/families.BUILTIN (ihtp, mpsae, mpsae_nonneg)
for _family in BUILTIN.values():
    _cls = load_class(_family.class_path, "built-in encoder family")
    register(_cls.architecture, _cls, (_cls.param_name,))


def family_class(name: str) -> type:
    """The class of a built-in encoder family; ValueError naming the known ones."""
    for family_name, family in BUILTIN.items():
        if family_name == name:
            return load_class(family.class_path, "built-in encoder family")
    raise ValueError(f"unknown variant family {name!r}; known: {sorted(BUILTIN)}")


def saved_params(sae: BaseSAE) -> dict:
    """The constructor parameters beyond the shapes that a folder's `params` keeps."""
    entry = REGISTRY.get(sae.cfg.architecture)
    if entry is not None:
        return entry.saved_params(sae)
    name = getattr(sae, "param_name", None)  # an encoder family from the config: its buffer
    if name and isinstance(getattr(sae, name, None), torch.Tensor):
        return {name: int(getattr(sae, name))}
    return {}


def build(config: dict, where: Path, device, dtype) -> BaseSAE:
    """An empty SAE of the class named by config["architecture"] (a folder's config.json);
    ValueError naming `where` for an unknown architecture or a missing parameter."""
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
    class_path = config.get("metadata", {}).get("class")
    try:
        if arch in REGISTRY:
            return REGISTRY[arch].build(d_in, d_sae, params, common)
        if class_path:  # an encoder family from the config
            cls = load_class(class_path, f"{where} metadata")
            return cls(d_in, d_sae, int(params[cls.param_name]), **common)
    except KeyError as e:
        raise ValueError(f"{where}: architecture {arch!r} needs params[{e.args[0]!r}]") from None
    raise ValueError(f"{where}: unknown architecture {arch!r}; known: {sorted(REGISTRY)}")
