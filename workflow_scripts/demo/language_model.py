"""The demo's language model: a tiny TransformerLens HookedTransformer trained on the corpus."""

from __future__ import annotations

import math

MODEL_NAME = "demo-tiny-lm"


def hooked_config_dict(sizes: dict, d_vocab: int, seed: int) -> dict:
    return {
        "model_name": MODEL_NAME,
        "n_layers": sizes["n_layers"],
        "d_model": sizes["d_model"],
        "n_heads": sizes["n_heads"],
        "d_head": sizes["d_model"] // sizes["n_heads"],
        "d_mlp": sizes["d_mlp"],
        "n_ctx": sizes["n_ctx"],
        "d_vocab": d_vocab,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "default_prepend_bos": True,
        "seed": seed,
    }


def build_hooked_transformer(cfg_dict: dict, tokenizer=None):
    """Instantiate a (randomly initialised) HookedTransformer from a saved config dict."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**cfg_dict, device="cpu")
    return HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="left")


def train_lm(model, chunks, sizes: dict, seed: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    n_val = max(4, len(chunks) // 20)
    perm = torch.randperm(len(chunks), generator=g)
    val, train = chunks[perm[:n_val]], chunks[perm[n_val:]]
    steps, bs = sizes["lm_steps"], sizes["lm_batch_size"]
    opt = torch.optim.AdamW(model.parameters(), lr=sizes["lm_lr"], weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)),
    )
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(train), (bs,), generator=g)
        loss = model(train[idx], return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        val_loss = float(
            torch.stack(
                [model(val[i : i + 16], return_type="loss") for i in range(0, len(val), 16)]
            ).mean()
        )
    tail = losses[-max(1, steps // 10) :]
    return {
        "lm_train_loss": float(sum(tail) / len(tail)),
        "lm_val_loss": val_loss,
        "lm_initial_loss": float(losses[0]) if losses else float("nan"),
    }


def collect_acts(model, chunks, hook_name: str, n_seqs: int):
    import torch

    acts = []
    with torch.no_grad():
        for i in range(0, min(n_seqs, len(chunks)), 32):
            _, cache = model.run_with_cache(
                chunks[i : i + 32],
                names_filter=[hook_name],
                stop_at_layer=int(hook_name.split(".")[1]) + 1,
            )
            acts.append(cache[hook_name][:, 1:].reshape(-1, model.cfg.d_model))  # drop <bos>
    return torch.cat(acts)
