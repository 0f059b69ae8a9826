"""Scale benchmarks: throughput against peers and the machine's limit, memory against n.

Everything is measured in one run of this script, so the ratios are meaningful on a noisy
shared machine; absolute times are not.

1. flip generator + phi-psi verifier, d = 256, n = 4096, 1024 seeds: simulations per second
   for gmmcollapse's fastest exact path (chosen by ``gmm.paths.plan``) against a NumPy loop and
   a scikit-learn ``RidgeClassifier`` loop of the same model (goals: >= 5x and >= 20x);
2. the same with a linear verifier (selection depends on x: no shortcut): achieved GFLOP/s
   against the machine's fp32 matmul peak from one large NumPy matmul (goal: >= 50%);
3. n = 10^7: time per simulation of the fast sampler and of the streaming path it replaces
   (goal: >= 100x), and peak RSS of the streaming path against n in fresh processes (goal:
   flat, under 2 GB at n = 10^7, d = 256);
4. 10^6 points of ``ridge_accuracy`` and ``mixed_ridge_accuracy`` against a scalar loop.

Usage: python benchmarks/bench_scale.py [--quick]   (needs scikit-learn: pip install scikit-learn)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from baselines import matmul_peak, numpy_run, scalar_mixed, timed

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params
from gmmcollapse.gmm.paths import plan


def _run_plan(spec, params, seeds, chunk=128):
    pl = plan(spec, {k: np.atleast_1d(np.asarray(v)) for k, v in params._asdict().items()})
    run = jax.jit(jax.vmap(pl.simulate, in_axes=(0, None, None)), static_argnums=2)
    keys = jax.random.split(jax.random.key(0), seeds)
    chunk = min(chunk, seeds)
    run(keys[:chunk], params, pl.spec).acc.block_until_ready()  # compile

    def go():
        outs = [run(keys[i : i + chunk], params, pl.spec).acc for i in range(0, seeds, chunk)]
        return jnp.concatenate(outs).block_until_ready()

    t, acc = timed(go)
    return pl.path, t, np.asarray(acc)


def bench_phi_psi(seeds, baseline_seeds, n=4096, d=256):
    spec = SimSpec(n_max=n, d=d)
    params = make_params(n, 1.5, p=0.3, phi=1.0, psi=0.4, lam=0.1)
    path, t_ours, acc = _run_plan(spec, params, seeds)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    np_acc = [numpy_run(rng, n, d, 1.5, 0.3, 1.0, 0.4, 0.1) for _ in range(baseline_seeds)]
    t_np = (time.perf_counter() - t0) / baseline_seeds
    t0 = time.perf_counter()
    sk_acc = [numpy_run(rng, n, d, 1.5, 0.3, 1.0, 0.4, 0.1, True) for _ in range(baseline_seeds)]
    t_sk = (time.perf_counter() - t0) / baseline_seeds
    return {
        "path": path,
        "sims_per_s": seeds / t_ours,
        "numpy_sims_per_s": 1 / t_np,
        "sklearn_sims_per_s": 1 / t_sk,
        "mean_acc": [float(acc.mean()), float(np.mean(np_acc)), float(np.mean(sk_acc))],
    }


def bench_linear(seeds, n=4096, d=256):
    spec = SimSpec(n_max=n, d=d)
    params = make_params(n, 1.5, p=0.3, theta_ver=0.3, tau=0.0, lam=0.1)
    path, t, _ = _run_plan(spec, params, seeds)
    # Gram (2 n d^2) + Cholesky (d^3/3) + triangular solves, scores and labels (~6 n d)
    flops = seeds * (2 * n * d * d + d**3 / 3 + 6 * n * d)
    # where the time goes: drawing the n x d Gaussians vs the Gram matrix, per simulation
    batch = 32
    draw = jax.jit(lambda k: jax.random.normal(k, (batch, n, d), jnp.float32))
    x = draw(jax.random.key(0)).block_until_ready()
    gram = jax.jit(lambda a: jnp.einsum("bni,bnj->bij", a, a))
    gram(x).block_until_ready()
    t_draw, _ = timed(lambda: draw(jax.random.key(1)).block_until_ready(), 3)
    t_gram, _ = timed(lambda: gram(x).block_until_ready(), 3)
    return {
        "path": path,
        "sims_per_s": seeds / t,
        "gflops": flops / t / 1e9,
        "draw_ms": 1e3 * t_draw / batch,
        "gram_ms": 1e3 * t_gram / batch,
        "gram_gflops": 2 * batch * n * d * d / t_gram / 1e9,
    }


def bench_large_n(n=10**7, d=256):
    params = make_params(n, 1.5, p=0.3, phi=1.0, psi=0.4, lam=0.1)
    n_max = 2 ** math.ceil(math.log2(n))
    spec = SimSpec(n_max=n_max, d=d)
    fast = plan(spec, {"tau": np.array([-np.inf])})
    stream = plan(spec, {"tau": np.array([-np.inf])}, path="streaming")
    key = jax.random.key(1)
    fast.simulate(key, params, fast.spec).acc.block_until_ready()
    t_fast, _ = timed(lambda: fast.simulate(key, params, fast.spec).acc.block_until_ready(), 3)
    stream.simulate(key, make_params(1, 1.5), stream.spec).acc.block_until_ready()  # compile
    t0 = time.perf_counter()
    stream.simulate(key, params, stream.spec).acc.block_until_ready()
    t_stream = time.perf_counter() - t0
    return {"fast_s": t_fast, "streaming_s": t_stream, "speedup": t_stream / t_fast}


# VmHWM (the peak RSS of this address space) rather than getrusage's ru_maxrss, which Linux
# carries over from the parent across fork + exec and would report the parent's peak.
_RSS_CHILD = """
import sys, math, jax
import gmmcollapse
from gmmcollapse.gmm import SimSpec, make_params
from gmmcollapse.gmm.paths import plan
n, d = int(sys.argv[1]), int(sys.argv[2])
spec = SimSpec(n_max=2 ** math.ceil(math.log2(n)), d=d)
pl = plan(spec, {"tau": [0.0]}, path="streaming")
params = make_params(n, 1.5, p=0.3, theta_ver=0.3, tau=0.0, lam=0.1)
pl.simulate(jax.random.key(0), params, pl.spec).acc.block_until_ready()
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) / 1024)
"""


def bench_rss(ns, d=256):
    out = {}
    for n in ns:
        res = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, str(n), str(d)],
            capture_output=True,
            text=True,
            check=True,
        )
        out[n] = float(res.stdout.strip().splitlines()[-1])
    return out


def bench_theory(points=10**6, loop_points=20000):
    rng = np.random.default_rng(0)
    p, psi = rng.uniform(0, 1, points), rng.uniform(0.05, 1, points)
    ridge = jax.jit(lambda a, b: T.ridge_accuracy(4000.0, 1000.0, 1.5, a, 1.0, b, 0.1))
    mixed = jax.jit(lambda a, b: T.mixed_ridge_accuracy(500.0, 4000.0, 1000.0, 1.5, a, 1.0, b, 0.1))
    out = {}
    for name, fn, real in (("ridge_accuracy", ridge, 0.0), ("mixed_ridge_accuracy", mixed, 500.0)):
        fn(p, psi).block_until_ready()
        t, vals = timed(lambda f=fn: f(p, psi).block_until_ready(), 3)
        n_syn = 4000.0
        t0 = time.perf_counter()
        ref = [
            scalar_mixed(real, n_syn, 1000.0, 1.5, p[i], 1.0, psi[i], 0.1)
            for i in range(loop_points)
        ]
        t_loop = (time.perf_counter() - t0) * points / loop_points
        err = float(np.max(np.abs(np.asarray(vals)[:loop_points] - np.array(ref))))
        out[name] = {"jax_s": t, "loop_s": t_loop, "ratio": t_loop / t, "max_abs_diff": err}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and no n = 1e7 runs")
    args = ap.parse_args(argv)
    seeds = 256 if args.quick else 1024
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} device(s)")
    peak = matmul_peak()
    rows = []
    r1 = bench_phi_psi(seeds, 8 if args.quick else 32)
    rows.append(
        (
            f"phi-psi, d=256 n=4096, {seeds} seeds [{r1['path']}]",
            f"{r1['sims_per_s']:.0f} sims/s",
            f"NumPy {r1['numpy_sims_per_s']:.1f}/s, sklearn {r1['sklearn_sims_per_s']:.1f}/s",
            f"{r1['sims_per_s'] / r1['numpy_sims_per_s']:.0f}x NumPy, {r1['sims_per_s'] / r1['sklearn_sims_per_s']:.0f}x sklearn",
        )
    )
    r2 = bench_linear(seeds // 4)
    rows.append(
        (
            f"linear verifier, d=256 n=4096 [{r2['path']}]",
            f"{r2['sims_per_s']:.1f} sims/s",
            f"fp32 matmul peak {peak:.1f} GFLOP/s",
            f"{r2['gflops']:.1f} GFLOP/s = {100 * r2['gflops'] / peak:.0f}% of peak",
        )
    )
    rows.append(
        (
            "  per simulation: Gaussian draws vs Gram",
            f"{r2['draw_ms']:.1f} ms vs {r2['gram_ms']:.1f} ms",
            f"Gram alone {r2['gram_gflops']:.0f} GFLOP/s",
            f"{100 * r2['gram_gflops'] / peak:.0f}% of peak",
        )
    )
    r4 = bench_theory()
    for name, v in r4.items():
        rows.append(
            (
                f"{name}, 10^6 points",
                f"{v['jax_s']:.3f} s",
                f"scalar loop {v['loop_s']:.1f} s",
                f"{v['ratio']:.0f}x (max diff {v['max_abs_diff']:.1e})",
            )
        )
    if not args.quick:
        r3 = bench_large_n()
        rows.append(
            (
                "n = 10^7, d = 256: fast sampler vs streaming",
                f"{r3['fast_s'] * 1e3:.1f} ms",
                f"streaming {r3['streaming_s']:.1f} s",
                f"{r3['speedup']:.0f}x",
            )
        )
        rss = bench_rss([10**5, 10**6, 10**7])
        rows.append(
            (
                "streaming peak RSS vs n (d = 256)",
                ", ".join(f"n={n:.0e}: {v:.0f} MB" for n, v in rss.items()),
                "",
                "",
            )
        )
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    print(
        json.dumps({"peak_gflops": peak, "phi_psi": r1, "linear": r2, "theory": r4}, default=float)
    )


if __name__ == "__main__":
    main()
