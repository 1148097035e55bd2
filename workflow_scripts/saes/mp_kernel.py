"""Matching pursuit's step loop on CPU, compiled by numba: one token's correlations stay in the
L1/L2 cache for all of its steps.

Why a compiled loop: with stock torch ops every step is several passes over a block of tokens'
correlations (argmax, gather, the Gram-row update), each a separate kernel that streams the whole
block through memory; here each token does its steps back to back on its own row of
correlations (d_sae floats, 16 KiB at 4,096 latents), so a step is one search for the first
largest |c| and one vectorised update pass (c -= v G[j]), both in cache; only the Gram row G[j]
comes from memory. In float32 the search is a single integer max reduction over the bit
patterns (`_first_argmax_f32`), which LLVM vectorises where it does not vectorise a float max
reduction written in numba. Measured with `python -m workflow_scripts.tools.bench_pursuit`
(d_in 512, d_sae 4,096, 8,192 tokens, s = 100, 2 CPU cores, medians of 5 runs interleaved with
the previous kernel's, the bench timing the second of two back-to-back calls): fast MP / ReLU
encode 4.1, against 6.6 with a float max then a float equality search; the torch step loop ~12.

Compiled for float32 and float64 when this module is first imported on a machine (~7 s on 2
cores), then loaded from numba's cache (~0.5 s a process, numba's import included). The cache
sits in one folder per CPU model (see `_cache_dir`): numba's cache index is not safe when
processes on different CPU models write one folder at once (numba issues #4807, #10128), as jobs
on a mixed cluster sharing this tree would.
"""

import os
import tempfile
import threading
from pathlib import Path

import numba
import numpy as np
from llvmlite import binding


def _cache_dir() -> str:
    """NUMBA_CACHE_DIR if set, else `__pycache__/numba-<cpu model>/` beside this file, or under
    the temporary folder where the source tree is read-only (numba would otherwise fail with
    "no locator available")."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    name = f"numba-{binding.get_host_cpu_name()}"
    for parent in (Path(__file__).parent / "__pycache__", Path(tempfile.gettempdir())):
        folder = parent / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return str(folder)
    return ""  # numba's own locators then decide (and refuse if none is writable)


# Read by numba when the functions below are decorated; a process-wide setting, harmless here:
# nothing else in a job compiles with numba.
numba.config.CACHE_DIR = _cache_dir()

# Instruction flags for LLVM. Not 'reassoc': sums keep their order. 'contract' fuses c - v*g into
# one FMA where the CPU has it, so the last bit of the codes can differ between CPU models (a
# near-tie may then pick another atom, as any change of rounding can). 'nnan'/'ninf' let the max
# reduction vectorise: they make NaN and inf undefined inside the loop, so `run_steps` refuses
# non-finite input and the caller takes the torch loop, which propagates NaN as the reference.
_FASTMATH = {"nnan", "ninf", "nsz", "contract"}

# Eager signatures: both dtypes compiled (or loaded) at once, so concurrent first runs write
# the same cache entries in the same order.
_F32_TOKEN_SIG = "void(float32[::1], int32[::1], float32[::1], float32[:, ::1], int64, boolean)"
_F64_TOKEN_SIG = "void(float64[::1], float64[::1], float64[:, ::1], int64, boolean)"
_STEP_SIGS = [
    f"void({t}[::1], {t}[::1], {t}[:, ::1], int64, boolean)" for t in ("float32", "float64")
]
_F32_BLOCK_SIG = "void(float32[:, ::1], float32[:, ::1], float32[:, ::1], int64, boolean)"
_F64_BLOCK_SIG = "void(float64[:, ::1], float64[:, ::1], float64[:, ::1], int64, boolean)"


@numba.njit("int64(int32[::1], boolean)", boundscheck=False, cache=True)
def _first_argmax_f32(bits, nonneg):  # pragma: no cover - compiled
    """First index of the largest |c| (of the largest c if nonneg), c given by its float32
    bit patterns `bits` (n,), all finite.

    Why integers: numba writes a float max as compare + select without fast-math flags on the
    select, which LLVM 14 (llvmlite 0.43) will not vectorise as a reduction, and a float max
    gives no index. Finite floats order as integers once mapped: |c| as its bits with the sign
    cleared, c as bits ^ (sign ? 0x7fffffff : 0) (-0.0 moved onto +0.0, which it equals); the
    key in the high half of an int64 and n - i in the low half make one integer max reduction,
    which vectorises, give the largest key and, on ties, the first index: torch.argmax's
    choice, exactly.
    """
    n = bits.shape[0]  # < 2**32, so that n - i fits the low half
    best = np.int64(-(1 << 63))  # below every packed value: keys >= -2**31, n - i >= 1
    for i in range(n):
        b = bits[i]
        if nonneg:
            k = b ^ ((b >> 31) & np.int32(0x7FFFFFFF))
            k += np.int32(k == -1)  # -0.0 (bits 0x80000000) ties with +0.0
        else:
            k = b & np.int32(0x7FFFFFFF)
        best = max(best, (np.int64(k) << 32) | np.int64(n - i))
    return n - (best & np.int64(0xFFFFFFFF))


@numba.njit("int64(float64[::1], boolean)", boundscheck=False, fastmath=_FASTMATH, cache=True)
def _first_argmax_f64(c, nonneg):  # pragma: no cover - compiled
    """As `_first_argmax_f32` for float64 values `c` (n,), whose 64-bit keys leave no room for
    the index: a float max reduction, then a vectorised search for the first entry equal to it
    (a min reduction; an early exit does not vectorise)."""
    n = c.shape[0]
    j = n
    if nonneg:
        m = c.max()
        for i in range(n):
            j = min(j, i if c[i] == m else n)
    else:
        m = max(c.max(), -c.min())
        for i in range(n):
            j = min(j, i if abs(c[i]) == m else n)
    return j if j < n else 0  # unreachable for finite input (run_steps checks it)


@numba.njit(_STEP_SIGS, boundscheck=False, fastmath=_FASTMATH, cache=True)
def _add_atom(c, z, G, j, nonneg):  # pragma: no cover - compiled
    """One MP step on atom j, in place: v = c[j] (relu'd if nonneg), z[j] += v, c -= v G[j]."""
    v = c[j]
    if nonneg and v < 0:
        v -= v  # relu, kept in c's dtype
    z[j] += v
    g = G[j]
    for i in range(c.shape[0]):
        c[i] -= v * g[i]


@numba.njit(_F32_TOKEN_SIG, boundscheck=False, fastmath=_FASTMATH, cache=True)
def _token_steps_f32(c, bits, z, G, steps, nonneg):  # pragma: no cover - compiled
    """`steps` MP steps for one token, in place. c: (n,) correlations of the residual and
    `bits`, the same memory seen as int32; z: (n,) codes, added to; G: (n, n) decoder Gram."""
    for _ in range(steps):
        _add_atom(c, z, G, _first_argmax_f32(bits, nonneg), nonneg)


@numba.njit(_F64_TOKEN_SIG, boundscheck=False, fastmath=_FASTMATH, cache=True)
def _token_steps_f64(c, z, G, steps, nonneg):  # pragma: no cover - compiled
    """As `_token_steps_f32` for float64."""
    for _ in range(steps):
        _add_atom(c, z, G, _first_argmax_f64(c, nonneg), nonneg)


# The per-token body is its own function: inlined into the parallel loop it did not vectorise
# (2.7x slower per thread).
@numba.njit(_F32_BLOCK_SIG, parallel=True, boundscheck=False, cache=True)
def _steps_f32(c, z, G, steps, nonneg):  # pragma: no cover - compiled
    bits = c.view(np.int32)
    for t in numba.prange(c.shape[0]):
        _token_steps_f32(c[t], bits[t], z[t], G, steps, nonneg)


@numba.njit(_F64_BLOCK_SIG, parallel=True, boundscheck=False, cache=True)
def _steps_f64(c, z, G, steps, nonneg):  # pragma: no cover - compiled
    for t in numba.prange(c.shape[0]):
        _token_steps_f64(c[t], z[t], G, steps, nonneg)


# numba's default threading layer on a PyPI install without a system OpenMP (workqueue) aborts
# the process when two Python threads enter a parallel function at once
_LOCK = threading.Lock()


def run_steps(
    c: np.ndarray, z: np.ndarray, G: np.ndarray, steps: int, nonneg: bool, threads: int
) -> bool:
    """MP steps for a block of tokens, in place: picks j_t = argmax |c_t| (argmax c_t if
    nonneg; first index on ties, as torch.argmax), adds v = c_t[j] (relu'd if nonneg) to
    z_t[j] and subtracts v G[j] from c_t, `steps` times.

    c: (T, n) correlations of the residual, updated; z: (T, n) codes, added to; G: (n, n);
    all C-contiguous and of one float dtype (float32 or float64); G finite (the compiled loop
    assumes finite numbers; the caller checks G once, not per block). threads: numba threads to
    use (capped at numba's maximum, which follows the process's CPU affinity).
    Returns False, touching nothing, if c holds a NaN or inf; raises TypeError / ValueError on
    another dtype, a non-contiguous array or no latents (n = 0).
    """
    if not (c.dtype == z.dtype == G.dtype) or c.dtype not in (np.float32, np.float64):
        raise TypeError(f"one float dtype expected, got {c.dtype}, {z.dtype}, {G.dtype}")
    for name, a in (("c", c), ("z", z), ("G", G)):
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
    if c.shape[1] == 0:  # the compiled loop would index an empty row (no bounds checks)
        raise ValueError("c has no columns: the dictionary has no latents")
    if not np.isfinite(c).all():
        return False
    with _LOCK:
        before = numba.get_num_threads()
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            (_steps_f32 if c.dtype == np.float32 else _steps_f64)(c, z, G, steps, nonneg)
        finally:
            numba.set_num_threads(before)
    return True
