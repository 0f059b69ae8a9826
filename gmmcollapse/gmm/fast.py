r"""Exact sampler of the ridge learner's sufficient statistics, at a cost independent of n.

When the verifier's decision does not look at ``x`` (flip generator, noisy oracle ``phi``/
``psi``, no margin test), a simulation of one round needs only

* the four counts (correct kept, correct pruned, wrong kept, wrong pruned): a multinomial;
* the statistics ``G = X^T Q X`` and ``b = X^T Q y~`` of the kept rows (plus the real rows when
  mixed in), whose law given the counts is Gaussian + Wishart.

Multiply each training row by its label, ``u = y~ x = s m_g + sigma_g z'`` (``s = +1`` correct,
``-1`` wrong, ``z' = y~ z ~ N(0, I_d)`` independent of all labels and keep decisions). For a group
``g`` of ``k_g`` rows with the same ``(s_g, m_g, sigma_g)``, the group sum
``v_g = sum u = k_g s_g m_g + sigma_g S_g`` (``S_g ~ N(0, k_g I_d)``) and

.. math::
    \sum_{i \in g} u_i u_i^\top = \sigma_g^2 W_g + v_g v_g^\top / k_g,
    \qquad W_g \sim \mathrm{Wishart}_d(k_g - 1, I_d) \text{ independent of } S_g

(Cochran's theorem), so ``G = sum_g sigma_g^2 W_g + sum_g v_g v_g^T / k_g`` and ``b = sum_g v_g``.
The two synthesized groups share ``sigma`` and hence one Wishart with ``df = (k_+ - 1)^+ +
(k_- - 1)^+`` degrees of freedom. Two exact ways to finish:

* ``"tridiagonal"`` (synthesized data only, the default then): ``W = H T H^T`` in law with ``H``
  Haar-orthogonal and independent of the tridiagonal ``T = B^T B`` (``B`` the bidiagonal
  "Laguerre" matrix of independent chi variables, Dumitriu & Edelman 2002). The accuracy depends
  on ``w`` only through ``w . mu`` and ``||w||``, both invariant under the rotation ``H^T``, so
  the whole fit is done in the rotated basis: a tridiagonal solve plus a rank-2 Woodbury
  correction. Cost O(d).
* ``"bartlett"`` (any eligible model; needed when real rows, with their own noise scale, are
  mixed in): dense ``W = R^T R`` from the Bartlett decomposition and a Cholesky solve. Cost
  O(d^3).

The counts come from sequential binomials, drawn by an exact order-statistics recursion on top
of an exact gamma sampler (not ``jax.random.binomial``, whose acceptance test is slightly off).
Both methods are equal *in distribution* to :func:`gmmcollapse.gmm.simulate._simulate` (not draw for
draw); the proof is in ``docs/fast_sampler.md``. Everything here runs in float64 whatever
``spec.dtype`` says: the sampler targets the exact-arithmetic law, and the float32 naive path
differs from it only by rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.linalg import cho_factor, cho_solve
from jax.scipy.stats import norm
from jax.typing import ArrayLike

from gmmcollapse import feedback
from gmmcollapse._validate import check_choice
from gmmcollapse.gmm.simulate import SimResult
from gmmcollapse.gmm.spec import GMMParams, SimSpec
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "METHODS",
    "TRACE_COUNT",
    "bartlett_factor",
    "cell_probabilities",
    "eligible",
    "fast_simulate",
    "laguerre_tridiagonal",
    "sample_counts",
    "wishart",
]

#: how many times :func:`fast_simulate` has been traced (tests guard against recompilation)
TRACE_COUNT = {"fast_simulate": 0}

#: ways to finish the fit; ``"auto"`` is ``"tridiagonal"`` without real rows, else ``"bartlett"``
METHODS = ("auto", "tridiagonal", "bartlett")

_F64 = jnp.float64


# ----------------------------------------------------------------------------- eligibility


def eligible(spec: SimSpec, pts: Mapping[str, Any] | GMMParams | None = None) -> bool:
    """Whether :func:`fast_simulate` samples this model exactly.

    Needs ``generator == "flip"``, one round and the ridge learner (``data``, ``solver``,
    ``dtype``, ``n_test`` and block/stream settings do not matter), and every point's margin
    threshold ``tau = -inf``, so that the noisy oracle (``phi``, ``psi``, scalar or per class) is
    the only verifier and selection never looks at ``x``. Real-data mixing and the shifted
    synthetic law are covered.

    Args:
        spec: the static structure.
        pts: concrete parameter values (a mapping of :class:`GMMParams` field names to arrays,
            or a :class:`GMMParams`); a missing ``tau`` means the default ``-inf``. ``None``
            checks the spec only.
    """
    if spec.generator != "flip" or spec.rounds != 1 or spec.learner != "ridge":
        return False
    if pts is None:
        return True
    if isinstance(pts, GMMParams):
        pts = pts._asdict()
    tau = pts.get("tau")
    if tau is None:
        return True
    return bool(np.all(np.isneginf(np.asarray(tau, dtype=np.float64))))


# ------------------------------------------------------------------ random matrix pieces


def _gamma_attempt(key: Array, a: Array) -> tuple[Array, Array]:
    r"""One proposal of Marsaglia & Tsang's Gamma(a, 1) sampler (``a >= 1``): (value, accepted).

    With ``d = a - 1/3`` and ``c = 1/sqrt(9 d)``, propose ``V = (1 + c X)^3`` for
    ``X ~ N(0, 1)`` and accept ``d V`` when ``V > 0`` and
    ``log U < X^2/2 + d - d V + d log V`` (``U`` uniform): exact rejection sampling (ACM TOMS
    26, 2000; argument in ``docs/fast_sampler.md``), accepting at least 95% of proposals.
    """
    k_x, k_u = jax.random.split(key)
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    x = jax.random.normal(k_x, a.shape, _F64)
    u = jax.random.uniform(k_u, a.shape, _F64)
    v = (1.0 + c * x) ** 3
    log_v = jnp.log(jnp.where(v > 0, v, 1.0))
    accept = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    return d * v, accept


def _gamma(key: Array, shape: Array) -> Array:
    """Gamma(a, 1) draws for shapes ``a >= 1`` (elementwise, float64), exact.

    Repeats :func:`_gamma_attempt` for the entries not yet accepted, in one vectorised loop (a
    few passes). Compiles and runs several times faster than ``jax.random.gamma``.
    """
    a = jnp.asarray(shape, _F64)

    def body(state):
        k, value, done = state
        k, k_try = jax.random.split(k)
        proposal, accept = _gamma_attempt(k_try, a)
        return k, jnp.where(~done & accept, proposal, value), done | accept

    init = (key, jnp.zeros_like(a), jnp.zeros(a.shape, bool))
    return jax.lax.while_loop(lambda state: ~jnp.all(state[2]), body, init)[1]


def _chi2(key: Array, dof: Array) -> Array:
    """Chi-square draws with integer ``dof >= 0`` degrees of freedom (elementwise; float64).

    ``dof = 0`` gives 0, ``dof = 1`` the square of a standard normal, and ``dof >= 2``
    ``2 Gamma(dof/2)`` from :func:`_gamma` (float64 keeps ``chi2(10^7)`` to 16 digits).
    """
    dof = jnp.asarray(dof, _F64)
    k_one, k_gamma = jax.random.split(key)
    gamma = _gamma(k_gamma, jnp.maximum(dof / 2.0, 1.0))
    z = jax.random.normal(k_one, dof.shape, _F64)
    return jnp.where(dof >= 2, 2.0 * gamma, jnp.where(dof == 1, z * z, 0.0))


#: the binomial recursion stops at this many trials and counts uniforms directly
_BINOMIAL_BASE = 16


def _binomial(key: Array, n: ArrayLike, p: ArrayLike) -> Array:
    r"""Binomial(n, p) draws (elementwise, float64), exact; ``n`` a non-negative integer value.

    The order-statistics recursion (Devroye 1986, *Non-Uniform Random Variate Generation*,
    ch. X.4): with ``j = floor((n + 1)/2)``, the j-th smallest of n uniforms is
    ``X ~ Beta(j, n - j + 1) = G_1 / (G_1 + G_2)`` (independent gammas). If ``p < X`` the count
    is ``Bin(j - 1, p / X)`` (the j - 1 smaller uniforms are uniform on (0, X)), else
    ``j + Bin(n - j, (p - X)/(1 - X))``. Each step halves ``n``; at ``_BINOMIAL_BASE`` trials
    or fewer the uniforms are counted. About ``log2(n / 16)`` steps (20 at n = 10^7).

    One flat loop: every pass makes one gamma proposal for each pending gamma, and an entry
    whose two gammas are both accepted takes its recursion step (entries advance
    independently). Used instead of ``jax.random.binomial``, whose BTRS acceptance test clamps
    the Stirling-series argument at 9, so that about 5e-4 of its proposals are decided
    differently from exact BTRS for means between 10 and 1000.
    """
    n, p = jnp.broadcast_arrays(jnp.asarray(n, _F64), jnp.asarray(p, _F64))
    k_loop, k_base = jax.random.split(key)

    def body(state):
        k, trials, prob, count, g, g_done = state
        k, k_try = jax.random.split(k)
        active = trials > _BINOMIAL_BASE
        j = jnp.floor((trials + 1.0) / 2.0)
        shapes = jnp.where(active[..., None], jnp.stack([j, trials - j + 1.0], -1), 1.0)
        proposal, accept = _gamma_attempt(k_try, shapes)
        g = jnp.where(~g_done & accept, proposal, g)
        g_done = g_done | accept
        step = active & jnp.all(g_done, axis=-1)
        x = g[..., 0] / (g[..., 0] + g[..., 1])
        below = prob < x
        # rounding can leave the rescaled probability a hair outside [0, 1]
        new_prob = jnp.clip(jnp.where(below, prob / x, (prob - x) / (1.0 - x)), 0.0, 1.0)
        return (
            k,
            jnp.where(step, jnp.where(below, j - 1.0, trials - j), trials),
            jnp.where(step, new_prob, prob),
            jnp.where(step, count + jnp.where(below, 0.0, j), count),
            g,
            g_done & ~step[..., None],  # a new pair of gammas for the next step
        )

    pair = n.shape + (2,)
    init = (k_loop, n, p, jnp.zeros_like(n), jnp.ones(pair, _F64), jnp.zeros(pair, bool))
    _, n, p, count, _, _ = jax.lax.while_loop(
        lambda state: jnp.any(state[1] > _BINOMIAL_BASE), body, init
    )
    u = jax.random.uniform(k_base, n.shape + (_BINOMIAL_BASE,), _F64)
    base = jnp.arange(_BINOMIAL_BASE, dtype=_F64).reshape((1,) * n.ndim + (_BINOMIAL_BASE,))
    hits = (base < n[..., None]) & (u < p[..., None])
    return count + jnp.sum(hits, axis=-1, dtype=_F64)


def _bartlett_dofs(df: Array, d: int) -> Array:
    """Chi-square degrees of freedom of the Bartlett diagonal: ``df - i`` for rows ``i < df``."""
    i = jnp.arange(d, dtype=_F64)
    return jnp.where(i < df, df - i, 0.0)


def _bartlett_assemble(key: Array, chi2_diag: Array, df: Array, d: int) -> Array:
    """``R`` from its squared diagonal; the strict upper part is N(0, 1) in rows ``i < df``."""
    active = jnp.arange(d, dtype=_F64) < df
    off = jnp.triu(jax.random.normal(key, (d, d), _F64), 1) * active[:, None]
    return off + jnp.diag(jnp.sqrt(chi2_diag))


@in_float64
def bartlett_factor(key: Array, df: ArrayLike, d: int) -> Array:
    r"""Upper-triangular ``R`` (d x d, float64) with ``R^T R ~ Wishart_d(df, I_d)``.

    Bartlett decomposition: for rows ``i < df`` (0-based), ``R_ii = sqrt(chi2(df - i))`` and
    ``R_ij ~ N(0, 1)`` for ``j > i``, all independent; rows ``i >= df`` are zero (a singular
    Wishart when ``df < d``; ``df = 0`` gives ``R = 0``). ``df`` is traced (masks, not shapes);
    it must be a non-negative integer value. Proof (Gram-Schmidt / QR of a Gaussian
    ``df x d`` matrix) in ``docs/fast_sampler.md``.
    """
    k_diag, k_off = jax.random.split(key)
    df = jnp.asarray(df, _F64)
    return _bartlett_assemble(k_off, _chi2(k_diag, _bartlett_dofs(df, d)), df, d)


@in_float64
def wishart(key: Array, df: ArrayLike, d: int) -> Array:
    """A ``Wishart_d(df, I_d)`` draw ``R^T R`` (float64, d x d) from :func:`bartlett_factor`.

    Same law as ``Z^T Z`` for ``Z`` a ``df x d`` matrix of independent N(0, 1) entries:
    ``E[W] = df I``, ``Var W_ii = 2 df``, ``Var W_ij = df`` (i != j). Cost O(d^3), not O(df d^2).
    """
    r = bartlett_factor(key, df, d)
    return r.T @ r


@in_float64
def laguerre_tridiagonal(key: Array, df: ArrayLike, d: int) -> tuple[Array, Array]:
    r"""Tridiagonal ``T = B^T B`` whose rotation ``H T H^T`` by an independent Haar ``H`` is
    ``Wishart_d(df, I_d)``.

    ``B`` is upper bidiagonal with independent entries ``B_ii = chi(df - i)`` and
    ``B_{i,i+1} = chi(d - 1 - i)`` for rows ``i < df``; rows ``i >= df`` are zero (Householder
    bidiagonalisation of a Gaussian ``df x d`` matrix, Dumitriu & Edelman 2002, beta = 1; proof
    in ``docs/fast_sampler.md``). Returns ``(diag, off)``: ``T_jj = B_jj^2 + B_{j-1,j}^2`` (shape
    ``(d,)``) and ``T_{j,j+1} = B_jj B_{j,j+1}`` (shape ``(d - 1,)``), float64. Cost O(d).
    """
    df = jnp.asarray(df, _F64)
    i = jnp.arange(d - 1, dtype=_F64)
    sup_dofs = jnp.where(i < df, d - 1.0 - i, 0.0)
    squares = _chi2(key, jnp.concatenate([_bartlett_dofs(df, d), sup_dofs]))  # one loop
    diag2, sup2 = squares[:d], squares[d:]  # B_ii^2, B_{i,i+1}^2
    t_diag = diag2 + jnp.concatenate([jnp.zeros((1,), _F64), sup2])
    t_off = jnp.sqrt(diag2[:-1] * sup2)
    return t_diag, t_off


# ------------------------------------------------------------------------------ counts


def _per_class(rate: ArrayLike) -> Array:
    """A scalar or ``[class +1, class -1]`` rate as a float64 pair."""
    return jnp.broadcast_to(jnp.asarray(rate, _F64), (2,))


def _frac(num: Array, den: Array) -> Array:
    # a conditional probability; 0 when the conditioning event is impossible (its count is 0)
    return jnp.clip(jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0), 0.0, 1.0)


@in_float64
def cell_probabilities(p: ArrayLike, phi: ArrayLike, psi: ArrayLike) -> Array:
    r"""Probabilities of (correct kept, correct pruned, wrong kept, wrong pruned) for one sample.

    The class ``y`` is uniform and the rates may depend on it (``[class +1, class -1]``), so

    .. math::
        P(\text{correct, kept}) = \tfrac12 \sum_y (1 - p_y)\phi_y,\quad
        P(\text{wrong, kept}) = \tfrac12 \sum_y p_y \psi_y,

    and likewise with ``1 - phi_y``, ``1 - psi_y`` for the pruned cells. Shape ``(4,)``.
    """
    p, phi, psi = _per_class(p), _per_class(phi), _per_class(psi)
    return 0.5 * jnp.stack(
        [
            jnp.sum((1 - p) * phi),
            jnp.sum((1 - p) * (1 - phi)),
            jnp.sum(p * psi),
            jnp.sum(p * (1 - psi)),
        ]
    )


@in_float64
def sample_counts(
    key: Array, n: ArrayLike, p: ArrayLike, phi: ArrayLike, psi: ArrayLike
) -> feedback.Counts:
    """Multinomial counts of ``n`` synthesized samples over the four cells, as ``feedback.Counts``.

    Sequential binomials (the chain rule of the multinomial; each drawn exactly by
    :func:`_binomial`): ``n_wrong ~ Bin(n, mean_y p_y)``, then the kept ones among
    the wrong ``~ Bin(n_wrong, sum_y p_y psi_y / sum_y p_y)`` and, independently, among the
    correct ``~ Bin(n - n_wrong, sum_y (1-p_y) phi_y / sum_y (1-p_y))``. Float64 counts (exact
    integers up to 2^53); ``n`` is traced.
    """
    p2, phi2, psi2 = _per_class(p), _per_class(phi), _per_class(psi)
    n = jnp.asarray(n, _F64)
    q_wrong = jnp.clip(jnp.mean(p2), 0.0, 1.0)
    q_keep = jnp.stack(
        [_frac(jnp.sum(p2 * psi2), jnp.sum(p2)), _frac(jnp.sum((1 - p2) * phi2), jnp.sum(1 - p2))]
    )

    # two steps of one (2,)-vector binomial in a scan, so that the sampler's loops compile
    # once. Step 0: (n_wrong, -); step 1: the kept counts among the wrong and the correct.
    def step(n_wrong, inp):
        k, first = inp
        trials = jnp.where(first, jnp.stack([n, 0.0]), jnp.stack([n_wrong, n - n_wrong]))
        prob = jnp.where(first, jnp.stack([q_wrong, 0.0]), q_keep)
        draw = _binomial(k, trials, prob)
        return jnp.where(first, draw[0], n_wrong), draw

    n_wrong, draws = jax.lax.scan(
        step, jnp.zeros((), _F64), (jax.random.split(key, 2), jnp.array([True, False]))
    )
    return feedback.Counts(
        n_correct=n - n_wrong, n_wrong=n_wrong, kept_correct=draws[1, 1], kept_wrong=draws[1, 0]
    )


# ----------------------------------------------------------------------------- fitting


def _group_sums(key: Array, k: Array, s: Array, mean: Array, sigma: Array) -> Array:
    """Group sums ``v_g = k_g s_g m + sigma S_g``, ``S_g ~ N(0, k_g I)``; rows g, shape (G, d)."""
    z = jax.random.normal(key, (k.shape[0], mean.shape[0]), _F64)
    return (k * s)[:, None] * mean[None, :] + sigma * jnp.sqrt(k)[:, None] * z


def _haar_frame(key: Array, d: int) -> tuple[Array, Array]:
    """``(H^T e_1, H^T e_2)`` for a Haar-orthogonal ``H``: Gram-Schmidt of two Gaussians.

    For ``d = 1`` the second vector does not exist and is returned as 0 (as ``f`` in the naive
    path).
    """
    g = jax.random.normal(key, (2, d), _F64)
    a = g[0] / jnp.linalg.norm(g[0])
    if d == 1:
        return a, jnp.zeros((1,), _F64)
    c = g[1] - jnp.dot(g[1], a) * a
    return a, c / jnp.linalg.norm(c)


def _fit_tridiagonal(key, k_syn, params: GMMParams, n_total, d: int) -> tuple[Array, Array, Array]:
    r"""Synthesized rows only: the fit in the Haar-rotated basis where the Wishart is ``T``.

    Solves ``(sigma^2 T/N + lam I + V D V^T / N) w' = V 1 / N`` with ``V = [v_+, v_-]`` the
    rotated group sums and ``D = diag(1/k_g)`` (0 for empty groups) by
    ``w' = Y (I + D C / N)^{-1} 1 / N``, ``Y = M^{-1} V``, ``C = V^T Y`` (push-through identity;
    ``M = sigma^2 T/N + lam I`` is tridiagonal SPD). Returns ``(w . e, w . f, ||w||)``
    (``e = mu/||mu||``; ``f`` the unit vector of the shifted law's orthogonal mean part).
    """
    k_frame, k_tri, k_sums = jax.random.split(key, 3)
    a, c = _haar_frame(k_frame, d)
    snr, beta, gamma = (
        params.snr.astype(_F64),
        params.beta.astype(_F64),
        params.gamma.astype(_F64),
    )
    sigma, lam = params.sigma.astype(_F64), params.lam.astype(_F64)
    m_syn = beta * snr * a + gamma * c  # H^T (beta mu + gamma f)
    df = jnp.sum(jnp.maximum(k_syn - 1.0, 0.0))
    t_diag, t_off = laguerre_tridiagonal(k_tri, df, d)
    v = _group_sums(k_sums, k_syn, jnp.array([1.0, -1.0]), m_syn, sigma)  # (2, d)

    scale = sigma**2 / n_total
    zero = jnp.zeros((1,), _F64)
    y = jax.lax.linalg.tridiagonal_solve(
        jnp.concatenate([zero, scale * t_off]),
        scale * t_diag + lam,
        jnp.concatenate([scale * t_off, zero]),
        v.T,
    )  # (d, 2) = M^{-1} V
    cmat = v @ y  # V^T M^{-1} V
    dinv = jnp.where(k_syn > 0, 1.0 / jnp.where(k_syn > 0, k_syn, 1.0), 0.0)
    coef = jnp.linalg.solve(
        jnp.eye(2, dtype=_F64) + (dinv / n_total)[:, None] * cmat,
        jnp.full((2,), 1.0, _F64) / n_total,
    )
    w = y @ coef
    return jnp.dot(w, a), jnp.dot(w, c), jnp.linalg.norm(w)


def _fit_bartlett(key, k_syn, params: GMMParams, n_total, spec: SimSpec) -> tuple[Array, Array]:
    """Any eligible model: dense ``G``, ``b`` from Bartlett Wisharts, then Cholesky.

    ``G = sigma^2 W_syn + sum_syn v v^T/k + mix (W_real + v_r v_r^T / k_r)`` and
    ``b = v_+ + v_- + mix v_r`` in the naive path's coordinates (``mu = snr e_1``,
    ``f = e_2``). Returns ``(w . mu, ||w||)``.
    """
    d = spec.d
    k_chi2, k_syn_w, k_syn_v, k_real_w, k_real_v = jax.random.split(key, 5)
    snr, beta, gamma = (
        params.snr.astype(_F64),
        params.beta.astype(_F64),
        params.gamma.astype(_F64),
    )
    sigma, lam = params.sigma.astype(_F64), params.lam.astype(_F64)
    e1 = jnp.zeros((d,), _F64).at[0].set(1.0)
    e2 = jnp.zeros((d,), _F64).at[1].set(1.0) if d > 1 else jnp.zeros((d,), _F64)
    mu = snr * e1

    def outer_sum(v, k):
        # sum_g v_g v_g^T / k_g over non-empty groups (an empty group has v_g = 0)
        inv = jnp.where(k > 0, 1.0 / jnp.where(k > 0, k, 1.0), 0.0)
        return (v * inv[:, None]).T @ v

    df_syn = jnp.sum(jnp.maximum(k_syn - 1.0, 0.0))
    dofs = [_bartlett_dofs(df_syn, d)]
    if spec.n_real_max:
        k_real = jnp.reshape(params.n_real.astype(_F64), (1,))
        df_real = jnp.maximum(k_real[0] - 1.0, 0.0)
        dofs.append(_bartlett_dofs(df_real, d))
    chi2 = _chi2(k_chi2, jnp.concatenate(dofs))  # both Wishart diagonals in one loop

    r_syn = _bartlett_assemble(k_syn_w, chi2[:d], df_syn, d)
    v = _group_sums(k_syn_v, k_syn, jnp.array([1.0, -1.0]), beta * mu + gamma * e2, sigma)
    gram = sigma**2 * (r_syn.T @ r_syn) + outer_sum(v, k_syn)
    rhs = jnp.sum(v, axis=0)
    if spec.n_real_max:
        # real rows: u = y x = mu + z', always correct, noise 1; weighted by mix_real
        mix = params.mix_real.astype(_F64)
        v_r = _group_sums(k_real_v, k_real, jnp.ones((1,), _F64), mu, jnp.ones((), _F64))
        r_real = _bartlett_assemble(k_real_w, chi2[d:], df_real, d)
        gram = gram + mix * (r_real.T @ r_real + outer_sum(v_r, k_real))
        rhs = rhs + mix * v_r[0]
    a = gram / n_total + lam * jnp.eye(d, dtype=_F64)
    w = cho_solve(cho_factor(a), rhs / n_total)
    return snr * w[0], jnp.linalg.norm(w)


def _accuracy(w_mu: Array, w_norm: Array) -> Array:
    # Phi(w.mu/||w||); w = 0 (nothing kept) predicts one class: 1/2, as _exact_acc
    return jnp.where(w_norm > 0, norm.cdf(w_mu / jnp.where(w_norm > 0, w_norm, 1.0)), 0.5)


@in_float64
@partial(jax.jit, static_argnames=("spec", "method"))
def fast_simulate(key: Array, params: GMMParams, spec: SimSpec, method: str = "auto") -> SimResult:
    r"""One round of synthesize -> noisy-oracle select -> ridge, sampled exactly in O(1) in n.

    Same arguments and outputs as :func:`gmmcollapse.gmm.simulate._simulate` for an
    :func:`eligible` model (fields of shape ``(1,)``, float64), equal to it in distribution:

    * ``acc = Phi(w . mu / ||w||)`` for ``w = (G/N + lam I)^{-1} b/N``,
      ``N = n + mix_real n_real``; 1/2 when nothing is kept (``w = 0``);
    * ``acc_test ~ Binomial(n_test, acc) / n_test`` (exact: given ``w`` each fresh test point is
      classified correctly with probability ``acc``, independently); NaN if ``n_test = 0``;
    * ``gen_acc = 1 - mean_y p_y``;
    * ``p``, ``phi``, ``psi``, ``p_star``, ``keep_fraction`` measured from the sampled counts by
      :func:`gmmcollapse.feedback.rates` (NaN where undefined, as the naive path).

    Counts, Wishart draws and the solve are float64 whatever ``spec.dtype`` is. Every parameter
    (``n`` included) is traced: a new value never recompiles; vmap over keys and parameters.
    A point with a finite ``tau`` (a margin test, which looks at x) is outside the model and
    returns NaN in every field; check :func:`eligible` on concrete values first.

    Args:
        key: typed PRNG key.
        params: one parameter point (rates scalar or ``[class +1, class -1]``).
        spec: static structure; must satisfy ``eligible(spec)`` (``ValueError`` at trace time).
        method: ``"tridiagonal"`` (O(d); synthesized rows only, ``spec.n_real_max == 0``),
            ``"bartlett"`` (O(d^3), any eligible model) or ``"auto"`` (the former when it
            applies).

    Example:
        >>> import jax
        >>> from gmmcollapse.gmm import SimSpec, make_params
        >>> spec = SimSpec(n_max=2**24, d=256)
        >>> params = make_params(10**7, 2.0, p=0.3, phi=1.0, psi=0.5)
        >>> res = fast_simulate(jax.random.key(0), params, spec)
        >>> round(float(res.acc[0]), 2)
        0.98
    """
    TRACE_COUNT["fast_simulate"] += 1  # runs at trace time only
    if not eligible(spec):
        raise ValueError(
            "fast_simulate needs generator='flip', rounds=1 and learner='ridge', got "
            f"generator={spec.generator!r}, rounds={spec.rounds}, learner={spec.learner!r}"
        )
    check_choice("method", method, METHODS)
    if method == "auto":
        method = "bartlett" if spec.n_real_max else "tridiagonal"
    if method == "tridiagonal" and spec.n_real_max:
        raise ValueError("method 'tridiagonal' needs n_real_max = 0 (no real rows to mix in)")

    k_counts, k_fit, k_test = jax.random.split(key, 3)
    cnt = sample_counts(k_counts, params.n, params.p, params.phi, params.psi)
    rates = feedback.rates(cnt)
    k_syn = jnp.stack([cnt.kept_correct, cnt.kept_wrong])
    # N counts all samples, pruned ones included, with the naive path's formula
    n_total = params.n.astype(_F64) + params.mix_real.astype(_F64) * params.n_real.astype(_F64)
    if method == "tridiagonal":
        w_e, _, w_norm = _fit_tridiagonal(k_fit, k_syn, params, n_total, spec.d)
        w_mu = params.snr.astype(_F64) * w_e
    else:
        w_mu, w_norm = _fit_bartlett(k_fit, k_syn, params, n_total, spec)
    acc = _accuracy(w_mu, w_norm)

    acc_test = jnp.asarray(jnp.nan, _F64)
    if spec.n_test:
        # given w, each fresh test point is classified correctly w.p. acc, independently:
        # the count is Binomial(n_test, acc), drawn as a sum of n_test Bernoullis (n_test is
        # static; cost O(n_test), not the naive path's O(n_test d))
        hits = jax.random.uniform(k_test, (spec.n_test,), _F64) < acc
        acc_test = jnp.mean(hits, dtype=_F64)

    out = SimResult(
        acc=acc,
        acc_test=acc_test,
        gen_acc=1.0 - jnp.mean(_per_class(params.p)),
        p=rates.p,
        phi=rates.phi,
        psi=rates.psi,
        p_star=rates.p_star,
        keep_fraction=rates.keep_fraction,
    )
    # the margin test is not modelled: make misuse visible instead of silently wrong
    margin_test = jnp.any(jnp.asarray(params.tau) > -jnp.inf)
    return jax.tree.map(
        lambda v: jnp.where(margin_test, jnp.nan, jnp.asarray(v, _F64)).reshape(1), out
    )
