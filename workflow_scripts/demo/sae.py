"""The demo's baseline SAE: a ReLU SAE trained like dictionary_learning's StandardTrainer and
saved in its checkpoint format (`ae.pt` tensor state dict + `config.json`)."""

from __future__ import annotations


def train_sae(acts, d_sae: int, sizes: dict, seed: int) -> tuple[dict, dict]:
    """ReLU SAE, dictionary_learning StandardTrainer style: f = relu(W_e(x - b) + b_e),
    x_hat = W_d f + b, unit-norm decoder columns, L1 penalty on f."""
    import torch

    g = torch.Generator().manual_seed(seed + 2)
    d_in = acts.shape[1]
    perm = torch.randperm(len(acts), generator=g)
    n_val = max(256, len(acts) // 10)
    val, train = acts[perm[:n_val]], acts[perm[n_val:]]
    scale = float(train.norm(dim=-1).mean())  # train in normalised units, store in raw units
    xs = train / scale

    W_dec = torch.randn(d_in, d_sae, generator=g)
    W_dec = W_dec / W_dec.norm(dim=0, keepdim=True)
    W_dec = torch.nn.Parameter(W_dec)
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(d_sae))
    b_dec = torch.nn.Parameter(xs.mean(0).clone())
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=sizes["sae_lr"])
    steps, bs, l1 = sizes["sae_steps"], sizes["sae_batch_size"], sizes["sae_l1_coeff"]
    warm = max(1, steps // 20)
    for step in range(steps):
        x = xs[torch.randint(0, len(xs), (bs,), generator=g)]
        f = torch.relu((x - b_dec) @ W_enc.t() + b_enc)
        x_hat = f @ W_dec.t() + b_dec
        l1_now = l1 * min(1.0, (step + 1) / warm)
        loss = (x - x_hat).pow(2).sum(-1).mean() + l1_now * f.sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=0, keepdim=True)
        if step == int(steps * 0.8):
            for pg in opt.param_groups:
                pg["lr"] = sizes["sae_lr"] * 0.2

    with torch.no_grad():
        state = {
            "encoder.weight": W_enc.detach().clone().contiguous(),  # (d_sae, d_in)
            "encoder.bias": b_enc.detach().clone().contiguous(),  # (d_sae,)
            "decoder.weight": W_dec.detach().clone().contiguous(),  # (d_in, d_sae)
            "bias": (b_dec.detach() * scale).clone().contiguous(),  # (d_in,)
        }
        # Trained on x / s. With f_raw = s * f:  f_raw = relu(W_e (x - s b) + s b_e) and
        # x_hat = W_d f_raw + s b, so only the biases carry the scale (decoder stays unit norm).
        state["encoder.bias"] *= scale
        metrics = sae_metrics(state, val)
    return state, metrics


def sae_metrics(state: dict, x) -> dict:
    import torch

    with torch.no_grad():
        f = torch.relu((x - state["bias"]) @ state["encoder.weight"].t() + state["encoder.bias"])
        x_hat = f @ state["decoder.weight"].t() + state["bias"]
        resid = (x - x_hat).pow(2).sum(-1).sum()
        total = (x - x.mean(0)).pow(2).sum(-1).sum()
        return {
            "sae_explained_variance": float(1 - resid / total),
            "sae_l0": float((f > 0).float().sum(-1).mean()),
            "sae_dead_fraction": float(((f > 0).sum(0) == 0).float().mean()),
        }
