"""The workflow's RAVEL runner: what it says when the model knows too little, and the patch that
hands transformers 5's layer outputs to RAVEL's hooks as the tuples they index."""

from __future__ import annotations

import json
import math

import pytest
import torch

from workflow_scripts.evals import ravel


def _filtered(folder, attributes):
    prompts = [
        {"attribute_type": a, "is_correct": True} for a, n in attributes.items() for _ in range(n)
    ]
    (folder / "city_demo_downsampled-None_top-500-entities_filtered_dataset.json").write_text(
        json.dumps({"prompts": prompts, "config": {}})
    )


class _Config:
    llm_batch_size = 8
    entity_attribute_selection = {"city": ["Country", "Language"]}


def test_a_nan_score_is_never_published_and_says_why(tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    work.mkdir()
    _filtered(data, {"Country": 5, "Language": 0})
    result = work / "demo_eval_results.json"
    nan = {"disentanglement_score": math.nan, "cause_score": math.nan, "isolation_score": 1.0}
    result.write_text(json.dumps({"eval_result_metrics": {"ravel": nan}}))
    with pytest.raises(ravel.RavelDataError) as e:
        ravel.check_scores(work, data, _Config())
    message = str(e.value)
    assert "NaN for cause_score, disentanglement_score" in message
    assert "llm_batch_size 8" in message and "city/Country: 5, city/Language: 0" in message
    assert "does not know enough of the entities' attributes" in message
    assert not result.exists()


def test_finite_scores_pass(tmp_path):
    (tmp_path / "r_eval_results.json").write_text(
        json.dumps({"eval_result_metrics": {"ravel": {"disentanglement_score": 0.6}}})
    )
    ravel.check_scores(tmp_path, tmp_path, _Config())
    assert (tmp_path / "r_eval_results.json").exists()


def test_an_empty_filtered_dataset_stops_with_what_the_model_knew(tmp_path, monkeypatch):
    """SAE Bench stops with a bare ValueError (max() of an empty sequence) when the model answered
    no prompt; the runner says what that means."""
    import sae_bench.evals.ravel.main as ravel_main

    from workflow_scripts.evals.base import EvalJob

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "ravel_city_entity_attributes.json").write_text("{}")

    def run_eval(config, *args, **kwargs):
        _filtered(__import__("pathlib").Path(config.artifact_dir), {})
        config.model_name = "mutated"  # as ravel/main.py:468 does
        raise ValueError("max() arg is an empty sequence")

    monkeypatch.setattr(ravel_main, "run_eval", run_eval)
    settings = {
        "section": "ravel",
        "section_values": {"entity_attribute_selection": {"city": ["Country", "Language"]}},
        "model": {
            "name": "pythia-160m-deduped",
            "llm_batch_size": 8,
            "torch_dtype": "float32",
            "device": "cpu",
        },
        "random_seed": 1,
        "local_datasets": {ravel.PROMPTS_DATASET: str(prompts)},
    }
    work = tmp_path / "work"
    work.mkdir()
    job = EvalJob("ravel", None, "v", settings, work, None, 8, None, tmp_path / "artifacts")
    with pytest.raises(
        ravel.RavelDataError,
        match=r"max\(\) arg is an empty sequence.*"
        r"city/Country: 0, city/Language: 0.*does not know enough",
    ):
        ravel.run(job)
    # the folder of a failed build is not marked complete: the next job builds it again
    [folder] = [p for p in (tmp_path / "artifacts" / "ravel").iterdir() if p.is_dir()]
    assert not (folder / ".complete").exists()
    assert (folder / "base" / "ravel_city_entity_attributes.json").exists()


def test_ravel_layer_outputs_hand_hooks_tuples_and_restore():
    import sae_bench.sae_bench_utils.activation_collection as activation_collection
    from transformers import BatchEncoding, GPTNeoXConfig, GPTNeoXForCausalLM

    from workflow_scripts.evals import patches

    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["GPTNeoXForCausalLM"],
    )
    model = GPTNeoXForCausalLM(config).eval()
    ids = torch.randint(0, 50, (3, 7))
    inputs = BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    positions = torch.tensor([-1, -2, -3])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[1]  # after layer 0
    expected = hidden[torch.arange(3), positions]
    original = activation_collection.get_module
    with patches.ravel_layer_outputs():
        acts = activation_collection.get_layer_activations(model, 0, inputs, positions)
        assert torch.allclose(acts, expected, atol=1e-6)

        def replace(module, inputs, outputs):  # RAVEL's intervention: returns (resid, *rest)
            assert isinstance(outputs, tuple)
            return (torch.zeros_like(outputs[0]), *outputs[1:])

        seen = []  # what layer 1 receives
        pre = model.gpt_neox.layers[1].register_forward_pre_hook(lambda m, a, *k: seen.append(a))
        handle = activation_collection.get_module(model, 0).register_forward_hook(replace)
        with torch.no_grad():
            model(input_ids=ids)
        handle.remove()
        pre.remove()
        assert torch.count_nonzero(seen[0][0]) == 0
    assert activation_collection.get_module is original


def test_the_prompts_snapshot_is_prefetched_and_checked_unless_a_stand_in_is_set():
    from workflow_scripts import hub

    plan = {"eval_sections": {"ravel": {}, "core": {}}, "local_datasets": {}}
    assert hub.eval_snapshots(plan) == [ravel.PROMPTS_DATASET]
    assert hub.eval_snapshots({**plan, "local_datasets": {ravel.PROMPTS_DATASET: "x"}}) == []
    assert hub.eval_snapshots({**plan, "eval_sections": {"core": {}}}) == []
