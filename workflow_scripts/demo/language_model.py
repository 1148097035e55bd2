"""The demo's language model: a tiny GPT-NeoX (pythia-70m's architecture) trained on the corpus.

Saved in HuggingFace format (`save_pretrained`: config.json, model.safetensors, and the tokenizer
beside them), so that transformers loads it for SAE Bench's RAVEL and TransformerLens converts it
for the other evals (`evals/local_loaders.py`), as they load pythia from the hub.
"""

from __future__ import annotations

import math

MODEL_NAME = "demo-tiny-lm"


def neox_config(sizes: dict, tokenizer):
    """A GPTNeoXConfig of pythia's kind (rotary on a quarter of each head, parallel attention and
    MLP, untied unembedding) at the demo's sizes; no dropout."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=sizes["d_model"],
        num_hidden_layers=sizes["n_layers"],
        num_attention_heads=sizes["n_heads"],
        intermediate_size=sizes["d_mlp"],
        max_position_embeddings=sizes["n_ctx"],
        rotary_pct=0.25,
        hidden_act="gelu",
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["GPTNeoXForCausalLM"],
    )


def build_model(sizes: dict, tokenizer):
    """A randomly initialised GPTNeoXForCausalLM (torch's global generator: seed it first)."""
    from transformers import GPTNeoXForCausalLM

    return GPTNeoXForCausalLM(neox_config(sizes, tokenizer))


def train_lm(model, chunks, sizes: dict, seed: int) -> dict:
    """AdamW with warm-up and cosine decay on rows of `chunks` (n_rows x seq_len token ids);
    returns the mean training loss of the last tenth of the steps, the validation loss on 5% of
    the rows held out, and the first step's loss (nats per token)."""
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
        x = train[idx]
        loss = model(input_ids=x, labels=x).loss
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
                [
                    model(input_ids=val[i : i + 16], labels=val[i : i + 16]).loss
                    for i in range(0, len(val), 16)
                ]
            ).mean()
        )
    tail = losses[-max(1, steps // 10) :]
    return {
        "lm_train_loss": float(sum(tail) / len(tail)),
        "lm_val_loss": val_loss,
        "lm_initial_loss": float(losses[0]) if losses else float("nan"),
    }


def collect_acts(model, chunks, hook_layer: int, n_seqs: int):
    """The residual stream after layer `hook_layer` (TransformerLens's
    blocks.<hook_layer>.hook_resid_post) of the first `n_seqs` rows, without the <bos> position:
    (tokens, d_model)."""
    import torch

    acts = []

    def keep(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output  # transformers < 5: a tuple
        acts.append(hidden[:, 1:].reshape(-1, hidden.shape[-1]))

    handle = model.gpt_neox.layers[hook_layer].register_forward_hook(keep)
    try:
        with torch.no_grad():
            for i in range(0, min(n_seqs, len(chunks)), 32):
                model(input_ids=chunks[i : i + 32])
    finally:
        handle.remove()
    return torch.cat(acts)


def fact_recall(model, tokenizer, ravel_files: dict, entity_type: str = "city") -> dict:
    """Share of RAVEL prompts (every template x entity of the stand-in) whose greedy 6-token
    continuation SAE Bench's RAVEL counts as correct (ravel/validation.py evaluate_completion),
    per attribute: how much of the facts the model learned."""
    import torch
    from sae_bench.evals.ravel.generation import generate_batched
    from sae_bench.evals.ravel.validation import evaluate_completion

    values = ravel_files[f"ravel_{entity_type}_entity_attributes.json"]
    templates = ravel_files[f"ravel_{entity_type}_attribute_to_prompts.json"]
    prompts = [(a, t % e, values[e][a]) for e in values for a in templates for t in templates[a]]
    with torch.no_grad():
        completions = generate_batched(
            model, tokenizer, [tokenizer.encode(p) for _, p, _ in prompts], max_new_tokens=6
        )
    recall = {}
    for attribute in templates:
        hits = [
            evaluate_completion(p, label, c)
            for (a, p, label), c in zip(prompts, completions, strict=True)
            if a == attribute
        ]
        recall[attribute] = sum(hits) / len(hits)
    return recall
