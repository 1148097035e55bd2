"""Saving and loading SAE folders: round trips, config contents, atomic writes, clear errors."""

import json

import pytest
import torch
from sae_bench.custom_saes.jumprelu_sae import JumpReluSAE
from sae_bench.custom_saes.relu_sae import ReluSAE
from sae_bench.custom_saes.topk_sae import TopKSAE

from workflow_scripts.saes import sae_folder
from workflow_scripts.saes.architectures import family_class
from workflow_scripts.saes.derive import derive_variant
from workflow_scripts.saes.sae_folder import load_sae, save_sae

D_IN, D_SAE = 16, 64


def randomise(sae, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        sae.W_dec.copy_(torch.nn.functional.normalize(sae.W_dec, dim=1))
    return sae


def relu_sae(seed=0):
    sae = randomise(
        ReluSAE(D_IN, D_SAE, "tiny-model", 1, "cpu", torch.float32, "blocks.1.hook_resid_post"),
        seed,
    )
    sae.cfg.architecture = "standard"
    return sae


def x_in(seed=9):
    return torch.randn(2, 12, D_IN, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family,param", [("ihtp", 3), ("mpsae", 7), ("mpsae_nonneg", 7)])
def test_variant_round_trip_gives_identical_codes(tmp_path, family, param):
    sae = derive_variant(family, param, relu_sae())
    folder = save_sae(sae, tmp_path / "v", metadata={"variant_id": f"{family}_{param}"})
    cfg = json.loads((folder / "config.json").read_text())
    pname = family_class(family).param_name
    assert cfg == {
        "architecture": family,
        "d_in": D_IN,
        "d_sae": D_SAE,
        "model_name": "tiny-model",
        "hook_layer": 1,
        "hook_name": "blocks.1.hook_resid_post",
        "dtype": "float32",
        "params": {pname: param},
        "metadata": {"variant_id": f"{family}_{param}"},
    }
    loaded = load_sae(folder)
    assert type(loaded) is type(sae) and loaded.cfg.architecture == family
    assert int(getattr(loaded, pname)) == param
    assert torch.equal(loaded.encode(x_in()), sae.encode(x_in()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]  # no temp folder left


@pytest.mark.parametrize(
    "make,arch",
    [
        (lambda: ReluSAE(D_IN, D_SAE, "m", 0, "cpu", torch.float32), "relu"),
        (lambda: ReluSAE(D_IN, D_SAE, "m", 0, "cpu", torch.float32), "p_anneal"),
        (lambda: TopKSAE(D_IN, D_SAE, 5, "m", 0, "cpu", torch.float32), "topk"),
        (lambda: JumpReluSAE(D_IN, D_SAE, "m", 0, "cpu", torch.float32), "jumprelu"),
    ],
)
def test_sae_bench_classes_round_trip(tmp_path, make, arch):
    sae = randomise(make(), seed=1)
    sae.cfg.architecture = arch
    loaded = load_sae(save_sae(sae, tmp_path / arch))
    assert type(loaded) is type(sae) and loaded.cfg.architecture == arch
    for k, v in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert torch.equal(loaded.encode(x_in()), sae.encode(x_in()))
    if arch == "topk":
        assert int(loaded.k) == 5


def test_load_in_bf16_keeps_integer_buffer(tmp_path):
    sae = derive_variant("ihtp", 4, relu_sae())
    loaded = load_sae(save_sae(sae, tmp_path / "v"), dtype=torch.bfloat16)
    assert loaded.W_dec.dtype == torch.bfloat16 and loaded.cfg.dtype == "bfloat16"
    assert loaded.k.dtype == torch.int64 and int(loaded.k) == 4


def test_overwrite_replaces_folder(tmp_path):
    save_sae(derive_variant("mpsae", 3, relu_sae()), tmp_path / "v")
    save_sae(derive_variant("mpsae", 5, relu_sae()), tmp_path / "v")
    assert int(load_sae(tmp_path / "v").s) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_failed_write_leaves_no_folder(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt  # like a job killed while writing

    monkeypatch.setattr(sae_folder, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        save_sae(relu_sae(), tmp_path / "v")
    assert list(tmp_path.iterdir()) == []


def test_loading_never_unpickles(tmp_path, monkeypatch):
    folder = save_sae(derive_variant("ihtp", 2, relu_sae()), tmp_path / "v")

    def no_pickle(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_pickle)
    load_sae(folder)


def test_errors_name_the_file_and_the_problem(tmp_path):
    folder = save_sae(relu_sae(), tmp_path / "v")
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())

    cfg_path.write_text(json.dumps({**cfg, "architecture": "gated_v9"}))
    with pytest.raises(ValueError, match=r"config\.json.*unknown architecture 'gated_v9'"):
        load_sae(folder)

    cfg_path.write_text(json.dumps({**cfg, "d_sae": 32}))
    with pytest.raises(ValueError, match=r"sae\.safetensors.*shape mismatch"):
        load_sae(folder)

    cfg_path.write_text(json.dumps({**cfg, "architecture": "topk"}))  # topk without params.k
    with pytest.raises(ValueError, match=r"config\.json.*params\['k'\]"):
        load_sae(folder)

    cfg_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"v/config\.json: missing file"):
        load_sae(folder)
    folder2 = save_sae(relu_sae(), tmp_path / "w")
    (folder2 / "sae.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"w/sae\.safetensors: missing file"):
        load_sae(folder2)


def test_save_requires_architecture_and_json_metadata(tmp_path):
    sae = relu_sae()
    with pytest.raises(TypeError):
        save_sae(sae, tmp_path / "v", metadata={"bad": object()})
    sae.cfg.architecture = ""
    with pytest.raises(ValueError, match="architecture"):
        save_sae(sae, tmp_path / "w")
    assert list(tmp_path.iterdir()) == []
