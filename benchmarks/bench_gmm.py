"""GMM throughput benchmarks, printed as a table of ratios measured in the same process.

1. ``ridge_accuracy`` on a 1000 x 1000 (p, psi) grid: wall time after compilation, and the
   ratio against a scalar NumPy/SciPy loop of the same closed form (timed on a subsample).
2. Simulation: 1024 seeds at d = 256, n = 2048 (i.i.d. flips, noisy-oracle verifier, primal
   ridge, float32) against a straightforward NumPy loop of the same algorithm (timed on a
   subset of seeds, reported per simulation); and the same model on the exact fast path that
   ``plan`` picks by default for it.
3. The machine's fp32 matmul rate from one large NumPy matmul, for scale.

Usage: python benchmarks/bench_gmm.py [--seeds 1024] [--numpy-seeds 32]
Absolute times on a shared machine are noisy; the ratios are the result.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from baselines import matmul_peak, numpy_run, print_table, scalar_mixed, timed

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params
from gmmcollapse.gmm.fast import fast_simulate
from gmmcollapse.gmm.simulate import _simulate


def bench_theory(size=1000):
    p = jnp.linspace(0.0, 1.0, size)
    psi = jnp.linspace(0.01, 1.0, size)
    pp, ss = jnp.meshgrid(p, psi, indexing="ij")
    f = jax.jit(lambda a, b: T.ridge_accuracy(4000.0, 1000.0, 1.5, a, 1.0, b, 0.1))
    f(pp, ss).block_until_ready()
    t_jax = timed(lambda: f(pp, ss).block_until_ready(), 3)[0]
    sub = 20000
    pts = list(zip(np.asarray(pp).ravel()[:sub], np.asarray(ss).ravel()[:sub]))
    t0 = time.perf_counter()
    for a, b in pts:
        scalar_mixed(0.0, 4000.0, 1000.0, 1.5, float(a), 1.0, float(b), 0.1)
    t_loop = (time.perf_counter() - t0) * (size * size / sub)
    return t_jax, t_loop


def bench_simulation(seeds=1024, numpy_seeds=32, n=2048, d=256, chunk=128, sim=_simulate):
    """Seconds for ``seeds`` runs of ``sim`` and (extrapolated) of the NumPy loop."""
    spec = SimSpec(n_max=n, d=d)
    params = make_params(n, 1.5, p=0.3, phi=1.0, psi=0.4, lam=0.1)
    run = jax.jit(jax.vmap(sim, in_axes=(0, None, None)), static_argnums=2)
    keys = jax.random.split(jax.random.key(0), seeds)
    run(keys[:chunk], params, spec).acc.block_until_ready()

    def all_seeds():
        out = [run(keys[i : i + chunk], params, spec).acc for i in range(0, seeds, chunk)]
        return jnp.concatenate(out).block_until_ready()

    t_jax = timed(all_seeds, 2)[0]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(numpy_seeds):
        numpy_run(rng, n, d, 1.5, 0.3, 1.0, 0.4, 0.1)
    t_np = (time.perf_counter() - t0) / numpy_seeds * seeds
    return t_jax, t_np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1024)
    parser.add_argument("--numpy-seeds", type=int, default=32)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.default_backend()} ({len(jax.devices())} device(s))")
    peak = matmul_peak()
    t_jax, t_loop = bench_theory()
    s_jax, s_np = bench_simulation(args.seeds, args.numpy_seeds)
    s_fast, _ = bench_simulation(args.seeds, 1, sim=fast_simulate)
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
            "  the same model on the exact fast path (default)",
            f"{s_fast:.3f} s",
            f"NumPy loop {s_np:.1f} s",
            f"{s_np / s_fast:.0f}x",
        ),
        (
            "  achieved GFLOP/s (Gram + solve)",
            f"{flops / s_jax / 1e9:.1f}",
            f"{flops / s_np / 1e9:.1f}",
            f"peak {peak:.1f}",
        ),
    ]
    print_table(rows, peak)


if __name__ == "__main__":
    main()
