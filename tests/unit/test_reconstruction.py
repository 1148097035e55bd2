"""The workflow's centered explained variance and |code| > 0 density, fed by SAE Bench's own core
sparsity/variance pass (its get_sparsity_and_variance_metrics, run here on synthetic data), and
the per-batch records of both of core's passes (run_evals on a tiny TransformerLens model)."""

import json
from types import SimpleNamespace

import pytest
import torch

from workflow_scripts.evals import patches
from workflow_scripts.evals.reconstruction import ReconstructionStats

D, VOCAB, BATCH, CTX, BATCHES = 64, 50, 8, 16, 4
IGNORED = 0  # a "special token" SAE Bench masks out of the pass


class Model:
    """Activations of a token: a fixed vector with a large mean (0.9 per dimension) and a small
    spread (0.1), the regime of residual streams where SAE Bench's formula breaks."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.table = 0.9 + 0.1 * torch.randn(VOCAB, D, generator=g)
        self.table[IGNORED] = 100.0  # would dominate every sum if it were not masked

    def run_with_cache(self, tokens, names_filter, **_):
        return None, {names_filter[0]: self.table[tokens]}


class Store:
    def __init__(self):
        self.g = torch.Generator().manual_seed(1)

    def get_batch_tokens(self, n):
        tokens = torch.randint(1, VOCAB, (n, CTX), generator=self.g)
        tokens[:, 0] = IGNORED  # like a BOS token
        return tokens


class SAE(torch.nn.Module):
    """encode: x - centre (signed codes); decode: centre + `keep` * codes."""

    def __init__(self, centre, keep):
        super().__init__()
        self.centre, self.keep = centre, keep
        self.cfg = SimpleNamespace(
            hook_name="blocks.0.hook_resid_post",
            hook_head_index=None,
            hook_layer=0,
            d_sae=len(centre),
        )
        self.device = torch.device("cpu")

    def encode(self, x):
        return x - self.centre

    def decode(self, codes):
        return self.centre + self.keep * codes


def evaluated_mean():
    """The mean activation over exactly the tokens the pass will see (same generator)."""
    model, store = Model(), Store()
    xs = []
    for _ in range(BATCHES):
        tokens = store.get_batch_tokens(BATCH)
        xs.append(model.table[tokens][tokens != IGNORED])
    return torch.cat(xs).mean(0)


def core_pass(sae):
    """SAE Bench's own pass over the fake model and store, with our recorder around it."""
    import sae_bench.evals.core.main as core

    stats = ReconstructionStats()
    with patches.record_core_reconstruction(core, stats):
        metrics, features = core.get_sparsity_and_variance_metrics(
            sae,
            Model(),
            Store(),
            n_batches=BATCHES,
            compute_l2_norms=False,
            compute_sparsity_metrics=True,
            compute_variance_metrics=True,
            compute_featurewise_density_statistics=True,
            eval_batch_size_prompts=BATCH,
            model_kwargs={},
            ignore_tokens={IGNORED},
        )
    assert core.get_sparsity_and_variance_metrics.__name__ == "get_sparsity_and_variance_metrics"
    return stats.metrics(), metrics, features


def test_mean_predictor_scores_zero_where_saebench_scores_near_one():
    ours, saebench, _ = core_pass(SAE(evaluated_mean(), keep=0.0))  # x_hat = mean activation
    assert ours["workflow_reconstruction"]["explained_variance_centered"] == pytest.approx(
        0.0, abs=1e-9
    )
    assert saebench["explained_variance"] > 0.98  # variance about zero: the mean "explains" it
    assert ours["workflow_reconstruction"]["tokens"] == BATCHES * BATCH * (CTX - 1)


def test_perfect_reconstruction_scores_one_and_half_is_three_quarters():
    ours, saebench, _ = core_pass(SAE(evaluated_mean(), keep=1.0))
    assert ours["workflow_reconstruction"]["explained_variance_centered"] == pytest.approx(1.0)
    assert saebench["explained_variance"] == pytest.approx(1.0)
    # x_hat = mean + (x - mean) / 2: the residual holds 1/4 of the variance
    half, _, _ = core_pass(SAE(evaluated_mean(), keep=0.5))
    assert half["workflow_reconstruction"]["explained_variance_centered"] == pytest.approx(0.75)


def test_signed_codes_count_in_the_density():
    ours, saebench, features = core_pass(SAE(evaluated_mean(), keep=1.0))
    density = ours["workflow_density_abs"]
    assert density["frac_alive"] == 1.0
    assert 0.35 < density["frac_negative_codes"] < 0.65  # codes x - mean: about half negative
    assert density["l0"] == pytest.approx(saebench["l0"])  # SAE Bench's L0 counts != 0 too
    # ... but SAE Bench's density counts codes > 0 only: every latent about half as dense
    assert max(features["feature_density"]) < 0.7
    assert density["freq_over_10_percent"] == 1.0


def test_the_wrapper_restores_everything():
    import sae_bench.evals.core.main as core

    original = core.get_sparsity_and_variance_metrics
    sae, store = SAE(torch.zeros(D), 1.0), Store()
    with patches.record_core_reconstruction(core, ReconstructionStats()):
        assert core.get_sparsity_and_variance_metrics is not original
        core.get_sparsity_and_variance_metrics(
            sae,
            Model(),
            store,
            n_batches=1,
            compute_l2_norms=False,
            compute_sparsity_metrics=True,
            compute_variance_metrics=False,
            compute_featurewise_density_statistics=False,
            eval_batch_size_prompts=2,
            model_kwargs={},
            ignore_tokens=set(),
        )
    assert core.get_sparsity_and_variance_metrics is original
    assert "encode" not in sae.__dict__ and "decode" not in sae.__dict__
    assert "get_batch_tokens" not in store.__dict__


def test_no_tokens_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="no tokens"):
        ReconstructionStats().metrics()


# ------------------------------------------------------------------------------------------------
# Per-batch records (results/core_noise.py bootstraps over them)
# ------------------------------------------------------------------------------------------------


def test_batch_records_reproduce_the_totals():
    import sae_bench.evals.core.main as core

    from workflow_scripts.results import core_noise

    stats = ReconstructionStats()
    with patches.record_core_reconstruction(core, stats):
        core.get_sparsity_and_variance_metrics(
            SAE(evaluated_mean(), keep=0.5),
            Model(),
            Store(),
            n_batches=BATCHES,
            compute_l2_norms=False,
            compute_sparsity_metrics=True,
            compute_variance_metrics=True,
            compute_featurewise_density_statistics=False,
            eval_batch_size_prompts=BATCH,
            model_kwargs={},
            ignore_tokens={IGNORED},
        )
    record = stats.batch_record()
    assert len(record["tokens"]) == len(record["sse"]) == len(record["sst"]) == BATCHES
    assert sum(record["tokens"]) == stats.tokens == BATCHES * BATCH * (CTX - 1)
    assert sum(record["sse"]) == stats.sum_sq_resid  # the same floats, added in the same order
    total = stats.sum_sq_x - stats.tokens * float((stats.sum_x / stats.tokens).pow(2).sum())
    assert sum(record["sst"]) == pytest.approx(total, rel=1e-12)
    recorded = stats.metrics()["workflow_reconstruction"]["explained_variance_centered"]
    assert core_noise.explained_variance(record) == pytest.approx(recorded, abs=1e-12)
    # each batch's sst about the run's mean, computed here from the activations themselves
    model, store = Model(), Store()
    batches = [store.get_batch_tokens(BATCH) for _ in range(BATCHES)]
    xs = [model.table[tokens][tokens != IGNORED].double() for tokens in batches]
    mean = torch.cat(xs).mean(0)
    for b, x in enumerate(xs):
        assert record["tokens"][b] == len(x)
        assert record["sst"][b] == pytest.approx(float(((x - mean) ** 2).sum()), rel=1e-12)


TINY_LM = dict(
    n_layers=2, d_model=16, n_heads=4, d_head=4, d_mlp=32, n_ctx=CTX, d_vocab=VOCAB, act_fn="gelu"
)


def successor(tokens):
    """The token that follows `tokens` in the text of `TokenStore` (a bijection of 1..VOCAB-1)."""
    return (5 * tokens + 3) % (VOCAB - 1) + 1


def bigram_lm():
    """A tiny TransformerLens model, built, not trained, to predict `successor` of the current
    token through the residual stream alone (attention and MLP outputs zeroed): a reconstruction
    error in blocks.0.hook_resid_post costs CE loss, a zero ablation gives uniform logits."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**TINY_LM, normalization_type="LN", seed=0, device="cpu")
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.split(".")[-1] in ("W_O", "b_O", "W_out", "b_out", "W_pos", "b_U"):
                parameter.zero_()
        centred = model.W_E - model.W_E.mean(-1, keepdim=True)
        ids = torch.arange(1, VOCAB)
        model.W_U.zero_()
        model.W_U[:, successor(ids)] = 2 * (centred / centred.norm(dim=-1, keepdim=True))[ids].T
    return model


class TokenStore(Store):
    """What SAE Bench's run_evals asks of an ActivationsStore: batches of tokens (IGNORED, then a
    text where 80% of tokens are the previous one's successor), rewound between its two passes
    (core/main.py:192) as SAE Lens's store is."""

    context_size, store_batch_size_prompts = CTX, BATCH

    def get_batch_tokens(self, n):
        tokens = torch.randint(1, VOCAB, (n, CTX), generator=self.g)
        follow = torch.rand(n, CTX, generator=self.g) < 0.8
        for i in range(2, CTX):
            tokens[:, i] = torch.where(follow[:, i], successor(tokens[:, i - 1]), tokens[:, i])
        tokens[:, 0] = IGNORED
        return tokens

    def reset_input_dataset(self):
        self.g = torch.Generator().manual_seed(1)


@pytest.mark.parametrize("exclude_special", [False, True])
def test_ce_loss_score_recomputed_from_the_batches_is_saebench_s(exclude_special):
    """SAE Bench's own run_evals (both passes) on a tiny TransformerLens model, recorded as the
    workflow records it: the batch sums give back its ce_loss_score and the centered EV."""
    import sae_bench.evals.core.main as core_main
    from sae_bench.evals.core.eval_config import CoreEvalConfig

    from workflow_scripts.evals import core
    from workflow_scripts.results import core_noise

    sae = SAE(0.5 * torch.randn(16, generator=torch.Generator().manual_seed(2)), keep=0.5)
    config = CoreEvalConfig(
        model_name="tiny",
        batch_size_prompts=BATCH,
        n_eval_reconstruction_batches=BATCHES,
        n_eval_sparsity_variance_batches=BATCHES,
        context_size=CTX,
        compute_kl=True,
        compute_ce_loss=True,
        compute_l2_norms=True,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=True,
        compute_featurewise_weight_based_metrics=False,
        exclude_special_tokens_from_reconstruction=exclude_special,
    )
    original = core_main.get_recons_loss
    with core.recording(core_main) as (stats, ce):
        metrics, _ = core_main.run_evals(
            sae, TokenStore(), bigram_lm(), config, ignore_tokens={IGNORED}
        )
    assert core_main.get_recons_loss is original
    record = core.batches(stats, ce)
    assert len(record["ce"]["tokens"]) == BATCHES
    # SAE Bench drops the loss at positions whose input token is ignored (position 0 here)
    assert sum(record["ce"]["tokens"]) == BATCHES * BATCH * (CTX - 2)
    saebench = metrics["model_performance_preservation"]
    assert 0.05 < saebench["ce_loss_score"] < 0.95
    assert core_noise.ce_loss_score(record) == pytest.approx(saebench["ce_loss_score"], abs=1e-6)
    n = sum(record["ce"]["tokens"])
    for name in ("without_sae", "with_sae", "with_ablation"):
        mean = sum(record["ce"][name]) / n
        assert mean == pytest.approx(saebench[f"ce_loss_{name}"], rel=1e-6)
    assert core_noise.explained_variance(record) == pytest.approx(
        stats.metrics()["workflow_reconstruction"]["explained_variance_centered"], abs=1e-12
    )
    json.dumps(record)  # what the record step writes


def test_without_ce_losses_nothing_is_recorded():
    from workflow_scripts.evals.reconstruction import CELossBatches

    ce = CELossBatches()
    ce.add(torch.zeros(2, 3, dtype=torch.long), {"kl_div_with_sae": torch.zeros(2, 3)}, {0})
    assert ce.record() == {"tokens": [], "without_sae": [], "with_sae": [], "with_ablation": []}
