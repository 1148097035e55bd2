"""The config schema fills defaults and names the bad key before any job starts."""

import re

import pytest
import yaml

from conftest import REPO
from workflow_scripts.plan.config import ConfigError, validate_config
from workflow_scripts.plan.variants import build_variant_table, reference_ids


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
    variants = build_variant_table(config)
    assert [v.id for v in variants if v.family != "reference"] == [
        "baseline",
        "ihtp_k5",
        "ihtp_k10",
        "mpsae_s50",
        "mpsae_s100",
        "sae_bench_pythia70m_sweep_topk_ctx128_0730__blocks.4.hook_resid_post__trainer_8",
    ]
    # the reference frontier: the baseline and the other 4096-latent trainers of its sweep
    sweep = "sae_bench_pythia70m_sweep_standard_ctx128_0712__blocks.4.hook_resid_post__trainer_"
    references = reference_ids(config, {v.id: v for v in variants})
    assert references[0] == "baseline" and len(references) == 12
    assert {int(r.removeprefix(sweep)) for r in references[1:]} == {
        0,
        1,
        4,
        5,
        9,
        12,
        13,
        16,
        17,
        20,
        21,
    }


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


@pytest.mark.parametrize(
    "section, words",
    [
        ({"sae_regex_pattern": "no_such_sweep"}, "'reference_frontier': no SAE Lens release"),
        ({"sae_regex_pattern": "pythia-70m-deduped-res-sm"}, None),
        ({"local_saes": [{"name": "x", "local_dir": "d"}]}, "reference_frontier.local_saes"),
    ],
)
def test_reference_frontier_errors_name_the_key(section, words):
    if words is None:  # a release for another model
        config = validate_config(
            {
                "model": {"name": "gpt2"},
                "comparison_saes": {"enabled": False},
                "reference_frontier": section,
            }
        )
        with pytest.raises(ConfigError, match="'reference_frontier': release"):
            build_variant_table(config)
        return
    with pytest.raises(ConfigError, match=words):
        build_variant_table(validate_config({"reference_frontier": section}))


def test_comparison_release_for_another_model_is_refused_naming_it():
    config = validate_config(
        {
            "model": {"name": "gpt2"},
            "comparison_saes": {
                "sae_regex_pattern": "pythia-70m-deduped-res-sm",
                "sae_block_pattern": r"blocks\.4\.hook_resid_post",
            },
        }
    )
    with pytest.raises(ConfigError, match="'pythia-70m-deduped-res-sm' is for model"):
        build_variant_table(config)


def test_any_saelens_release_is_a_comparison_with_the_baselines_hook():
    config = validate_config(
        {
            "comparison_saes": {
                "sae_regex_pattern": "pythia-70m-deduped-res-sm|.*gated.*",
                "sae_block_pattern": r"blocks\.4\.hook_resid_post(__trainer_0)?",
            }
        }
    )
    comparisons = [v for v in build_variant_table(config) if v.family == "comparison"]
    assert [(v.source["release"], v.source["conversion_func"]) for v in comparisons] == [
        ("pythia-70m-deduped-res-sm", None),
        ("sae_bench_pythia70m_sweep_gated_ctx128_0730", "dictionary_learning_1"),
    ]
    assert all(v.source["baseline_hooks"] == ["blocks.4.hook_resid_post"] for v in comparisons)


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


def two_baselines(**extra):
    return validate_config(
        {
            "comparison_saes": {"enabled": False},
            "sae_variants": {
                "ihtp": {"enabled": True, "k_values": [5]},
                "mpsae": {"enabled": False},
            },
            "baseline_saes": [
                {
                    "name": "l4_t8",
                    "filename": "sweep/resid_post_layer_4/trainer_8/ae.pt",
                    "hook_layer": 4,
                },
                {
                    "name": "l3_t8",
                    "filename": "sweep/resid_post_layer_3/trainer_8/ae.pt",
                    "hook_layer": 3,
                },
            ],
            **extra,
        }
    )


def test_several_baselines_each_get_their_variants():
    variants = build_variant_table(two_baselines())
    assert [(v.id, v.family, v.baseline) for v in variants] == [
        ("l4_t8", "baseline", "l4_t8"),
        ("l4_t8__ihtp_k5", "ihtp", "l4_t8"),
        ("l3_t8", "baseline", "l3_t8"),
        ("l3_t8__ihtp_k5", "ihtp", "l3_t8"),
    ]
    sources = {v.id: v.source for v in variants if v.family == "baseline"}
    assert sources["l3_t8"]["hook_layer"] == 3 and sources["l3_t8"]["repo_id"] == "canrager/lm_sae"
    assert sources["l3_t8"]["filename"].endswith("layer_3/trainer_8/ae.pt")


def test_one_listed_baseline_keeps_the_single_baseline_ids():
    config = validate_config(
        {
            "comparison_saes": {"enabled": False},
            "baseline_saes": [{"name": "mine", "local_dir": "elsewhere", "hook_layer": 2}],
        }
    )
    variants = build_variant_table(config)
    assert [v.id for v in variants][:3] == ["baseline", "ihtp_k5", "ihtp_k10"]
    assert variants[0].source["local_dir"] == "elsewhere"
    assert {v.baseline for v in variants} == {"baseline"}


@pytest.mark.parametrize(
    "baselines, key, words",
    [
        (
            [{"name": "a", "hook_layer": 1}, {"name": "a", "hook_layer": 2}],
            "baseline_saes",
            "twice",
        ),
        ([{"name": "a", "hook_layer": 1}, {"name": "b"}], "baseline_saes.1.hook_layer", "required"),
        ([{"name": "a b", "hook_layer": 1}], "baseline_saes.0.name", "does not match"),
        ([{"hook_layer": 1}], "baseline_saes.0", "'name' is a required property"),
    ],
)
def test_bad_baselines_name_the_key(baselines, key, words):
    with pytest.raises(ConfigError) as error:
        build_variant_table(
            validate_config({"comparison_saes": {"enabled": False}, "baseline_saes": baselines})
        )
    assert f"config key '{key}'" in str(error.value) and words in str(error.value)


@pytest.mark.parametrize(
    "baseline, words",
    [
        ({"release": "no_such_release", "sae_id": "x"}, "is not in SAE Lens's directory"),
        (
            {"release": "pythia-70m-deduped-res-sm", "sae_id": "blocks.9.hook_resid_post"},
            "has no SAE 'blocks.9.hook_resid_post'",
        ),
        ({"release": "pythia-70m-deduped-res-sm"}, "release and sae_id go together"),
    ],
)
def test_baseline_release_errors_name_the_key(baseline, words):
    config = validate_config({"baseline_sae": baseline, "comparison_saes": {"enabled": False}})
    with pytest.raises(ConfigError, match="'baseline_sae'") as caught:
        build_variant_table(config)
    assert words in str(caught.value)


def test_reference_sae_named_like_a_variant_is_refused_naming_its_key():
    config = validate_config(
        {
            "comparison_saes": {"enabled": False},
            "reference_frontier": {
                "local_saes": [{"name": "ihtp_k5", "local_dir": "d", "hook_layer": 4}]
            },
        }
    )
    with pytest.raises(ConfigError, match=r"'reference_frontier\.local_saes\.0\.name'"):
        build_variant_table(config)


@pytest.mark.parametrize(
    "release, block",
    [
        ("gemma-scope-2b-pt-transcoders", r"layer_3/.*"),  # conversion gemma_2_transcoder
        ("mntss-gemma-2-2b-2.5m-clt-as-per-layer", ".*"),  # a cross-layer transcoder
    ],
)
def test_a_pattern_matching_transcoders_is_refused_naming_release_and_sae(release, block):
    from workflow_scripts.plan import releases

    sae_id = releases.resolve(re.escape(release), block)[0].sae_id
    config = validate_config(
        {
            "model": {"name": "gemma-2-2b"},
            "comparison_saes": {"enabled": False},
            "reference_frontier": {"sae_regex_pattern": release, "sae_block_pattern": block},
        }
    )
    with pytest.raises(ConfigError) as error:
        build_variant_table(config)
    message = str(error.value)
    assert "transcoder" in message and repr(release) in message and repr(sae_id) in message
    assert "config key 'reference_frontier'" in message


def test_the_directory_marks_whole_transcoder_releases_and_no_sae_release():
    """Every SAE of a release named as transcoders is marked; no SAE of any other release is (the
    Gemma Scope 2 SAE and transcoder releases share one conversion function)."""
    from workflow_scripts.plan import releases

    for release in releases.release_directory():
        marked = {s.transcoder for s in releases.resolve(re.escape(release), ".*")}
        named = "transcoder" in release or "-clt-" in release
        assert marked <= {named}, release


def test_a_saelens_transcoder_folder_is_refused_naming_it(tmp_path):
    """A tiny SAE Lens transcoder, saved by SAE Lens: loading it as an SAE is refused."""
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.transcoder import Transcoder, TranscoderConfig

    from workflow_scripts.saes import saelens

    cfg = TranscoderConfig(
        d_in=8, d_sae=16, d_out=8, dtype="float32", device="cpu", apply_b_dec_to_input=False
    )
    cfg.metadata = SAEMetadata(hook_name="blocks.0.ln2.hook_normalized", model_name="demo-tiny-lm")
    Transcoder(cfg).save_model(str(tmp_path / "tc"))
    assert saelens.is_saelens_folder(tmp_path / "tc")
    with pytest.raises(saelens.NotAnSAEError, match=r"SAE Lens folder .*tc: .*Transcoder"):
        saelens.load_local(str(tmp_path / "tc"))
