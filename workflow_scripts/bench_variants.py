"""Time the pursuit encoders against a plain ReLU SAE encode on the same random data.

    python -m workflow_scripts.bench_variants [--device cpu|cuda] [--d-in 512 --d-sae 4096 ...]

Prints the median of several repeats for: ReLU encode, reference MP, fast MP, reference IHTP,
fast IHTP, the ratios, and last one machine-readable line
`RESULT mp_vs_relu=<fast MP / ReLU> ihtp_speedup=<reference IHTP / fast IHTP>`.
Data: a random unit-norm dictionary and Gaussian activations (timings, not quality).
"""

import argparse
import statistics
import time

import torch

from workflow_scripts import pursuit as P


def median_times(fns: dict, repeats: int, device: torch.device) -> dict:
    """Median wall time of each fn over `repeats` runs, after one warm-up run each.

    Runs are interleaved (every fn once per round) so a load change on a shared machine hits all
    methods alike instead of skewing one of them.
    """

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = {name: [] for name in fns}
    for r in range(repeats + 1):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if r > 0:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--d-in", type=int, default=512)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--seqs", type=int, default=64, help="sequences (B)")
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (L)")
    ap.add_argument("--steps", type=int, default=100, help="MP steps s")
    ap.add_argument("--k", type=int, default=10, help="IHTP per-token top-k")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--ref-mp-tokens",
        type=int,
        default=256,
        help="time reference MP on this many tokens and scale linearly (0 = all)",
    )
    ap.add_argument(
        "--ref-ihtp-seqs",
        type=int,
        default=16,
        help="time reference IHTP on this many sequences and scale linearly (0 = all)",
    )
    ap.add_argument("--chunk-tokens", type=int, default=1024)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0 = torch default). On a shared 2-core machine, 1 avoids "
        "OpenMP stalls when another process holds a core",
    )
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    dev = torch.device(a.device)
    dtype = getattr(torch, a.dtype)
    g = torch.Generator().manual_seed(a.seed)
    W_dec = torch.nn.functional.normalize(torch.randn(a.d_sae, a.d_in, generator=g), dim=1).to(
        dev
    )  # (d_sae, d_in)
    W_enc = W_dec.T.contiguous()  # (d_in, d_sae), a stand-in encoder
    b_enc = torch.zeros(a.d_sae, device=dev)
    b_dec = torch.zeros(a.d_in, device=dev)
    x = torch.randn(a.seqs, a.seq_len, a.d_in, generator=g).to(dev, dtype)  # (B, L, d_in)
    xc = x.float() - b_dec
    n_tok = a.seqs * a.seq_len
    rep = a.repeats

    print(
        f"device={dev} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"input dtype={a.dtype}"
    )
    print(
        f"d_in={a.d_in} d_sae={a.d_sae} tokens={n_tok} ({a.seqs} x {a.seq_len}) "
        f"s={a.steps} k={a.k} "
        f"repeats={rep} (median, interleaved); random unit-norm dictionary, Gaussian activations"
    )

    G = P.decoder_gram(W_dec)
    n_ref = n_tok if a.ref_mp_tokens <= 0 else min(a.ref_mp_tokens, n_tok)
    xs = xc.reshape(-1, a.d_in)[:n_ref]  # (n_ref, d_in) subset for reference MP
    n_seq_ref = a.seqs if a.ref_ihtp_seqs <= 0 else min(a.ref_ihtp_seqs, a.seqs)
    t = median_times(
        {
            "relu": lambda: torch.relu((x.float() - b_dec) @ W_enc + b_enc),
            "gram": lambda: P.decoder_gram(W_dec),
            "mp_ref": lambda: P.matching_pursuit_reference(xs, W_dec, a.steps),
            "mp": lambda: P.matching_pursuit(
                xc, W_dec, a.steps, gram=G, chunk_tokens=a.chunk_tokens
            ),
            "ihtp_ref": lambda: P.ihtp_reference(xc[:n_seq_ref], W_dec, a.k),
            "ihtp": lambda: P.ihtp(xc, W_dec, a.k),
        },
        rep,
        dev,
    )
    t_relu, t_gram, t_mp, t_ihtp = t["relu"], t["gram"], t["mp"], t["ihtp"]
    t_mp_ref = t["mp_ref"] * n_tok / n_ref
    mp_err = (
        (
            P.matching_pursuit(xs, W_dec, a.steps, gram=G)
            - P.matching_pursuit_reference(xs, W_dec, a.steps)
        )
        .abs()
        .max()
    )
    t_ihtp_ref = t["ihtp_ref"] * a.seqs / n_seq_ref
    z_fast, z_ref = P.ihtp(xc[:n_seq_ref], W_dec, a.k), P.ihtp_reference(xc[:n_seq_ref], W_dec, a.k)
    ihtp_err = ((z_fast - z_ref) @ W_dec).norm() / (z_ref @ W_dec).norm()
    support = (z_fast != 0).sum(-1).float().mean()

    def row(name, t, note=""):
        print(f"  {name:<26} {t * 1e3:10.1f} ms  {t / t_relu:8.1f}x relu  {note}")

    print("median times:")
    row("relu encode", t_relu)
    row("decoder Gram (once/SAE)", t_gram, "cached by MPSAE, not counted in fast MP")
    ref_note = "" if n_ref == n_tok else f"timed on {n_ref} tokens, scaled x{n_tok / n_ref:g}"
    row(f"reference MP s={a.steps}", t_mp_ref, ref_note)
    row(
        f"fast MP s={a.steps}",
        t_mp,
        f"chunk_tokens={a.chunk_tokens}; max |code diff| vs ref {mp_err:.2e}",
    )
    ref_note = (
        ""
        if n_seq_ref == a.seqs
        else f"timed on {n_seq_ref} sequences, scaled x{a.seqs / n_seq_ref:g}"
    )
    row(f"reference IHTP k={a.k}", t_ihtp_ref, ref_note)
    row(
        f"fast IHTP k={a.k}",
        t_ihtp,
        f"rel recon diff vs ref {ihtp_err:.2e}; mean support {support:.0f}",
    )
    mp_vs_relu, ihtp_speedup = t_mp / t_relu, t_ihtp_ref / t_ihtp
    print("ratios:")
    print(f"  fast MP / relu encode       {mp_vs_relu:8.2f}  (target <= 10)")
    print(f"  reference MP / relu encode  {t_mp_ref / t_relu:8.2f}")
    print(f"  reference MP / fast MP      {t_mp_ref / t_mp:8.2f}")
    print(f"  reference IHTP / fast IHTP  {ihtp_speedup:8.2f}  (target >= 5)")
    print(f"RESULT mp_vs_relu={mp_vs_relu:.3f} ihtp_speedup={ihtp_speedup:.3f}")
    return {"mp_vs_relu": mp_vs_relu, "ihtp_speedup": ihtp_speedup}


if __name__ == "__main__":
    main()
