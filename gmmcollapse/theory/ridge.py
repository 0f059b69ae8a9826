r"""Exact proportional-regime (n, d -> inf, d/n fixed) accuracy of the ridge classifier.

Convention (El Firdoussi, Seddik et al., arXiv 2410.08942, ICLR 2025)::

    w = (X^T Q X / N + lam I)^{-1} X^T Q y~ / N,    Q = diag(kept),   decision sign(w . x)

with ``N`` counting *all* samples (real + synthesized, pruned ones included). For a fixed ``w``
the test accuracy is exactly ``Phi(w . mu / ||w||)``, so everything reduces to the limits of
``w . mu`` and ``||w||^2``.

Derivation used here (written out in ``docs/theory.md``). Multiply each kept row by its label:
``u_i = y~_i x_i = s_i m_g + sigma_g z_i`` with ``s_i = y~_i y_i in {+1, -1}`` (correct or
wrong), ``m_g`` the class-mean vector of the row's population and ``z_i ~ N(0, I)``. Ridge is
``min_w (1/N) sum_kept (1 - w . u_i)^2 + lam ||w||^2``. Split ``w`` into its part in the span
``S`` of the means and the orthogonal part. For fixed ``w_S`` the orthogonal problem is ridge
with Gaussian rows independent of its targets; its minimum concentrates on
``(1/N) sum_i t_i^2 / (1 + sigma_i^2 delta)`` where ``delta`` solves the scalar fixed point

.. math::
    \delta \Big(\sum_g \pi_g \frac{\sigma_g^2}{1 + \sigma_g^2\delta} + \lambda\Big) = \eta,
    \qquad \eta = d / N,\ \pi_g = (\text{kept rows of group } g) / N .

Minimising what is left over ``w_S`` is a small linear solve,

.. math::
    \Big[\sum_g \pi_g c_g (m_g m_g^\top + \sigma_g^2 I) + \lambda I\Big] w_S
        = \sum_g \pi_g c_g s_g m_g, \qquad c_g = 1/(1 + \sigma_g^2 \delta),

and the envelope theorem gives the orthogonal norm
``||w_perp||^2 = -delta'(lam) sum_g pi_g c_g^2 sigma_g^2 E_g[t^2]`` with
``E_g[t^2] = (1 - s_g m_g . w_S)^2 + sigma_g^2 ||w_S||^2``. With one noise level the fixed
point is a quadratic and everything is closed form; it reproduces (tested) the clean-keep
closed form :func:`clean_ridge_accuracy` (El Firdoussi et al., arXiv 2410.08942). Different
noise levels (a shifted synthetic law) need the genuine fixed-point solve, done by
safeguarded Newton in :func:`solve_delta` with implicit differentiation.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.stats import norm
from jax.typing import ArrayLike

from gmmcollapse._validate import (
    KEEPS_SOMETHING,
    NONNEG,
    NONNEG_OR_INF,
    POSITIVE,
    POSITIVE_OR_INF,
    REAL,
    UNIT,
    Arg,
    Rule,
    is_concrete,
)
from gmmcollapse.theory.basic import RATES, theory_function
from gmmcollapse.theory.basic import f64 as _f

__all__ = [
    "RidgeLimit",
    "clean_ridge_accuracy",
    "mixed_ridge_accuracy",
    "ridge_accuracy",
    "ridge_limit",
    "shifted_mixed_ridge_accuracy",
    "solve_delta",
]


class RidgeLimit(NamedTuple):
    """Deterministic (proportional-regime) limits of the trained ridge vector.

    Attributes:
        w_mu: limit of ``w . mu``.
        w_norm2: limit of ``||w||^2``.
        delta: the fixed point ``delta = lim tr((X^T Q X/N + lam I)^{-1}) / N``.
        converged: whether the fixed-point solve met its tolerance (always True in closed form).
        accuracy: ``Phi(w_mu / ||w||)``; 1/2 when ``w = 0`` (nothing kept).
    """

    w_mu: Array
    w_norm2: Array
    delta: Array
    converged: Array
    accuracy: Array


def _delta_residual(delta, eta, lam, pi, sigma2):
    # G(delta) = delta (sum_g pi_g s_g / (1 + s_g delta) + lam) - eta; strictly increasing,
    # G(0) = -eta < 0 and G(eta / lam) >= 0, so the root is unique and bracketed.
    # delta has the batch shape; the group axis is the last axis of pi and sigma2
    s = jnp.sum(pi * sigma2 / (1.0 + sigma2 * delta[..., None]), axis=-1)
    return delta * (s + lam) - eta


def _newton_bisect(eta, lam, pi, sigma2, tol=1e-14, max_iter=200):
    lo = jnp.zeros_like(eta)
    hi = eta / lam
    x0 = 0.5 * (lo + hi)

    def body(state):
        x, lo, hi, it, _ = state
        g = _delta_residual(x, eta, lam, pi, sigma2)
        # G'(delta) = sum_g pi_g s_g / (1 + s_g delta)^2 + lam  > 0
        dg = jnp.sum(pi * sigma2 / (1.0 + sigma2 * x[..., None]) ** 2, axis=-1) + lam
        lo = jnp.where(g < 0, x, lo)
        hi = jnp.where(g > 0, x, hi)
        newton = x - g / dg
        inside = (newton > lo) & (newton < hi)
        x_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        done = jnp.abs(x_new - x) <= tol * jnp.maximum(1.0, jnp.abs(x))
        return x_new, lo, hi, it + 1, done

    def cond(state):
        *_, it, done = state
        return (it < max_iter) & ~jnp.all(done)

    x, *_ = lax.while_loop(cond, body, (x0, lo, hi, 0, jnp.zeros(eta.shape, bool)))
    return x


@theory_function(eta=NONNEG, lam=POSITIVE, pi=Arg(NONNEG, core=1), sigma2=Arg(POSITIVE, core=1))
def solve_delta(
    eta: ArrayLike, lam: ArrayLike, pi: ArrayLike, sigma2: ArrayLike
) -> tuple[Array, Array]:
    r"""Solve :math:`\delta(\sum_g \pi_g\sigma_g^2/(1+\sigma_g^2\delta) + \lambda) = \eta`.

    Safeguarded Newton (Newton steps, bisection whenever a step leaves the bracket
    ``[0, eta/lam]``) in a ``lax.while_loop`` with relative tolerance 1e-14 and at most 200
    iterations; differentiable through ``lax.custom_root`` (implicit function theorem), so
    ``grad`` never unrolls the loop.

    Args:
        eta: d / N, shape ``batch``.
        lam: ridge strength > 0, shape ``batch``.
        pi, sigma2: group weights (kept rows / N) and noise variances, shape ``batch + (G,)``.

    Returns:
        ``(delta, converged)``; converged is True when the residual is below 1e-10 relative.
    """
    eta, lam, pi, sigma2 = _f(eta), _f(lam), _f(pi), _f(sigma2)
    shape = jnp.broadcast_shapes(eta.shape, lam.shape, pi.shape[:-1], sigma2.shape[:-1])
    eta = jnp.broadcast_to(eta, shape)
    lam = jnp.broadcast_to(lam, shape)
    g = max(pi.shape[-1], sigma2.shape[-1])
    pi = jnp.broadcast_to(pi, shape + (g,))
    sigma2 = jnp.broadcast_to(sigma2, shape + (g,))

    def f(x):
        return _delta_residual(x, eta, lam, pi, sigma2)

    def solve(_, x0):
        return _newton_bisect(eta, lam, pi, sigma2)

    def tangent_solve(g_lin, y):
        # The residual is elementwise in delta, so its Jacobian is diagonal: divide.
        return y / g_lin(jnp.ones_like(y))

    delta = lax.custom_root(f, jnp.zeros(shape), solve, tangent_solve)
    resid = jnp.abs(f(lax.stop_gradient(delta)))
    converged = resid <= 1e-10 * jnp.maximum(1.0, eta)
    return delta, converged


def _closed_form_delta(eta, lam, pi):
    # One noise level sigma = 1 and total kept fraction pi: lam d^2 + (pi + lam - eta) d - eta = 0.
    # Two algebraically equal roots; each is used where it has no cancellation.
    b = pi + lam - eta
    root = jnp.sqrt(b * b + 4.0 * lam * eta)
    safe_pos = jnp.where(b >= 0, b + root, 1.0)
    return jnp.where(b >= 0, 2.0 * eta / safe_pos, (root - b) / (2.0 * lam))


def _limit_from_groups(eta, lam, pi, s, m_e, m_f, sigma2, delta, converged) -> RidgeLimit:
    """Mean-space solve and orthogonal norm given delta (see the module docstring).

    ``m_e``/``m_f`` are the group means' coordinates along e = mu/||mu|| and a fixed unit f
    orthogonal to e; ``w . mu`` is ``||mu|| w_e``, so callers scale by snr afterwards.
    """
    c = 1.0 / (1.0 + sigma2 * delta[..., None])
    wgt = pi * c
    # 2x2 system [sum_g wgt_g (m_g m_g^T + s2_g I) + lam I] w = sum_g wgt_g s_g m_g
    a_ee = jnp.sum(wgt * (m_e * m_e + sigma2), -1) + lam
    a_ff = jnp.sum(wgt * (m_f * m_f + sigma2), -1) + lam
    a_ef = jnp.sum(wgt * m_e * m_f, -1)
    b_e = jnp.sum(wgt * s * m_e, -1)
    b_f = jnp.sum(wgt * s * m_f, -1)
    det = a_ee * a_ff - a_ef * a_ef
    w_e = (a_ff * b_e - a_ef * b_f) / det
    w_f = (a_ee * b_f - a_ef * b_e) / det
    ws2 = w_e * w_e + w_f * w_f
    t2 = (1.0 - s * (m_e * w_e[..., None] + m_f * w_f[..., None])) ** 2 + sigma2 * ws2[..., None]
    # delta'(lam) from implicit differentiation of the fixed point
    slope = jnp.sum(pi * sigma2 * c * c, -1) + lam
    ddelta = -delta / slope
    w_perp2 = -ddelta * jnp.sum(pi * c * c * sigma2 * t2, -1)
    norm2 = ws2 + w_perp2
    ratio = jnp.where(norm2 > 0, w_e / jnp.sqrt(jnp.where(norm2 > 0, norm2, 1.0)), 0.0)
    return RidgeLimit(w_e, norm2, delta, converged, ratio)


#: the dimension, signal strength and ridge strength of every ridge limit
RIDGE = {"d": POSITIVE, "snr": NONNEG, "lam": POSITIVE}
#: real and synthesized sample counts, and the synthetic feature law's shift and noise scale
MIXED = {"n_real": NONNEG, "n_syn": NONNEG_OR_INF, **RIDGE, **RATES}
SHIFTED = {**MIXED, "beta": REAL, "gamma": REAL, "sigma": POSITIVE}
SOME_SAMPLES = Rule(
    ("n_real", "n_syn"),
    lambda n_real, n_syn: n_real + n_syn > 0,
    "n_real + n_syn must be > 0 (no training samples)",
)


@theory_function((KEEPS_SOMETHING, SOME_SAMPLES), **SHIFTED)
def ridge_limit(
    n_real: ArrayLike,
    n_syn: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    p: ArrayLike,
    phi: ArrayLike,
    psi: ArrayLike,
    lam: ArrayLike,
    beta: ArrayLike = 1.0,
    gamma: ArrayLike = 0.0,
    sigma: ArrayLike = 1.0,
) -> RidgeLimit:
    """Full limit object behind :func:`shifted_mixed_ridge_accuracy` (same arguments).

    Three row populations: real rows (mean ``y mu``, noise 1, always correct), synthesized
    rows kept with a correct label and kept with a wrong label (mean ``y (beta mu + gamma f)``,
    noise ``sigma``). When ``sigma`` is concretely 1 the fixed point is a quadratic solved in
    closed form; otherwise (or when ``sigma`` is traced) the Newton solver runs.
    """
    one_level = is_concrete(sigma) and bool(np.all(np.asarray(sigma, float) == 1.0))
    args = map(_f, (n_real, n_syn, d, snr, p, phi, psi, lam, beta, gamma, sigma))
    return _ridge_limit(one_level, *args)


@partial(jax.jit, static_argnums=0)  # one compile per shape; eager calls re-trace the solver
def _ridge_limit(one_level, n_real, n_syn, d, snr, p, phi, psi, lam, beta, gamma, sigma):
    # fractions of N = n_real + n_syn; n_syn = inf is the infinite-data limit (eta = 0,
    # the real rows negligible)
    total = n_real + n_syn
    many = jnp.isinf(n_syn)
    frac_real = jnp.where(many, 0.0, n_real / total)
    frac_syn = jnp.where(many, 1.0, n_syn / total)
    eta = d / total
    groups = jnp.broadcast_arrays(
        frac_real,
        frac_syn * (1 - p) * phi,
        frac_syn * p * psi,  # pi_g
        snr,
        beta * snr,
        beta * snr,  # m_e
        0.0 * gamma,
        gamma,
        gamma,  # m_f
        jnp.ones_like(sigma),
        sigma**2,
        sigma**2,  # sigma_g^2
        eta,
        lam,
    )
    *g, eta, lam = groups
    pi, m_e, m_f, sigma2 = (jnp.stack(g[3 * i : 3 * i + 3], -1) for i in range(4))
    s = jnp.broadcast_to(jnp.array([1.0, 1.0, -1.0]), pi.shape)
    if one_level:
        delta = _closed_form_delta(eta, lam, jnp.sum(pi, -1))
        converged = jnp.ones(delta.shape, bool)
    else:
        delta, converged = solve_delta(eta, lam, pi, sigma2)
    limit = _limit_from_groups(eta, lam, pi, s, m_e, m_f, sigma2, delta, converged)
    # limit.w_mu holds w . e; w . mu = snr * w . e, accuracy = Phi(w . e * snr / ||w||)
    snr = jnp.broadcast_to(snr, limit.w_mu.shape)
    return limit._replace(w_mu=limit.w_mu * snr, accuracy=norm.cdf(limit.accuracy * snr))


@theory_function((KEEPS_SOMETHING, SOME_SAMPLES), **SHIFTED)
def shifted_mixed_ridge_accuracy(
    n_real: ArrayLike,
    n_syn: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    p: ArrayLike,
    phi: ArrayLike,
    psi: ArrayLike,
    lam: ArrayLike,
    beta: ArrayLike = 1.0,
    gamma: ArrayLike = 0.0,
    sigma: ArrayLike = 1.0,
) -> Array:
    r"""Ridge accuracy on real data plus pruned synthesized data from a *shifted* feature law.

    Real rows: ``x = y mu + z``. Synthesized rows: ``x = y (beta mu + gamma f) + sigma z`` with
    ``f`` a fixed unit vector orthogonal to ``mu`` (``gamma`` is the norm of the orthogonal part
    of the synthetic class mean), labels wrong with probability ``p`` independently of x, kept
    with probability ``phi`` (correct) or ``psi`` (wrong). The synthetic noise scale breaks the
    exchangeability behind :func:`mixed_ridge_accuracy`; the limit needs the fixed point
    :func:`solve_delta` (module docstring; derivation in docs/theory.md). With
    ``beta = 1, gamma = 0, sigma = 1`` it equals :func:`mixed_ridge_accuracy`.

    Returns the signed accuracy ``Phi(lim w.mu / lim ||w||)``.
    """
    return ridge_limit(n_real, n_syn, d, snr, p, phi, psi, lam, beta, gamma, sigma).accuracy


@theory_function((KEEPS_SOMETHING, SOME_SAMPLES), **MIXED)
def mixed_ridge_accuracy(
    n_real: ArrayLike,
    n_syn: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    p: ArrayLike,
    phi: ArrayLike,
    psi: ArrayLike,
    lam: ArrayLike,
) -> Array:
    r"""Exact proportional-regime accuracy of ridge on real + pruned synthesized samples.

    ``n_real`` clean real samples and ``n_syn`` synthesized samples (label error ``p``, kept
    with probability ``phi`` if correct and ``psi`` if wrong), all with the same feature law
    ``x | y ~ N(y mu, I_d)``; ``N = n_real + n_syn`` counts pruned samples (El Firdoussi et al.,
    arXiv 2410.08942).
    Rows are exchangeable, so this is the clean-keep problem with
    ``N_k = n_real + alpha n_syn`` samples (``alpha`` = :func:`keep_fraction`), flip rate
    ``eps = p psi n_syn / N_k`` and ridge ``lam N / N_k``:

    .. math::
        \delta = \frac{\eta - 1 - \lambda' + \sqrt{(1 + \lambda' - \eta)^2 + 4\eta\lambda'}}{2\lambda'},
        \quad \eta = d/N_k,\ \lambda' = \lambda N/N_k,

    ``D = m^2 + 1 + lam'(1 + delta)``, ``E[g] = kappa m^2 / D`` (``kappa = 1 - 2 eps``,
    ``m = snr``), and accuracy ``Phi(E[g] / sqrt(Var g))`` with the variance of
    :func:`clean_ridge_accuracy`.
    Computed through the general group solution of this module (identical algebra; tested
    against the closed form above and against simulation). Equals :func:`ridge_accuracy`
    at ``n_real = 0``.

    Args:
        n_real, n_syn: sample counts (>= 0, not both 0; need not be integers).
        d: dimension (> 0). snr: ``||mu||`` (>= 0). p, phi, psi: rates in [0, 1].
        lam: ridge strength (> 0).

    Example:
        >>> round(float(mixed_ridge_accuracy(400, 1600, 400, 2.0, 0.3, 0.5, 0.5, 0.5)), 4)
        0.891
    """
    return ridge_limit(n_real, n_syn, d, snr, p, phi, psi, lam).accuracy


@theory_function((KEEPS_SOMETHING,), n=POSITIVE_OR_INF, **RIDGE, **RATES)
def ridge_accuracy(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    p: ArrayLike,
    phi: ArrayLike,
    psi: ArrayLike,
    lam: ArrayLike,
) -> Array:
    r"""Exact proportional-regime accuracy of ridge trained on ``n`` pruned synthesized samples.

    ``n`` counts every synthesized sample, pruned or kept (El Firdoussi et al., arXiv
    2410.08942); the label error is
    ``p``, the verifier keeps correct labels with probability ``phi`` and wrong ones with
    ``psi``. Signed: below 1/2 when ``p > p*``. Limits: ``n/d -> inf`` gives
    :func:`infinite_data_accuracy` (``n = inf`` is that limit); ``p = 0`` (or ``psi = 0``)
    gives clean-label ridge on the ``alpha n`` kept samples with the rescaled ridge
    ``lam / alpha`` (``N = n`` counts the pruned samples, so ``X^T Q X / n = alpha X_k^T X_k /
    (alpha n)``). Same as ``mixed_ridge_accuracy(0, n, ...)``; see there for the formula.

    Example:
        >>> round(float(ridge_accuracy(1600, 400, 2.0, 0.3, 0.5, 0.5, 0.5)), 4)
        0.7793
    """
    return ridge_limit(0.0, n, d, snr, p, phi, psi, lam).accuracy


@theory_function(n=POSITIVE, eps=UNIT, **RIDGE)
def clean_ridge_accuracy(
    n: ArrayLike, d: ArrayLike, snr: ArrayLike, eps: ArrayLike, lam: ArrayLike
) -> Array:
    r"""The clean-keep closed form (El Firdoussi et al., arXiv 2410.08942), written out literally.

    ``n`` samples all kept, labels flipped with probability ``eps``; ``eta = d/n``,
    ``kappa = 1 - 2 eps``, ``m = snr``::

        delta = [eta - 1 - lam + sqrt((1 + lam - eta)^2 + 4 eta lam)] / (2 lam)
        D     = m^2 + 1 + lam (1 + delta)
        E[g]  = kappa m^2 / D
        h     = 1 - eta / (1 + lam (1 + delta))^2
        E[g2] = (kappa m)^2 / (h D) [(m^2 + 1)/D - 2 (1 - h)] + (1 - h)/h
        acc   = Phi(E[g] / sqrt(E[g2] - E[g]^2))
    """
    n, d, m, eps, lam = map(_f, (n, d, snr, eps, lam))
    eta = d / n
    delta = _closed_form_delta(eta, lam, 1.0)
    big_d = m * m + 1.0 + lam * (1.0 + delta)
    kappa = 1.0 - 2.0 * eps
    eg = kappa * m * m / big_d
    h = 1.0 - eta / (1.0 + lam * (1.0 + delta)) ** 2
    eg2 = (kappa * m) ** 2 / (h * big_d) * ((m * m + 1.0) / big_d - 2.0 * (1.0 - h)) + (1.0 - h) / h
    return norm.cdf(eg / jnp.sqrt(eg2 - eg * eg))
