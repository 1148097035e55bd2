"""Encoder families named by import path: checked at DAG time without importing them, checked
against the contract when built, saved and loaded like the built-in ones."""

import pytest
import torch

from conftest import REPO
from workflow_scripts.plan import families
from workflow_scripts.plan.config import ConfigError, validate_config
from workflow_scripts.plan.variants import build_variant_table
from workflow_scripts.saes import sae_folder
from workflow_scripts.saes.family_classes import check_contract, load_class

EXAMPLE = f"{REPO}/docs/examples/topk_correlation.py:TopKCorrelationSAE"


def config_with(family: dict, name: str = "topk_corr") -> dict:
    return validate_config(
        {
            "comparison_saes": {"enabled": False},
            "sae_variants": {
                "ihtp": {"enabled": False},
                "mpsae": {"enabled": True, "s_values": [4]},
            },
            "encoder_families": {name: family},
        }
    )


def test_outside_family_joins_the_variant_table():
    variants = build_variant_table(
        config_with({"class": EXAMPLE, "param_name": "k", "values": [8, 16]})
    )
    assert [(v.id, v.family, v.param) for v in variants] == [
        ("baseline", "baseline", None),
        ("mpsae_s4", "mpsae", 4),
        ("topk_corr_k8", "topk_corr", 8),
        ("topk_corr_k16", "topk_corr", 16),
    ]
    builtin = variants[1].source
    assert builtin["class"] == "workflow_scripts.saes.encoders:MPSAE"  # the same mechanism
    assert variants[2].source["config_key"] == "encoder_families.topk_corr"


@pytest.mark.parametrize(
    "family, key, words",
    [
        (
            {"class": "no colon here"},
            "encoder_families.topk_corr.class",
            "is not 'package.module:Class'",
        ),
        (
            {"class": "missing/file.py:X"},
            "encoder_families.topk_corr.class",
            "no file missing/file.py",
        ),
        (
            {"class": "no_such_package_xyz.mod:X"},
            "encoder_families.topk_corr.class",
            "cannot find module",
        ),
        (
            {"class": EXAMPLE.replace(":TopKCorrelationSAE", ":Nope")},
            "encoder_families.topk_corr.class",
            "defines no class Nope",
        ),
        (
            {"class": EXAMPLE, "param_name": "s"},
            "encoder_families.topk_corr.param_name",
            "param_name is 'k'",
        ),
    ],
)
def test_bad_family_fails_at_dag_time_naming_the_key(family, key, words):
    with pytest.raises(ConfigError) as error:
        build_variant_table(config_with({"param_name": "k", "values": [8], **family}))
    assert f"config key '{key}'" in str(error.value) and words in str(error.value)


def test_a_class_without_encode_is_refused_up_front(tmp_path):
    source = tmp_path / "broken.py"
    source.write_text(
        "from sae_bench.custom_saes.base_sae import BaseSAE\n\n"
        "class NoEncode(BaseSAE):\n    param_name = 'k'\n"
    )
    with pytest.raises(ConfigError, match="NoEncode has no encode method"):
        build_variant_table(
            config_with({"class": f"{source}:NoEncode", "param_name": "k", "values": [1]})
        )


def test_builtin_names_are_reserved():
    with pytest.raises(ConfigError, match="encoder_families.ihtp"):
        build_variant_table(
            config_with({"class": EXAMPLE, "param_name": "k", "values": [1]}, name="ihtp")
        )


def test_the_contract_is_checked_when_built(tmp_path):
    cls = load_class(EXAMPLE)
    check_contract(cls, "k", "encoder_families.topk_corr")  # the example follows it
    source = tmp_path / "wrong_init.py"
    source.write_text(
        "from sae_bench.custom_saes.base_sae import BaseSAE\n\n"
        "class WrongInit(BaseSAE):\n    architecture = 'w'\n    param_name = 'k'\n"
        "    def __init__(self, k, d_in, d_sae):\n        pass\n"
        "    def encode(self, x):\n        return x\n"
    )
    with pytest.raises(families.FamilyError) as error:
        check_contract(load_class(f"{source}:WrongInit"), "k", "encoder_families.w")
    assert "config key 'encoder_families.w.class'" in str(error.value)
    assert "__init__ takes ['k', 'd_in', 'd_sae']" in str(error.value)
    with pytest.raises(families.FamilyError, match="not a subclass of sae_bench"):
        check_contract(int, "k", "encoder_families.w")


def test_outside_family_saves_and_loads_through_the_sae_folder(tmp_path):
    from sae_bench.custom_saes.relu_sae import ReluSAE

    from workflow_scripts.saes.derive import derive_variant

    base = ReluSAE(16, 64, "demo-tiny-lm", 1, torch.device("cpu"), torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        base.W_dec.copy_(torch.nn.functional.normalize(torch.randn(64, 16, generator=g), dim=1))
        base.b_dec.copy_(torch.randn(16, generator=g))
    cls = load_class(EXAMPLE)
    sae = derive_variant("topk_corr", 5, base, cls=cls)
    sae_folder.save_sae(sae, tmp_path / "sae", metadata={"class": EXAMPLE})
    loaded = sae_folder.load_sae(tmp_path / "sae")
    assert type(loaded).__name__ == "TopKCorrelationSAE" and int(loaded.k) == 5
    x = torch.randn(2, 7, 16, generator=g)
    codes = loaded.encode(x)
    assert torch.equal(codes, sae.encode(x))
    assert ((codes != 0).sum(-1) == 5).all()  # at most k per token: exactly k here
    assert torch.equal(loaded.W_dec, base.W_dec)
