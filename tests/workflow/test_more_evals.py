"""Absorption, sae-probes, meta-structure and autointerp on the offline demo.

The session's shared demo run (tests/conftest.py) has absorption, sparse_probing_sae_probes and
meta_structure enabled on one variant of each family; the other tests run single jobs
in-process on its SAE folders: absorption's silent empty result must fail with its reason, its
probe cache must live under the artifacts folder and move when a setting changes, and
autointerp's real OpenAI client talks to a judge server on 127.0.0.1
(workflow_scripts/demo/judge.py).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from conftest import REPO, SHARED_VARIANTS, evaluated_variants
from workflow_scripts.demo.judge import JudgeServer
from workflow_scripts.evals import absorption, sparse_probing
from workflow_scripts.evals.registry import REGISTRY
from workflow_scripts.plan.config import validate_config
from workflow_scripts.steps.evaluate import OFFLINE_VARIABLES

DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
EVAL_TYPES = ["absorption", "sparse_probing_sae_probes", "meta_structure"]
VARIANTS = SHARED_VARIANTS


@pytest.fixture(scope="module")
def demo_run(shared_demo_run):
    return shared_demo_run


def job_settings(eval_type: str, **section) -> dict:
    """What the evaluate rule passes a job of the demo (paths relative to the demo's workdir)."""
    return {
        "eval_type": eval_type,
        "section": eval_type,
        "section_values": {**DEMO.get(eval_type, {}), **section},
        "model": dict(DEMO["model"]),
        "random_seed": 42,
        "local_datasets": dict(DEMO["local_datasets"]),
        "offline": True,
        "save_activations": True,
    }


@pytest.fixture
def in_demo(demo_run, monkeypatch):
    """Run jobs in-process from the demo's workdir; evaluate() sets the offline variables."""
    monkeypatch.chdir(demo_run["workdir"])
    for name, value in OFFLINE_VARIABLES.items():
        monkeypatch.setenv(name, value)
    return demo_run["workdir"]


def test_every_variant_has_each_result_with_its_headline(demo_run):
    evals = demo_run["workdir"] / "results" / "evals"
    for eval_type in EVAL_TYPES:
        for variant in evaluated_variants(eval_type):
            result = json.loads((evals / eval_type / f"{variant}.json").read_text())
            for metric in REGISTRY[eval_type].headline:
                group, name = metric.key.split(".")
                assert isinstance(result["eval_result_metrics"][group][name], float), (
                    eval_type,
                    variant,
                )
    absorption = json.loads((evals / "absorption" / "baseline.json").read_text())
    assert absorption["eval_config"]["min_GT_probe_f1"] == DEMO["absorption"]["min_GT_probe_f1"]
    assert len(absorption["eval_result_details"]) >= DEMO["absorption"]["min_feats_for_eval"]
    probes = json.loads((evals / "sparse_probing_sae_probes" / "baseline.json").read_text())
    assert [d["dataset_name"] for d in probes["eval_result_details"]] == DEMO[
        "sparse_probing_sae_probes"
    ]["dataset_names"]


def test_meta_structure_runs_once_per_decoder(demo_run):
    """The derived variants reuse the baseline's decoder: one meta-structure job (the
    baseline's), its value shown for every variant, and the summary says why."""
    out = demo_run["workdir"] / "results"
    assert sorted(p.stem for p in (out / "evals" / "meta_structure").glob("*.json")) == ["baseline"]
    result = json.loads((out / "evals" / "meta_structure" / "baseline.json").read_text())
    assert result["eval_config"]["random_seed"] == validate_config(DEMO)["random_seed"]
    value = result["eval_result_metrics"]["meta_structure"]["decoder_fraction_variance_explained"]
    table = pd.read_csv(out / "merged" / "metrics.csv").set_index("variant")
    column = "meta_structure.meta_structure.decoder_fraction_variance_explained"
    assert table.loc[VARIANTS, column].tolist() == pytest.approx([value] * len(VARIANTS))
    summary = (out / "merged" / "summary.md").read_text()
    assert "decoder variance explained by a meta-SAE" in summary
    assert "by construction" in summary
    versus = pd.read_csv(out / "merged" / "versus_baseline.csv")
    assert versus[versus["eval_type"] == "meta_structure"].empty  # no claim against itself


def test_no_network_connection_was_attempted(demo_run):
    assert not demo_run["network_log"].exists(), demo_run["network_log"].read_text()


def probe_files(artifacts: Path) -> list[Path]:
    return sorted(artifacts.glob("absorption/*/probes/demo-tiny-lm/layer_0/probe.pth"))


def test_absorption_probe_cache_is_under_the_artifacts_folder(demo_run):
    import sae_bench.evals.absorption.common as common

    probes = probe_files(demo_run["workdir"] / "results" / "artifacts")
    assert len(probes) == 1  # one probe for the model and layer, shared by every variant
    assert not (common.PROBES_DIR / "demo-tiny-lm").exists()  # nothing inside the installed package
    assert not (demo_run["workdir"] / "artifacts").exists()  # nor relative to the working directory


def test_absorption_silent_empty_result_fails_with_its_reason(in_demo):
    """SAE Bench returns {} when too few letters have a good probe; the job fails saying so.
    The changed setting also gets a probe cache of its own."""
    from workflow_scripts.steps import evaluate

    artifacts = in_demo / "results" / "artifacts"
    before = probe_files(artifacts)
    output = in_demo / "gate" / "baseline.json"
    with pytest.raises(absorption.AbsorptionGateError) as error:
        evaluate.evaluate(
            "absorption",
            in_demo / "results" / "saes" / "baseline",
            "baseline",
            job_settings("absorption", min_GT_probe_f1=0.99, min_feats_for_eval=20),
            output,
            artifacts,
        )
    message = str(error.value)
    assert "fewer than min_feats_for_eval=20 first-letter features" in message
    assert "probe F1 > min_GT_probe_f1=0.99" in message
    assert "only 0 of 26 letters" in message and "F1 by letter: a=" in message
    assert not output.exists()
    after = probe_files(artifacts)
    assert len(after) == len(before) + 1 and set(before) < set(after)  # a new key, the old one kept


def test_absorption_cache_key_follows_model_layer_and_settings():
    from workflow_scripts.evals import artifact_cache
    from workflow_scripts.steps import evaluate

    sae = SimpleNamespace(cfg=SimpleNamespace(hook_name="blocks.1.hook_resid_post"))
    other_layer = SimpleNamespace(cfg=SimpleNamespace(hook_name="blocks.0.hook_resid_post"))

    def folder(settings, of=sae):
        return artifact_cache.cache_folder(
            "results/artifacts", "absorption", evaluate._cache_settings(settings, of)
        )

    base = job_settings("absorption")
    moved_model = {**base, "model": {**base["model"], "local_dir": "elsewhere/model"}}
    assert folder(base) == folder(job_settings("absorption"))
    assert (
        len(
            {
                folder(base),
                folder(base, other_layer),
                folder(moved_model),
                folder(job_settings("absorption", prompt_token_pos=-5)),
                folder(job_settings("absorption", k_sparse_probe_num_epochs=10)),
            }
        )
        == 5
    )


def test_sae_probes_unknown_dataset_is_refused_up_front():
    assert (
        sparse_probing.sae_probes_problems(
            {
                "sparse_probing_sae_probes": {
                    "dataset_names": DEMO["sparse_probing_sae_probes"]["dataset_names"]
                }
            },
            {},
        )
        == []
    )
    problems = sparse_probing.sae_probes_problems(
        {"sparse_probing_sae_probes": {"dataset_names": ["118_us_state_CA", "no_such_dataset"]}}, {}
    )
    assert (
        len(problems) == 1
        and "'no_such_dataset' is not one of the 113 datasets shipped with sae-probes"
        in problems[0]
    )


def test_autointerp_with_a_judge_at_a_url(in_demo, monkeypatch, capfd):
    """The job's real OpenAI client talks HTTP to a judge server on 127.0.0.1 (as to a vLLM server
    on a cluster node), offline for the hub: every request names the configured judge model and
    carries the key; no output, log or result holds the key."""
    from workflow_scripts.steps import evaluate

    secret = "sk-test-NEVER-LOGGED-4242"
    monkeypatch.setenv("DEMO_JUDGE_KEY", secret)
    with JudgeServer() as judge:
        settings = job_settings(
            "autointerp",
            api_key_env="DEMO_JUDGE_KEY",
            judge_model="fake-judge-7",
            judge_base_url=judge.base_url,
            n_latents=3,
            total_tokens=20000,
            llm_context_size=64,
            dataset_name=DEMO["core_eval"]["dataset"],
        )
        # outside results/: the shared run does not enable autointerp
        output = in_demo / "autointerp" / "evals" / "baseline.json"
        record = in_demo / "autointerp" / "workflow_metrics" / "baseline.json"
        evaluate.evaluate(
            "autointerp",
            in_demo / "results" / "saes" / "baseline",
            "baseline",
            settings,
            output,
            in_demo / "results" / "artifacts",
            workflow_output=record,
        )
    result = json.loads(output.read_text())
    score = result["eval_result_metrics"]["autointerp"]["autointerp_score"]
    assert 0.0 <= score <= 1.0
    assert len(result["eval_result_unstructured"]) == 3  # one explanation + score per latent
    # explanation and scoring requests for each of the 3 latents
    assert len(judge.requests) >= 6
    assert {r["model"] for r in judge.requests} == {"fake-judge-7"}
    assert set(judge.authorizations) == {f"Bearer {secret}"}  # the key reached the judge ...
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err  # ... and nothing printed or wrote it
    assert secret not in output.read_text() + record.read_text()


def test_autointerp_judge_url_is_checked_up_front(monkeypatch):
    from workflow_scripts.evals import autointerp

    def problems(**section):
        return autointerp.problems({"autointerp": section}, {})

    # a judge on the cluster's network needs no key; OpenAI's API does
    assert problems(api_key_env="NO_SUCH_VARIABLE_SET", judge_base_url="http://node7:8000/v1") == []
    assert "needs the judge's API key" in problems(api_key_env="NO_SUCH_VARIABLE_SET")[0]
    assert "'autointerp.judge_base_url'" in problems(judge_base_url="node7:8000")[0]
    leaked = problems(judge_base_url="http://user:sk-secret@node7:8000/v1")[0]
    assert "password" in leaked and "sk-secret" not in leaked
    assert "query" in problems(judge_base_url="http://node7:8000/v1?api_key=sk-secret")[0]
    for bad in ("http://[node7", "http://node7:port/v1"):
        assert "is not an http(s) URL" in problems(judge_base_url=bad)[0]
    # a judge on the cluster never gets the user's OpenAI key unless the config names it
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    assert autointerp.api_key({"judge_base_url": "http://node7:8000/v1"}) is None
    assert autointerp.api_key({}) == "sk-real-openai-key"  # OpenAI's API: the default variable


def test_demo_tokenizer_suits_absorption(demo_run):
    """Absorption reads the word at prompt_token_pos=-6: the suffix " has the first letter:" must
    be exactly 5 tokens with left padding, and every letter needs alphabetic word tokens."""
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig
    from sae_bench.evals.absorption.vocab import LETTERS, get_alpha_tokens
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        str(demo_run["workdir"] / "resources" / "demo" / "tokenizer"),
        add_bos_token=True,
        padding_side="left",
    )
    config = AbsorptionEvalConfig()
    ids = tokenizer(config.prompt_template.format(word="zebra"))["input_ids"]
    assert ids[config.prompt_token_pos] == tokenizer.convert_tokens_to_ids("zebra")
    assert (
        len(tokenizer.tokenize(config.prompt_template.format(word="")))
        == -config.prompt_token_pos - 1
    )
    words = get_alpha_tokens(tokenizer)
    assert {word.strip()[0].lower() for word in words} == set(LETTERS)
    assert min(sum(w.strip()[0].lower() == letter for w in words) for letter in LETTERS) >= 6
