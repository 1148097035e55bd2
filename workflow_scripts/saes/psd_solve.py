"""Minimum-norm solves with a batch of PSD Gram matrices: G^+ R, by Cholesky where it holds and
an eigen-based pseudo-inverse where it does not. IHTP's least squares on a support
(saes/pursuit.py) solves with them; they run on CPU (scipy's LAPACK) and on CUDA (torch's).
"""

import functools

import numpy as np
import torch
from scipy.linalg import lapack


def _cholesky_solve(R: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """G^-1 R from G's lower Cholesky factor L: two triangular solves, L y = R then L^T x = y.
    Same result as torch.cholesky_solve, ~20% faster on CPU here (it copies and masks L first)."""
    y = torch.linalg.solve_triangular(L, R, upper=False)
    return torch.linalg.solve_triangular(L.mT, y, upper=True)


def psd_solve(G: torch.Tensor, R: torch.Tensor, rtol: float) -> torch.Tensor:
    """G^+ R for a batch of PSD Gram matrices G (B, n, n) and right-hand sides R (B, n, m).

    Why this solver: the minimum-norm least-squares solution is pinv(D) = (D^T D)^+ D^T
    = D^T (D D^T)^+, so solving with the smaller Gram gives it. Cholesky is exact and ~10x
    cheaper than an eigendecomposition, but only for a full-rank Gram; where it fails or a pivot is
    tiny (min L_ii^2 <= rtol * max G_ii, i.e. an atom is nearly in the span of the others) we use
    the eigen-based pinv in float64 with relative cutoff rtol, which stays finite and
    minimum-norm on rank-deficient supports. Both run on CPU and CUDA (unlike lstsq's gelsd, CPU
    only, or gels, which assumes full rank and returns garbage or inf on a singular support).
    On CPU the Cholesky steps are LAPACK's potrf + potrs through scipy (`cholesky_lapack`),
    elsewhere torch's (`cholesky_torch`); the same factorisation, results equal to rounding.
    """
    on_cpu = G.device.type == "cpu" and G.dtype in (torch.float32, torch.float64)
    out, ok = (cholesky_lapack if on_cpu else cholesky_torch)(G, R, rtol)
    if bool(ok.all()):
        return out
    bad = ~ok
    pinv = torch.linalg.pinv(G[bad].double(), hermitian=True, rtol=rtol)  # (b, n, n)
    out[bad] = (pinv @ R[bad].double()).to(R.dtype)
    return out


def cholesky_torch(
    G: torch.Tensor, R: torch.Tensor, rtol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """G^-1 R by torch's batched Cholesky (any device). G (B, n, n) PSD, R (B, n, m). Returns
    (out (B, n, m), ok (B,) bool): ok[b] False where the factorisation failed or a pivot is tiny
    (min L_ii^2 <= rtol * max G_ii); out[b] is then unset."""
    L, info = torch.linalg.cholesky_ex(G)  # (B, n, n)
    pivots = L.diagonal(dim1=-2, dim2=-1)  # (B, n)
    scale = G.diagonal(dim1=-2, dim2=-1).amax(-1)  # (B,)
    ok = (info == 0) & (pivots.amin(-1) ** 2 > rtol * scale)  # (B,)
    if bool(ok.all()):
        return _cholesky_solve(R, L), ok  # (B, n, m)
    out = torch.empty_like(R)
    out[ok] = _cholesky_solve(R[ok], L[ok])
    return out, ok


def cholesky_lapack(
    G: torch.Tensor, R: torch.Tensor, rtol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """G^-1 R by LAPACK's potrf (Cholesky) and potrs (both triangular solves) on CPU, matrix by
    matrix. G (B, n, n) PSD, R (B, n, m); returns (out, ok) as `cholesky_torch` does, with the
    same test for a failed factorisation or a tiny pivot.

    Why not torch's: its cholesky_ex + two solve_triangular cost 25-30 ms per 8 x (512 x 512)
    Grams with 128 right-hand sides on the 2-core AMD EPYC measured, scipy's potrf + potrs 12 ms
    (torch's CPU Cholesky also zeroes the upper triangle, ~1.5 ms, and its LAPACK is MKL, which
    may take a generic path on AMD).
    One OpenBLAS thread: with two, a whole IHTP call (8,192 tokens, d_in 512, d_sae 4,096, k 10)
    was slower than with torch's Cholesky, not faster (1,313 against 955 ms, medians of 7
    interleaved calls), because OpenBLAS's idle workers spin-wait after each call and take a core
    from the torch GEMMs that follow; with one thread, 757 against 946 ms. A second core gains the
    LAPACK calls little (8.4 against 12.0 ms per 8 Grams), and scipy's wrappers hold the GIL, so
    Python threads cannot share the matrices out instead.
    """
    G_np, R_np = G.detach().numpy(), R.detach().numpy()
    potrf, potrs = lapack.get_lapack_funcs(("potrf", "potrs"), (G_np,))
    scale = G.diagonal(dim1=-2, dim2=-1).amax(-1).tolist()  # (B,)
    out = torch.empty(R.shape, dtype=R.dtype)
    ok = torch.zeros(G.shape[0], dtype=torch.bool)
    with _blas_controller().limit(limits=1, user_api="blas"):
        for b in range(G.shape[0]):
            ok[b] = _potrf_potrs(potrf, potrs, G_np[b], R_np[b], rtol, scale[b], out[b])
    return out, ok


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once (~4 ms: it walks the loaded
    shared objects); limiting threads through it then costs ~20 us. scipy.linalg is imported by
    then, so scipy's OpenBLAS is among them."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _potrf_potrs(potrf, potrs, G: np.ndarray, R: np.ndarray, rtol, scale, out) -> bool:
    """out = G^-1 R by one Cholesky (G (n, n) PSD, R (n, m)); False, out unset, where the
    factorisation fails or its smallest pivot is tiny (min L_ii^2 <= rtol * scale)."""
    # G is symmetric, so its transpose (Fortran order: no copy) is the same matrix
    factor, info = potrf(G.T, lower=1, clean=0)
    # `not (a > b)` rather than `a <= b`: a NaN scale or pivot fails the test, as in torch's
    if info != 0 or not float(factor.diagonal().min()) ** 2 > rtol * scale:
        return False
    x, info = potrs(factor, R, lower=1)
    if info != 0:  # an illegal argument: a bug here, not a property of G
        raise RuntimeError(f"LAPACK potrs failed (info={info})")
    out.copy_(torch.from_numpy(x))
    return True
