"""The eval registry's refusals: SAE Bench evals the workflow does not run are refused up front
with their reasons, and those reasons still hold for the installed SAE Bench."""

import importlib.util
import json
from pathlib import Path

import pytest

from workflow_scripts.evals import registry
from workflow_scripts.plan.config import ConfigError, validate_config


def test_mdl_is_refused_up_front_naming_the_key_and_its_reasons():
    config = validate_config({"eval_types": {"mdl": True}})
    with pytest.raises(ConfigError) as error:
        registry.check_requirements(config)
    message = str(error.value)
    assert "config key 'eval_types.mdl'" in message
    for reason in ("loguru", "module-global `config`", ".cuda()", "eval_result_metrics"):
        assert reason in message
    assert "mdl" not in registry.enabled_eval_types(config)  # never planned as jobs


def test_mdl_reasons_still_hold_for_the_installed_sae_bench():
    """If SAE Bench fixes its MDL module, this fails: time to offer the eval instead."""
    spec = importlib.util.find_spec("sae_bench")
    source = (Path(spec.origin).parent / "evals" / "mdl" / "main.py").read_text()
    lines = source.splitlines()
    assert lines[15] == "from loguru import logger"  # :16
    assert importlib.util.find_spec("loguru") is None  # not a dependency
    assert "config.sae_batch_size" in lines[115]  # ~116, inside calculate_dl, no `config` arg
    assert (
        "def calculate_dl(" in source
        and "config:" not in source.split("def calculate_dl(")[1].split(")")[0]
    )
    assert ".cuda()" in lines[173]  # ~174
    assert "eval_result_metrics" not in source


def test_every_not_offered_eval_has_a_schema_key_and_no_runner():
    defaults = validate_config({})["eval_types"]
    for name in registry.NOT_OFFERED:
        assert defaults[name] is False
        assert name not in registry.REGISTRY


def test_retries_scale_memory_and_runtime_up_to_the_caps():
    config = validate_config(
        {
            "resources": {
                "core": {"mem_mb": 40000, "runtime": 500},
                "max_mem_mb": 100000,
                "max_runtime": 1200,
            }
        }
    )
    asked = [registry.job_resources(config, "core", attempt) for attempt in (1, 2, 3)]
    assert [r["mem_mb"] for r in asked] == [40000, 80000, 100000]
    assert [r["runtime"] for r in asked] == [500, 1000, 1200]
    assert {r["cpus_per_task"] for r in asked} == {4}  # CPUs never scale
    defaults = validate_config({})["resources"]
    assert (defaults["max_mem_mb"], defaults["max_runtime"]) == (128000, 1440)


def test_a_first_attempt_above_its_cap_is_refused_naming_the_key():
    config = validate_config({"resources": {"scr": {"runtime": 2000}, "max_runtime": 1440}})
    with pytest.raises(
        ConfigError, match=r"config key 'resources.max_runtime'.*scr's runtime"
    ) as e:
        registry.check_requirements(config)
    assert "or lower resources.scr" in str(e.value)


@pytest.mark.parametrize("model", ["pythia-70m-deduped", "gpt2"])
def test_ravel_is_refused_up_front_for_a_model_its_code_does_not_know(model):
    config = validate_config({"eval_types": {"ravel": True}, "model": {"name": model}})
    with pytest.raises(ConfigError, match=r"config key 'model.name'.*LLM_NAME_MAP") as e:
        registry.check_requirements(config)
    assert "gemma-2-2b and pythia-160m-deduped" in str(e.value) and repr(model) in str(e.value)


def test_ravel_accepts_its_models_and_a_local_model_of_an_architecture_it_hooks(tmp_path):
    ok = validate_config({"eval_types": {"ravel": True}, "model": {"name": "pythia-160m-deduped"}})
    registry.check_requirements(ok)
    for architecture, refused in (("GPTNeoXForCausalLM", False), ("LlamaForCausalLM", True)):
        folder = tmp_path / architecture
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architectures": [architecture]}))
        config = validate_config(
            {"eval_types": {"ravel": True}, "model": {"name": "mine", "local_dir": str(folder)}}
        )
        if refused:
            with pytest.raises(
                ConfigError, match=r"config key 'model.local_dir'.*LlamaForCausalLM"
            ):
                registry.check_requirements(config)
        else:
            registry.check_requirements(config)
