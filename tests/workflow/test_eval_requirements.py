"""Evals whose requirements are not met are refused in a dry run, naming the problem."""

import json

import pytest

from conftest import run_snakemake, write_config


def dry_run(tmp_path, env=None, **overrides):
    config = write_config(tmp_path / "run.yaml", "config.yaml", **overrides)
    result = run_snakemake(["-n", "--configfile", str(config)], tmp_path, env=env, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_unlearning_refuses_a_model_that_is_not_instruction_tuned(tmp_path):
    code, output = dry_run(tmp_path, eval_types={"unlearning": True})
    assert code != 0
    assert (
        "needs an instruction-tuned gemma-2-2b-it or gemma-2-9b-it as model.name "
        "(got 'pythia-70m-deduped')" in output
    )
    assert "rule evaluate" not in output


def test_unlearning_refuses_a_missing_forget_corpus(tmp_path):
    code, output = dry_run(
        tmp_path,
        eval_types={"unlearning": True},
        comparison_saes={"enabled": False},
        reference_frontier={"sae_regex_pattern": None},  # the default's is for pythia-70m
        model={"name": "gemma-2-2b-it"},
        unlearning={"forget_corpus_path": str(tmp_path / "nowhere.jsonl")},
    )
    assert code != 0
    assert "config key 'unlearning.forget_corpus_path'" in output and "does not exist" in output
    assert "instruction-tuned" not in output


def test_unlearning_with_its_requirements_is_planned(tmp_path):
    corpus = tmp_path / "bio-forget-corpus.jsonl"
    corpus.write_text(json.dumps({"text": "x"}) + "\n")
    code, output = dry_run(
        tmp_path,
        eval_types={"unlearning": True},
        comparison_saes={"enabled": False},
        reference_frontier={"sae_regex_pattern": None},  # the default's is for pythia-70m
        model={"name": "gemma-2-2b-it"},
        unlearning={"forget_corpus_path": str(corpus)},
    )
    assert code == 0, output
    assert "eval_type=unlearning" in output


def test_autointerp_refuses_without_a_key(tmp_path):
    code, output = dry_run(tmp_path, env={"OPENAI_API_KEY": ""}, eval_types={"autointerp": True})
    assert code != 0
    assert (
        "needs the judge's API key: set $OPENAI_API_KEY or point config key "
        "'autointerp.api_key_file'" in output
    )


def test_autointerp_key_from_a_file_is_accepted_and_never_printed(tmp_path):
    key_file = tmp_path / "judge.key"
    key_file.write_text("sk-test-SECRET-123\n")
    code, output = dry_run(
        tmp_path,
        env={"OPENAI_API_KEY": ""},
        eval_types={"autointerp": True},
        autointerp={"api_key_file": str(key_file)},
    )
    assert code == 0, output
    assert "eval_type=autointerp" in output
    assert "sk-test-SECRET-123" not in output  # the settings passed to jobs hold the file name only


@pytest.mark.parametrize("eval_type", ["scr", "tpp"])
def test_n_values_above_the_sae_width_are_refused(tmp_path, eval_type):
    sae = tmp_path / "results" / "saes" / "baseline"
    sae.mkdir(parents=True)
    (sae / "config.json").write_text(json.dumps({"d_sae": 4096, "architecture": "standard"}))
    code, output = dry_run(tmp_path, **{eval_type: {"n_values": [10, 5000]}})
    assert code != 0
    assert (
        f"config key '{eval_type}.n_values': 5000 exceeds the width 4096 of SAE 'baseline'"
        in output
    )
    code, output = dry_run(tmp_path, **{eval_type: {"n_values": [10, 4096]}})
    assert code == 0, output


def test_core_without_any_featurewise_statistics_is_refused(tmp_path):
    # SAE Bench 0.6.0 would swallow a validation error and write no result for hours of GPU time
    code, output = dry_run(
        tmp_path,
        core_eval={
            "compute_featurewise_density_statistics": False,
            "compute_featurewise_weight_based_metrics": False,
        },
    )
    assert code != 0
    assert "config key 'core_eval.compute_featurewise_density_statistics'" in output
    code, output = dry_run(tmp_path, core_eval={"compute_featurewise_density_statistics": False})
    assert code == 0, output
