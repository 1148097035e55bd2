"""Build a small, fully local demo for running SAE Bench on a CPU with no network.

Everything is generated deterministically from one seed:

* ``corpus/*.jsonl``       a synthetic English-like corpus (column ``text``, `text.py`), read by SAE
                           Bench's core eval through ``load_dataset(folder, split="train",
                           streaming=True)``;
* ``tokenizer/``           a word-level HF fast tokenizer (`tokenizer.py`);
* ``model/``               a tiny GPT-NeoX trained briefly on the corpus, in HuggingFace format
                           with its tokenizer (`language_model.py`);
* ``sae/``                 a ReLU SAE on layer ``sae_layer``'s ``hook_resid_post``, in the
                           dictionary_learning format (``ae.pt`` plain tensor state dict +
                           ``config.json``, `sae.py`);
* ``datasets/<hub name>/`` local stand-ins in the hub schema (``train.jsonl``/``test.jsonl``);
* ``manifest.json``        what was built, with the measured numbers.

Bias-in-bios note: SAE Bench names the probing task ``LabHC/bias_in_bios_class_set1`` but strips
``_class_set1`` before calling ``load_dataset`` (sae_bench/sae_bench_utils/dataset_utils.py:325 and
sae_bench/evals/scr_and_tpp/dataset_creation.py:120), so ``evals.patches.local_datasets``
registers both names. The stand-in in ``datasets/LabHC/bias_in_bios_class_set1`` holds the set1
professions (0, 1, 2, 6, 9) plus those SCR/TPP pair up (professor 21, nurse 13, journalist 11,
surgeon 25, psychologist 22, teacher 26); ``filter_dataset`` keeps only the chosen classes for
probing.

CLI: ``python -m workflow_scripts.demo.build --out DIR --seed 42``
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from workflow_scripts.demo import text
from workflow_scripts.demo.language_model import (
    MODEL_NAME,
    build_model,
    collect_acts,
    fact_recall,
    train_lm,
)
from workflow_scripts.demo.sae import train_sae
from workflow_scripts.demo.tokenizer import build_tokenizer, token_chunks

BIAS_IN_BIOS = "LabHC/bias_in_bios"
BIAS_IN_BIOS_SET1 = "LabHC/bias_in_bios_class_set1"
AMAZON = "canrager/amazon_reviews_mcauley_1and5"
RAVEL_PROMPTS = "adamkarvonen/ravel_prompts"

DEFAULT_SIZES: dict[str, Any] = {
    # corpus
    "n_corpus_docs": 6000,
    "n_corpus_shards": 2,
    # bias_in_bios stand-in, rows per profession (gender mix is profession dependent)
    "bios_train_per_profession": 800,
    "bios_test_per_profession": 300,
    # amazon stand-in, rows per (category, rating)
    "amazon_train_per_cell": 150,
    "amazon_test_per_cell": 60,
    # language model
    "n_layers": 2,
    "d_model": 64,
    "n_heads": 4,
    "d_mlp": 256,
    "n_ctx": 128,
    "lm_seq_len": 128,
    "lm_batch_size": 16,
    # 400 steps at a higher peak rate instead of 800 at 5e-3: the training was 92 of the build's
    # 131 s on 2 cores (~0.12 s a step); validation loss 1.12 instead of 1.07 nats (from 6.76)
    "lm_steps": 400,
    "lm_lr": 8e-3,
    # SAE, on blocks.<sae_layer>.hook_resid_post: layer 0 of 2, because the model moves a city's
    # facts off the city's token in layer 1 (patching layer 1's output there changes nothing),
    # and RAVEL intervenes on that token
    "sae_layer": 0,
    "sae_expansion": 4,
    "sae_act_seqs": 256,
    "sae_batch_size": 512,
    "sae_steps": 1500,
    "sae_lr": 2e-3,
    "sae_l1_coeff": 0.12,
    # a small sweep of extra baselines at other sparsities (sae_sweep/l1_<c>/), for runs with
    # several baselines; a few seconds each
    "sae_sweep_l1": (0.04, 0.3),
}


def build_demo_assets(
    out_dir: str | Path, seed: int = 42, threads: int | None = 1, **sizes: Any
) -> dict:
    """Build the demo under ``out_dir`` and return the manifest (also written to manifest.json).

    ``sizes`` overrides entries of ``DEFAULT_SIZES`` (e.g. ``lm_steps=50`` for a quick smoke build).
    ``threads``: torch intra-op threads while building (restored afterwards); ``None`` keeps
    torch's default. One thread is the default because the model is tiny: on the shared 2-core
    machine, 2 threads ran a training step 10-20x slower than 1 whenever other jobs were busy
    (OpenMP threads waiting on each other), and about as fast as 1 when idle.
    """
    import torch

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(threads)
    # bitwise reproducible on CPU (otherwise threaded reductions drift in the last bits)
    torch.use_deterministic_algorithms(True)
    try:
        # Training needs autograd even where an SAE Bench eval ran earlier in this process:
        # several turn it off globally and leave it off (sae_bench/evals/autointerp/main.py:526
        # and mdl/main.py:335, `torch.set_grad_enabled(False)` inside run_eval).
        with torch.enable_grad():
            return _build(out_dir, seed, sizes)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def _build(out_dir: str | Path, seed: int, sizes: dict) -> dict:
    import torch

    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown size keys: {sorted(unknown)}")
    sz = {**DEFAULT_SIZES, **sizes}
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings: dict[str, float] = {}

    # ---- text ------------------------------------------------------------------------------
    rng = random.Random(seed)
    docs = [text.corpus_doc(rng) for _ in range(sz["n_corpus_docs"])]
    shard = math.ceil(len(docs) / sz["n_corpus_shards"])
    corpus_dir = out / "corpus"
    for i in range(sz["n_corpus_shards"]):
        text.write_jsonl(
            corpus_dir / f"train-{i:05d}.jsonl",
            [{"text": d} for d in docs[i * shard : (i + 1) * shard]],
        )

    ds_rng = random.Random(seed + 1000)
    bios_dir = out / "datasets" / BIAS_IN_BIOS_SET1
    bios = {
        "train": text.bios_split(ds_rng, sz["bios_train_per_profession"]),
        "test": text.bios_split(ds_rng, sz["bios_test_per_profession"]),
    }
    for split, rows in bios.items():
        text.write_jsonl(bios_dir / f"{split}.jsonl", rows)
    amazon_dir = out / "datasets" / AMAZON
    amazon = {
        "train": text.amazon_split(ds_rng, sz["amazon_train_per_cell"]),
        "test": text.amazon_split(ds_rng, sz["amazon_test_per_cell"]),
    }
    for split, rows in amazon.items():
        text.write_jsonl(amazon_dir / f"{split}.jsonl", rows)
    timings["text_s"] = time.time() - t0

    # ---- tokenizer ---------------------------------------------------------------------------
    tok_texts = (
        docs
        + [r["hard_text"] for r in bios["train"] + bios["test"]]
        + [r["text"] for r in amazon["train"] + amazon["test"]]
    )
    tokenizer = build_tokenizer(tok_texts, out / "tokenizer")
    chunks, n_corpus_tokens = token_chunks(tokenizer, docs, sz["lm_seq_len"])
    timings["tokenizer_s"] = time.time() - t0 - sum(timings.values())

    # ---- language model ----------------------------------------------------------------------
    torch.manual_seed(seed)
    model = build_model(sz, tokenizer)
    lm_metrics = train_lm(model, chunks, sz, seed)
    model_dir = out / "model"
    model.save_pretrained(str(model_dir))  # config.json + model.safetensors
    tokenizer.save_pretrained(str(model_dir))  # what AutoTokenizer (RAVEL) reads beside it
    ravel_dir = out / "datasets" / RAVEL_PROMPTS
    ravel_dir.mkdir(parents=True, exist_ok=True)
    ravel_files = text.ravel_files("city")
    for name, content in ravel_files.items():
        (ravel_dir / name).write_text(json.dumps(content, indent=1))
    lm_metrics["lm_fact_recall"] = fact_recall(model, tokenizer, ravel_files, "city")
    timings["lm_s"] = time.time() - t0 - sum(timings.values())

    # ---- SAE -----------------------------------------------------------------------------------
    hook_layer = sz["sae_layer"]
    if not 0 <= hook_layer < sz["n_layers"]:
        raise ValueError(f"sae_layer {hook_layer} is not a layer of {sz['n_layers']}")
    hook_name = f"blocks.{hook_layer}.hook_resid_post"
    d_model, d_sae = sz["d_model"], sz["d_model"] * sz["sae_expansion"]
    acts = collect_acts(model, chunks, hook_layer, sz["sae_act_seqs"])
    torch.manual_seed(seed)
    sae_state, sae_metrics = train_sae(acts, d_sae, sz, seed)
    sae_dir = out / "sae"
    n_sae_tokens = int(sz["sae_steps"] * sz["sae_batch_size"])
    write_dictionary_learning(sae_dir, sae_state, sz, sz["sae_l1_coeff"], hook_layer, seed)
    sweep = {}
    for l1 in sz["sae_sweep_l1"]:  # after the main SAE, so it stays exactly as before
        torch.manual_seed(seed)
        state, metrics = train_sae(acts, d_sae, {**sz, "sae_l1_coeff": l1}, seed)
        folder = out / "sae_sweep" / f"l1_{l1}"
        write_dictionary_learning(folder, state, sz, l1, hook_layer, seed)
        sweep[f"l1_{l1}"] = {"path": str(folder), "sae_l0": metrics["sae_l0"]}
        sweep[f"l1_{l1}"]["sae_explained_variance"] = metrics["sae_explained_variance"]
    timings["sae_s"] = time.time() - t0 - sum(timings.values())

    manifest = {
        "model_name": MODEL_NAME,
        "seed": seed,
        "hook_layer": hook_layer,
        "hook_name": hook_name,
        "d_model": d_model,
        "d_sae": d_sae,
        "context_size": sz["lm_seq_len"],
        "vocab_size": len(tokenizer),
        "paths": {
            "root": str(out),
            "corpus": str(corpus_dir),
            "tokenizer": str(out / "tokenizer"),
            "model": str(model_dir),
            "sae": str(sae_dir),
            "sae_weights": str(sae_dir / "ae.pt"),
            "sae_config": str(sae_dir / "config.json"),
        },
        # SAE-Bench-facing dataset names -> local folder with {train,test}.jsonl
        "datasets": {
            BIAS_IN_BIOS: str(bios_dir),
            BIAS_IN_BIOS_SET1: str(bios_dir),
            AMAZON: str(amazon_dir),
            RAVEL_PROMPTS: str(ravel_dir),
        },
        "corpus_docs": len(docs),
        "corpus_tokens": n_corpus_tokens,
        "bios_rows": {k: len(v) for k, v in bios.items()},
        "bios_professions": text.professions(),
        "sae_training_tokens": n_sae_tokens,
        "sae_sweep": sweep,
        **lm_metrics,
        **sae_metrics,
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sz.items()},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    manifest["timings_s"]["total_s"] = round(time.time() - t0, 2)
    with open(out / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def write_dictionary_learning(
    folder: Path, state: dict, sz: dict, l1: float, hook_layer: int, seed: int
) -> None:
    """`ae.pt` (tensor state dict) and `config.json` as dictionary_learning's StandardTrainer
    writes them."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "ae.pt")
    d_model = sz["d_model"]
    config = {
        "trainer": {
            "trainer_class": "StandardTrainer",
            "dict_class": "AutoEncoder",
            "activation_dim": d_model,
            "dict_size": d_model * sz["sae_expansion"],
            "layer": hook_layer,
            "lm_name": MODEL_NAME,
            "submodule_name": f"resid_post_layer_{hook_layer}",
            "lr": sz["sae_lr"],
            "l1_penalty": l1,
            "steps": sz["sae_steps"],
            "seed": seed,
            "device": "cpu",
        },
        "buffer": {
            "d_submodule": d_model,
            "ctx_len": sz["lm_seq_len"],
            "refresh_batch_size": 32,
            "out_batch_size": sz["sae_batch_size"],
            "device": "cpu",
        },
        "training_tokens": int(sz["sae_steps"] * sz["sae_batch_size"]),
    }
    with open(folder / "config.json", "w") as f:
        json.dump(config, f, indent=2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Build the local SAE Bench demo (corpus, tokenizer, tiny LM, baseline SAE, "
        "stand-in datasets) deterministically from a seed."
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while building (default 1; 0 keeps torch's default)",
    )
    p.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a size, e.g. lm_steps=100 (keys: {', '.join(DEFAULT_SIZES)})",
    )
    args = p.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in DEFAULT_SIZES:
            p.error(f"unknown size key {key!r}")
        default = DEFAULT_SIZES[key]
        if isinstance(default, tuple):  # a list of numbers: comma-separated
            overrides[key] = tuple(float(v) for v in value.split(",") if v)
        else:
            overrides[key] = type(default)(value)
    manifest = build_demo_assets(
        args.out, seed=args.seed, threads=args.threads or None, **overrides
    )
    print(json.dumps({k: v for k, v in manifest.items() if k != "sizes"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
