"""Published SAEs of real SAE Lens releases, end to end without network: files laid into a local
HuggingFace cache where the releases keep them, evaluated through the workflow and through SAE
Bench's runner directly, with the same metrics and the release's real ids in the JSON.

- `sae_bench_pythia70m_sweep_gated_ctx128_0730` (conversion dictionary_learning_1): a Gated
  checkpoint (dictionary_learning's GatedAutoEncoder layout) at its first SAE's path;
- `pythia-70m-deduped-res-sm` (SAE Lens's own format, no conversion): `cfg.json` +
  `sae_weights.safetensors` written by SAE Lens itself at the path of `blocks.0.hook_resid_post`.

Both are made from the demo SAE's weights, on the demo model's hook (layer 0), and the run names
the demo model `pythia-70m-deduped` (it is loaded from its local folder under that name) so the
releases' model matches. Core only: it is deterministic (fixed corpus shuffle) and quick.
"""

import json
import shutil

import pytest
import torch

from conftest import run_snakemake, seed_demo_assets, write_config
from workflow_scripts.plan.releases import resolve

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
GATED = ("sae_bench_pythia70m_sweep_gated_ctx128_0730", "blocks.3.hook_resid_post__trainer_0")
NATIVE = ("pythia-70m-deduped-res-sm", "blocks.0.hook_resid_post")
MODEL = "pythia-70m-deduped"


def snapshot(hf_home, repo_id, path):
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT / path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lay_out_releases(hf_home, demo_sae):
    state = torch.load(demo_sae / "ae.pt", weights_only=True)
    config = json.loads((demo_sae / "config.json").read_text())
    decoder = state["decoder.weight"] / state["decoder.weight"].norm(dim=0, keepdim=True)

    (gated,) = resolve(*(name.replace(".", r"\.") for name in GATED))
    folder = snapshot(hf_home, gated.repo_id, gated.path)
    torch.save(
        {
            "decoder_bias": state["bias"],
            "encoder.weight": state["encoder.weight"],
            "r_mag": torch.zeros_like(state["encoder.bias"]),
            "gate_bias": state["encoder.bias"],
            "mag_bias": state["encoder.bias"],
            "decoder.weight": decoder,
        },
        folder / "ae.pt",
    )
    trainer = {**config["trainer"], "trainer_class": "GatedSAETrainer"}
    trainer.update(dict_class="GatedAutoEncoder", lm_name=f"EleutherAI/{MODEL}")
    (folder / "config.json").write_text(json.dumps({**config, "trainer": trainer}))

    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    (native,) = resolve(*(name.replace(".", r"\.") for name in NATIVE))
    d_sae, d_in = state["encoder.weight"].shape
    sae = StandardSAE(
        StandardSAEConfig(
            d_in=d_in,
            d_sae=d_sae,
            # what SAE Lens's training writes and SAE Bench's core reads (prepend_bos)
            metadata=SAEMetadata(
                model_name=MODEL,
                hook_name=NATIVE[1],
                prepend_bos=True,
                context_size=128,
                dataset_path="monology/pile-uncopyrighted",
            ),
        )
    )
    sae.load_state_dict(
        {
            "W_enc": state["encoder.weight"].T.contiguous(),
            "b_enc": state["encoder.bias"],
            "W_dec": decoder.T.contiguous(),
            "b_dec": state["bias"],
        }
    )
    sae.save_model(snapshot(hf_home, native.repo_id, native.path))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("published")
    seed_demo_assets(workdir)
    demo_sae = workdir / "resources" / "demo" / "sae"
    hf_home = workdir / "hf"
    lay_out_releases(hf_home, demo_sae)
    # the demo baseline, its checkpoint saying it was trained on the model the releases name
    baseline = workdir / "resources" / "baseline_sae"
    shutil.copytree(demo_sae, baseline)
    config = json.loads((baseline / "config.json").read_text())
    config["trainer"]["lm_name"] = f"EleutherAI/{MODEL}"
    (baseline / "config.json").write_text(json.dumps(config))
    configfile = write_config(
        workdir / "published.yaml",
        "demo.yaml",
        model={"name": MODEL, "local_dir": "resources/demo/model"},
        baseline_sae={"local_dir": "resources/baseline_sae", "hook_layer": 0},
        sae_variants={"ihtp": {"enabled": False}, "mpsae": {"enabled": False}},
        comparison_saes={
            "enabled": True,
            "sae_regex_pattern": f"({GATED[0]}|{NATIVE[0]})",
            "sae_block_pattern": r"blocks\.(3\.hook_resid_post__trainer_0|0\.hook_resid_post)",
        },
        hf_home=str(hf_home),
        eval_types={
            "core": True,
            "sparse_probing": False,
            "scr": False,
            "tpp": False,
            "sparse_probing_sae_probes": False,
        },
    )
    result = run_snakemake(["--cores", "2", "--configfile", str(configfile)], workdir, env=OFFLINE)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return {"workdir": workdir, "hf_home": hf_home, "settings": configfile}


def variant_id(release, sae_id):
    return f"{release}__{sae_id}"


@pytest.mark.parametrize("release, sae_id", [GATED, NATIVE])
def test_published_sae_result_carries_release_ids_and_equals_saebench_runner(
    run, release, sae_id, tmp_path, monkeypatch
):
    result = json.loads(
        (
            run["workdir"] / "results" / "evals" / "core" / f"{variant_id(release, sae_id)}.json"
        ).read_text()
    )
    assert (result["sae_lens_release_id"], result["sae_lens_id"]) == (release, sae_id)

    # SAE Bench's runner directly, with the same core settings and the same local model
    import sae_bench.evals.core.main as core_main
    import yaml
    from huggingface_hub import constants

    from workflow_scripts.evals import patches
    from workflow_scripts.plan.config import validate_config

    config = validate_config(yaml.safe_load(run["settings"].read_text()))
    core = config["core_eval"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(run["hf_home"] / "hub"))
    monkeypatch.chdir(run["workdir"])
    with patches.local_models({MODEL: run["workdir"] / "resources" / "demo" / "model"}):
        core_main.multiple_evals(
            selected_saes=[(release, sae_id)],
            n_eval_reconstruction_batches=core["n_eval_reconstruction_batches"],
            n_eval_sparsity_variance_batches=core["n_eval_sparsity_variance_batches"],
            eval_batch_size_prompts=core["eval_batch_size_prompts"],
            compute_featurewise_density_statistics=core["compute_featurewise_density_statistics"],
            compute_featurewise_weight_based_metrics=core[
                "compute_featurewise_weight_based_metrics"
            ],
            exclude_special_tokens_from_reconstruction=core[
                "exclude_special_tokens_from_reconstruction"
            ],
            dataset=core["dataset"],
            context_size=core["context_size"],
            output_folder=str(tmp_path),
            dtype="float32",
            device="cpu",
            force_rerun=True,
        )
    (direct_file,) = tmp_path.glob("*_eval_results.json")
    direct = json.loads(direct_file.read_text())
    assert (direct["sae_lens_release_id"], direct["sae_lens_id"]) == (release, sae_id)
    ours, theirs = result["eval_result_metrics"], direct["eval_result_metrics"]
    assert ours.keys() == theirs.keys()
    for group, metrics in theirs.items():
        for name, value in metrics.items():
            if isinstance(value, float):
                assert ours[group][name] == pytest.approx(value, rel=1e-5, abs=1e-7), (group, name)
            else:
                assert ours[group][name] == value, (group, name)


def test_published_saes_join_the_summary_beside_the_baseline(run):
    table = (run["workdir"] / "results" / "merged" / "metrics.csv").read_text()
    for release, sae_id in (GATED, NATIVE):
        assert variant_id(release, sae_id) in table
    assert "\nbaseline," in table
