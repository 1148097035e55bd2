"""Hub sources: SAEs load from a HuggingFace cache in the hub's own layout with the offline
variables set, problems name the file, and GPU jobs without the cache fail fast with a hint."""

import json
import re
import subprocess
import sys
import time

import pytest
import torch
from checkpoints import D_IN, D_SAE, MODEL, write_checkpoint

from conftest import REPO, run_snakemake, snakemake_env
from workflow_scripts.plan.releases import resolve
from workflow_scripts.saes import loading, sae_folder

REPO_ID = "canrager/lm_sae"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def hub_cache(hf_home, folder_in_repo, **checkpoint):
    """Write a dictionary_learning checkpoint into HF_HOME where the hub client caches it."""
    repo = hf_home / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    _, state = write_checkpoint(repo / "snapshots" / COMMIT / folder_in_repo, **checkpoint)
    return state


def baseline(filename, layer=4):
    return {
        "id": "baseline",
        "family": "baseline",
        "source": {"repo_id": REPO_ID, "filename": filename, "hook_layer": layer},
    }


TOPK_RELEASE = "sae_bench_pythia70m_sweep_topk_ctx128_0730"
TOPK_PATH = "pythia70m_sweep_topk_ctx128_0730/resid_post_layer_4/trainer_8"
RELU_PATH = "sweep_standard/resid_post_layer_4/trainer_8"
SAELENS_RELEASE = {"release": "pythia-70m-deduped-res-sm", "sae_id": "blocks.4.hook_resid_post"}
BAD_CHECKPOINTS = [
    ({"layer": 3}, "trained on layer 3"),
    ({"lm_name": "google/gemma-2-2b"}, "trained on 'google/gemma-2-2b'"),
    ({"state": {"encoder.weight": torch.zeros(D_SAE, D_IN)}}, "does not load as a StandardTrainer"),
    (
        {
            "state": {
                "encoder.weight": torch.zeros(D_SAE, D_IN),
                "encoder.bias": torch.zeros(D_SAE + 1),
                "decoder.weight": torch.zeros(D_IN, D_SAE),
                "bias": torch.zeros(D_IN),
            }
        },
        "size mismatch",
    ),
]


def comparison(hooks=("blocks.4.hook_resid_post",), sae_id="blocks.4.hook_resid_post__trainer_8"):
    """The variant-table row of a real release's SAE (variant_table.build_variant_table)."""
    found = resolve(TOPK_RELEASE, re.escape(sae_id))
    return {
        "id": "topk_t8",
        "family": "comparison",
        "source": {**found[0].__dict__, "baseline_hooks": list(hooks)},
    }


def saelens_sae(seed=0):
    """A StandardSAE in SAE Lens's own format, decoder rows not unit norm (SAE Lens folds them)."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    sae = StandardSAE(
        StandardSAEConfig(
            d_in=D_IN,
            d_sae=D_SAE,
            metadata=SAEMetadata(
                model_name="pythia-70m-deduped",
                hook_name="blocks.4.hook_resid_post",
                prepend_bos=True,
                context_size=128,
            ),
        )
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return sae


IHTP_K3 = {
    "id": "ihtp_k3",
    "family": "ihtp",
    "param_name": "k",
    "param": 3,
    "source": {
        "class": "workflow_scripts.saes.encoders:IHTPSAE",
        "config_key": "sae_variants.ihtp",
    },
}

# Every import (and derivation) of these tests runs through the steps' own `main` in ONE
# process with the offline variables and HF_HOME set before anything is imported, as a job's
# process has them: one interpreter start instead of one per case (each costs ~10 s here).
DRIVER = """
import contextlib, importlib, io, json, sys, time, traceback
results = {}
for name, module, argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = importlib.import_module(module).main(argv)
        except SystemExit as exit:
            rc = exit.code
        except Exception:
            traceback.print_exc()
            rc = "exception"
    results[name] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(),
                     "seconds": time.monotonic() - start}
print("RESULTS " + json.dumps(results))
"""
IMPORT, DERIVE = "workflow_scripts.steps.import_sae", "workflow_scripts.steps.derive_sae"


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """One HuggingFace cache in the hub's layout holding every checkpoint below, and the result
    of each case: {name: {rc, stdout, stderr, seconds, out}} plus the written states."""
    root = tmp_path_factory.mktemp("hub_sources")
    hf_home = root / "hf"
    states = {
        "relu": hub_cache(hf_home, RELU_PATH),
        "topk": hub_cache(hf_home, TOPK_PATH, trainer_class="TopKTrainer", k=3),
    }
    hub_cache(hf_home, "present/trainer_0")
    for i, (checkpoint, _) in enumerate(BAD_CHECKPOINTS):
        hub_cache(hf_home, f"bad{i}/trainer_0", **checkpoint)
    repo = hf_home / "hub" / "models--ctigges--pythia-70m-deduped__res-sm_processed"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    saelens_sae().save_model(repo / "snapshots" / COMMIT / "4-res-sm")
    saelens_sae().save_model(root / "my_sae")

    def imported(name, variant):
        out = root / "saes" / name
        argv = ["--variant", json.dumps(variant), "--model-name", MODEL, "--output", str(out)]
        return name, IMPORT, argv

    def derived(name, base):
        out = root / "saes" / name
        argv = ["--variant", json.dumps(IHTP_K3), "--base", str(root / "saes" / base)]
        return name, DERIVE, [*argv, "--output", str(out)]

    saelens_baseline = {"id": "baseline", "family": "baseline"}
    other_id = "blocks.4.hook_resid_post__trainer_13"  # of the same release, not cached
    cases = [
        imported("relu", baseline(f"{RELU_PATH}/ae.pt")),
        imported("published", comparison()),
        imported("published_other_hook", comparison(hooks=["blocks.2.hook_resid_post"])),
        imported("published_not_cached", comparison(sae_id=other_id)),
        imported(
            "saelens_release",
            {**saelens_baseline, "source": {**SAELENS_RELEASE, "hook_layer": 4}},
        ),
        derived("saelens_release_ihtp", "saelens_release"),
        imported(
            "saelens_local",
            {**saelens_baseline, "source": {"local_dir": str(root / "my_sae"), "hook_layer": 4}},
        ),
        derived("saelens_local_ihtp", "saelens_local"),
        imported(
            "saelens_other_layer",
            {**saelens_baseline, "source": {"local_dir": str(root / "my_sae"), "hook_layer": 2}},
        ),
        imported("absent", baseline("absent/trainer_0/ae.pt")),
        *(imported(f"bad{i}", baseline(f"bad{i}/trainer_0/ae.pt")) for i in range(4)),
    ]
    env = snakemake_env({"HF_HOME": str(hf_home), **OFFLINE, "PYTHONPATH": str(REPO)})
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.split("RESULTS ", 1)[1])
    for name, _, _ in cases:
        results[name]["out"] = root / "saes" / name
    return {"results": results, "states": states, "hf_home": hf_home, "root": root}


def test_relu_baseline_from_offline_hub_cache(steps):
    result = steps["results"]["relu"]
    assert result["rc"] == 0, result["stderr"][-3000:]
    state = steps["states"]["relu"]
    sae = sae_folder.load_sae(result["out"])
    assert sae.cfg.architecture == "standard" and sae.cfg.hook_layer == 4
    torch.testing.assert_close(sae.W_dec.data, state["decoder.weight"].T)
    torch.testing.assert_close(sae.b_enc.data, state["encoder.bias"])
    config = json.loads((result["out"] / "config.json").read_text())
    assert config["metadata"]["source"]["repo_id"] == REPO_ID
    assert (config["d_in"], config["d_sae"]) == (D_IN, D_SAE)


def test_published_sae_loads_through_saelens_from_offline_hub_cache(steps, monkeypatch):
    """Where SAE Lens's directory expects it: a config-only folder with the release's ids, and
    the SAE it stands for encodes like SAE Bench's own TopK loader."""
    from workflow_scripts.saes.dictionary_learning import load_dictionary_learning_sae

    result, hf_home = steps["results"]["published"], steps["hf_home"]
    out = result["out"]
    assert result["rc"] == 0, result["stderr"][-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["metadata"]["sae_lens"] == {
        "release": TOPK_RELEASE,
        "sae_id": "blocks.4.hook_resid_post__trainer_8",
    }
    assert (config["architecture"], config["d_sae"], config["hook_name"]) == (
        "sae_lens",
        D_SAE,
        "blocks.4.hook_resid_post",
    )
    assert not (out / "sae.safetensors").exists()  # SAE Bench loads it from the cache itself

    from huggingface_hub import constants  # read its environment when imported: set it here

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    sae = loading.load(out)  # a published SAE's folder: SAE Lens loads it
    snapshot = hf_home / "hub" / "models--canrager--lm_sae" / "snapshots" / COMMIT / TOPK_PATH
    reference = load_dictionary_learning_sae(snapshot / "ae.pt", "pythia-70m-deduped", 4)
    x = torch.randn(16, D_IN, generator=torch.Generator().manual_seed(0))
    codes = sae.encode(x)
    assert ((codes != 0).sum(-1) == 3).all()
    torch.testing.assert_close(codes, reference.encode(x))


def test_published_sae_on_another_hook_point_is_refused_naming_the_release(steps):
    result = steps["results"]["published_other_hook"]
    assert result["rc"] != 0 and not result["out"].exists()
    assert TOPK_RELEASE in result["stderr"] and "no baseline's hook point" in result["stderr"]


def test_published_sae_missing_from_offline_cache_names_it_and_the_prefetch_step(steps):
    result = steps["results"]["published_not_cached"]
    assert result["rc"] != 0 and not result["out"].exists()
    assert TOPK_RELEASE in result["stderr"] and "snakemake --until prefetch" in result["stderr"]


@pytest.mark.parametrize("where", ["release", "local"])
def test_saelens_baseline_gives_its_folded_dictionary_to_derived_variants(steps, where):
    """A baseline given as an SAE Lens release (+ sae_id) or a local SAE Lens folder: loaded by
    SAE Lens, decoder norms folded as SAE Bench does, and IHTP built on that dictionary."""
    base, derived = (steps["results"][f"saelens_{where}{s}"] for s in ("", "_ihtp"))
    assert base["rc"] == 0, base["stderr"][-3000:]
    assert json.loads((base["out"] / "config.json").read_text())["architecture"] == "sae_lens"
    assert derived["rc"] == 0, derived["stderr"][-3000:]
    ihtp = sae_folder.load_sae(derived["out"])
    sae = saelens_sae()
    sae.fold_W_dec_norm()
    torch.testing.assert_close(ihtp.W_dec.data, sae.W_dec.data)
    torch.testing.assert_close(ihtp.W_dec.norm(dim=1), torch.ones(D_SAE))
    assert ihtp.cfg.hook_name == "blocks.4.hook_resid_post" and int(ihtp.k) == 3


def test_saelens_baseline_on_another_layer_is_refused(steps):
    result = steps["results"]["saelens_other_layer"]
    assert result["rc"] != 0 and not result["out"].exists()
    assert "hook_layer 2" in result["stderr"] and "blocks.4.hook_resid_post" in result["stderr"]


@pytest.mark.parametrize("case", range(len(BAD_CHECKPOINTS)))
def test_bad_checkpoint_stops_the_setup_job_naming_file(steps, case):
    result = steps["results"][f"bad{case}"]
    assert result["rc"] != 0
    assert BAD_CHECKPOINTS[case][1] in result["stderr"]
    assert re.search(rf"snapshots/\w+/bad{case}/trainer_0/(ae\.pt|config\.json)", result["stderr"])
    assert not result["out"].exists()


def test_file_missing_from_offline_cache_fails_at_once(steps):
    result = steps["results"]["absent"]
    assert result["rc"] != 0 and result["seconds"] < 60
    assert "absent/trainer_0/ae.pt" in result["stderr"]


def test_default_comparison_pattern_resolves_offline():
    found = resolve(
        "(sae_bench_pythia70m_sweep_topk_ctx128_0730).*",
        r".*blocks\.([4])\.hook_resid_post__trainer_(8)$",
    )
    assert [(s.release, s.sae_id) for s in found] == [
        ("sae_bench_pythia70m_sweep_topk_ctx128_0730", "blocks.4.hook_resid_post__trainer_8")
    ]
    assert found[0].repo_id == REPO_ID and found[0].path.endswith("resid_post_layer_4/trainer_8")


def test_dry_run_prefetches_once_before_every_gpu_job(tmp_path):
    result = run_snakemake(
        ["-n", "--configfile", str(REPO / "config" / "config.yaml")], tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout)
    assert sum(bool(re.match(r"(local)?rule prefetch:", b)) for b in blocks) == 1
    evaluations = [b for b in blocks if b.startswith("rule evaluate:")]
    assert len(evaluations) == 85  # 6 variants + 11 reference SAEs, x 5 default eval types
    assert all(
        "results/prefetch/manifest.json" in re.search(r"input: (.*)", b).group(1)
        for b in evaluations
    )


def test_gpu_job_without_cache_fails_fast_with_prefetch_hint(tmp_path):
    from sae_bench.custom_saes.relu_sae import ReluSAE

    sae = ReluSAE(
        d_in=512,
        d_sae=8,
        model_name="pythia-70m-deduped",
        hook_layer=4,
        device="cpu",
        dtype=torch.float32,
    )
    sae.cfg.architecture = "standard"
    sae_dir = sae_folder.save_sae(sae, tmp_path / "saes" / "baseline")
    settings = {
        "eval_type": "core",
        "section": "core_eval",
        "section_values": {},
        "model": {
            "name": "pythia-70m-deduped",
            "local_dir": None,
            "torch_dtype": "float32",
            "device": "cpu",
            "llm_batch_size": 4,
        },
        "random_seed": 42,
        "local_datasets": {},
        "offline": True,
        "save_activations": False,
    }
    cmd = [
        sys.executable,
        "-m",
        "workflow_scripts.steps.evaluate",
        "--eval-type",
        "core",
        "--variant",
        "baseline",
        "--sae-dir",
        str(sae_dir),
        "--settings",
        json.dumps(settings),
        "--output",
        str(tmp_path / "out.json"),
    ]
    env = snakemake_env({"HF_HOME": str(tmp_path / "empty-cache"), "PYTHONPATH": str(REPO)})
    start = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert (
        "EleutherAI/pythia-70m-deduped" in result.stderr
        and "snakemake --until prefetch" in result.stderr
    )
    assert elapsed < 60, f"took {elapsed:.0f}s"  # SAE Bench's own retries would take minutes
    assert not (tmp_path / "out.json").exists()


def test_prefetch_records_files_and_never_the_token(tmp_path):
    hf_home = tmp_path / "hf"
    hub_cache(hf_home, "sweep_standard/trainer_8")
    plan = {
        "model": None,
        "files": [
            [REPO_ID, "sweep_standard/trainer_8/ae.pt"],
            [REPO_ID, "sweep_standard/trainer_8/config.json"],
        ],
        "eval_sections": {"sparse_probing": {"dataset_names": ["LabHC/bias_in_bios_class_set1"]}},
        "local_datasets": {"LabHC/bias_in_bios_class_set1": "somewhere"},
        "core_sample": None,
    }
    manifest = tmp_path / "prefetch" / "manifest.json"
    cmd = [
        sys.executable,
        "-m",
        "workflow_scripts.steps.prefetch",
        "--plan",
        json.dumps(plan),
        "--manifest",
        str(manifest),
    ]
    token = "hf_secretTOKEN1234567890"
    env = snakemake_env(
        {"HF_HOME": str(hf_home), **OFFLINE, "HF_TOKEN": token, "PYTHONPATH": str(REPO)}
    )
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(manifest.read_text())
    assert [f["filename"] for f in record["files"]] == [
        "sweep_standard/trainer_8/ae.pt",
        "sweep_standard/trainer_8/config.json",
    ]
    assert all(f["path"].startswith(str(hf_home)) for f in record["files"])
    assert record["datasets"] == []  # local stand-ins are not fetched
    assert token not in manifest.read_text() + result.stdout + result.stderr


def test_a_baseline_download_without_network_names_the_file_and_the_prefetch_step(tmp_path):
    """Offline and not cached: a message naming repo and file and pointing to prefetch."""
    variant = {
        "id": "baseline",
        "family": "baseline",
        "source": {
            "repo_id": "canrager/lm_sae",
            "filename": "some/trainer_0/ae.pt",
            "hook_layer": 4,
        },
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow_scripts.steps.import_sae",
            "--variant",
            json.dumps(variant),
            "--model-name",
            "pythia-70m-deduped",
            "--output",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        env=snakemake_env(
            {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "cannot fetch canrager/lm_sae/some/trainer_0/ae.pt" in result.stderr
    assert "snakemake --until prefetch" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
