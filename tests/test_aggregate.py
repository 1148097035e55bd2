"""The merged table reads every scalar metric back from SAE Bench's JSONs."""

import json

import pytest

from workflow_scripts.aggregate import merge, scalar_metrics


def test_scalar_metrics_flatten_groups_and_skip_non_scalars():
    result = {"eval_result_metrics": {"sparsity": {"l0": 12.5, "l1": 3}, "misc": {"flag": True, "hist": [1, 2], "none": None}}}
    assert scalar_metrics("core", result) == {"core.sparsity.l0": 12.5, "core.sparsity.l1": 3.0}


def write_pair(root, eval_type, variant, metrics):
    path = root / "evals" / eval_type / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"eval_type_id": eval_type, "eval_result_metrics": metrics}))


def write_sae(root, variant, architecture):
    folder = root / "saes" / variant
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"architecture": architecture, "d_sae": 64, "hook_name": "blocks.1.hook_resid_post"}))


def test_merge_one_row_per_variant(tmp_path):
    variants = [{"id": "baseline", "family": "baseline"},
                {"id": "ihtp_k5", "family": "ihtp", "param_name": "k", "param": 5}]
    for v, arch, l0 in [("baseline", "standard", 30.0), ("ihtp_k5", "ihtp", 44.0)]:
        write_sae(tmp_path, v, arch)
        write_pair(tmp_path, "core", v, {"sparsity": {"l0": l0}})
        write_pair(tmp_path, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": l0 / 100}})
    table = merge(variants, tmp_path / "saes", tmp_path / "evals", ["core", "sparse_probing"])
    assert list(table["variant"]) == ["baseline", "ihtp_k5"]
    assert list(table["architecture"]) == ["standard", "ihtp"]
    assert list(table["core.sparsity.l0"]) == [30.0, 44.0]
    assert list(table["sparse_probing.sae.sae_top_1_test_accuracy"]) == [0.30, 0.44]
    assert table.loc[1, "param"] == 5


def test_missing_pair_is_an_error_naming_it(tmp_path):
    write_sae(tmp_path, "baseline", "standard")
    with pytest.raises(FileNotFoundError, match="core/baseline.json"):
        merge([{"id": "baseline", "family": "baseline"}], tmp_path / "saes", tmp_path / "evals", ["core"])
