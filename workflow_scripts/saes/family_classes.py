"""Import an encoder family's class inside a job and check its contract (plan/families.py has
the contract and the checks that run when the DAG is built, without importing the class)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys

from workflow_scripts.plan.families import (
    CONSTRUCTOR,
    Family,
    FamilyError,
    source_file,
    split_class_path,
)


def load_class(class_path: str, key: str = "encoder family"):
    """Import the class (at job time). A file path is loaded as a module of its own name."""
    family = Family("", class_path, "", (), key)
    where, cls_name = split_class_path(family)
    if where.endswith(".py"):
        path = source_file(where, key).resolve()
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
