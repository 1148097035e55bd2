"""Every runtime change the workflow makes to SAE Bench and to the libraries it calls.

SAE Bench 0.6.0 is used as it is, through its Python API; where its behaviour does not suit a
cluster run (hub-only loaders, folders inside site-packages or relative to the working directory,
a hard-coded judge model), the change is made here, as a context manager that restores what it
replaced on exit (also when the body raises). Nothing else in the project patches SAE Bench.

Each patch, what it targets (SAE Bench 0.6.0 unless said) and why:

- `local_models`: `transformer_lens.HookedTransformer.from_pretrained[_no_processing]`, through
  which every eval loads its model (core/main.py ~1034, sparse_probing/main.py ~310,
  scr_and_tpp/main.py ~791, absorption/main.py ~62, autointerp/main.py ~593,
  unlearning/main.py ~149): build a local model (the demo's) under the configured name.
- `local_datasets`: the `load_dataset` names imported by sae_bench_utils/dataset_utils.py:7 and
  evals/scr_and_tpp/dataset_creation.py:3 (and unlearning's utils when imported), plus
  `datasets.load_dataset`: read local stand-ins of hub probing datasets (patching
  `datasets.load_dataset` alone does not reach the imported names).
- `working_directory`: the process's working directory. Unlearning reads its forget corpus from
  `./sae_bench/evals/unlearning/data/` and absorption writes `artifacts/absorption/...`
  (absorption/main.py ~101-109) relative to it: both get a private folder.
- `absorption_paths`: `run_k_sparse_probing_experiment` / `run_feature_absortion_experiment` as
  imported by absorption/main.py (~24-26, called ~82 and ~120). Their probe cache and tables
  default to `site-packages/sae_bench/artifacts/absorption` (absorption/common.py:33-34), keyed
  only by model name and layer.
- `record_core_reconstruction`: `get_sparsity_and_variance_metrics` as core/main.py calls it
  (defined ~437, called by name ~200), wrapped so the batch tokens, SAE inputs, codes and
  reconstructions of that pass also reach the workflow's `ReconstructionStats`
  (evals/reconstruction.py: SAE Bench's explained variance is not centered and its density
  ignores negative codes). SAE Bench's own computation and JSON are unchanged.
- `record_core_ce_loss`: `get_recons_loss` as core/main.py calls it (defined :640, called by name
  :394 in get_downstream_reconstruction_metrics, once per batch), wrapped so the per-token losses
  it returns also reach `CELossBatches` (per-batch sums for a bootstrap of ce_loss_score).
- `checkpoint_files`: the `hf_hub_download` name each dictionary_learning loader module imported
  (custom_saes/relu_sae.py:5, topk_sae.py, batch_topk_sae.py, jumprelu_sae.py, gated_sae.py; the
  loaders call it for `ae.pt` and `config.json`, e.g. relu_sae.py ~92 and ~102): return the files
  the workflow already fetched through the HuggingFace cache (or a local folder) instead of
  downloading them again into `./downloaded_saes`.
- `weights_only_loads`: the `TORCH_FORCE_*_WEIGHTS_ONLY_LOAD` environment variables torch reads at
  every `torch.load` (torch/serialization.py ~1480). Those loaders call `torch.load` without
  `weights_only` (relu_sae.py:99 and alike); torch 2.13 then defaults to `weights_only=True`
  unless TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set. Within the block it is unset and, around SAE
  loaders, TORCH_FORCE_WEIGHTS_ONLY_LOAD=1, so a downloaded checkpoint is never unpickled; around
  SAE Bench's evals (which load published SAEs through SAE Lens's bare `torch.load`) only unset.
- `selection_utils_without_release_table`: `sae_bench/sae_bench_utils/sae_selection_utils.py`,
  which every eval module imports (e.g. core/main.py:29): its lines 58-61 build `metadata_rows`
  from SAE Lens's whole release directory at import time (1.7-1.9 s of every job here), for
  `print_all_sae_releases` alone. Imported once with the directory lookup answering `{}`; the
  module's functions get the real lookup back, so nothing but that table changes.
- `sae_probes_sizes_on_demand`: sae-probes 0.4.2 (the package SAE Bench's
  sparse_probing_sae_probes eval calls, main.py:11) counts the rows of all 113 of its shipped
  datasets when it is imported: `get_dataset_sizes` (utils_data.py:189-205) decompresses and
  parses every CSV, and generate_sae_activations.py:29, run_baselines.py:36 and
  run_sae_evals.py:33 call it at module level (1.9 s of every sae-probes job here, and one file
  read per dataset on a cluster's shared filesystem). The tables it builds are only indexed by
  dataset (generate_sae_activations.py:56, run_baselines.py:122/235/527, run_sae_evals.py:300) or
  asked whether they hold one (utils_data.py:336), so it answers with a read-only mapping over the
  same datasets that reads a dataset's size when first asked for it (through the package's own
  cached reader, which the eval then reuses for that dataset's rows).
- `judge_client`: the `OpenAI` name in autointerp/main.py (imported at :14, called in
  `get_api_response` ~319-322 as `OpenAI(api_key=...)`, then `model="gpt-4o-mini"`): the
  configured judge model is used instead, at the configured base URL (an OpenAI-compatible
  server on the cluster's network, e.g. vLLM) when one is set.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

from workflow_scripts.evals.local_loaders import load_local_dataset, load_local_model
from workflow_scripts.evals.patches.core_recording import (  # noqa: F401 (re-exported)
    record_core_ce_loss,
    record_core_reconstruction,
)
from workflow_scripts.evals.patches.import_time import (  # noqa: F401 (re-exported)
    sae_probes_sizes_on_demand,
    selection_utils_without_release_table,
)

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
    ``canrager/amazon_reviews_mcauley_1and5_sentiment`` ->
    ``canrager/amazon_reviews_mcauley_1and5``;
    see sae_bench/sae_bench_utils/dataset_utils.py:325 and :350)."""
    return _SUFFIXES.sub("", name)


# ------------------------------------------------------------------------------------------------
# Models and datasets
# ------------------------------------------------------------------------------------------------


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

    # keep the descriptors as stored on the class (classmethods, or whatever a test put there)
    orig_fp = HookedTransformer.__dict__["from_pretrained"]
    orig_fpnp = HookedTransformer.__dict__["from_pretrained_no_processing"]

    def _call_original(descriptor, cls, *args, **kwargs):
        return descriptor.__get__(None, cls)(*args, **kwargs)

    def from_pretrained(cls, model_name, *args, **kwargs):
        if str(model_name) in registry:
            return load_local_model(registry[str(model_name)], model_name=model_name, **kwargs)
        return _call_original(orig_fp, cls, model_name, *args, **kwargs)

    def from_pretrained_no_processing(cls, model_name, *args, **kwargs):
        if str(model_name) in registry:
            return load_local_model(registry[str(model_name)], model_name=model_name, **kwargs)
        return _call_original(orig_fpnp, cls, model_name, *args, **kwargs)

    HookedTransformer.from_pretrained = classmethod(from_pretrained)
    HookedTransformer.from_pretrained_no_processing = classmethod(from_pretrained_no_processing)
    try:
        yield registry
    finally:
        HookedTransformer.from_pretrained = orig_fp
        HookedTransformer.from_pretrained_no_processing = orig_fpnp


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
                return load_local_dataset(
                    folder, split=kwargs.get("split"), streaming=kwargs.get("streaming", False)
                )
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


# ------------------------------------------------------------------------------------------------
# Folders
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run the block in `path` (for SAE Bench code that reads or writes relative paths)."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def absorption_paths(main_module, dirs: dict[str, Path]) -> Iterator[None]:
    """Pass our folders to the two experiment functions SAE Bench's absorption run_eval calls.

    Their folder defaults (`experiment_dir=RESULTS_DIR / ...`, `probes_dir=PROBES_DIR`) are bound
    when k_sparse_probing.py / feature_absorption.py are imported, so patching the constants would
    not reach them; the narrowest point is the two names absorption/main.py imported
    (main.py:23-26, called at main.py:82 and :120), wrapped to pass the folders explicitly.
    `dirs` holds `probes_dir`, `k_sparse` and `feature_absorption`.
    """
    k_sparse = main_module.run_k_sparse_probing_experiment
    feature = main_module.run_feature_absortion_experiment

    def run_k_sparse(*args, **kwargs):
        return k_sparse(
            *args, **kwargs, experiment_dir=dirs["k_sparse"], probes_dir=dirs["probes_dir"]
        )

    def run_feature(*args, **kwargs):
        return feature(
            *args,
            **kwargs,
            experiment_dir=dirs["feature_absorption"],
            sparse_probing_experiment_dir=dirs["k_sparse"],
            probes_dir=dirs["probes_dir"],
        )

    main_module.run_k_sparse_probing_experiment = run_k_sparse
    main_module.run_feature_absortion_experiment = run_feature
    try:
        yield
    finally:
        main_module.run_k_sparse_probing_experiment = k_sparse
        main_module.run_feature_absortion_experiment = feature


# ------------------------------------------------------------------------------------------------
# Checkpoints read by SAE Bench's own loaders
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def checkpoint_files(loader_module, files: Mapping[str, str | Path]) -> Iterator[None]:
    """Within the block, `hf_hub_download(repo_id, filename, ...)` as called by `loader_module`
    returns `files[filename]`; any other filename raises FileNotFoundError naming it."""
    original = loader_module.hf_hub_download

    def hf_hub_download(repo_id=None, filename=None, **kwargs):
        if filename not in files:
            raise FileNotFoundError(f"{repo_id}/{filename}: not among the fetched files")
        return str(files[filename])

    loader_module.hf_hub_download = hf_hub_download
    try:
        yield
    finally:
        loader_module.hf_hub_download = original


@contextlib.contextmanager
def weights_only_loads(force: bool = True) -> Iterator[None]:
    """Within the block, a `torch.load` that does not pass `weights_only` refuses pickled objects
    (torch 2.13's default, restored if TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turned it off); with
    `force`, every `torch.load` does, whatever its caller passes. Not forced around SAE Bench's
    evals: absorption reloads the probe object it pickled itself with weights_only=False
    (absorption/common.py ~73)."""
    names = ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    before = {name: os.environ.get(name) for name in names}
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    if force:
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------------------------------------
# The autointerp judge
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def judge_client(module, model: str, base_url: str | None = None) -> Iterator[None]:
    """SAE Bench's autointerp builds its client as `OpenAI(api_key=...)` and hard-codes
    model="gpt-4o-mini" in its one API call (AutoInterp.get_api_response, autointerp/main.py
    :319-322); we wrap the `OpenAI` name that module calls so requests go to `base_url` (None:
    the client's default, OpenAI's API or $OPENAI_BASE_URL) and name `model`."""
    original = module.OpenAI

    class JudgeClient:
        def __init__(self, *args, **kwargs):
            if base_url:
                kwargs["base_url"] = base_url
            client = original(*args, **kwargs)

            def create(**request):
                return client.chat.completions.create(**{**request, "model": model})

            self.chat = SimpleNamespace(completions=SimpleNamespace(create=create))

    module.OpenAI = JudgeClient
    try:
        yield
    finally:
        module.OpenAI = original


# ------------------------------------------------------------------------------------------------
# RAVEL
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def ravel_model_names(names: Mapping[str, str]) -> Iterator[None]:
    """Within the block, RAVEL's `LLM_NAME_MAP` (ravel/main.py:48-51, gemma-2-2b and
    pythia-160m-deduped only) also maps each of `names` (model name -> what
    `AutoModelForCausalLM.from_pretrained` reads: a hub id or a local folder). run_eval looks the
    name up at :468 and loads that model and its tokenizer (:475, and at :159, :251, :321)."""
    import sae_bench.evals.ravel.main as ravel_main

    saved = dict(ravel_main.LLM_NAME_MAP)
    ravel_main.LLM_NAME_MAP.update(names)
    try:
        yield
    finally:
        ravel_main.LLM_NAME_MAP.clear()
        ravel_main.LLM_NAME_MAP.update(saved)


class _TupleOutputHooks:
    """A decoder layer whose forward hooks see and return its output as a tuple."""

    def __init__(self, module):
        self._module = module

    def register_forward_hook(self, hook, *args, **kwargs):
        def adapted(module, inputs, output):
            if isinstance(output, tuple):
                return hook(module, inputs, output)
            result = hook(module, inputs, (output,))
            return result[0] if isinstance(result, tuple) else result

        return self._module.register_forward_hook(adapted, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


@contextlib.contextmanager
def ravel_layer_outputs() -> Iterator[None]:
    """RAVEL's hooks on a decoder layer read `outputs[0]` as the residual stream and the
    intervention raises "Unexpected output shape" unless the output is a tuple
    (sae_bench_utils/activation_collection.py:56-58, ravel/mdbm.py:60-64, ravel/mdas.py alike):
    transformers < 5 returned tuples, transformers 5 returns the hidden states tensor
    (models/gpt_neox/modeling_gpt_neox.py GPTNeoXLayer.forward), so `outputs[0]` would be the first
    sequence of the batch. Within the block, the layer `activation_collection.get_module` returns
    (the one every RAVEL hook is registered on: activation_collection.py:63, intervention.py:111,
    mdbm.py:122, mdas.py:130) hands its hooks a 1-tuple and unwraps what they return."""
    import sae_bench.sae_bench_utils.activation_collection as activation_collection

    original = activation_collection.get_module

    def get_module(model, layer_num):
        return _TupleOutputHooks(original(model, layer_num))

    activation_collection.get_module = get_module
    try:
        yield
    finally:
        activation_collection.get_module = original
