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
    """PAPER.md 1.2's reduction and closed form for one point, in plain Python."""
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
