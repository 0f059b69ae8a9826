"""GMM throughput benchmarks, printed as a table of ratios measured in the same process.

1. ``ridge_accuracy`` on a 1000 x 1000 (p, psi) grid: wall time after compilation, and the
   ratio against a scalar NumPy/SciPy loop of the same closed form (timed on a subsample).
2. Simulation: 1024 seeds at d = 256, n = 2048 (i.i.d. flips, noisy-oracle verifier, primal
   ridge, float32) against a straightforward NumPy loop of the same algorithm (timed on a
   subset of seeds, reported per simulation).
3. The machine's fp32 matmul rate from one large NumPy matmul, for scale.

Usage: python benchmarks/bench_gmm.py [--seeds 1024] [--numpy-seeds 32]
Absolute times on a shared machine are noisy; the ratios are the result.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params
from gmmcollapse.gmm.simulate import _simulate


def _best_of(fn, repeats=3):
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def scalar_ridge_accuracy(n, d, snr, p, phi, psi, lam):
    """PAPER.md 1.2's closed form for one point in plain Python (the loop baseline)."""
    alpha = (1 - p) * phi + p * psi
    nk = alpha * n
    eps = p * psi / alpha
    lam2 = lam / alpha
    eta = d / nk
    delta = (eta - 1 - lam2 + math.sqrt((1 + lam2 - eta) ** 2 + 4 * eta * lam2)) / (2 * lam2)
    big_d = snr * snr + 1 + lam2 * (1 + delta)
    kappa = 1 - 2 * eps
    eg = kappa * snr * snr / big_d
    h = 1 - eta / (1 + lam2 * (1 + delta)) ** 2
    eg2 = (kappa * snr) ** 2 / (h * big_d) * ((snr * snr + 1) / big_d - 2 * (1 - h)) + (1 - h) / h
    return norm.cdf(eg / math.sqrt(eg2 - eg * eg))


def bench_theory(size=1000):
    p = jnp.linspace(0.0, 1.0, size)
    psi = jnp.linspace(0.01, 1.0, size)
    pp, ss = jnp.meshgrid(p, psi, indexing="ij")
    f = jax.jit(lambda a, b: T.ridge_accuracy(4000.0, 1000.0, 1.5, a, 1.0, b, 0.1))
    f(pp, ss).block_until_ready()
    t_jax = _best_of(lambda: f(pp, ss).block_until_ready())
    sub = 20000
    pts = list(zip(np.asarray(pp).ravel()[:sub], np.asarray(ss).ravel()[:sub]))
    t0 = time.perf_counter()
    for a, b in pts:
        scalar_ridge_accuracy(4000.0, 1000.0, 1.5, float(a), 1.0, float(b), 0.1)
    t_loop = (time.perf_counter() - t0) * (size * size / sub)
    return t_jax, t_loop


def numpy_simulation(rng, n, d, snr, p, phi, psi, lam):
    """The same algorithm as gmmcollapse.gmm.simulate for one seed, in NumPy float32."""
    y = rng.choice(np.array([-1.0, 1.0], np.float32), n)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x[:, 0] += snr * y
    yt = np.where(rng.random(n) < p, -y, y)
    correct = yt == y
    kept = rng.random(n) < np.where(correct, phi, psi)
    xk = x[kept]
    a = xk.T @ xk / n + lam * np.eye(d, dtype=np.float32)
    w = np.linalg.solve(a, xk.T @ yt[kept] / n)
    return norm.cdf(snr * w[0] / np.linalg.norm(w))


def bench_simulation(seeds=1024, numpy_seeds=32, n=2048, d=256, chunk=128):
    spec = SimSpec(n_max=n, d=d)
    params = make_params(n, 1.5, p=0.3, phi=1.0, psi=0.4, lam=0.1)
    run = jax.jit(jax.vmap(_simulate, in_axes=(0, None, None)), static_argnums=2)
    keys = jax.random.split(jax.random.key(0), seeds)
    run(keys[:chunk], params, spec).acc.block_until_ready()

    def all_seeds():
        out = [run(keys[i : i + chunk], params, spec).acc for i in range(0, seeds, chunk)]
        return jnp.concatenate(out).block_until_ready()

    t_jax = _best_of(all_seeds, repeats=2)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(numpy_seeds):
        numpy_simulation(rng, n, d, 1.5, 0.3, 1.0, 0.4, 0.1)
    t_np = (time.perf_counter() - t0) / numpy_seeds * seeds
    return t_jax, t_np


def matmul_peak(size=2048):
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    t = _best_of(lambda: a @ a)
    return 2 * size**3 / t / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1024)
    parser.add_argument("--numpy-seeds", type=int, default=32)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.default_backend()} ({len(jax.devices())} device(s))")
    peak = matmul_peak()
    t_jax, t_loop = bench_theory()
    s_jax, s_np = bench_simulation(args.seeds, args.numpy_seeds)
    n, d = 2048, 256
    flops = args.seeds * (2 * n * d * d + d**3 / 3)
    rows = [
        (
            "ridge_accuracy, 1000x1000 grid (jit, after compile)",
            f"{t_jax:.3f} s",
            f"scalar loop {t_loop:.1f} s",
            f"{t_loop / t_jax:.0f}x",
        ),
        (
            f"simulate, {args.seeds} seeds, d={d}, n={n}",
            f"{s_jax:.2f} s",
            f"NumPy loop {s_np:.1f} s",
            f"{s_np / s_jax:.1f}x",
        ),
        ("  simulations per second", f"{args.seeds / s_jax:.0f}", f"{args.seeds / s_np:.0f}", ""),
        (
            "  achieved GFLOP/s (Gram + solve)",
            f"{flops / s_jax / 1e9:.1f}",
            f"{flops / s_np / 1e9:.1f}",
            f"peak {peak:.1f}",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        f"{'benchmark':<{widths[0]}}  {'gmmcollapse':>{widths[1]}}  {'baseline':>{widths[2]}}  ratio"
    )
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    print(f"fp32 matmul peak (one 2048^3 NumPy matmul): {peak:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
