"""Absorption, sae-probes and autointerp on the offline demo.

One Snakemake run of the demo (module fixture) with absorption and sparse_probing_sae_probes
enabled on every demo variant; the other tests run single jobs in-process on its SAE folders:
absorption's silent empty result must fail with its reason, its probe cache must live under the
artifacts folder and move when a setting changes, and autointerp runs against a fake judge
injected where SAE Bench calls the OpenAI client.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, run_snakemake, seed_demo_assets, write_config
from workflow_scripts.evals import absorption, sparse_probing
from workflow_scripts.evals.registry import REGISTRY
from workflow_scripts.steps.evaluate import OFFLINE_VARIABLES

DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
EVAL_TYPES = ["absorption", "sparse_probing_sae_probes"]
VARIANTS = (
    ["baseline"]
    + [f"ihtp_k{k}" for k in DEMO["sae_variants"]["ihtp"]["k_values"]]
    + [f"mpsae_s{s}" for s in DEMO["sae_variants"]["mpsae"]["s_values"]]
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("more_evals")
    network_log = workdir / "network.log"
    env = {
        "PYTHONPATH": str(REPO / "tests" / "network_guard"),
        "WORKFLOW_TEST_NETWORK_LOG": str(network_log),
    }
    config = write_config(
        workdir / "more.yaml",
        "demo.yaml",
        eval_types={
            "core": False,
            "sparse_probing": False,
            "scr": False,
            "tpp": False,
            "absorption": True,
            "sparse_probing_sae_probes": True,
        },
        # one core per job: two jobs at a time (much of each job is single-threaded)
        resources={
            **DEMO["resources"],
            "absorption": {"cpus_per_task": 1},
            "sparse_probing_sae_probes": {"cpus_per_task": 1},
        },
    )
    seed_demo_assets(workdir)
    result = run_snakemake(
        ["--cores", "2", "--configfile", str(config)], workdir, env=env, timeout=1800
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return {"workdir": workdir, "network_log": network_log}


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
        for variant in VARIANTS:
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


def test_no_network_connection_was_attempted(demo_run):
    assert not demo_run["network_log"].exists(), demo_run["network_log"].read_text()


def probe_files(artifacts: Path) -> list[Path]:
    return sorted(artifacts.glob("absorption/*/probes/demo-tiny-lm/layer_1/probe.pth"))


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


class FakeJudge:
    """Stands in for openai.OpenAI where SAE Bench's autointerp calls it
    (AutoInterp.get_api_response)."""

    keys: list = []
    requests: list = []

    def __init__(self, api_key=None, **_):
        FakeJudge.keys.append(api_key)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def create(self, **request):
        FakeJudge.requests.append(request)
        system = request["messages"][0]["content"]
        # scoring prompt: "return a comma-separated list of the examples ..." -> example numbers;
        # generation prompt: SAE Bench keeps what follows "activates on"
        text = (
            "1, 2" if "comma-separated list" in system else "This neuron activates on demo words."
        )
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=text))])


def test_autointerp_with_a_fake_judge(in_demo, monkeypatch, capfd):
    import sae_bench.evals.autointerp.main as autointerp

    from workflow_scripts.steps import evaluate

    secret = "sk-test-NEVER-LOGGED-4242"
    monkeypatch.setenv("DEMO_JUDGE_KEY", secret)
    monkeypatch.setattr(autointerp, "OpenAI", FakeJudge)
    FakeJudge.keys, FakeJudge.requests = [], []
    settings = job_settings(
        "autointerp",
        api_key_env="DEMO_JUDGE_KEY",
        judge_model="fake-judge-7",
        n_latents=3,
        total_tokens=20000,
        llm_context_size=64,
        dataset_name=DEMO["core_eval"]["dataset"],
    )
    output = in_demo / "results" / "evals" / "autointerp" / "baseline.json"
    evaluate.evaluate(
        "autointerp",
        in_demo / "results" / "saes" / "baseline",
        "baseline",
        settings,
        output,
        in_demo / "results" / "artifacts",
    )
    result = json.loads(output.read_text())
    score = result["eval_result_metrics"]["autointerp"]["autointerp_score"]
    assert 0.0 <= score <= 1.0
    assert len(result["eval_result_unstructured"]) == 3  # one explanation + score per latent
    assert FakeJudge.requests and {r["model"] for r in FakeJudge.requests} == {"fake-judge-7"}
    assert set(FakeJudge.keys) == {secret}  # the key reached the client ...
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err  # ... and nothing printed it
    assert secret not in output.read_text()


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
