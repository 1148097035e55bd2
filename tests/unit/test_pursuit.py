"""Fast pursuit paths against the readable references, plus the invariants of the spec."""

import functools

import numpy as np
import pytest
import torch

from workflow_scripts.saes import psd_solve
from workflow_scripts.saes import pursuit as P


def unit_dict(d_sae, d_in, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(d_sae, d_in, generator=g, dtype=dtype), dim=1)


def randn(*shape, seed=1, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------------------------------ buffers


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(0,), (3,), (5, 7), (2, 128, 4096)])
def test_cpu_buffers_are_aligned_contiguous_and_outlive_their_numpy_array(shape, dtype):
    import gc

    t = P._empty(shape, dtype, torch.device("cpu"))
    assert t.shape == shape and t.dtype == dtype and t.is_contiguous()
    assert t.data_ptr() % 64 == 0  # torch's own alignment; numpy's 16 slowed a GEMM into it
    t.copy_(torch.arange(t.numel(), dtype=dtype).view(shape))
    gc.collect()  # the tensor alone must keep the memory alive
    assert torch.equal(t.flatten(), torch.arange(t.numel(), dtype=dtype))


def test_buffers_numpy_cannot_hold_come_from_torch():
    t = P._empty((4, 3), torch.bfloat16, torch.device("cpu"))
    assert t.dtype == torch.bfloat16 and t.shape == (4, 3)


# ---------------------------------------------------------------------------------------- MP


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize(
    "d_in,d_sae,shape,steps",
    [
        (8, 16, (37, 8), 40),  # more steps than atoms: atoms are picked again
        (16, 128, (3, 11, 16), 25),  # (B, L, d_in), block argmax path
        (32, 512, (50, 32), 12),
        (24, 100, (2, 5, 24), 10),  # d_sae not a multiple of the argmax block
    ],
)
def test_mp_fast_matches_reference(d_in, d_sae, shape, steps, nonneg, backend):
    W = unit_dict(d_sae, d_in)
    x = randn(*shape)
    ref = P.matching_pursuit_reference(x, W, steps, nonneg=nonneg)
    fast = P.matching_pursuit(x, W, steps, nonneg=nonneg, chunk_tokens=7, backend=backend)
    assert fast.shape == (*shape[:-1], d_sae)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=0)
    if nonneg:
        assert (fast >= 0).all()
    if steps > d_sae:
        picks_per_token = (ref.reshape(-1, d_sae) != 0).sum(-1)
        assert (
            picks_per_token < steps
        ).all()  # repeated picks happened (the test really covers them)


@pytest.mark.parametrize("nonneg", [False, True])
def test_mp_without_room_for_the_gram_gives_the_reference_codes(nonneg, monkeypatch):
    """A budget below d_sae^2 floats: no Gram is ever built, same codes as the reference."""
    W, x = unit_dict(128, 16), randn(3, 11, 16)
    assert not P.gram_fits(128, torch.float64, budget_bytes=128 * 128 * 8 - 1)

    def no_gram(*args, **kwargs):
        raise AssertionError("the Gram was built")

    monkeypatch.setattr(P, "decoder_gram", no_gram)
    fast = P.matching_pursuit(
        x, W, 25, nonneg=nonneg, chunk_tokens=7, gram_budget_bytes=128 * 128 * 8 - 1
    )
    ref = P.matching_pursuit_reference(x, W, 25, nonneg=nonneg)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=0)


def test_mpsae_takes_the_bounded_path_past_the_budget(monkeypatch):
    """MPSAE caches the Gram when it fits the budget and holds none when it does not."""
    from workflow_scripts.saes.encoders import MPSAE

    sae = MPSAE(16, 64, 5, "m", 0, device="cpu", dtype=torch.float32)
    sae.W_dec.data.copy_(unit_dict(64, 16, dtype=torch.float32))
    x = randn(2, 4, 16, dtype=torch.float32)
    with_gram = sae.encode(x)
    assert sae.gram() is not None
    monkeypatch.setattr(P, "GRAM_BUDGET_BYTES", 64 * 64 * 4 - 1)
    assert sae.gram() is None
    torch.testing.assert_close(sae.encode(x), with_gram, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mp_fp32_bf16_input(dtype, nonneg, backend):
    W = unit_dict(256, 32, dtype=torch.float32)
    x = randn(4, 9, 32, dtype=torch.float32).to(dtype)
    ref = P.matching_pursuit_reference(x, W, 20, nonneg=nonneg)
    fast = P.matching_pursuit(x, W, 20, nonneg=nonneg, gram=P.decoder_gram(W), backend=backend)
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=0)
    if nonneg:
        assert (fast >= 0).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("nonneg", [False, True])
def test_mp_backends_pick_the_first_of_tied_atoms(nonneg, dtype):
    """Integer-valued correlations tie often: both backends pick the first index, as the
    reference's torch.argmax does, so the codes are equal exactly (float32 takes the compiled
    loop's integer-key search, float64 its float search)."""
    g = torch.Generator().manual_seed(5)
    W = torch.eye(64, dtype=dtype)[torch.randperm(64, generator=g)]  # orthonormal atoms
    x = torch.randint(-3, 4, (30, 64), generator=g).to(dtype)  # many equal |correlations|
    ref = P.matching_pursuit_reference(x, W, 12, nonneg=nonneg)
    for backend in ("numba", "torch"):
        assert torch.equal(P.matching_pursuit(x, W, 12, nonneg=nonneg, backend=backend), ref)


def test_float32_argmax_by_integer_keys_matches_torch():
    """The compiled float32 search orders bit patterns as integers: it must agree with
    torch.argmax of c and of |c| on ties, signed zeros, subnormals and extremes."""
    from workflow_scripts.saes import mp_kernel

    special = [0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 3.4e38, -3.4e38, 1.0, -1.0]
    rows = [torch.tensor(special), torch.tensor([-0.0, 0.0, -1.0]), torch.tensor([-2.0, -0.0])]
    # all negative, down to the most negative float: keys near the bottom of the int32 range
    rows += [torch.tensor([-5.0, -2.0, -3.4e38]), torch.tensor([-3.4e38, -3.4e38])]
    rows += [-(torch.rand(300) + 1.0) * 10.0 ** torch.randint(0, 38, (300,)) for _ in range(5)]
    rows += [torch.randint(-3, 4, (257,)).float() for _ in range(20)]
    rows += [torch.randn(1000) * 10.0 ** torch.randint(-40, 38, (1000,)) for _ in range(5)]
    for c in rows:
        c = c.float().contiguous()
        bits = c.numpy().view(np.int32)
        assert mp_kernel._first_argmax_f32(bits, True) == int(c.argmax())
        assert mp_kernel._first_argmax_f32(bits, False) == int(c.abs().argmax())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_a_nan_in_the_decoder_reaches_the_codes_as_in_the_reference(backend):
    """The compiled loop assumes finite numbers: a NaN atom sends MP to the torch loop, whose
    codes carry the NaN as the reference's do (never finite codes that skip it)."""
    W = unit_dict(64, 8, seed=2)
    W[5] = float("nan")
    x = randn(6, 8)
    assert torch.isnan(P.matching_pursuit_reference(x, W, 4)).any()
    assert torch.isnan(P.matching_pursuit(x, W, 4, backend=backend)).any()


def test_the_compiled_steps_refuse_what_they_cannot_run():
    from workflow_scripts.saes import mp_kernel

    c, G = np.ones((3, 8), np.float32), np.eye(8, dtype=np.float32)
    with pytest.raises(TypeError, match="one float dtype"):
        mp_kernel.run_steps(c, np.zeros((3, 8)), G, 2, False, 1)
    with pytest.raises(ValueError, match="c must be C-contiguous"):
        mp_kernel.run_steps(np.ones((8, 3), np.float32).T, np.zeros_like(c), G, 2, False, 1)
    c[1, 2], z = np.inf, np.zeros_like(c)
    assert not mp_kernel.run_steps(c, z, G, 2, False, 1)
    assert (z == 0).all() and c[0, 0] == 1  # untouched
    empty = np.ones((3, 0), np.float32)  # no latents: the loop would index an empty row
    with pytest.raises(ValueError, match="no latents"):
        mp_kernel.run_steps(empty, empty.copy(), np.ones((0, 0), np.float32), 2, False, 1)
    with pytest.raises(ValueError, match="no latents"):
        P.matching_pursuit(randn(3, 4), torch.zeros(0, 4), 5, backend="numba")


def test_mp_backend_is_checked():
    W, x = unit_dict(32, 8), randn(4, 8)
    with pytest.raises(ValueError, match="backend must be"):
        P.matching_pursuit(x, W, 3, backend="cuda")
    with pytest.raises(ValueError, match="numba backend runs on CPU with a Gram"):
        P.matching_pursuit(x, W, 3, backend="numba", gram_budget_bytes=0)


def test_row_argmax_matches_torch_with_ties():
    for s in (torch.randint(-4, 5, (40, 256)).float(), torch.randn(40, 192), torch.randn(7, 100)):
        # integer entries: many ties, the first index must win, like torch
        assert torch.equal(P._row_argmax(s, absolute=False), s.argmax(-1))
        assert torch.equal(P._row_argmax(s, absolute=True), s.abs().argmax(-1))


@pytest.mark.parametrize("nonneg", [False, True])
def test_mp_invariants(nonneg):
    d_in, d_sae, S = 12, 40, 16
    W = unit_dict(d_sae, d_in, seed=3)
    x = randn(20, d_in, seed=4)
    codes = [P.matching_pursuit(x, W, t, nonneg=nonneg) for t in range(S + 1)]  # (N, d_sae) each
    res = [(x - z @ W).norm(dim=-1) for z in codes]  # residual norm after t steps
    steps_v = []
    for t in range(S):
        dz = codes[t + 1] - codes[t]
        assert ((dz != 0).sum(-1) <= 1).all()  # one atom per step
        steps_v.append(dz.sum(-1))  # v_t per token
        assert (res[t + 1] <= res[t] + 1e-9).all()  # residual never grows
    v = torch.stack(steps_v)  # (S, N)
    torch.testing.assert_close(
        x.norm(dim=-1) ** 2 - res[S] ** 2, (v**2).sum(0), atol=1e-9, rtol=1e-9
    )
    assert ((codes[S] != 0).sum(-1) <= S).all()
    if nonneg:
        assert (codes[S] >= 0).all()
    else:
        assert (codes[S] < 0).any()  # the signed reading really differs


# -------------------------------------------------------------------------------------- IHTP


def own_support(x, W, k):
    """Union over the tokens of each sequence of the top-k |correlations|, computed here."""
    A = (x @ W.T).abs()  # (B, L, d_sae)
    sets = []
    for a in A:
        s = set()
        for row in a:
            s |= set(row.topk(k).indices.tolist())
        sets.append(sorted(s))
    return sets


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize(
    "d_in,d_sae,B,L,k",
    [
        (16, 64, 4, 3, 2),  # supports <= d_in: atom Gram
        (16, 64, 5, 12, 3),  # supports > d_in: input Gram, near-exact fit
        (32, 256, 3, 20, 4),
        (64, 512, 2, 40, 2),
        (15, 64, 3, 12, 3),  # odd d_in: the input Gram's two column blocks differ in width
        (16, 4096, 3, 4, 3),  # supports of L*k atoms: the gather fills its buffer's cap
    ],
)
def test_ihtp_fast_matches_reference(d_in, d_sae, B, L, k):
    W = unit_dict(d_sae, d_in, seed=d_sae)
    x = randn(B, L, d_in, seed=L)
    ref = P.ihtp_reference(x, W, k)
    fast = P.ihtp(x, W, k, seq_chunk=2)
    assert fast.shape == (B, L, d_sae)
    assert rel(fast @ W, ref @ W) < 1e-4
    # (L, d_in) input is one sequence
    assert rel(P.ihtp(x[1], W, k) @ W, ref[1] @ W) < 1e-4


def psd_batch(dtype):
    """Four (6 x 6) Grams: full rank, rank 3, holding a NaN, full rank again."""
    g = torch.Generator().manual_seed(21)
    D = torch.randn(4, 9, 6, generator=g, dtype=torch.float64)
    D[1] = torch.randn(9, 3, generator=g, dtype=torch.float64) @ D[1, :3]  # rank 3
    G = (D.mT @ D).to(dtype)
    G[2, 1, 4] = G[2, 4, 1] = float("nan")
    return G


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("transposed", [False, True])  # R as IHTP passes it: xc.mT, not contiguous
def test_lapack_and_torch_cholesky_agree(dtype, transposed):
    G = psd_batch(dtype)
    R = randn(4, 5, 6, seed=22, dtype=dtype).mT if transposed else randn(4, 6, 5, dtype=dtype)
    out_lapack, ok_lapack = psd_solve.cholesky_lapack(G, R, 1e-6)
    out_torch, ok_torch = psd_solve.cholesky_torch(G, R, 1e-6)
    assert ok_lapack.tolist() == ok_torch.tolist() == [True, False, False, True]
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert rel(out_lapack[ok_lapack], out_torch[ok_torch]) < tol
    # and both solve G x = R
    ok = ok_lapack
    assert rel(G[ok] @ out_lapack[ok], R[ok]) < tol


def test_psd_solve_on_cpu_mixes_cholesky_and_pinv_per_matrix():
    G, R = psd_batch(torch.float64)[:2], randn(2, 6, 5, seed=23)  # full rank, rank 3
    out = psd_solve.psd_solve(G, R, 1e-6)
    assert rel(out[0], torch.linalg.solve(G[0], R[0])) < 1e-10
    assert rel(out[1], torch.linalg.pinv(G[1], hermitian=True, rtol=1e-6) @ R[1]) < 1e-8


def test_lapack_cholesky_runs_on_one_blas_thread_and_restores_the_count(monkeypatch):
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        blas = [d for d in threadpool_info() if d["user_api"] == "blas"]
        return {d["filepath"]: d["num_threads"] for d in blas}

    seen, real = [], lapack.get_lapack_funcs

    def spying(names, arrays):
        potrf, potrs = real(names, arrays)

        def potrf_spy(*a, **kw):
            seen.append(blas_threads())
            return potrf(*a, **kw)

        return potrf_spy, potrs

    monkeypatch.setattr(lapack, "get_lapack_funcs", spying)
    with threadpool_limits(2, user_api="blas"):  # as on a 2-thread job, whatever this machine has
        before = blas_threads()
        psd_solve.cholesky_lapack(psd_batch(torch.float64), randn(4, 6, 2, seed=24), 1e-6)
        assert blas_threads() == before
    assert len(seen) == 4 and all(set(t.values()) == {1} for t in seen)


@pytest.mark.parametrize("d_in", [7, 8])
def test_input_gram_is_the_full_product(d_in):
    D = randn(3, 20, d_in, seed=d_in, dtype=torch.float64)  # (B, S, d_in)
    out = torch.full((3, d_in, d_in), float("nan"), dtype=torch.float64)  # stale scratch
    assert torch.allclose(P._input_gram(D, out), D.mT @ D, rtol=0, atol=1e-12)


def test_ihtp_mixed_support_sizes_in_one_batch():
    d_in, d_sae, L, k = 16, 64, 10, 2
    W = unit_dict(d_sae, d_in, seed=5)
    x = randn(4, L, d_in, seed=6)
    x[0] = x[0, :1]  # one token repeated: support of size k
    x[2] = x[2, torch.arange(L) % 3]  # three distinct tokens: support <= 3k
    sizes = [len(s) for s in own_support(x, W, k)]
    assert min(sizes) <= d_in < max(sizes)  # both solver branches in the same call
    ref, fast = P.ihtp_reference(x, W, k), P.ihtp(x, W, k)
    for b in range(4):
        assert rel(fast[b] @ W, ref[b] @ W) < 1e-4
        assert ((fast[b] != 0).sum(-1) == sizes[b]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ihtp_fp32_bf16_input(dtype):
    W = unit_dict(256, 32, seed=7, dtype=torch.float32)
    x = randn(3, 16, 32, seed=8, dtype=torch.float32).to(dtype)
    ref, fast = P.ihtp_reference(x, W, 3), P.ihtp(x, W, 3)
    assert fast.dtype == torch.float32
    assert rel(fast @ W, ref @ W) < 1e-4


def test_ihtp_invariants():
    d_in, d_sae, B, L, k = 24, 96, 3, 5, 2  # supports of at most 10 < d_in atoms
    W = unit_dict(d_sae, d_in, seed=9)
    x = randn(B, L, d_in, seed=10)
    z = P.ihtp(x, W, k)
    for b, sup in enumerate(own_support(x, W, k)):
        r = x[b] - z[b] @ W  # (L, d_in)
        assert (r @ W[sup].T).abs().max() < 1e-8  # residual orthogonal to the support atoms
        nz = z[b] != 0
        assert (nz.sum(-1) == len(sup)).all()  # dense on the support
        assert nz[:, sup].all()
        assert r.norm() > 1e-3 * x[b].norm()  # small support: not an exact fit


def test_ihtp_support_spanning_d_in_fits_exactly():
    W = unit_dict(64, 8, seed=11)
    x = randn(2, 30, 8, seed=12)
    assert min(len(s) for s in own_support(x, W, 3)) > 8
    z = P.ihtp(x, W, 3)
    assert ((x - z @ W).norm(dim=-1) / x.norm(dim=-1)).max() < 1e-8


@pytest.mark.parametrize("d_in,L", [(16, 3), (8, 12)])  # atom-Gram and input-Gram branches
def test_ihtp_rank_deficient_support_is_finite_and_min_norm(d_in, L):
    g = torch.Generator().manual_seed(13)
    # 64 atoms living in a 4-dim subspace: every support of > 4 atoms is rank deficient
    W = torch.nn.functional.normalize(
        torch.randn(64, 4, generator=g, dtype=torch.float64)
        @ torch.randn(4, d_in, generator=g, dtype=torch.float64),
        dim=1,
    )
    x = randn(2, L, d_in, seed=14)
    fast, ref = P.ihtp(x, W, 3), P.ihtp_reference(x, W, 3)
    assert torch.isfinite(fast).all()
    assert rel(fast @ W, ref @ W) < 1e-4
    assert rel(fast, ref) < 1e-4  # both minimum norm, so the codes agree too
    for b, sup in enumerate(own_support(x, W, 3)):
        assert len(sup) > 4
        assert ((x[b] - fast[b] @ W) @ W[sup].T).abs().max() < 1e-6


def test_nonneg_mp_stops_adding_when_all_correlations_are_negative():
    W = unit_dict(64, 8, seed=15).abs()
    W = W / W.norm(dim=1, keepdim=True)
    x = -randn(5, 8, seed=16).abs()  # every correlation < 0
    fast = [functools.partial(P.matching_pursuit, backend=b) for b in ("numba", "torch")]
    for f in (*fast, P.matching_pursuit_reference):
        assert (f(x, W, 6, nonneg=True) == 0).all()  # relu(c[j]) = 0: nothing to add
        assert (f(x, W, 6) != 0).any()


def test_bench_script_runs_small_and_ends_with_result_line(capsys):
    from workflow_scripts.tools import bench_pursuit

    args = (
        "--d-in 16 --d-sae 64 --seqs 3 --seq-len 8 --steps 5 --k 2 --repeats 1 "
        "--ref-mp-tokens 8 --ref-ihtp-seqs 2"
    )
    out = bench_pursuit.main(args.split())
    lines = capsys.readouterr().out.strip().splitlines()
    assert (
        lines[-1]
        == f"RESULT mp_vs_relu={out['mp_vs_relu']:.3f} ihtp_speedup={out['ihtp_speedup']:.3f} "
        f"mp_torch_vs_relu={out['mp_torch_vs_relu']:.3f}"
    )
    assert any("timed on 8 tokens, scaled x3" in line for line in lines)


def test_bench_wide_case_reports_memory_and_ratio(capsys, monkeypatch):
    from workflow_scripts.tools import bench_pursuit

    monkeypatch.setattr(P, "GRAM_BUDGET_BYTES", 64 * 64 * 4 - 1)  # a 64-latent Gram "too wide"
    args = "--wide --d-in 16 --d-sae 64 --seqs 2 --seq-len 8 --steps 3 --repeats 1"
    out = bench_pursuit.main(args.split())
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(f"RESULT wide_mp_vs_relu={out['wide_mp_vs_relu']:.3f} ")
    assert out["gram_bytes"] == 64 * 64 * 4 and out["wide_mp_peak_bytes"] >= 0
    assert any("max |code diff| vs reference" in line for line in lines)


def test_bench_times_the_second_of_two_back_to_back_calls():
    """The first call of each pair (where a VM's host page faults land) is never timed."""
    import time

    from workflow_scripts.tools import bench_pursuit

    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1
            if calls[name] % 2 == 1:  # the first of each back-to-back pair is slow
                time.sleep(0.05)

        return fn

    t = bench_pursuit.median_times({"a": make("a"), "b": make("b")}, 3, torch.device("cpu"))
    assert calls == {"a": 8, "b": 8}  # a warm-up round and 3 timed rounds, two calls each
    assert t["a"] < 0.02 and t["b"] < 0.02
