"""dictionary_learning checkpoints load with weights_only and every problem names the file."""

import json
import pickle

import pytest
import torch

from workflow_scripts.dictionary_learning import CheckpointError, load_dictionary_learning_sae

D_IN, D_SAE = 8, 32


def write_checkpoint(
    folder,
    trainer_class="StandardTrainer",
    layer=4,
    lm_name="EleutherAI/pythia-70m-deduped",
    state=None,
    k=4,
):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    decoder = torch.randn(D_IN, D_SAE, generator=g)
    decoder /= decoder.norm(dim=0, keepdim=True)
    if state is None:
        state = {
            "encoder.weight": torch.randn(D_SAE, D_IN, generator=g),
            "encoder.bias": torch.randn(D_SAE, generator=g),
            "decoder.weight": decoder,
        }
        if trainer_class == "TopKTrainer":
            state |= {"b_dec": torch.randn(D_IN, generator=g), "k": torch.tensor(k)}
        else:
            state |= {"bias": torch.randn(D_IN, generator=g)}
    torch.save(state, folder / "ae.pt")
    trainer = {
        "trainer_class": trainer_class,
        "dict_class": "AutoEncoder",
        "activation_dim": D_IN,
        "dict_size": D_SAE,
        "layer": layer,
        "lm_name": lm_name,
    }
    if trainer_class == "TopKTrainer":
        trainer["k"] = k
    (folder / "config.json").write_text(
        json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}})
    )
    return folder / "ae.pt", state


def test_relu_checkpoint_maps_and_transposes(tmp_path):
    ae, state = write_checkpoint(tmp_path)
    sae = load_dictionary_learning_sae(ae, "pythia-70m-deduped", 4)
    assert sae.cfg.architecture == "standard"
    assert sae.cfg.hook_name == "blocks.4.hook_resid_post"
    torch.testing.assert_close(sae.W_enc.data, state["encoder.weight"].T)
    torch.testing.assert_close(sae.W_dec.data, state["decoder.weight"].T)
    torch.testing.assert_close(sae.b_dec.data, state["bias"])
    x = torch.randn(3, D_IN)
    expected = torch.relu((x - state["bias"]) @ state["encoder.weight"].T + state["encoder.bias"])
    torch.testing.assert_close(sae.encode(x), expected)


def test_topk_checkpoint_keeps_k(tmp_path):
    ae, state = write_checkpoint(tmp_path, "TopKTrainer", k=3)
    sae = load_dictionary_learning_sae(ae, "pythia-70m-deduped", 4)
    assert sae.cfg.architecture == "topk" and int(sae.k) == 3
    assert ((sae.encode(torch.randn(5, D_IN)) != 0).sum(-1) <= 3).all()


@pytest.mark.parametrize(
    "kwargs, load_args, message",
    [
        ({"layer": 3}, ("pythia-70m-deduped", 4), "layer 3"),
        ({}, ("gpt2", 4), "'gpt2'"),
        ({"trainer_class": "MysteryTrainer"}, ("pythia-70m-deduped", 4), "MysteryTrainer"),
        (
            {"state": {"encoder.weight": torch.zeros(D_SAE, D_IN)}},
            ("pythia-70m-deduped", 4),
            "missing keys",
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
            ("pythia-70m-deduped", 4),
            "W_enc has shape",
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


def test_pickled_objects_are_refused(tmp_path):
    ae, _ = write_checkpoint(tmp_path)
    with open(ae, "wb") as handle:
        pickle.dump({"encoder.weight": Exploit()}, handle)
    with pytest.raises(CheckpointError, match="not a plain tensor state dict"):
        load_dictionary_learning_sae(ae, "pythia-70m-deduped", 4)


def test_missing_config_is_named(tmp_path):
    ae, _ = write_checkpoint(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_dictionary_learning_sae(ae, "pythia-70m-deduped", 4)
