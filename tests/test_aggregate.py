"""The merged table reads every scalar metric back from SAE Bench's JSONs."""

import json

import pytest

from workflow_scripts.aggregate import merge, scalar_metrics


def test_scalar_metrics_flatten_groups_and_skip_non_scalars():
    result = {
        "eval_result_metrics": {
            "sparsity": {"l0": 12.5, "l1": 3},
            "misc": {"flag": True, "hist": [1, 2], "none": None},
        }
    }
    assert scalar_metrics("core", result) == {"core.sparsity.l0": 12.5, "core.sparsity.l1": 3.0}


def write_pair(root, eval_type, variant, metrics):
    path = root / "evals" / eval_type / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"eval_type_id": eval_type, "eval_result_metrics": metrics}))


def write_sae(root, variant, architecture):
    folder = root / "saes" / variant
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"architecture": architecture, "d_sae": 64, "hook_name": "blocks.1.hook_resid_post"}
        )
    )


def test_merge_one_row_per_variant(tmp_path):
    variants = [
        {"id": "baseline", "family": "baseline"},
        {"id": "ihtp_k5", "family": "ihtp", "param_name": "k", "param": 5},
    ]
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
        merge(
            [{"id": "baseline", "family": "baseline"}],
            tmp_path / "saes",
            tmp_path / "evals",
            ["core"],
        )


# --- missing pairs, ranking, plots: small hand-written JSONs -------------------------------------

import math  # noqa: E402
import os  # noqa: E402

import pandas as pd  # noqa: E402

from workflow_scripts import aggregate, outputs, plot_metrics, summary  # noqa: E402
from workflow_scripts.summary import headline_metrics, rank_variants  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def small_run(root, with_core_for_k5=True):
    """baseline + ihtp k5/k10, core and sparse_probing; optionally without core for ihtp_k5."""
    variants = [
        {"id": "baseline", "family": "baseline"},
        {"id": "ihtp_k5", "family": "ihtp", "param_name": "k", "param": 5},
        {"id": "ihtp_k10", "family": "ihtp", "param_name": "k", "param": 10},
    ]
    values = {
        "baseline": (30.0, 0.80, 0.90, 0.70),
        "ihtp_k5": (5.0, 0.85, 0.95, 0.75),
        "ihtp_k10": (10.0, 0.90, 0.97, 0.72),
    }
    for v, (l0, ev, ce, acc) in values.items():
        write_sae(root, v, "standard" if v == "baseline" else "ihtp")
        if v != "ihtp_k5" or with_core_for_k5:
            write_pair(
                root,
                "core",
                v,
                {
                    "sparsity": {"l0": l0},
                    "reconstruction_quality": {"explained_variance": ev},
                    "model_performance_preservation": {"ce_loss_score": ce},
                },
            )
        write_pair(root, "sparse_probing", v, {"sae": {"sae_top_1_test_accuracy": acc}})
    return variants


def test_missing_pair_without_allow_missing_names_the_pair(tmp_path):
    variants = small_run(tmp_path, with_core_for_k5=False)
    with pytest.raises(
        aggregate.MissingPairError, match=r"pair \(core, ihtp_k5\).*core/ihtp_k5.json is missing"
    ):
        merge(variants, tmp_path / "saes", tmp_path / "evals", ["core", "sparse_probing"])


def test_a_json_without_metrics_is_a_missing_pair(tmp_path):
    variants = small_run(tmp_path)
    write_pair(tmp_path, "core", "ihtp_k5", {})
    with pytest.raises(aggregate.MissingPairError, match=r"\(core, ihtp_k5\).*has no metrics"):
        merge(variants, tmp_path / "saes", tmp_path / "evals", ["core", "sparse_probing"])
    table = merge(
        variants,
        tmp_path / "saes",
        tmp_path / "evals",
        ["core", "sparse_probing"],
        allow_missing=True,
    )
    assert table.attrs["missing"] == [("core", "ihtp_k5")]


def test_allow_missing_marks_the_gap(tmp_path):
    variants = small_run(tmp_path, with_core_for_k5=False)
    table = merge(
        variants,
        tmp_path / "saes",
        tmp_path / "evals",
        ["core", "sparse_probing"],
        allow_missing=True,
    )
    row = table.set_index("variant")
    assert row.loc["ihtp_k5", "missing"] == "core" and row.loc["baseline", "missing"] == ""
    assert math.isnan(row.loc["ihtp_k5", "core.sparsity.l0"])
    assert row.loc["ihtp_k5", "sparse_probing.sae.sae_top_1_test_accuracy"] == 0.75
    headlines = headline_metrics(["core", "sparse_probing"])
    text = summary.markdown(
        table, headlines, table.attrs["missing"], 20, ["core", "sparse_probing"]
    )
    k5_line = next(line for line in text.splitlines() if "| ihtp_k5 |" in line)
    assert k5_line.count("missing") == 3 and "0.750" in k5_line
    assert "**Missing pairs**" in text and "core/ihtp_k5" in text


def test_cli_fails_naming_the_pair_and_allow_missing_writes_everything(tmp_path, capsys):
    variants = small_run(tmp_path, with_core_for_k5=False)
    out = tmp_path / "merged"
    args = [
        "--variants",
        json.dumps(variants),
        "--eval-types",
        "core",
        "sparse_probing",
        "--saes-dir",
        str(tmp_path / "saes"),
        "--evals-dir",
        str(tmp_path / "evals"),
        "--csv",
        str(out / "metrics.csv"),
        "--json",
        str(out / "metrics.json"),
        "--summary-md",
        str(out / "summary.md"),
        "--summary-rst",
        str(out / "summary.rst"),
        "--summary-html",
        str(out / "summary.html"),
        "--config",
        '{"allow_missing": true}',
        "--config-dump",
        str(out / "config.yaml"),
        "--saebench-dir",
        str(tmp_path / "saebench"),
    ]
    assert aggregate.main(args) == 1
    assert "(core, ihtp_k5)" in capsys.readouterr().err and not (out / "metrics.csv").exists()
    assert aggregate.main(args + ["--allow-missing"]) == 0
    records = json.loads((out / "metrics.json").read_text())
    assert [r["variant"] for r in records] == ["baseline", "ihtp_k5", "ihtp_k10"]
    assert records[1]["core.sparsity.l0"] is None and records[1]["missing"] == "core"
    assert "missing" in (out / "summary.rst").read_text()
    assert "<table" in (out / "summary.html").read_text()
    assert "allow_missing: true" in (out / "config.yaml").read_text()
    # SAE Bench's own names: links for the pairs that exist, none for the missing one
    links = sorted(p.name for p in (tmp_path / "saebench").rglob("*_eval_results.json"))
    assert "ihtp_k5_custom_sae_eval_results.json" not in os.listdir(tmp_path / "saebench" / "core")
    assert len(links) == 5
    link = tmp_path / "saebench" / "core" / "baseline_custom_sae_eval_results.json"
    assert json.loads(link.read_text())["eval_result_metrics"]["sparsity"]["l0"] == 30.0


def test_headline_threshold_selects_scr_and_tpp_keys():
    keys = {h.column: h.label for h in headline_metrics(["scr", "tpp"], threshold=10)}
    assert keys == {
        "scr.scr_metrics.scr_metric_threshold_10": "SCR (top 10 latents)",
        "tpp.tpp_metrics.tpp_threshold_10_total_metric": "TPP (top 10 latents)",
    }
    assert [h.column for h in headline_metrics(["scr"])] == [
        "scr.scr_metrics.scr_metric_threshold_20"
    ]


def ranking_table():
    return pd.DataFrame(
        [
            # variant, L0, explained variance (higher better), probe accuracy (higher better)
            {
                "variant": "a",
                "architecture": "x",
                "core.sparsity.l0": 10.0,
                "core.reconstruction_quality.explained_variance": 0.9,
                "sparse_probing.sae.sae_top_1_test_accuracy": 0.6,
            },
            {
                "variant": "b",
                "architecture": "x",
                "core.sparsity.l0": 50.0,
                "core.reconstruction_quality.explained_variance": 0.95,
                "sparse_probing.sae.sae_top_1_test_accuracy": 0.8,
            },
            {
                "variant": "c",
                "architecture": "x",
                "core.sparsity.l0": 20.0,
                "core.reconstruction_quality.explained_variance": 0.8,
                "sparse_probing.sae.sae_top_1_test_accuracy": 0.9,
            },
            {
                "variant": "d",
                "architecture": "x",
                "core.sparsity.l0": 5.0,
                "core.reconstruction_quality.explained_variance": 0.95,
                "sparse_probing.sae.sae_top_1_test_accuracy": float("nan"),
            },
        ]
    )


def test_ranking_rule():
    headlines = [h for h in headline_metrics(["core", "sparse_probing"]) if "ce_loss" not in h.key]
    ranked = rank_variants(ranking_table(), headlines)
    # EV ranks: b=1, d=1 (tie shares the better rank), a=3, c=4; accuracy: c=1, b=2, a=3 (d missing)
    # mean: b=1.5, d=1 (its missing metric is left out), c=2.5, a=3
    assert list(ranked["variant"]) == ["d", "b", "c", "a"]
    assert list(ranked["mean_rank"]) == [1.0, 1.5, 2.5, 3.0]
    assert list(ranked["rank"]) == [1, 2, 3, 4]


def test_ranking_ties_go_to_the_sparser_variant():
    table = ranking_table().iloc[:2].copy()
    table["sparse_probing.sae.sae_top_1_test_accuracy"] = [0.8, 0.6]  # a wins accuracy, b wins EV
    headlines = [h for h in headline_metrics(["core", "sparse_probing"]) if "ce_loss" not in h.key]
    assert list(rank_variants(table, headlines)["variant"]) == [
        "a",
        "b",
    ]  # both 1.5, a has lower L0


def test_lower_is_better_metrics_rank_ascending():
    table = pd.DataFrame(
        [
            {
                "variant": "a",
                "architecture": "x",
                "absorption.mean.mean_absorption_fraction_score": 0.3,
            },
            {
                "variant": "b",
                "architecture": "x",
                "absorption.mean.mean_absorption_fraction_score": 0.1,
            },
        ]
    )
    assert list(rank_variants(table, headline_metrics(["absorption"]))["variant"]) == ["b", "a"]


def test_pareto_front():
    import numpy as np

    x, y = np.array([5.0, 10.0, 20.0, 30.0]), np.array([0.5, 0.4, 0.9, 0.8])
    assert plot_metrics.pareto_front(x, y, higher_is_better=True) == [0, 2]
    assert plot_metrics.pareto_front(x, y, higher_is_better=False) == [0, 1]


def plot_table(tmp_path, eval_types, **kwargs):
    variants = small_run(tmp_path, **kwargs)
    table = merge(variants, tmp_path / "saes", tmp_path / "evals", eval_types, allow_missing=True)
    return aggregate.ensure_columns(table, [h.column for h in headline_metrics(eval_types)])


def assert_png(path):
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000, path


@pytest.mark.parametrize(
    "eval_types",
    [["core", "sparse_probing"], ["core"], ["sparse_probing"]],
    ids=["both", "core only", "no core"],
)
def test_plots_render_with_gaps_core_only_and_without_core(tmp_path, eval_types):
    table = plot_table(tmp_path, eval_types, with_core_for_k5=False)
    csv = tmp_path / "metrics.csv"
    table.to_csv(csv, index=False)
    out = tmp_path / "plots"
    style = {
        "markers": {"standard": "o", "ihtp": "s"},
        "colors": {"standard": "#1f77b4"},
    }  # ihtp: fallback colour
    assert (
        plot_metrics.main(
            [
                "--table",
                str(csv),
                "--eval-types",
                *eval_types,
                "--style",
                json.dumps(style),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(os.listdir(out)) == sorted(outputs.plot_file_names(eval_types))
    for name in outputs.plot_file_names(eval_types):
        assert_png(out / name)


def test_a_headline_threshold_the_eval_did_not_compute_is_an_error(tmp_path, capsys):
    write_sae(tmp_path, "baseline", "standard")
    write_pair(
        tmp_path,
        "scr",
        "baseline",
        {"scr_metrics": {"scr_metric_threshold_10": 0.1, "scr_metric_threshold_20": 0.2}},
    )
    args = [
        "--variants",
        json.dumps([{"id": "baseline", "family": "baseline"}]),
        "--eval-types",
        "scr",
        "--saes-dir",
        str(tmp_path / "saes"),
        "--evals-dir",
        str(tmp_path / "evals"),
        "--csv",
        str(tmp_path / "metrics.csv"),
    ]
    assert aggregate.main(args + ["--threshold", "50"]) == 1
    err = capsys.readouterr().err
    assert (
        "scr.scr_metrics.scr_metric_threshold_50" in err
        and "n_values" in err
        and "scr_metric_threshold_10" in err
    )
    assert aggregate.main(args + ["--threshold", "10"]) == 0
