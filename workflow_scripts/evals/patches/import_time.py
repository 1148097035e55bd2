"""The two patches that spare a job a library's import-time work, applied before the import
(part of `workflow_scripts.evals.patches`, which lists what each patch targets and why;
re-exported there)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterator, Mapping

SELECTION_UTILS = "sae_bench.sae_bench_utils.sae_selection_utils"


def selection_utils_without_release_table() -> None:
    """Import SAE Bench's sae_selection_utils without its import-time read of SAE Lens's release
    directory (see `workflow_scripts.evals.patches`); call before importing an SAE Bench eval
    module. A no-op when it is already imported. Its `metadata_rows` (used only by
    `print_all_sae_releases`) is left empty; `get_saes_from_regex` and the other functions read
    the real directory."""
    if SELECTION_UTILS in sys.modules:
        return
    from sae_lens.loading import pretrained_saes_directory as directory

    real = directory.get_pretrained_saes_directory
    directory.get_pretrained_saes_directory = dict  # () -> {} while the module body runs
    try:
        module = importlib.import_module(SELECTION_UTILS)
    finally:
        directory.get_pretrained_saes_directory = real
    module.get_pretrained_saes_directory = real


SAE_PROBES_DATA = "sae_probes.utils_data"


class _SaeProbesSizes(Mapping):
    """sae-probes' {numbered dataset tag: number of rows}, each size read when first asked for."""

    def __init__(self, utils_data):
        self._utils = utils_data
        self._tags = utils_data.get_numbered_binary_tags()  # one small table, as the original
        self._known = set(self._tags)
        self._sizes: dict[str, int] = {}

    def __getitem__(self, tag: str) -> int:
        if tag not in self._known:
            raise KeyError(tag)
        if tag not in self._sizes:
            self._sizes[tag] = len(self._utils.read_numbered_dataset_df(tag))
        return self._sizes[tag]

    def __contains__(self, tag) -> bool:  # without reading the dataset (Mapping's reads it)
        return tag in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._tags)

    def __len__(self) -> int:
        return len(self._tags)


class _SaeProbesDataFinder(importlib.abc.MetaPathFinder):
    """Finds sae_probes.utils_data as the import system would and, once it has run, gives it
    `get_dataset_sizes` answering a `_SaeProbesSizes`: the package's modules that call it at
    import come after it (they import it), so none of them reads every dataset."""

    def find_spec(self, name, path, target=None):
        if name != SAE_PROBES_DATA:
            return None
        sys.meta_path.remove(self)  # one import; and find the real spec without this finder
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            module.get_dataset_sizes = lambda: _SaeProbesSizes(module)

        spec.loader.exec_module = exec_module
        return spec


def sae_probes_sizes_on_demand() -> None:
    """Have sae-probes read a dataset's size when it is asked for, not all 113 at import (see
    `workflow_scripts.evals.patches`); call before anything imports sae_probes. A no-op once it
    is imported."""
    if "sae_probes" in sys.modules:  # and with it utils_data (its __init__ imports it)
        return
    if not any(isinstance(f, _SaeProbesDataFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SaeProbesDataFinder())
