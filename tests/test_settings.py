"""The config schema fills defaults and names the bad key before any job starts."""

import pytest
import yaml

from conftest import REPO
from workflow_scripts.settings import ConfigError, validate_config
from workflow_scripts.variant_table import build_variant_table


def load(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def test_empty_config_gets_every_default():
    config = validate_config({"comparison_saes": {"enabled": False}})
    assert config["model"]["name"] == "pythia-70m-deduped"
    assert config["sae_variants"]["ihtp"]["k_values"] == [5, 10]
    assert config["core_eval"]["context_size"] == 128
    assert config["eval_types"]["absorption"] is False
    assert config["resources"]["core"]["runtime"] > 0


def test_default_config_matches_original_pipeline_sections():
    config = validate_config(load("config.yaml"))
    for section in [
        "model",
        "baseline_sae",
        "sae_variants",
        "comparison_saes",
        "eval_types",
        "core_eval",
        "sparse_probing",
        "activation_caching",
        "visualization",
        "random_seed",
    ]:
        assert section in load("config.yaml")
    assert [v.id for v in build_variant_table(config)] == [
        "baseline",
        "ihtp_k5",
        "ihtp_k10",
        "mpsae_s50",
        "mpsae_s100",
        "sae_bench_pythia70m_sweep_topk_ctx128_0730__blocks.4.hook_resid_post__trainer_8",
    ]


@pytest.mark.parametrize(
    "config, key",
    [
        ({"model": {"llm_batch_size": "big"}}, "model.llm_batch_size"),
        ({"model": {"nmae": "x"}}, "model.nmae"),
        ({"surprise": 1}, "surprise"),
        ({"sae_variants": {"ihtp": {"k_values": []}}}, "sae_variants.ihtp.k_values"),
        ({"sae_variants": {"mpsae": {"s_values": [50, 50]}}}, "sae_variants.mpsae.s_values"),
        ({"eval_types": {"core": "yes"}}, "eval_types.core"),
        ({"core_eval": {"context_size": 0}}, "core_eval.context_size"),
    ],
)
def test_bad_config_names_the_key(config, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        validate_config(config)


def test_comparison_pattern_that_matches_nothing_is_a_config_error():
    config = validate_config({"comparison_saes": {"sae_regex_pattern": "no_such_release.*"}})
    with pytest.raises(ConfigError, match="no_such_release"):
        build_variant_table(config)


def test_variant_ids_follow_families_and_params():
    config = validate_config(
        {
            "comparison_saes": {"enabled": False},
            "sae_variants": {
                "ihtp": {"enabled": False},
                "mpsae_nonneg": {"enabled": True, "s_values": [7]},
            },
        }
    )
    table = build_variant_table(config)
    assert [(v.id, v.family, v.param) for v in table] == [
        ("baseline", "baseline", None),
        ("mpsae_s50", "mpsae", 50),
        ("mpsae_s100", "mpsae", 100),
        ("mpsae_nonneg_s7", "mpsae_nonneg", 7),
    ]
