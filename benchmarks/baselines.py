"""Baselines shared by the benchmark scripts: timing, the machine's matmul rate, a scalar
closed-form loop and a NumPy / scikit-learn loop of the GMM simulation."""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.stats import norm


def timed(fn, repeats=2):
    best = math.inf
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def matmul_peak(size=2048):
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    t, _ = timed(lambda: a @ a, 3)
    return 2 * size**3 / t / 1e9


def numpy_run(rng, n, d, snr, p, phi, psi, lam, sklearn=False):
    y = rng.choice(np.array([-1.0, 1.0], np.float32), n)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x[:, 0] += snr * y
    yt = np.where(rng.random(n) < p, -y, y)
    kept = rng.random(n) < np.where(yt == y, phi, psi)
    xk, yk = x[kept], yt[kept]
    if sklearn:
        from sklearn.linear_model import RidgeClassifier

        # sklearn minimises ||y - Xw||^2 + alpha ||w||^2: alpha = lam N matches our convention
        w = RidgeClassifier(alpha=lam * n, fit_intercept=False).fit(xk, yk).coef_.ravel()
    else:
        w = np.linalg.solve(xk.T @ xk / n + lam * np.eye(d, dtype=np.float32), xk.T @ yk / n)
    return norm.cdf(snr * w[0] / np.linalg.norm(w))


def scalar_mixed(n_real, n_syn, d, snr, p, phi, psi, lam):
    """the proportional-regime (arXiv 2406.07515, 2410.08942) reduction and closed form for one point, in plain Python."""
    alpha = (1 - p) * phi + p * psi
    nk = n_real + alpha * n_syn
    eps = p * psi * n_syn / nk
    lam2 = lam * (n_real + n_syn) / nk
    eta = d / nk
    delta = (eta - 1 - lam2 + math.sqrt((1 + lam2 - eta) ** 2 + 4 * eta * lam2)) / (2 * lam2)
    big_d = snr * snr + 1 + lam2 * (1 + delta)
    kappa = 1 - 2 * eps
    eg = kappa * snr * snr / big_d
    h = 1 - eta / (1 + lam2 * (1 + delta)) ** 2
    eg2 = (kappa * snr) ** 2 / (h * big_d) * ((snr * snr + 1) / big_d - 2 * (1 - h)) + (1 - h) / h
    return 0.5 * math.erfc(-eg / math.sqrt(eg2 - eg * eg) / math.sqrt(2))


def numpy_flip_linear_ridge(n, d, snr, p, theta_ver, tau, lam):
    """The finite-n/d accuracy of flips pruned by a linear verifier (docs/theory.md section 7),
    written the straightforward NumPy way: vectorised over points, float64, no JAX."""
    from scipy.special import ndtr

    n, d, m, p, tv, tau, lam = np.broadcast_arrays(
        *map(np.asarray, (n, d, snr, p, theta_ver, tau, lam))
    )
    cv, sv = np.cos(tv), np.sin(tv)
    c_pos = np.clip(tau - m * cv, -50, 50)
    c_neg = np.clip(tau + m * cv, -50, 50)
    g_pos = np.exp(-0.5 * c_pos**2) / math.sqrt(2 * math.pi)
    g_neg = np.exp(-0.5 * c_neg**2) / math.sqrt(2 * math.pi)
    kp, kn = (1 - p) * ndtr(-c_pos), p * ndtr(-c_neg)
    alpha = kp + kn
    s1 = (1 - p) * g_pos - p * g_neg
    s2 = (1 - p) * c_pos * g_pos + p * c_neg * g_neg
    lift = (1 - p) * g_pos + p * g_neg
    a_ee = alpha * (1 + m * m) + 2 * m * s1 * cv + s2 * cv * cv
    a_ef = m * s1 * sv + s2 * cv * sv
    a_ff = alpha + s2 * sv * sv
    b_e, b_f = (kp - kn) * m + lift * cv, lift * sv
    eta = d / n
    bq = alpha + lam - eta
    delta = (np.sqrt(bq * bq + 4 * lam * eta) - bq) / (2 * lam)
    c = lam * (1 + delta)
    det = (a_ee + c) * (a_ff + c) - a_ef * a_ef
    w_e = ((a_ff + c) * b_e - a_ef * b_f) / det
    w_f = ((a_ee + c) * b_f - a_ef * b_e) / det
    resid = (
        alpha - 2 * (b_e * w_e + b_f * w_f) + a_ee * w_e**2 + 2 * a_ef * w_e * w_f + a_ff * w_f**2
    )
    perp2 = delta / (alpha / (1 + delta) ** 2 + lam) * resid / (1 + delta) ** 2
    return ndtr(m * w_e / np.sqrt(w_e**2 + w_f**2 + perp2))


def numpy_linear_verifier_run(rng, n, d, snr, p, theta_ver, tau, lam):
    """One naive simulation with flips and a linear margin verifier, plain NumPy (float32)."""
    y = rng.choice(np.array([-1.0, 1.0], np.float32), n)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x[:, 0] += snr * y
    yt = np.where(rng.random(n) < p, -y, y)
    score = yt * (math.cos(theta_ver) * x[:, 0] + math.sin(theta_ver) * x[:, 1])
    xk, yk = x[score >= tau], yt[score >= tau]
    w = np.linalg.solve(xk.T @ xk / n + lam * np.eye(d, dtype=np.float32), xk.T @ yk / n)
    return norm.cdf(snr * w[0] / np.linalg.norm(w))


def median(xs) -> float:
    """The median of ``xs`` as a float (NaN when empty)."""
    return float(np.median(xs)) if len(xs) else float("nan")


class JaxMatmulPeak:
    """The machine's JAX matmul rate (GFLOP/s) in ``dtype``: the best of single jitted
    n x n ``a @ b`` over ``sizes`` (a size may repeat), each timed to ``block_until_ready``."""

    def __init__(self, sizes, dtype="float32"):
        import jax
        import jax.numpy as jnp

        rng = np.random.default_rng(0)
        self.sizes, self.dtype = tuple(sizes), dtype
        self.mats = {
            n: tuple(jnp.asarray(rng.standard_normal((n, n), np.float32), dtype) for _ in range(2))
            for n in set(self.sizes)
        }
        self.f = jax.jit(lambda a, b: a @ b)
        for ab in self.mats.values():  # compile
            self.f(*ab).block_until_ready()

    def rate(self) -> float:
        best = 0.0
        for n in self.sizes:
            t = time.perf_counter()
            self.f(*self.mats[n]).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
        return best


def print_table(rows, peak: float) -> None:
    """Rows of (benchmark, gmmcollapse, baseline, ratio) as aligned columns, then the peak."""
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        f"{'benchmark':<{widths[0]}}  {'gmmcollapse':>{widths[1]}}  {'baseline':>{widths[2]}}  ratio"
    )
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    print(f"fp32 matmul peak (one 2048^3 NumPy matmul): {peak:.1f} GFLOP/s")
