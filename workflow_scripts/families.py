"""Encoder families: every kind of variant the workflow derives from a baseline, named by an
import path, so a researcher's own encoder runs without editing this project.

A family is (name, class, parameter name, parameter values). The built-in ones (IHTP, MPSAE,
non-negative MPSAE) come from the config's `sae_variants` section and name their classes in
`workflow_scripts.variant_saes`; the config's `encoder_families` section adds others:

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
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

CLASS_PATH = re.compile(
    r"^(?P<where>/?(?:[A-Za-z0-9_.\-]+/)*[A-Za-z0-9_.\-]+\.py|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r":(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$"
)
FAMILY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
CONSTRUCTOR = ["d_in", "d_sae", None, "model_name", "hook_layer", "device", "dtype", "hook_name"]

# built-in family -> (class, key of its values in sae_variants.<family>, parameter name)
BUILTIN = {
    "ihtp": ("workflow_scripts.variant_saes:IHTPSAE", "k_values", "k"),
    "mpsae": ("workflow_scripts.variant_saes:MPSAE", "s_values", "s"),
    "mpsae_nonneg": ("workflow_scripts.variant_saes:MPSAENonNeg", "s_values", "s"),
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
            return f"{self.key}.{BUILTIN[self.name][1]}"
        return f"{self.key}.values"


def families(config: dict) -> list[Family]:
    """Every enabled family: the built-in ones of `sae_variants`, then `encoder_families`."""
    found = []
    for name, (class_path, list_key, param_name) in BUILTIN.items():
        section = config["sae_variants"][name]
        if section["enabled"]:
            values = tuple(section[list_key])
            found.append(Family(name, class_path, param_name, values, f"sae_variants.{name}"))
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


def _split(family: Family) -> tuple[str, str]:
    match = CLASS_PATH.match(family.class_path)
    if not match:
        raise FamilyError(
            f"config key '{family.key}.class': {family.class_path!r} is not "
            "'package.module:Class' or 'path/to/file.py:Class'"
        )
    return match.group("where"), match.group("cls")


def _source(where: str, key: str) -> Path:
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
    where, cls_name = _split(family)
    path = _source(where, family.key)
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


def load_class(class_path: str, key: str = "encoder family"):
    """Import the class (at job time). A file path is loaded as a module of its own name."""
    family = Family("", class_path, "", (), key)
    where, cls_name = _split(family)
    if where.endswith(".py"):
        path = _source(where, key).resolve()
        module_name = f"encoder_family_{path.stem}_{abs(hash(str(path))) % 10**8}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise FamilyError(f"config key '{key}.class': {where} has no {cls_name}")
    return cls


def check_contract(cls, param_name: str, key: str) -> None:
    """The class contract of the module docstring; FamilyError naming `key` if it is broken."""
    from sae_bench.custom_saes.base_sae import BaseSAE

    problems = []
    if not (isinstance(cls, type) and issubclass(cls, BaseSAE)):
        problems.append("is not a subclass of sae_bench.custom_saes.base_sae.BaseSAE")
    if not getattr(cls, "architecture", ""):
        problems.append("has no class attribute `architecture` (its label)")
    if getattr(cls, "param_name", None) != param_name:
        problems.append(f"has param_name {getattr(cls, 'param_name', None)!r}, not {param_name!r}")
    try:
        names = list(inspect.signature(cls.__init__).parameters)[1:]
    except (TypeError, ValueError):
        names = []
    expected = [param_name if n is None else n for n in CONSTRUCTOR]
    if names[: len(expected)] != expected:
        problems.append(f"__init__ takes {names}, not {expected}")
    if problems:
        raise FamilyError(
            f"config key '{key}.class': {getattr(cls, '__name__', cls)} " + "; ".join(problems)
        )
