"""The workflow's centered explained variance and |code| > 0 density, fed by SAE Bench's own core
sparsity/variance pass (its get_sparsity_and_variance_metrics, run here on synthetic data)."""

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
            hook_name="blocks.0.hook_resid_post", hook_head_index=None, hook_layer=0, d_sae=D
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
