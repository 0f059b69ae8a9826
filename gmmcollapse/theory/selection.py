r"""Exact finite-n/d ridge accuracy when selection reads x: linear verifiers, linear generators.

Model (Feng et al., arXiv 2406.07515, section 3, with verifiers and generators that read x, this
package's extension; symbols as in :mod:`gmmcollapse.theory.linear`):
``x = y mu + z``, ``mu = m e``; labels from flips (rate ``p``, independent of x) or from a linear
generator ``y~ = sign(w_gen . x)``; a sample is kept iff ``y~ (w_ver . x) >= tau`` and an
independent noisy oracle keeps it (``phi`` if the label is correct, ``psi`` if wrong);
``n_real`` clean real samples may be added. Learner, as :func:`~gmmcollapse.theory.ridge_accuracy`:

.. math::
    w = \Big(\tfrac1N X^\top Q X + \lambda I\Big)^{-1} \tfrac1N X^\top Q \tilde y,
    \qquad N = n + n_{real}\ \text{(pruned samples counted)} .

**Why it is exact.** Let ``P`` be a subspace holding ``mu``, ``w_gen`` and ``w_ver`` (the plane
``span(e, f)``, or ``span(e, f, h)`` for a generator with a direction ``h`` outside it). Multiply
each row by its label, ``u = y~ x``. The part of ``u`` outside ``P`` is ``y~ z_perp``, and
``z_perp ~ N(0, I)`` is independent of ``y``, ``x_P``, the flip and the oracle coins, hence of
``y~`` and of the keep decision; by sign symmetry so is ``y~ z_perp``. The kept rows are
therefore a low-dimensional block with i.i.d. non-Gaussian rows (moments: the kept mass
``alpha``, ``A = E[1_kept x_P x_P^T]``, ``b = E[1_kept y~ x_P]``, as in the infinite-data theory)
beside an exactly Gaussian block. Ridge is ``min (1/N) sum_kept (1 - w.u)^2 + lam ||w||^2``;
for a fixed ``w_P`` the Gaussian block is ridge with targets ``t = 1 - w_P . u_P`` independent
of its design, whose minimum concentrates on ``(1/N) sum t^2 / (1 + delta)`` with

.. math::
    \delta\Big(\frac{\pi}{1 + \delta} + \lambda\Big) = \eta, \qquad \eta = d/N,\
    \pi = \text{kept rows}/N .

What is left is a small solve and the envelope theorem for the orthogonal norm:

.. math::
    \big(A + \lambda(1 + \delta) I\big) w_P = b, \qquad
    \|w_\perp\|^2 = \frac{-\delta'(\lambda)}{(1+\delta)^2}\big(\pi - 2 b\cdot w_P
        + w_P^\top A w_P\big), \quad
    \delta' = \frac{-\delta}{\pi/(1+\delta)^2 + \lambda},

with ``A``, ``b``, ``pi`` the per-``N`` moments of all kept rows (real rows included), and the
accuracy ``Phi(m w_e / sqrt(||w_P||^2 + ||w_perp||^2))``. The derivation is written out in
``docs/theory.md`` (section 7). ``eta`` counts all ``d`` dimensions, as in
:func:`~gmmcollapse.theory.ridge_accuracy`, so that ``tau = -inf`` reproduces it exactly; the
difference from ``(d - dim P)/N`` is of order ``1/d``, inside the proportional limit.

``n = inf`` is allowed and gives the infinite-data limit (``eta = 0``, ``delta = 0``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import ndtr
from jax.typing import ArrayLike

from gmmcollapse._validate import (
    EXTENDED,
    KEEPS_SOMETHING,
    NONNEG,
    POSITIVE,
    POSITIVE_OR_INF,
    REAL,
    UNIT,
)
from gmmcollapse.theory.basic import f64 as _f
from gmmcollapse.theory.basic import theory_function
from gmmcollapse.theory.linear import (
    _FAR,
    _S_FLOOR,
    _kept_moments,
    _linear_pieces,
    _wedge_scalars,
)
from gmmcollapse.theory.ridge import _closed_form_delta

__all__ = [
    "SelectionLimit",
    "finite_breakdown_point",
    "flip_linear_ridge_accuracy",
    "flip_linear_ridge_limit",
    "linear_ridge_accuracy",
    "linear_ridge_limit",
]


class SelectionLimit(NamedTuple):
    """Proportional-regime limit of ridge on verified samples (directions in units of ``e``).

    Attributes:
        accuracy: ``Phi(w . mu / ||w||)``, signed (below 1/2 when ``w`` points away from mu);
            1/2 when nothing is kept.
        direction: unit vector of the trained ``w``: components along ``e``, ``f`` and a third
            axis that collects everything outside ``span(e, f)`` (shape ``batch + (3,)``).
        delta: the fixed point ``delta``.
        kept: ``pi``, kept rows (real ones included) per ``N``.
    """

    accuracy: Array
    direction: Array
    delta: Array
    kept: Array


# ------------------------------------------------------------------ moments in k dimensions


def _const(x: Array, ndim: int) -> Array:
    """A constant array with leading unit axes to rank ``ndim`` (no implicit rank promotion)."""
    x = jnp.asarray(x, jnp.float64)
    return x.reshape((1,) * (ndim - x.ndim) + x.shape)


class Moments(NamedTuple):
    """Kept moments per drawn sample: ``alpha = E[1_kept]``, ``A = E[1_kept x x^T]``,
    ``b = E[1_kept y~ x]`` in an orthonormal frame whose first axis is ``e`` (shapes
    ``batch``, ``batch + (k, k)``, ``batch + (k,)``)."""

    alpha: Array
    a: Array
    b: Array


def _moments_2d(mo) -> Moments:
    """The plane's kept moments (:func:`gmmcollapse.theory.linear._kept_moments`) as matrices."""
    a = jnp.stack([jnp.stack([mo.a_ee, mo.a_ef], -1), jnp.stack([mo.a_ef, mo.a_ff], -1)], axis=-2)
    return Moments(mo.kept, a, jnp.stack([mo.b_e, mo.b_f], -1))


def _halfplane_moments(m, p, tv, tau, phi, psi) -> Moments:
    r"""Kept moments of the flip generator under the margin test, in closed form.

    Given ``y = +1`` the kept pieces are half-planes of ``Z = x - m e``: label ``+1`` (weight
    ``w+ = (1 - p) phi``) on ``{v . Z >= c+}``, ``c+ = tau - m cos(tv)``, and label ``-1``
    (weight ``w- = p psi``) on ``{-v . Z >= c-}``, ``c- = tau + m cos(tv)``. For a half-plane
    ``{u . Z > c}``: ``P = Phi(-c)``, ``E[Z 1] = phi(c) u``, ``E[Z Z^T 1] = P I + c phi(c) u u^T``
    (Stein). Summed: with ``g_pm = phi(c_pm)``, ``s1 = w+ g+ - w- g-``,
    ``s2 = w+ c+ g+ + w- c- g-``,

    .. math::
        A = \alpha (I + m^2 e e^\top) + m s_1 (e v^\top + v e^\top) + s_2 v v^\top, \quad
        b = (w_+ P_+ - w_- P_-)\, m\, e + (w_+ g_+ + w_- g_-)\, v .

    The same numbers as the general wedge moments with a vacuous second constraint (tested),
    without the bivariate normal CDF: several times faster on large grids.
    """
    cv, sv = jnp.cos(tv), jnp.sin(tv)
    c_pos = jnp.clip(tau - m * cv, -_FAR, _FAR)
    c_neg = jnp.clip(tau + m * cv, -_FAR, _FAR)
    w_pos, w_neg = (1.0 - p) * phi, p * psi
    pdf = jnp.exp(-0.5 * jnp.stack([c_pos, c_neg], -1) ** 2) / jnp.sqrt(2.0 * jnp.pi)
    cdf = ndtr(-jnp.stack([c_pos, c_neg], -1))
    g_pos, g_neg = pdf[..., 0], pdf[..., 1]
    kp, kn = w_pos * cdf[..., 0], w_neg * cdf[..., 1]
    alpha = kp + kn
    s1 = w_pos * g_pos - w_neg * g_neg
    s2 = w_pos * c_pos * g_pos + w_neg * c_neg * g_neg
    lift = w_pos * g_pos + w_neg * g_neg
    a_ee = alpha * (1.0 + m * m) + 2.0 * m * s1 * cv + s2 * cv * cv
    a_ef = m * s1 * sv + s2 * cv * sv
    a_ff = alpha + s2 * sv * sv
    a = jnp.stack([jnp.stack([a_ee, a_ef], -1), jnp.stack([a_ef, a_ff], -1)], axis=-2)
    b = jnp.stack([(kp - kn) * m + lift * cv, lift * sv], -1)
    return Moments(alpha, a, b)


def _wedge_vec(u1: Array, c1: Array, u2: Array, c2: Array):
    r"""Moments of ``Z ~ N(0, I_k)`` over ``{u1 . Z > c1, u2 . Z > c2}`` for unit ``u1``, ``u2``.

    The formulas of :func:`gmmcollapse.theory.linear._wedge_moments` written with vectors
    (Stein's identity does not care about the dimension: outside ``span(u1, u2)`` the region
    is unconstrained, which adds ``P(R)`` on the diagonal):
    ``E[Z 1_R] = q1 u1 + q2 u2`` and
    ``E[Z Z^T 1_R] = P(R) I + sym(u1 M1^T + u2 M2^T)``, ``M_i = c_i q_i u_i + r_i n_i``, with
    ``n1 = (u2 - rho u1)/s`` and ``n2 = (u1 - rho u2)/s``. ``s`` is computed as the norm of
    ``u2 - rho u1`` (accurate for nearly parallel normals) and floored; for exactly parallel
    normals ``n_i = 0`` and the ``r`` terms, which then cancel in pairs, drop out.
    Returns ``(prob, first (..., k), second (..., k, k))``.
    """
    c1 = jnp.clip(c1, -_FAR, _FAR)
    c2 = jnp.clip(c2, -_FAR, _FAR)
    rho = jnp.clip(jnp.sum(u1 * u2, -1), -1.0, 1.0)
    r12 = u2 - rho[..., None] * u1
    r21 = u1 - rho[..., None] * u2
    s2 = jnp.sum(r12 * r12, -1)
    s = jnp.sqrt(jnp.maximum(s2, _S_FLOOR**2))
    prob, q1, q2, r1, r2 = _wedge_scalars(c1, c2, rho, s)
    n1 = r12 / s[..., None]
    n2 = r21 / s[..., None]
    first = q1[..., None] * u1 + q2[..., None] * u2
    m1 = (c1 * q1)[..., None] * u1 + r1[..., None] * n1
    m2 = (c2 * q2)[..., None] * u2 + r2[..., None] * n2
    t = u1[..., :, None] * m1[..., None, :] + u2[..., :, None] * m2[..., None, :]
    k = u1.shape[-1]
    eye = _const(jnp.eye(k), t.ndim)
    second = prob[..., None, None] * eye + 0.5 * (t + jnp.swapaxes(t, -1, -2))
    return prob, first, second


def _pieces_to_moments(m: Array, labels, weights, prob, first, second) -> Moments:
    """Sum wedge pieces (trailing piece axis) of ``Z`` into moments of ``x = m e + Z``."""
    k = first.shape[-1]
    e = _const(jnp.eye(k)[0], first.ndim)  # (1, ..., 1, k)
    mm = m[..., None]  # (..., 1): broadcasts over the piece axis
    mean = (prob * mm)[..., None] * e + first  # E[x 1_R], (..., pieces, k)
    outer_e = _const(jnp.outer(jnp.eye(k)[0], jnp.eye(k)[0]), second.ndim)
    me = mm[..., None, None] * (e[..., :, None] * first[..., None, :])  # m e E[Z 1_R]^T
    sec = (prob * mm * mm)[..., None, None] * outer_e + me + jnp.swapaxes(me, -1, -2) + second
    w = weights
    return Moments(
        jnp.sum(w * prob, -1),
        jnp.sum(w[..., None, None] * sec, -3),
        jnp.sum((labels * w)[..., None] * mean, -2),
    )


def linear_moments_3d(m, g, tv, tau, phi, psi) -> Moments:
    """Kept moments of the linear generator with unit direction ``g`` (``(..., 3)`` in the
    frame ``(e, f, h)``) checked by the linear verifier at angle ``tv`` in ``span(e, f)``
    and margin ``tau``, with the noisy oracle ``(phi, psi)`` on top. Given ``y = +1``
    (the other class mirrors it): label ``+1`` on ``{g.Z > -m g_e, v.Z >= tau - m v_e}``,
    label ``-1`` on ``{-g.Z > m g_e, -v.Z >= tau + m v_e}``."""
    v = jnp.stack([jnp.cos(tv), jnp.sin(tv), jnp.zeros_like(tv)], -1)
    g_e, v_e = m * g[..., 0], m * v[..., 0]
    u1 = jnp.stack([g, -g], -2)
    u2 = jnp.stack([v, -v], -2)
    c1 = jnp.stack([-g_e, g_e], -1)
    c2 = jnp.stack([tau - v_e, tau + v_e], -1)
    prob, first, second = _wedge_vec(u1, c1, u2, c2)
    one = jnp.ones_like(m)
    labels = jnp.stack([one, -one], -1)
    weights = jnp.stack([phi * one, psi * one], -1)
    return _pieces_to_moments(m, labels, weights, prob, first, second)


def _embed3(mo: Moments) -> Moments:
    """A plane's moments in the frame ``(e, f, h)``: along ``h`` x is independent N(0, 1)."""
    a = jnp.zeros(mo.a.shape[:-2] + (3, 3)).at[..., :2, :2].set(mo.a)
    a = a.at[..., 2, 2].set(mo.alpha)
    b = jnp.zeros(mo.b.shape[:-1] + (3,)).at[..., :2].set(mo.b)
    return Moments(mo.alpha, a, b)


# ------------------------------------------------------------------ the finite-n/d solve


def _spd_solve(a: Array, b: Array) -> Array:
    """Solve ``a x = b`` for small symmetric positive definite ``a`` (k = 2 or 3, batched)
    by the adjugate: elementwise arithmetic, fast for millions of tiny systems."""
    k = a.shape[-1]
    if k == 2:
        a00, a01, a11 = a[..., 0, 0], a[..., 0, 1], a[..., 1, 1]
        det = a00 * a11 - a01 * a01
        x0 = a11 * b[..., 0] - a01 * b[..., 1]
        x1 = a00 * b[..., 1] - a01 * b[..., 0]
        return jnp.stack([x0, x1], -1) / det[..., None]
    if k == 3:
        adj = jnp.stack(
            [
                jnp.cross(a[..., 1, :], a[..., 2, :]),
                jnp.cross(a[..., 2, :], a[..., 0, :]),
                jnp.cross(a[..., 0, :], a[..., 1, :]),
            ],
            -2,
        )  # rows: cofactors; adj is symmetric for symmetric a
        det = jnp.sum(a[..., 0, :] * adj[..., 0, :], -1)
        return jnp.einsum("...ij,...j->...i", adj, b) / det[..., None]
    raise ValueError(f"only 2x2 and 3x3 systems, got {k}")  # pragma: no cover


def finite_solve(
    syn: Moments, m: Array, frac_syn: Array, frac_real: Array, eta: Array, lam: Array
) -> SelectionLimit:
    r"""The proportional-regime ridge limit from the kept moments (module docstring).

    ``syn`` holds the synthesized samples' kept moments per drawn sample in a frame whose
    first axis is ``e``; ``frac_syn = n/N``, ``frac_real = n_real/N`` and ``eta = d/N``.
    Real rows add ``1``, ``m^2 e e^T + I`` and ``m e``. To stay accurate when almost nothing
    is kept, everything is computed in units of the kept fraction ``pi``: ``w~ = w_P / pi``
    solves ``(A + lam (1 + delta) I) w~ = b / pi``, the residual over ``pi`` is
    ``1 - 2 b.w~ + pi w~^T A w~`` and ``||w_perp||^2 / pi^2`` is the orthogonal norm over
    ``pi^2``; the accuracy only needs the direction.
    """
    k = syn.b.shape[-1]
    eye = _const(jnp.eye(k), syn.a.ndim)
    e = _const(jnp.eye(k)[0], syn.b.ndim)
    outer_e = _const(jnp.outer(jnp.eye(k)[0], jnp.eye(k)[0]), syn.a.ndim)
    fs, fr = frac_syn[..., None], frac_real[..., None]
    pi = frac_syn * syn.alpha + frac_real
    a = fs[..., None] * syn.a + fr[..., None] * ((m * m)[..., None, None] * outer_e + eye)
    b = fs * syn.b + fr * m[..., None] * e
    some = pi > 0
    pi_safe = jnp.where(some, pi, 1.0)
    delta = _closed_form_delta(eta, lam, pi)
    c = lam * (1.0 + delta)
    wt = _spd_solve(a + c[..., None, None] * eye, b / pi_safe[..., None])
    resid = 1.0 - 2.0 * jnp.sum(b * wt, -1) + pi * jnp.einsum("...i,...ij,...j->...", wt, a, wt)
    slope = pi / (1.0 + delta) ** 2 + lam
    # ||w_perp||^2 / pi^2 = (delta / slope) (resid / pi) / (1 + delta)^2 ; 0 when eta = 0
    perp2 = jnp.where(
        delta > 0, delta / slope * jnp.maximum(resid, 0.0) / ((1.0 + delta) ** 2 * pi_safe), 0.0
    )
    out2 = wt[..., 2] ** 2 + perp2 if k == 3 else perp2
    vec = jnp.stack([wt[..., 0], wt[..., 1], jnp.sqrt(out2)], -1)
    norm = jnp.sqrt(jnp.sum(vec * vec, -1))
    ok = some & (norm > 0)
    direction = vec / jnp.where(ok, norm, 1.0)[..., None]
    direction = jnp.where(ok[..., None], direction, 0.0)
    acc = ndtr(m * direction[..., 0])
    return SelectionLimit(jnp.where(ok, acc, 0.5), direction, delta, pi)


def _fractions(n, n_real, d):
    """``n/N``, ``n_real/N`` and ``d/N`` for ``N = n + n_real``, valid for ``n = inf``."""
    ratio = n_real / n  # 0 for n = inf
    frac_syn = 1.0 / (1.0 + ratio)
    return frac_syn, ratio * frac_syn, (d / n) * frac_syn


# ------------------------------------------------------------------ domains

#: the parameters every selection limit shares (the flip rate or the generator angle apart)
SELECTION = {
    "n": POSITIVE_OR_INF,
    "d": POSITIVE,
    "snr": NONNEG,
    "theta_ver": REAL,
    "tau": EXTENDED,
    "lam": POSITIVE,
    "phi": UNIT,
    "psi": UNIT,
    "n_real": NONNEG,
}
#: the generators' own parameter: the flip rate or the linear generator's angle
FLIP_OR_LINEAR = {"p": UNIT, "theta_gen": REAL}
_FLIP = theory_function((KEEPS_SOMETHING,), p=UNIT, **SELECTION)
_LINEAR = theory_function((KEEPS_SOMETHING,), theta_gen=REAL, **SELECTION)


# ------------------------------------------------------------------ public functions


@jax.jit
def _flip_limit(n, d, m, p, tv, tau, lam, phi, psi, n_real) -> SelectionLimit:
    n, d, m, p, tv, tau, lam, phi, psi, n_real = jnp.broadcast_arrays(
        n, d, m, p, tv, tau, lam, phi, psi, n_real
    )
    syn = _halfplane_moments(m, p, tv, tau, phi, psi)
    return finite_solve(syn, m, *_fractions(n, n_real, d), lam)


@jax.jit
def _linear_limit(n, d, m, tg, tv, tau, lam, phi, psi, n_real) -> SelectionLimit:
    n, d, m, tg, tv, tau, lam, phi, psi, n_real = jnp.broadcast_arrays(
        n, d, m, tg, tv, tau, lam, phi, psi, n_real
    )
    syn = _moments_2d(_kept_moments(m, _linear_pieces(m, tg, tv, tau, phi, psi)))
    return finite_solve(syn, m, *_fractions(n, n_real, d), lam)


@_FLIP
def flip_linear_ridge_limit(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    p: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    n_real: ArrayLike = 0.0,
) -> SelectionLimit:
    """The full limit behind :func:`flip_linear_ridge_accuracy` (same arguments)."""
    return _flip_limit(*map(_f, (n, d, snr, p, theta_ver, tau, lam, phi, psi, n_real)))


@_FLIP
def flip_linear_ridge_accuracy(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    p: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    n_real: ArrayLike = 0.0,
) -> Array:
    r"""Exact finite-n/d ridge accuracy for i.i.d. label flips pruned by a linear verifier.

    ``n`` synthesized samples (labels wrong with probability ``p``, independently of x; pruned
    samples counted in ``N``), kept iff ``y~ (w_ver . x) >= tau`` *and* an independent noisy
    oracle keeps them (``phi`` correct, ``psi`` wrong); ``n_real`` clean real samples are added
    (``N = n + n_real``). Ridge as :func:`~gmmcollapse.theory.ridge_accuracy`. The kept
    moments are the half-plane moments of
    :func:`~gmmcollapse.theory.flip_linear_infinite_data_accuracy`; the finite-size solve is
    the module docstring's (derivation in ``docs/theory.md``, section 7).

    Reductions (tested): ``tau = -inf`` gives :func:`~gmmcollapse.theory.mixed_ridge_accuracy`
    (with ``n_real``) and :func:`~gmmcollapse.theory.ridge_accuracy` (without);
    ``n = inf`` gives :func:`~gmmcollapse.theory.flip_linear_infinite_data_accuracy`.

    Args:
        n: synthesized samples (> 0; ``inf`` for the infinite-data limit).
        d: dimension (> 0). snr: ``||mu||`` (>= 0). p: flip rate in [0, 1].
        theta_ver: verifier angle to mu (radians). tau: margin, real or ``+-inf``.
        lam: ridge strength (> 0). phi, psi: noisy-oracle keep rates (not both 0).
        n_real: clean real samples mixed in (>= 0).

    Returns:
        The signed accuracy; NaN where a traced input is out of its domain.

    Example:
        >>> round(float(flip_linear_ridge_accuracy(1000, 200, 1.0, 0.3, 0.26, 0.0, 0.1)), 4)
        0.8063
    """
    return flip_linear_ridge_limit(n, d, snr, p, theta_ver, tau, lam, phi, psi, n_real).accuracy


@_LINEAR
def linear_ridge_limit(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    theta_gen: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    n_real: ArrayLike = 0.0,
) -> SelectionLimit:
    """The full limit behind :func:`linear_ridge_accuracy` (same arguments)."""
    return _linear_limit(*map(_f, (n, d, snr, theta_gen, theta_ver, tau, lam, phi, psi, n_real)))


@_LINEAR
def linear_ridge_accuracy(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    theta_gen: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    n_real: ArrayLike = 0.0,
) -> Array:
    r"""Exact finite-n/d ridge accuracy for a linear generator checked by a linear verifier.

    ``y~ = sign(w_gen . x)`` with ``w_gen`` at angle ``theta_gen`` to mu; otherwise as
    :func:`flip_linear_ridge_accuracy`. The kept moments are the wedge moments of
    :func:`~gmmcollapse.theory.linear_infinite_data_accuracy`; ``n = inf`` gives that limit.
    ``tau = -inf, phi = psi = 1`` is "no verifier": ridge on the generator's labels.

    Example:
        >>> round(float(linear_ridge_accuracy(1000, 200, 1.0, 1.047, 0.26, 0.0, 0.1)), 4)
        0.7778
    """
    lim = linear_ridge_limit(n, d, snr, theta_gen, theta_ver, tau, lam, phi, psi, n_real)
    return lim.accuracy


# ------------------------------------------------------------------ finite-n/d breakdown


#: grid steps of the scan for the first crossing in finite_breakdown_point
BREAKDOWN_GRID = 512


def _bisect_p(fun, lo, hi, iters=52):
    def body(_, state):
        lo, hi = state
        mid = 0.5 * (lo + hi)
        below = fun(mid) <= 0.5
        return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

    return lax.fori_loop(0, iters, body, (lo, hi))


@jax.jit
def _breakdown(n, d, m, tv, tau, lam, phi, psi, n_real):
    n, d, m, tv, tau, lam, phi, psi, n_real = jnp.broadcast_arrays(
        n, d, m, tv, tau, lam, phi, psi, n_real
    )

    def acc(p):
        return _flip_limit(n, d, m, p, tv, tau, lam, phi, psi, n_real).accuracy

    # the accuracy need not be monotone in p (a lopsided oracle, psi > phi, can dip below 1/2
    # and come back): scan a grid for the first point at or below 1/2, then bisect the step
    # before it; memory stays O(batch)
    steps = BREAKDOWN_GRID

    def scan(k, first):
        below = acc(jnp.full_like(n, k / steps)) <= 0.5
        return jnp.where((first > steps) & below, k, first)

    first = lax.fori_loop(0, steps + 1, scan, jnp.full(n.shape, steps + 1, jnp.int32))
    hi = first.astype(jnp.float64) / steps
    lo, hi = _bisect_p(acc, jnp.maximum(hi - 1.0 / steps, 0.0), hi)
    root = jnp.where(first == 0, 0.0, jnp.where(first > steps, 1.0, 0.5 * (lo + hi)))
    return jnp.where(jnp.isnan(acc(jnp.zeros_like(n))), jnp.nan, root)


@theory_function((KEEPS_SOMETHING,), **SELECTION)
def finite_breakdown_point(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    n_real: ArrayLike = 0.0,
) -> Array:
    r"""The flip rate at which the finite-n/d accuracy crosses 1/2 (the learner turns away
    from mu): the breakdown point of a linear verifier at finite ``n/d``.

    ``p*_n = inf{p in [0, 1] : flip_linear_ridge_accuracy(n, ..., p, ...) <= 1/2}``: the
    first crossing. The accuracy need not be monotone in ``p`` (with a lopsided noisy oracle,
    ``psi > phi``, it can dip below 1/2 and come back), so the first grid point at or below
    1/2 on a scan of ``p`` in steps of 1/512 brackets the crossing, and 52 bisection steps
    locate it to rounding; a dip narrower than 1/512 in ``p`` would be missed. 1 when the
    accuracy stays above 1/2 on the whole grid (e.g. an oracle with real data mixed in). With
    ``tau = -inf`` it is the phi-psi ``p* = phi/(phi + psi)`` at every ``n/d`` (mixing in real
    data moves it up); with a margin test it depends on ``n/d``, ``lam`` and the verifier's
    angle, which the phi-psi formula, built on keep rates alone, cannot see. ``n = inf``
    gives the infinite-data breakdown of
    :func:`~gmmcollapse.theory.flip_linear_infinite_data_accuracy`.

    Example:
        >>> round(float(finite_breakdown_point(float("inf"), 200, 1.0, 0.0, -float("inf"), 0.1,
        ...                                    1.0, 0.5)), 6)
        0.666667
    """
    return _breakdown(*map(_f, (n, d, snr, theta_ver, tau, lam, phi, psi, n_real)))
