"""Behaviour of the local demo: the builder, the local loaders, and SAE Bench's real evals on it.

Uses the session's demo build (tests/conftest.py; the builder's determinism is tested here on a
tiny build), then runs SAE Bench's core and sparse_probing evals through its own Python API with
the hub switched off.
"""

from __future__ import annotations

import os

# must be set before huggingface_hub / datasets / transformers read them at import time
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import collections
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, copy_demo_assets, run_snakemake, seed_demo_assets, write_config
from workflow_scripts.demo.build import (
    BIAS_IN_BIOS,
    BIAS_IN_BIOS_SET1,
    MODEL_NAME,
    build_demo_assets,
)
from workflow_scripts.evals.patches import local_datasets, local_models

SET1 = [0, 1, 2, 6, 9]
PROBE_TRAIN, PROBE_TEST = 400, 200
TINY = dict(
    n_corpus_docs=400,
    bios_train_per_profession=40,
    bios_test_per_profession=20,
    amazon_train_per_cell=5,
    amazon_test_per_cell=5,
    lm_steps=8,
    sae_act_seqs=16,
    sae_steps=20,
    sae_batch_size=64,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """The demo's own build (seed 42, default sizes): the session's shared build, copied (the
    same bytes the builder writes for that seed: test_build_is_deterministic_for_a_seed)."""
    return copy_demo_assets(tmp_path_factory.mktemp("demo") / "demo")


def _load_relu_sae(manifest: dict):
    """Load ae.pt through SAE Bench's own dictionary_learning loader, with the hub download
    swapped for the local file (the loader itself does the key mapping and transposes)."""
    import sae_bench.custom_saes.relu_sae as relu_sae

    sae_dir = Path(manifest["paths"]["sae"])
    original = relu_sae.hf_hub_download
    relu_sae.hf_hub_download = lambda repo_id, filename, **kw: str(sae_dir / Path(filename).name)
    try:
        sae = relu_sae.load_dictionary_learning_relu_sae(
            repo_id="local/demo",
            filename="ae.pt",
            model_name=manifest["model_name"],
            device=torch.device("cpu"),
            dtype=torch.float32,
            layer=manifest["hook_layer"],
        )
    finally:
        relu_sae.hf_hub_download = original
    return sae


def _numbers(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if isinstance(v, (int, float)) and k != "seed"}


# ------------------------------------------------------------------------------------------------
# builder
# ------------------------------------------------------------------------------------------------


def test_build_is_deterministic_for_a_seed(tmp_path):
    # the first build runs where autograd is off, as an SAE Bench eval in the same process
    # leaves it (autointerp's run_eval calls torch.set_grad_enabled(False)): it must still train
    with torch.no_grad():
        a = build_demo_assets(tmp_path / "a", seed=7, **TINY)
        assert not torch.is_grad_enabled()  # and the caller's mode is left as it was
    b = build_demo_assets(tmp_path / "b", seed=7, **TINY)
    build_demo_assets(tmp_path / "c", seed=8, **TINY)  # another seed: compared file by file
    assert _numbers(a) == _numbers(b)
    vocab = [
        json.loads((tmp_path / d / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
        for d in "ab"
    ]
    assert vocab[0] == vocab[1]
    for rel in ("corpus/train-00000.jsonl", f"datasets/{BIAS_IN_BIOS_SET1}/train.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
        assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    sa = torch.load(tmp_path / "a" / "sae" / "ae.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "sae" / "ae.pt", weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_manifest(demo):
    for key in (
        "model_name",
        "hook_layer",
        "hook_name",
        "d_model",
        "d_sae",
        "context_size",
        "paths",
        "datasets",
        "lm_train_loss",
        "sae_explained_variance",
    ):
        assert key in demo
    assert demo["model_name"] == MODEL_NAME
    assert demo["hook_name"] == f"blocks.{demo['hook_layer']}.hook_resid_post"
    on_disk = json.loads((Path(demo["paths"]["root"]) / "manifest.json").read_text())
    assert on_disk == demo
    assert demo["sae_explained_variance"] >= 0.8
    # core eval below reads 2 x 8 batches x 16 prompts x 64 tokens
    assert demo["corpus_tokens"] > 4 * 2 * 8 * 16 * 64


def test_lm_loss_well_below_unigram_entropy(demo):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo["paths"]["tokenizer"])
    counts: collections.Counter = collections.Counter()
    for path in sorted(Path(demo["paths"]["corpus"]).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            counts.update(tok(json.loads(line)["text"], add_special_tokens=False)["input_ids"])
    total = sum(counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in counts.values())  # nats
    assert entropy > 4.0
    assert demo["lm_train_loss"] < entropy - 2.0
    assert demo["lm_val_loss"] < entropy - 2.0


def test_sae_checkpoint_is_dictionary_learning_format(demo):
    d_in, d_sae = demo["d_model"], demo["d_sae"]
    state = torch.load(demo["paths"]["sae_weights"], weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "encoder.weight": (d_sae, d_in),
        "encoder.bias": (d_sae,),
        "decoder.weight": (d_in, d_sae),
        "bias": (d_in,),
    }
    assert torch.allclose(state["decoder.weight"].norm(dim=0), torch.ones(d_sae), atol=1e-4)
    cfg = json.loads(Path(demo["paths"]["sae_config"]).read_text())
    trainer = cfg["trainer"]
    assert trainer["trainer_class"] == "StandardTrainer"
    assert trainer["dict_class"] == "AutoEncoder"
    assert (trainer["activation_dim"], trainer["dict_size"]) == (d_in, d_sae)
    assert trainer["layer"] == demo["hook_layer"] and trainer["lm_name"] == MODEL_NAME
    assert cfg["buffer"]["ctx_len"] == demo["context_size"]

    sae = _load_relu_sae(demo)
    assert sae.cfg.hook_name == demo["hook_name"]
    assert torch.equal(sae.W_dec, state["decoder.weight"].T)
    assert torch.equal(sae.W_enc, state["encoder.weight"].T)


def test_stand_in_datasets_schema_and_counts(demo):
    import sae_bench.sae_bench_utils.dataset_utils as dataset_utils

    with local_datasets(demo["datasets"]):
        # the name SAE Bench really passes (it strips "_class_set1")
        dd = dataset_utils.load_dataset(BIAS_IN_BIOS)
        assert dataset_utils.load_dataset(BIAS_IN_BIOS_SET1)["test"].num_rows == dd["test"].num_rows
    assert set(dd) == {"train", "test"}
    for split, need in (("train", PROBE_TRAIN // 4), ("test", PROBE_TEST // 4)):
        ds = dd[split]
        assert set(ds.column_names) == {"hard_text", "profession", "gender"}
        row = ds[0]
        assert isinstance(row["hard_text"], str)
        assert isinstance(row["profession"], int) and isinstance(row["gender"], int)
        cells = collections.Counter(zip(ds["profession"], ds["gender"]))
        assert set(ds["gender"]) == {0, 1}
        for prof in SET1:
            for gender in (0, 1):
                assert cells[(prof, gender)] >= need, (split, prof, gender)
        # gender is correlated with profession but every cell is populated
        female = {p: cells[(p, 1)] / (cells[(p, 0)] + cells[(p, 1)]) for p in set(ds["profession"])}
        assert max(female.values()) - min(female.values()) > 0.2


def test_local_models_builds_registered_and_falls_through(demo):
    from transformer_lens import HookedTransformer

    calls = []

    def sentinel(cls, model_name, *args, **kwargs):
        calls.append(model_name)
        return "sentinel"

    before_fp = HookedTransformer.__dict__["from_pretrained"]
    before_np = HookedTransformer.__dict__["from_pretrained_no_processing"]
    HookedTransformer.from_pretrained = classmethod(sentinel)
    try:
        with local_models({MODEL_NAME: demo["paths"]["model"]}):
            model = HookedTransformer.from_pretrained_no_processing(
                MODEL_NAME, device="cpu", dtype=torch.float32
            )
            assert isinstance(model, HookedTransformer)
            assert model.cfg.d_model == demo["d_model"]
            assert model.tokenizer.padding_side == "left"
            assert model.to_tokens("He is a nurse .")[0, 0].item() == model.tokenizer.bos_token_id
            # unregistered names reach the original (here the sentinel), for both entry points
            assert HookedTransformer.from_pretrained("gpt2") == "sentinel"
            assert HookedTransformer.from_pretrained_no_processing("gpt2") == "sentinel"
        assert calls == ["gpt2", "gpt2"]
        assert HookedTransformer.__dict__["from_pretrained"].__func__ is sentinel
        assert HookedTransformer.__dict__["from_pretrained_no_processing"] is before_np
    finally:
        HookedTransformer.from_pretrained = before_fp
    assert HookedTransformer.__dict__["from_pretrained"] is before_fp


# ------------------------------------------------------------------------------------------------
# SAE Bench evals on the demo
# ------------------------------------------------------------------------------------------------


def test_core_eval(demo, tmp_path):
    import sae_bench.evals.core.main as core

    sae = _load_relu_sae(demo)
    out = tmp_path / "core"
    with local_models({MODEL_NAME: demo["paths"]["model"]}), local_datasets(demo["datasets"]):
        core.multiple_evals(
            [("demo_relu", sae)],
            n_eval_reconstruction_batches=8,
            n_eval_sparsity_variance_batches=8,
            eval_batch_size_prompts=16,
            # False crashes saving MiscMetrics (sae_bench/evals/core/main.py:897), swallowed
            compute_featurewise_density_statistics=True,
            compute_featurewise_weight_based_metrics=True,
            dataset=demo["paths"]["corpus"],
            context_size=64,
            output_folder=str(out),
            device="cpu",
            force_rerun=True,
        )
    path = out / "demo_relu_custom_sae_eval_results.json"
    assert path.exists(), "core swallowed an exception: no result JSON"
    metrics = json.loads(path.read_text())["eval_result_metrics"]
    assert metrics["reconstruction_quality"]["explained_variance"] >= 0.7
    assert metrics["model_performance_preservation"]["ce_loss_score"] > 0.5
    assert 0 < metrics["sparsity"]["l0"] < demo["d_sae"] / 2


def test_sparse_probing_eval(demo, tmp_path):
    import sae_bench.evals.sparse_probing.main as sparse_probing
    from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig

    sae = _load_relu_sae(demo)
    config = SparseProbingEvalConfig(
        model_name=MODEL_NAME,
        dataset_names=[BIAS_IN_BIOS_SET1],
        probe_train_set_size=PROBE_TRAIN,
        probe_test_set_size=PROBE_TEST,
        context_length=64,
        llm_batch_size=100,
        llm_dtype="float32",
        sae_batch_size=125,
        k_values=[1, 2, 5],
    )
    out = tmp_path / "sparse_probing"
    with local_models({MODEL_NAME: demo["paths"]["model"]}), local_datasets(demo["datasets"]):
        sparse_probing.run_eval(
            config,
            [("demo_relu", sae)],
            "cpu",
            str(out),
            force_rerun=True,
            clean_up_activations=True,
            save_activations=False,
            artifacts_path=str(tmp_path / "artifacts"),
        )
    path = out / "demo_relu_custom_sae_eval_results.json"
    assert path.exists()
    metrics = json.loads(path.read_text())["eval_result_metrics"]
    # one-vs-rest binary probes with balanced classes: chance is 0.5
    assert metrics["llm"]["llm_test_accuracy"] > 0.9
    assert metrics["llm"]["llm_top_5_test_accuracy"] > 0.8
    assert metrics["sae"]["sae_top_1_test_accuracy"] > 0.75
    assert metrics["sae"]["sae_top_5_test_accuracy"] > 0.8


def test_ihtp_k_above_a_known_width_is_refused_up_front(tmp_path):
    """A dry run refuses it: the demo's manifest gives the baseline's width (256) before any SAE
    is built."""
    seed_demo_assets(tmp_path)
    config = write_config(
        tmp_path / "bigk.yaml",
        "demo.yaml",
        sae_variants={"ihtp": {"enabled": True, "k_values": [5, 1000]}},
    )
    result = run_snakemake(["-n", "--configfile", str(config)], tmp_path, timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "config key 'sae_variants.ihtp.k_values': k=1000 exceeds the width 256" in output


def test_ravel_eval_on_the_demo_shares_its_filtered_datasets(demo, tmp_path):
    """SAE Bench's RAVEL through the workflow's runner, twice on one shared artifacts folder: the
    first run builds the filtered datasets (the prompts the demo model answers correctly), the
    second reads them and, at the same seed, gives the same scores."""
    from workflow_scripts.evals import artifact_cache, ravel
    from workflow_scripts.evals.base import EvalJob

    sae = _load_relu_sae(demo)
    model_dir = demo["paths"]["model"]
    model_files = artifact_cache.files_digest(model_dir)
    settings = {
        "eval_type": "ravel",
        "section": "ravel",
        "section_values": yaml.safe_load((REPO / "config" / "demo_more_evals.yaml").read_text())[
            "ravel"
        ],
        "model": {
            "name": MODEL_NAME,
            "local_dir": model_dir,
            "llm_batch_size": 32,
            "torch_dtype": "float32",
            "device": "cpu",
        },
        "random_seed": 42,
        "local_datasets": {ravel.PROMPTS_DATASET: demo["datasets"][ravel.PROMPTS_DATASET]},
        "offline": True,
        "save_activations": True,
    }
    scores = []
    for i in range(2):
        work = tmp_path / f"work{i}"
        work.mkdir()
        job = EvalJob(
            "ravel", sae, "demo_relu", settings, work, None, 256, None, tmp_path / "artifacts"
        )
        ravel.run(job)
        [result] = work.glob("*_eval_results.json")
        scores.append(json.loads(result.read_text())["eval_result_metrics"]["ravel"])
    assert scores[0] == scores[1]
    print("RAVEL on the demo:", scores[0])
    for name in ("disentanglement_score", "cause_score", "isolation_score"):
        assert 0.0 <= scores[0][name] <= 1.0, scores[0]
    # above what a mask that moves nothing (cause 0, isolation 1) or everything scores
    assert scores[0]["disentanglement_score"] > 0.5, scores[0]
    [folder] = [p for p in (tmp_path / "artifacts" / "ravel").iterdir() if p.is_dir()]
    assert (folder / artifact_cache.COMPLETE).exists()
    kept = json.loads(next(folder.glob("city_*_filtered_dataset.json")).read_text())["prompts"]
    assert {p["attribute_type"] for p in kept} >= {"Country", "Language"}
    assert all(p["is_correct"] for p in kept)  # only prompts the model answers correctly
    assert artifact_cache.files_digest(model_dir) == model_files  # nothing written beside it
