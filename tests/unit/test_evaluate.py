"""An evaluation job publishes SAE Bench's JSON only when SAE Bench produced one."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from sae_bench.custom_saes.relu_sae import ReluSAE

from workflow_scripts.evals import registry
from workflow_scripts.saes import sae_folder
from workflow_scripts.steps import evaluate


@pytest.fixture
def sae_dir(tmp_path):
    sae = ReluSAE(
        d_in=4, d_sae=8, model_name="demo-tiny-lm", hook_layer=1, device="cpu", dtype=torch.float32
    )
    sae.cfg.architecture = "standard"
    return sae_folder.save_sae(sae, tmp_path / "saes" / "baseline")


def settings(eval_type="core"):
    return {
        "eval_type": eval_type,
        "section": "core_eval",
        "section_values": {},
        "model": {
            "name": "demo-tiny-lm",
            "local_dir": None,
            "torch_dtype": "float32",
            "device": "cpu",
            "llm_batch_size": 4,
        },
        "random_seed": 42,
        "local_datasets": {},
        "offline": False,
        "save_activations": False,
    }


def with_runner(monkeypatch, run):
    entry = dataclasses.replace(registry.REGISTRY["core"], run=run)
    monkeypatch.setitem(registry.REGISTRY, "core", entry)


def test_swallowed_failure_fails_the_job_and_leaves_nothing(tmp_path, sae_dir, monkeypatch):
    with_runner(monkeypatch, lambda job: print("SAE Bench logged an error and returned"))
    output = tmp_path / "evals" / "core" / "baseline.json"
    with pytest.raises(evaluate.NoResultError, match="produced 0 result files for baseline"):
        evaluate.evaluate("core", sae_dir, "baseline", settings(), output, tmp_path / "artifacts")
    assert not output.exists()
    assert list(output.parent.iterdir()) == []  # no work folder left behind


def test_truncated_result_is_not_published(tmp_path, sae_dir, monkeypatch):
    def run(job):
        (job.work_dir / "baseline_custom_sae_eval_results.json").write_text('{"eval_type_id": "co')

    with_runner(monkeypatch, run)
    output = tmp_path / "evals" / "core" / "baseline.json"
    with pytest.raises(json.JSONDecodeError):
        evaluate.evaluate("core", sae_dir, "baseline", settings(), output, tmp_path / "artifacts")
    assert not output.exists()


def test_result_is_published_unchanged(tmp_path, sae_dir, monkeypatch):
    payload = {"eval_type_id": "core", "eval_result_metrics": {"sparsity": {"l0": 3.0}}}

    def run(job):
        assert job.sae.cfg.d_sae == 8 and job.sae_name == "baseline"
        (job.work_dir / "baseline_custom_sae_eval_results.json").write_text(json.dumps(payload))

    with_runner(monkeypatch, run)
    output = tmp_path / "evals" / "core" / "baseline.json"
    evaluate.evaluate("core", sae_dir, "baseline", settings(), output, tmp_path / "artifacts")
    assert json.loads(output.read_text()) == payload


def test_cli_exit_code_and_message(tmp_path, sae_dir, monkeypatch, capsys):
    with_runner(monkeypatch, lambda job: None)
    code = evaluate.main(
        [
            "--eval-type",
            "core",
            "--sae-dir",
            str(sae_dir),
            "--variant",
            "baseline",
            "--settings",
            json.dumps(settings()),
            "--output",
            str(tmp_path / "out.json"),
        ]
    )
    assert code == 1
    assert "SAE Bench's core eval produced 0 result files" in capsys.readouterr().err


def test_a_job_that_fills_the_shared_cache_publishes_a_run_that_reads_it(
    tmp_path, sae_dir, monkeypatch
):
    """SAE Bench computes differently when it fills an activation cache than when it reads one;
    every published pair must come from a reading run, whichever job came first."""
    runs = []

    def run(job):
        filled = (job.artifacts_dir / "acts.pt").exists()
        if not filled:
            (job.artifacts_dir / "acts.pt").write_text("activations")
        runs.append("read" if filled else "filled")
        result = {"eval_result_metrics": {"sae": {"path": 1.0 if filled else 0.0}}}
        (job.work_dir / "x_custom_sae_eval_results.json").write_text(json.dumps(result))

    entry = dataclasses.replace(registry.REGISTRY["sparse_probing"], run=run)
    monkeypatch.setitem(registry.REGISTRY, "sparse_probing", entry)
    job_settings = {**settings("sparse_probing"), "save_activations": True}
    outputs = []
    for variant in ("first", "second"):
        output = tmp_path / "evals" / "sparse_probing" / f"{variant}.json"
        evaluate.evaluate(
            "sparse_probing", sae_dir, variant, job_settings, output, tmp_path / "artifacts"
        )
        outputs.append(json.loads(output.read_text())["eval_result_metrics"]["sae"]["path"])
    assert runs == ["filled", "read", "read"]  # the first job ran twice, the second once
    assert outputs == [1.0, 1.0]  # both published a run that read the cache


def test_core_batches_are_a_top_level_key_of_the_record(tmp_path, sae_dir, monkeypatch):
    """Lists stay out of eval_result_metrics (the aggregation flattens its scalars) and keep
    their full float repr."""
    batches = {"tokens": [3, 4], "sse": [0.1, 1 / 3], "sst": [1.0, 2.0], "ce": {"tokens": [2]}}

    def run(job):
        (job.work_dir / "baseline_custom_sae_eval_results.json").write_text("{}")
        return {"workflow_reconstruction": {"tokens": 7.0}, "core_batches": batches}

    with_runner(monkeypatch, run)
    output, record = tmp_path / "evals" / "core" / "baseline.json", tmp_path / "record.json"
    evaluate.evaluate(
        "core", sae_dir, "baseline", settings(), output, tmp_path / "artifacts", record
    )
    written = json.loads(record.read_text())
    assert written["eval_result_metrics"] == {"workflow_reconstruction": {"tokens": 7.0}}
    assert written["core_batches"] == batches  # 1/3 round-trips exactly


def test_record_splits_the_job_into_startup_and_saebench_time(tmp_path, sae_dir, monkeypatch):
    import time

    def run(job):
        time.sleep(0.3)  # the eval's own time
        (job.work_dir / "baseline_custom_sae_eval_results.json").write_text("{}")

    with_runner(monkeypatch, run)
    output, record = tmp_path / "evals" / "core" / "baseline.json", tmp_path / "record.json"
    evaluate.evaluate(
        "core", sae_dir, "baseline", settings(), output, tmp_path / "artifacts", record
    )
    written = json.loads(record.read_text())
    assert written["eval_s"] >= 0.3
    # this test process started long before the job's eval: startup counts from process start
    assert written["startup_s"] > written["elapsed_s"] - written["eval_s"]


def test_every_eval_type_names_its_saebench_module():
    import importlib.util

    for name, entry in registry.REGISTRY.items():
        assert entry.saebench_module.startswith("sae_bench.evals."), name
        assert importlib.util.find_spec(entry.saebench_module) is not None, name


def in_fresh_interpreter(code: str):
    """Run `code` in a new Python process at the repository's root; it must succeed."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(evaluate.__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_selection_utils_import_skips_only_the_release_table():
    """In a fresh interpreter: the module's table stays empty, its functions read the real SAE
    Lens directory (a release SAE Bench's own tests use is found)."""
    code = (
        "from workflow_scripts.evals import patches\n"
        "patches.selection_utils_without_release_table()\n"
        "import sae_bench.sae_bench_utils.sae_selection_utils as s\n"
        "assert s.metadata_rows == [], s.metadata_rows[:1]\n"
        "found = s.get_saes_from_regex(r'sae_bench_pythia70m_sweep_standard.*', r'.*trainer_0$')\n"
        "assert found, 'no release found'\n"
        "print(len(found))\n"
    )
    result = in_fresh_interpreter(code)
    assert int(result.stdout.split()[-1]) >= 1


def test_sae_probes_reads_dataset_sizes_on_demand_with_the_same_values():
    """In a fresh interpreter, as a sae-probes job imports it: no dataset is read at import, the
    three module-level size tables answer what sae-probes' own count (utils_data.py:198-205)
    gives, and asking whether a dataset is there reads nothing."""
    code = (
        "import sys\n"
        "from workflow_scripts.steps import evaluate\n"
        "evaluate.prepare_process('sparse_probing_sae_probes', {'offline': True})\n"
        "u = sys.modules['sae_probes.utils_data']\n"
        "assert u.read_dataset_df.cache_info().currsize == 0, 'datasets read at import'\n"
        "tables = [sys.modules['sae_probes.' + m].DATASET_SIZES for m in\n"
        "          ('run_sae_evals', 'run_baselines', 'generate_sae_activations')]\n"
        "tags = u.get_numbered_binary_tags()\n"
        "assert all(list(t) == tags and len(t) == len(tags) == 113 for t in tables)\n"
        "assert tags[3] in tables[0].keys() and 'no_such_dataset' not in tables[0]\n"
        "assert u.read_dataset_df.cache_info().currsize == 0, 'membership read a dataset'\n"
        "try:\n"
        "    tables[0]['no_such_dataset']\n"
        "    raise AssertionError('an unknown dataset has a size')\n"
        "except KeyError:\n"
        "    pass\n"
        "counted = {t: len(u.read_numbered_dataset_df(t)) for t in tags}\n"
        "assert all(dict(t) == counted for t in tables)\n"
        "print(sum(counted.values()))\n"
    )
    result = in_fresh_interpreter(code)
    assert int(result.stdout.split()[-1]) > 113 * 100  # real datasets were counted


def test_an_offline_job_is_offline_before_huggingface_hub_is_imported(tmp_path):
    """huggingface_hub reads HF_HUB_OFFLINE once, at import; the job's CLI imports it (through
    SAE Lens) before evaluate() runs, so the variables must be set first. Fresh interpreter."""
    code = (
        "import sys, os\n"
        "for key in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'TRANSFORMERS_OFFLINE'):\n"
        "    os.environ.pop(key, None)\n"
        "from workflow_scripts.steps import evaluate\n"
        "def seen(*args, **kwargs):\n"
        "    import huggingface_hub.constants as c\n"
        "    print('offline', c.HF_HUB_OFFLINE)\n"
        "evaluate.evaluate = seen\n"
        "evaluate.main(['--eval-type', 'core', '--sae-dir', 'x', '--variant', 'v', '--output',\n"
        "               'o.json', '--settings', '{\"offline\": true}'])\n"
    )
    result = in_fresh_interpreter(code)
    assert "offline True" in result.stdout


def meta_structure_score(tmp_path, sae_dir, seed, name):
    """SAE Bench's meta-structure eval, run by the job on a random 16 x 64 dictionary (a few
    training steps: the eval needs no model and no dataset)."""
    job = settings("meta_structure")
    job.update(section="meta_structure", random_seed=seed)
    job["section_values"] = {"train_steps": 30, "train_batch_size": 32, "autocast": False}
    output = tmp_path / name / "baseline.json"
    evaluate.evaluate("meta_structure", sae_dir, "baseline", job, output, tmp_path / "artifacts")
    result = json.loads(output.read_text())
    assert result["eval_config"]["random_seed"] == seed
    return result["eval_result_metrics"]["meta_structure"]["decoder_fraction_variance_explained"]


def test_meta_structure_is_reproducible_at_a_seed(tmp_path):
    """SAE Bench's run_eval leaves the meta-SAE's initialisation and row sampling unseeded; the
    job seeds them: the same seed gives the same value, another seed another."""
    sae = ReluSAE(
        d_in=16,
        d_sae=64,
        model_name="demo-tiny-lm",
        hook_layer=1,
        device="cpu",
        dtype=torch.float32,
    )
    with torch.no_grad():
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(64, 16), dim=1))
    sae.cfg.architecture = "standard"
    sae_dir = sae_folder.save_sae(sae, tmp_path / "saes" / "baseline")
    first = meta_structure_score(tmp_path, sae_dir, 42, "a")
    torch.manual_seed(1234)  # whatever the process drew before, the job's value is the same
    assert meta_structure_score(tmp_path, sae_dir, 42, "b") == first
    assert meta_structure_score(tmp_path, sae_dir, 43, "c") != first
    assert 0.0 < first < 1.0
