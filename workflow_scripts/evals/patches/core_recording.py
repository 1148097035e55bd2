"""The two recorders that watch SAE Bench's core eval (part of `workflow_scripts.evals.patches`,
which lists what each patch targets and why; re-exported there)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def record_core_reconstruction(core_main, stats) -> Iterator[None]:
    """Within the block, every call of core's `get_sparsity_and_variance_metrics` also feeds
    `stats` (an `evals.reconstruction.ReconstructionStats`) each batch it evaluates.

    The wrapper observes that function's own inputs: the tokens `activation_store.get_batch_tokens`
    returns, the activations it passes to `sae.encode`, the codes, and what `sae.decode` returns,
    with the `ignore_tokens` SAE Bench passes (its special-token mask). It changes no value: the
    SAE's methods and the store's method are called as they are, and restored afterwards.
    """
    original = core_main.get_sparsity_and_variance_metrics

    def wrapped(sae, model, activation_store, *args, **kwargs):
        ignore_tokens = kwargs.get("ignore_tokens", set())
        seen = {}
        get_batch_tokens, encode, decode = activation_store.get_batch_tokens, sae.encode, sae.decode

        def recording_get_batch_tokens(*a, **k):
            seen["tokens"] = get_batch_tokens(*a, **k)
            return seen["tokens"]

        def recording_encode(x, *a, **k):
            seen["x"] = x
            seen["codes"] = encode(x, *a, **k)
            return seen["codes"]

        def recording_decode(codes, *a, **k):
            x_hat = decode(codes, *a, **k)
            if codes is seen.get("codes"):
                stats.add(seen["tokens"], seen["x"], codes, x_hat, ignore_tokens)
            return x_hat

        patched = [(activation_store, "get_batch_tokens", recording_get_batch_tokens)]
        patched += [(sae, "encode", recording_encode), (sae, "decode", recording_decode)]
        own = [(obj, name, obj.__dict__.get(name)) for obj, name, _ in patched]
        for obj, name, function in patched:
            setattr(obj, name, function)
        try:
            return original(sae, model, activation_store, *args, **kwargs)
        finally:
            for obj, name, before in own:
                if before is None:
                    delattr(obj, name)
                else:
                    setattr(obj, name, before)

    core_main.get_sparsity_and_variance_metrics = wrapped
    try:
        yield
    finally:
        core_main.get_sparsity_and_variance_metrics = original


@contextlib.contextmanager
def record_core_ce_loss(core_main, batches) -> Iterator[None]:
    """Within the block, every call of core's `get_recons_loss` (one per batch of its downstream
    reconstruction pass, core/main.py:394) also gives `batches` (an
    `evals.reconstruction.CELossBatches`) the batch tokens, the per-token losses it returned and
    the `ignore_tokens` SAE Bench passed it (:401). The returned dict is passed on unchanged."""
    original = core_main.get_recons_loss

    def wrapped(sae, model, batch_tokens, *args, **kwargs):
        losses = original(sae, model, batch_tokens, *args, **kwargs)
        batches.add(batch_tokens, losses, kwargs.get("ignore_tokens", set()))
        return losses

    core_main.get_recons_loss = wrapped
    try:
        yield
    finally:
        core_main.get_recons_loss = original
