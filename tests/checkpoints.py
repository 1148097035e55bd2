"""dictionary_learning checkpoints of every trainer class, written for unit and workflow tests:
the layouts of the `dictionary-learning` 0.1.0 package (tests/unit/test_dictionary_learning.py)."""

import json

import torch

D_IN, D_SAE = 8, 32
MODEL = "pythia-70m-deduped"
TRAINERS = {
    # trainer_class: (layout, architecture SAE Bench's loader sets, dict_class in config.json)
    "StandardTrainer": ("autoencoder", "standard", "AutoEncoder"),
    "StandardTrainerAprilUpdate": ("autoencoder", "standard_april_update", "AutoEncoder"),
    "PAnnealTrainer": ("autoencoder", "p_anneal", "AutoEncoder"),
    "TopKTrainer": ("topk", "topk", "AutoEncoderTopK"),
    "BatchTopKTrainer": ("topk", "batch_topk", "BatchTopKSAE"),
    "MatryoshkaBatchTopKTrainer": ("matryoshka", "matryoshka_batch_topk", "MatryoshkaBatchTopKSAE"),
    "JumpReluTrainer": ("jumprelu", "jumprelu", "JumpReluAutoEncoder"),
    "GatedSAETrainer": ("gated", "gated", "GatedAutoEncoder"),
}


def layout_state(layout, k=4, threshold=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(D_SAE, D_IN, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)  # unit decoder rows, as the loaders require
    W_enc = torch.randn(D_IN, D_SAE, generator=g)
    b_enc, b_dec = torch.randn(D_SAE, generator=g), torch.randn(D_IN, generator=g)
    if layout == "autoencoder":
        return {
            "encoder.weight": W_enc.T.clone(),
            "encoder.bias": b_enc,
            "decoder.weight": W_dec.T.clone(),
            "bias": b_dec,
        }
    buffers = {"k": torch.tensor(k, dtype=torch.int), "threshold": torch.tensor(threshold)}
    if layout == "topk":
        return {
            "encoder.weight": W_enc.T.clone(),
            "encoder.bias": b_enc,
            "decoder.weight": W_dec.T.clone(),
            "b_dec": b_dec,
            **buffers,
        }
    if layout == "matryoshka":
        group_sizes = torch.tensor([D_SAE // 4, D_SAE // 4, D_SAE // 2])
        state = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
        return {**state, **buffers, "group_sizes": group_sizes}
    if layout == "jumprelu":
        return {
            "W_enc": W_enc,
            "b_enc": b_enc,
            "W_dec": W_dec,
            "b_dec": b_dec,
            "threshold": torch.rand(D_SAE, generator=g),
        }
    if layout == "gated":
        return {
            "decoder_bias": b_dec,
            "encoder.weight": W_enc.T.clone(),
            "r_mag": 0.1 * torch.randn(D_SAE, generator=g),
            "gate_bias": torch.randn(D_SAE, generator=g),
            "mag_bias": torch.randn(D_SAE, generator=g),
            "decoder.weight": W_dec.T.clone(),
        }
    raise ValueError(layout)


def write_checkpoint(
    folder, trainer_class="StandardTrainer", layer=4, lm_name=f"EleutherAI/{MODEL}", state=None, k=4
):
    """ae.pt + config.json of one trainer class in `folder`; returns (ae.pt path, state)."""
    folder.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = layout_state(TRAINERS[trainer_class][0], k=k)
    torch.save(state, folder / "ae.pt")
    trainer = {
        "trainer_class": trainer_class,
        "dict_class": TRAINERS.get(trainer_class, ("", "", "AutoEncoder"))[2],
        "activation_dim": D_IN,
        "dict_size": D_SAE,
        "layer": layer,
        "lm_name": lm_name,
        "k": k,
    }
    (folder / "config.json").write_text(
        json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}})
    )
    return folder / "ae.pt", state
