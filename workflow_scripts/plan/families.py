"""Encoder families: every kind of variant the workflow derives from a baseline, named by an
import path, so a researcher's own encoder runs without editing this project.

A family is (name, class, parameter name, parameter values). The built-in ones (IHTP, MPSAE,
non-negative MPSAE) come from the config's `sae_variants` section and name their classes in
`workflow_scripts.saes.encoders`; the config's `encoder_families` section adds others:

    encoder_families:
      topk_corr:                                   # family name: ids topk_corr_k8, ...
        class: docs/examples/topk_correlation.py:TopKCorrelationSAE   # or my_pkg.encoders:Cls
        values: [8, 16]

The class contract (docs/encoder-families.md):

- a subclass of SAE Bench's `sae_bench.custom_saes.base_sae.BaseSAE`;
- class attributes `architecture` (its label in tables and plots) and `param_name` (the name of
  its one integer parameter, e.g. "k");
- `__init__(self, d_in, d_sae, <param>, model_name, hook_layer, device, dtype, hook_name=None)`;
  the parameter is kept as a buffer named `param_name`, so it travels with the state dict;
- everything it needs at encode time is in its state dict (tensors, saved as safetensors).

The workflow builds it with those arguments from a trained baseline, copies the baseline's
`W_enc`, `b_enc`, `W_dec`, `b_dec` into it, saves it, and evaluates it like any SAE.

Checks: when the DAG is built (no torch or SAE Bench import then), the class path's syntax, that
its file or module exists, and, reading its source, that it defines the class with an `encode`
method, so a typo fails before any job with the config key; when the SAE is built, the full
contract (`check_contract`), again naming the key.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

CLASS_PATH = re.compile(
    r"^(?P<where>/?(?:[A-Za-z0-9_.\-]+/)*[A-Za-z0-9_.\-]+\.py|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r":(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$"
)
FAMILY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# the constructor every family's class takes (None: its parameter), checked in saes/family_classes
CONSTRUCTOR = ["d_in", "d_sae", None, "model_name", "hook_layer", "device", "dtype", "hook_name"]


class BuiltinFamily(NamedTuple):
    class_path: str  # its class, imported only inside jobs (saes/architectures.py registers it)
    values_key: str  # the key of its values in sae_variants.<family>
    param_name: str


# The one table of built-in families: the config's sae_variants sections and the architecture
# registry (saes/architectures.py) both read it.
BUILTIN = {
    "ihtp": BuiltinFamily("workflow_scripts.saes.encoders:IHTPSAE", "k_values", "k"),
    "mpsae": BuiltinFamily("workflow_scripts.saes.encoders:MPSAE", "s_values", "s"),
    "mpsae_nonneg": BuiltinFamily("workflow_scripts.saes.encoders:MPSAENonNeg", "s_values", "s"),
}


class FamilyError(ValueError):
    """A family's class path or contract is wrong; the message names the config key."""


@dataclass(frozen=True)
class Family:
    name: str
    class_path: str  # "pkg.module:Class" or "path/to/file.py:Class"
    param_name: str
    values: tuple[int, ...]
    key: str  # the config key that defines it, for messages

    @property
    def values_key(self) -> str:
        """The config key of its parameter values."""
        if self.name in BUILTIN and self.key.startswith("sae_variants."):
            return f"{self.key}.{BUILTIN[self.name].values_key}"
        return f"{self.key}.values"


def families(config: dict) -> list[Family]:
    """Every enabled family: the built-in ones of `sae_variants`, then `encoder_families`."""
    found = []
    for name, builtin in BUILTIN.items():
        section = config["sae_variants"][name]
        if section["enabled"]:
            values = tuple(section[builtin.values_key])
            found.append(
                Family(name, builtin.class_path, builtin.param_name, values, f"sae_variants.{name}")
            )
    for name, section in (config.get("encoder_families") or {}).items():
        key = f"encoder_families.{name}"
        if not section.get("enabled", True):
            continue
        if name in BUILTIN or not FAMILY_NAME.match(name):
            raise FamilyError(
                f"config key '{key}': a family name must be a letter then letters, digits or _ "
                f"and not a built-in family ({', '.join(BUILTIN)})"
            )
        found.append(
            Family(name, section["class"], section["param_name"], tuple(section["values"]), key)
        )
    return found


def split_class_path(family: Family) -> tuple[str, str]:
    match = CLASS_PATH.match(family.class_path)
    if not match:
        raise FamilyError(
            f"config key '{family.key}.class': {family.class_path!r} is not "
            "'package.module:Class' or 'path/to/file.py:Class'"
        )
    return match.group("where"), match.group("cls")


def source_file(where: str, key: str) -> Path:
    """The file that defines module or file `where`, without executing it (a dotted module's
    parent packages are imported, as Python's import system needs them)."""
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FamilyError(f"config key '{key}.class': no file {where} (from {Path.cwd()})")
        return path
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as error:
        raise FamilyError(
            f"config key '{key}.class': cannot find module {where}: {error}"
        ) from None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise FamilyError(
            f"config key '{key}.class': no Python module {where} on the path "
            "(install it, or give a file path: path/to/file.py:Class)"
        )
    return Path(spec.origin)


def check_static(family: Family) -> None:
    """At DAG time, without importing the class: its file exists and defines the class with an
    `encode` method, and its `param_name` (when a literal) is the configured one."""
    where, cls_name = split_class_path(family)
    path = source_file(where, family.key)
    tree = ast.parse(path.read_text(), filename=str(path))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    node = classes.get(cls_name)
    if node is None:
        raise FamilyError(
            f"config key '{family.key}.class': {path} defines no class {cls_name} "
            f"(classes: {', '.join(classes) or 'none'})"
        )
    if not _defines_encode(node, classes):
        raise FamilyError(f"config key '{family.key}.class': {cls_name} has no encode method")
    declared = _literal_attribute(node, "param_name")
    if declared is not None and declared != family.param_name:
        raise FamilyError(
            f"config key '{family.key}.param_name': {family.param_name!r}, but {cls_name}."
            f"param_name is {declared!r}"
        )


def _defines_encode(node: ast.ClassDef, classes: dict) -> bool:
    """Whether `node` or a base class has `encode`. Bases from other modules are trusted, except
    BaseSAE itself, whose encode is abstract."""
    if any(isinstance(n, ast.FunctionDef) and n.name == "encode" for n in node.body):
        return True
    for base in node.bases:
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        if name in classes and _defines_encode(classes[name], classes):
            return True
        if name not in classes and name != "BaseSAE":
            return True
    return False


def _literal_attribute(node: ast.ClassDef, name: str):
    for item in node.body:
        targets = []
        if isinstance(item, ast.Assign):
            targets = [t.id for t in item.targets if isinstance(t, ast.Name)]
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            targets = [item.target.id]
        if name in targets and isinstance(item.value, ast.Constant):
            return item.value.value
    return None
