"""dictionary_learning checkpoints of every trainer class SAE Bench loads go through SAE Bench's own
loaders on our path: same encode as those loaders, weights-only, problems name the file, and the
SAE folder keeps k, threshold and gating parameters.

The checkpoints are written in the layouts of the `dictionary-learning` 0.1.0 package (PyPI):
AutoEncoder (dictionary.py:43, nn.Linear encoder/decoder + `bias`), GatedAutoEncoder
(dictionary.py:178), JumpReluAutoEncoder (dictionary.py:277), AutoEncoderTopK
(trainers/top_k.py:51, `k`/`threshold` buffers, `b_dec`), BatchTopKSAE (trainers/batch_top_k.py:17)
and MatryoshkaBatchTopKSAE (trainers/matryoshka_batch_top_k.py:37, W_enc/W_dec parameters and a
`group_sizes` buffer).
"""

import pickle
import sys

import pytest
import torch
from checkpoints import D_IN, D_SAE, MODEL, TRAINERS, layout_state, write_checkpoint

from workflow_scripts.saes import sae_folder
from workflow_scripts.saes.dictionary_learning import CheckpointError, load_dictionary_learning_sae


def saebench_loader_directly(trainer_class, ae_path, monkeypatch):
    """SAE Bench's own loader, its download pointed at the test files (the reference)."""
    from sae_bench.custom_saes.run_all_evals_dictionary_learning_saes import TRAINER_LOADERS

    loader = TRAINER_LOADERS[trainer_class]
    files = {"ae.pt": str(ae_path), "config.json": str(ae_path.with_name("config.json"))}
    monkeypatch.setattr(
        sys.modules[loader.__module__],
        "hf_hub_download",
        lambda repo_id, filename, **kw: files[filename],
    )
    sae = loader(repo_id="x", filename="ae.pt", model_name=MODEL, device="cpu", dtype=torch.float32)
    monkeypatch.undo()
    return sae


@pytest.mark.parametrize("trainer_class", list(TRAINERS))
def test_every_trainer_loads_like_saebench_and_survives_the_sae_folder(
    tmp_path, trainer_class, monkeypatch
):
    ae, state = write_checkpoint(tmp_path / "ckpt", trainer_class)
    ours = load_dictionary_learning_sae(ae, MODEL, 4)
    reference = saebench_loader_directly(trainer_class, ae, monkeypatch)
    assert ours.cfg.architecture == TRAINERS[trainer_class][1]
    assert type(ours) is type(reference)
    x = 2 * torch.randn(64, D_IN, generator=torch.Generator().manual_seed(1))
    codes = ours.encode(x)
    assert (codes != 0).any()
    torch.testing.assert_close(codes, reference.encode(x))
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], value, msg=name)

    folder = sae_folder.save_sae(ours, tmp_path / "sae")
    again = sae_folder.load_sae(folder)
    assert again.cfg.architecture == ours.cfg.architecture and type(again) is type(ours)
    torch.testing.assert_close(again.encode(x), codes)
    for name in ("k", "threshold", "r_mag", "gate_bias", "b_mag"):
        if hasattr(ours, name):
            torch.testing.assert_close(getattr(again, name), getattr(ours, name), msg=name)


@pytest.mark.parametrize("trainer_class", ["BatchTopKTrainer", "MatryoshkaBatchTopKTrainer"])
def test_batch_topk_l0_follows_its_threshold_not_k(tmp_path, trainer_class):
    layout = TRAINERS[trainer_class][0]
    x = 2 * torch.randn(256, D_IN, generator=torch.Generator().manual_seed(2))
    l0 = {}
    for threshold in (0.2, 8.0):
        state = layout_state(layout, k=4, threshold=threshold)
        ae, _ = write_checkpoint(tmp_path / str(threshold), trainer_class, state=state, k=4)
        sae = load_dictionary_learning_sae(ae, MODEL, 4)
        assert float(sae.threshold) == pytest.approx(threshold) and int(sae.k) == 4
        pre = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
        codes = sae.encode(x)
        assert torch.equal(codes != 0, pre > threshold)  # not the per-token top 4
        l0[threshold] = (codes != 0).sum(-1).float().mean().item()
    assert l0[0.2] > 4 > l0[8.0]  # a per-token TopK would give exactly 4 for both


@pytest.mark.parametrize(
    "kwargs, load_args, message",
    [
        ({"layer": 3}, (MODEL, 4), "layer 3"),
        ({}, ("gpt2", 4), "'gpt2'"),
        ({"trainer_class": "MysteryTrainer", "state": {}}, (MODEL, 4), "MysteryTrainer"),
        (
            {"state": {"encoder.weight": torch.zeros(D_SAE, D_IN)}},
            (MODEL, 4),
            "does not load as a StandardTrainer checkpoint",
        ),
        (
            {
                "state": {
                    "encoder.weight": torch.zeros(D_SAE, D_IN + 1),
                    "encoder.bias": torch.zeros(D_SAE),
                    "decoder.weight": torch.zeros(D_IN, D_SAE),
                    "bias": torch.zeros(D_IN),
                }
            },
            (MODEL, 4),
            "size mismatch",
        ),
    ],
)
def test_bad_checkpoints_name_file_and_problem(tmp_path, kwargs, load_args, message):
    ae, _ = write_checkpoint(tmp_path, **kwargs)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_dictionary_learning_sae(ae, *load_args)
    assert str(tmp_path) in str(caught.value)


class Exploit:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.parametrize("forced_off", [False, True])
def test_pickled_objects_are_refused(tmp_path, monkeypatch, capsys, forced_off):
    """Even with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set, which makes torch.load unpickle."""
    if forced_off:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ae, _ = write_checkpoint(tmp_path)
    with open(ae, "wb") as handle:
        pickle.dump({"encoder.weight": Exploit()}, handle)
    with pytest.raises(CheckpointError, match="not a plain tensor state dict") as caught:
        load_dictionary_learning_sae(ae, MODEL, 4)
    assert str(ae) in str(caught.value)
    assert "unpickled!" not in capsys.readouterr().out


def test_missing_config_is_named(tmp_path):
    ae, _ = write_checkpoint(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_dictionary_learning_sae(ae, MODEL, 4)
