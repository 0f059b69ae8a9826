"""Selection that reads x: the projected sampler and the finite-n/d theory, timed against peers.

1. ``flip_linear_ridge_accuracy`` on a 10^6-point grid (jit, after compilation) against the
   same formulas written the straightforward NumPy way (``baselines.numpy_flip_linear_ridge``),
   timed in the same process; the two agree to rounding (checked).
2. x-dependent simulation (flips at p = 0.3, a linear verifier at 15 degrees with margin 0,
   ridge, float32): the exact ``projected`` path against the naive ``primal`` path that the
   package used before, in process, at d = 256 with n = 4096 (1024 seeds) and n = 10^6; plus a
   NumPy loop of the naive algorithm for scale.
3. Whole ``gmmcollapse simulate`` calls (start-up, import, compile, run) with ``--path
   projected`` and ``--path primal``, same flags, 1024 seeds.

Usage: python benchmarks/bench_selection.py [--seeds 1024] [--no-cli]
Times on a shared machine are noisy; the ratios, measured in one run, are the result.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from baselines import (
    matmul_peak,
    numpy_flip_linear_ridge,
    numpy_linear_verifier_run,
    print_table,
    timed,
)

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params
from gmmcollapse.gmm.projected import projected_simulate
from gmmcollapse.gmm.simulate import _simulate

SNR, P, THETA, TAU, LAM = 1.0, 0.3, 0.2618, 0.0, 0.1


def bench_theory(size=10**6):
    rng = np.random.default_rng(0)
    args = {
        "n": rng.uniform(100, 1e5, size),
        "d": 256.0,
        "snr": rng.uniform(0.5, 2.0, size),
        "p": rng.uniform(0.0, 1.0, size),
        "theta_ver": rng.uniform(-1.5, 1.5, size),
        "tau": rng.uniform(-1.0, 1.0, size),
        "lam": 0.1,
    }
    jargs = {k: jnp.asarray(v) for k, v in args.items()}
    f = jax.jit(lambda a: T.flip_linear_ridge_accuracy(**a))
    f(jargs).block_until_ready()
    t_jax, out = timed(lambda: f(jargs).block_until_ready(), 3)
    t_np, ref = timed(lambda: numpy_flip_linear_ridge(**args), 2)
    return t_jax, t_np, float(np.max(np.abs(np.asarray(out) - ref)))


def bench_sim(sim, n, seeds, chunk, d=256):
    """Seconds per simulation (after compiling) of ``sim`` at one point."""
    spec = SimSpec(n_max=n, d=d)
    params = make_params(n, SNR, p=P, theta_ver=THETA, tau=TAU, lam=LAM)
    run = jax.jit(jax.vmap(sim, in_axes=(0, None, None)), static_argnums=2)
    keys = jax.random.split(jax.random.key(0), seeds)
    chunk = min(chunk, seeds)
    run(keys[:chunk], params, spec).acc.block_until_ready()

    def all_seeds():
        out = [run(keys[i : i + chunk], params, spec).acc for i in range(0, seeds, chunk)]
        return np.concatenate([np.asarray(o) for o in out])

    t, acc = timed(all_seeds, 2)
    return t / seeds, float(acc.mean())


def bench_numpy(n, seeds, d=256):
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(seeds):
        numpy_linear_verifier_run(rng, n, d, SNR, P, THETA, TAU, LAM)
    return (time.perf_counter() - t0) / seeds


def bench_cli(path, seeds):
    cmd = [
        sys.executable, "-c", "import sys; from gmmcollapse.cli import main; sys.exit(main())",
        "simulate", "--n", "4096", "--d", "256",
        "--snr", str(SNR), "--p", str(P), "--theta-ver", str(THETA), "--tau", str(TAU),
        "--lam", str(LAM), "--seeds", str(seeds), "--path", path, "--json",
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1024)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-command timings")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.default_backend()} ({len(jax.devices())} device(s))")
    peak = matmul_peak()
    rows = []
    t_jax, t_np, diff = bench_theory()
    rows.append(("flip_linear_ridge_accuracy, 10^6 points (after compile)", f"{t_jax:.3f} s",
                 f"NumPy {t_np:.3f} s", f"{t_np / t_jax:.1f}x (max diff {diff:.0e})"))  # fmt: skip
    for n, seeds, naive_seeds, chunk in ((4096, args.seeds, 64, 32), (10**6, 64, 2, 1)):
        t_proj, a_proj = bench_sim(projected_simulate, n, seeds, 256 if n < 10**5 else 8)
        t_naive, a_naive = bench_sim(_simulate, n, naive_seeds, chunk)
        t_np = bench_numpy(n, 8 if n < 10**5 else 1)
        rows.append((f"x-dependent simulate, d=256, n={n:g}: projected vs primal (per sim)",
                     f"{t_proj * 1e3:.2f} ms", f"primal {t_naive * 1e3:.1f} ms",
                     f"{t_naive / t_proj:.0f}x"))  # fmt: skip
        rows.append(("  NumPy loop of the naive algorithm", "", f"{t_np * 1e3:.1f} ms",
                     f"{t_np / t_proj:.0f}x"))  # fmt: skip
        rows.append(("  mean accuracy (projected / primal)", f"{a_proj:.4f}", f"{a_naive:.4f}",
                     f"theory {float(T.flip_linear_ridge_accuracy(n, 256, SNR, P, THETA, TAU, LAM)):.4f}"))  # fmt: skip
    if not args.no_cli:
        c_proj = bench_cli("projected", args.seeds)
        c_naive = bench_cli("primal", args.seeds)
        rows.append((f"whole `gmmcollapse simulate` call, n=4096, {args.seeds} seeds",
                     f"{c_proj:.1f} s", f"primal {c_naive:.1f} s", f"{c_naive / c_proj:.1f}x"))  # fmt: skip
    print_table(rows, peak)


if __name__ == "__main__":
    main()
