r"""Exact theory for a *linear* verifier (and a linear or flip generator) in the Gaussian mixture.

Model (Feng et al., arXiv 2406.07515, section 3): ``y`` uniform in {-1, +1},
``x | y ~ N(y mu, I_d)``, ``m = snr = ||mu||``, ``e = mu / m`` and ``f`` a fixed unit vector
orthogonal to ``e``. Angles are measured from ``e`` towards ``f``::

    w_gen = cos(theta_gen) e + sin(theta_gen) f,    w_ver = cos(theta_ver) e + sin(theta_ver) f.

Generators:

* *linear*: ``y~ = sign(w_gen . x)``;
* *flip*: ``y~ = y`` with probability ``1 - p`` and ``-y`` with probability ``p``, independently
  of ``x`` (the generator of the phi-psi theory, :mod:`gmmcollapse.theory.basic`).

Verifier: keep a sample iff ``y~ (w_ver . x) >= tau``. This margin rule is the package's
documented choice: the paper (Feng et al., arXiv 2406.07515) parameterises its linear
verifiers by the angle ``theta_prune`` but does not state the exact rule. ``tau = 0`` means "the
verifier's linear classifier agrees with the label"; ``tau = -inf`` keeps everything,
``tau = +inf`` nothing.

Why a separate theory: the phi-psi model assumes the keep decision is independent of ``x``
given whether the label is correct. A linear verifier keeps samples by where ``x`` lies, so
the kept second moment ``E[x x^T 1_kept]`` is not isotropic and the kept first moment gets a
component along ``f``. The infinite-data learner then differs from
:func:`gmmcollapse.theory.basic.infinite_data_accuracy` evaluated at the measured keep rates:
it can tilt away from ``mu`` (accuracy strictly between the two values ``Phi(+-m)``) and its
breakdown point is not ``p* = phi / (phi + psi)`` in general.

Reduction to two dimensions. By class symmetry (``x -> -x`` swaps the classes, flips ``y~``
for both generators and leaves ``y~ (w_ver . x)`` unchanged) it suffices to condition on
``y = +1``; then ``x = m e + Z`` with ``Z ~ N(0, I_d)``, and everything the generator and the
verifier look at lives in the plane ``span(e, f)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtr
from jax.typing import ArrayLike

from gmmcollapse._validate import EXTENDED, NONNEG, REAL, UNIT
from gmmcollapse.theory.basic import f64 as _f
from gmmcollapse.theory.basic import in_float64, theory_function
from gmmcollapse.theory.bvn import _bvn

__all__ = [
    "KeepRates",
    "flip_linear_infinite_data_accuracy",
    "flip_linear_keep_rates",
    "linear_infinite_data_accuracy",
    "linear_keep_rates",
]

# Half-plane offsets are clipped to +-_FAR: Phi(-50) underflows to 0 in float64, so a
# constraint {u . Z > -50} is "everything" and {u . Z > 50} is "nothing" to the last bit. This
# also makes tau = +-inf work without special cases.
_FAR = 50.0
# Floor for s = |sin(angle between the two half-plane normals)|. Only reached when the normals
# are (anti)parallel to within 1e-12 rad; there the s-dependent terms cancel or vanish
# (module notes in _wedge_moments), and the floor only keeps 0/0 out of values and gradients.
_S_FLOOR = 1e-12


def _npdf(x: Array) -> Array:
    return jnp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


class KeepRates(NamedTuple):
    """Error rate of a generator and keep rates of a verifier (a pytree).

    Attributes:
        p: generator error rate ``P(y~ != y)``.
        phi: keep rate of correctly labelled samples ``P(kept | y~ = y)``.
        psi: keep rate of wrongly labelled samples ``P(kept | y~ != y)``.
    """

    p: Array
    phi: Array
    psi: Array

    @property
    @in_float64
    def p_star(self) -> Array:
        r"""The phi-psi breakdown point :math:`p^* = \phi / (\phi + \psi)` (NaN if both are 0).

        It is the paper's measurable proxy; for the linear verifier it does *not* equal the
        exact breakdown of :func:`flip_linear_infinite_data_accuracy` (module docstring).
        """
        total = self.phi + self.psi
        safe = jnp.where(total > 0, total, 1.0)
        return jnp.where(total > 0, self.phi / safe, jnp.nan)


#: the signal strength and the linear verifier (angle, margin) of every function here
VERIFIER = {"snr": NONNEG, "theta_ver": REAL, "tau": EXTENDED}
#: the learner's ridge strength (0: least squares) and the noisy oracle on top of the margin
LEARNER = {"lam": NONNEG, "phi": UNIT, "psi": UNIT}


def _safe_ratio(num: Array, den: Array) -> Array:
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, num / safe, jnp.nan)


@theory_function(theta_gen=REAL, **VERIFIER)
def linear_keep_rates(
    snr: ArrayLike, theta_gen: ArrayLike, theta_ver: ArrayLike, tau: ArrayLike
) -> KeepRates:
    r"""Exact error and keep rates of a linear generator checked by a linear verifier.

    Condition on ``y = +1`` (the other class is the mirror image). With ``G = w_gen . x`` and
    ``V = w_ver . x``,

    .. math::
        G = m\cos\theta_g + Z_g, \quad V = m\cos\theta_v + Z_v, \quad
        \operatorname{corr}(Z_g, Z_v) = \rho = \cos(\theta_g - \theta_v),

    and, with :math:`\Phi_2` the bivariate normal CDF (:func:`bivariate_normal_cdf`),

    .. math::
        p &= P(G < 0) = \Phi(-m\cos\theta_g), \\
        \phi &= \frac{P(G > 0,\ V \ge \tau)}{1 - p}
              = \frac{\Phi_2(m\cos\theta_g,\ m\cos\theta_v - \tau;\ \rho)}{\Phi(m\cos\theta_g)},\\
        \psi &= \frac{P(G < 0,\ V \le -\tau)}{p}
              = \frac{\Phi_2(-m\cos\theta_g,\ -\tau - m\cos\theta_v;\ \rho)}{\Phi(-m\cos\theta_g)}.

    Special cases: ``theta_ver = theta_gen`` and ``tau <= 0`` keep everything
    (``y~ V = |G| >= 0 >= tau``), so ``phi = psi = 1``; ``tau = -inf`` likewise.

    Limits: for finite ``snr`` the error rate lies strictly in (0, 1), but ``Phi(-m cos)``
    underflows to 0 once ``m |cos(theta_gen)| > ~38``. Where the denominator of ``phi``
    (``1 - p``) or of ``psi`` (``p``) is 0 in float64 the rate is conditional on an event of
    probability zero and NaN is returned. The bivariate CDF is accurate in absolute terms
    (~1e-15) rather than relative ones, so ``psi`` loses digits as ``p`` gets tiny: measured
    errors ~3e-14 at ``m cos(theta_gen) = 5``, ~3e-13 at 8, ~1e-11 at 12.

    Args:
        snr: ``m = ||mu||`` >= 0.
        theta_gen, theta_ver: angles (radians, any finite real) of ``w_gen`` and ``w_ver``
            from ``mu`` towards ``f``.
        tau: verifier margin, any real or ``+-inf``.

    Returns:
        :class:`KeepRates` ``(p, phi, psi)`` broadcast to a common shape.

    Example:
        >>> r = linear_keep_rates(1.0, 0.0, 0.0, 0.0)
        >>> round(float(r.p), 6), float(r.phi), float(r.psi)
        (0.158655, 1.0, 1.0)
    """
    return _linear_keep_rates(_f(snr), _f(theta_gen), _f(theta_ver), _f(tau))


# The compute cores are jitted so eager calls compile once per shape (inlined under an outer
# jit/vmap/grad); validation stays outside, where the values are concrete.
@jax.jit
def _linear_keep_rates(m, tg, tv, tau) -> KeepRates:
    m, tg, tv, tau = jnp.broadcast_arrays(m, tg, tv, tau)
    a_g = m * jnp.cos(tg)  # E[G | y = +1]
    a_v = m * jnp.cos(tv)  # E[V | y = +1]
    rho = jnp.cos(tg - tv)
    margins = ndtr(jnp.stack([-a_g, a_g], axis=-1))
    p = margins[..., 0]
    right = margins[..., 1]  # 1 - p, computed without cancellation
    # P(G > 0, V >= tau) = P(-Z_g < a_g, -Z_v <= a_v - tau); (-Z_g, -Z_v) has correlation rho.
    # P(G < 0, V <= -tau) = P(Z_g < -a_g, Z_v <= -tau - a_v). Both in one stacked call.
    kept = _bvn(
        jnp.stack([a_g, -a_g], axis=-1),
        jnp.stack([a_v - tau, -tau - a_v], axis=-1),
        jnp.stack([rho, rho], axis=-1),
    )
    kept_right, kept_wrong = kept[..., 0], kept[..., 1]
    # a joint probability over its marginal: at most 1, but rounding can give 1 + 1 ulp
    unit = lambda x: jnp.clip(x, 0.0, 1.0)  # NaN stays NaN
    return KeepRates(p, unit(_safe_ratio(kept_right, right)), unit(_safe_ratio(kept_wrong, p)))


@theory_function(p=UNIT, **VERIFIER)
def flip_linear_keep_rates(
    snr: ArrayLike, p: ArrayLike, theta_ver: ArrayLike, tau: ArrayLike
) -> KeepRates:
    r"""Keep rates of the linear verifier on the flip generator (labels wrong w.p. ``p``).

    The flip is independent of ``x``, so with ``V = w_ver . x = m cos(theta_ver) + Z_v`` given
    ``y = +1``:

    .. math::
        \phi = P(V \ge \tau) = \Phi(m\cos\theta_v - \tau), \qquad
        \psi = P(-V \ge \tau) = \Phi(-\tau - m\cos\theta_v).

    Both are independent of ``p``, which is passed through (broadcast) into the result.

    Args:
        snr: ``m = ||mu||`` >= 0.
        p: generator error rate in [0, 1].
        theta_ver: verifier angle (radians, finite) from ``mu`` towards ``f``.
        tau: verifier margin, any real or ``+-inf``.

    Example:
        >>> r = flip_linear_keep_rates(1.0, 0.2, 0.0, 0.0)
        >>> round(float(r.phi), 6), round(float(r.psi), 6)
        (0.841345, 0.158655)
    """
    return _flip_keep_rates(_f(snr), _f(p), _f(theta_ver), _f(tau))


@jax.jit
def _flip_keep_rates(m, p, tv, tau) -> KeepRates:
    m, p, tv, tau = jnp.broadcast_arrays(m, p, tv, tau)
    a_v = m * jnp.cos(tv)
    return KeepRates(p, ndtr(a_v - tau), ndtr(-tau - a_v))


class _Moments(NamedTuple):
    """Gaussian moments over a region R in the (e, f) plane; components spelled out."""

    prob: Array  # P(R)
    m_e: Array  # E[Z_e 1_R]
    m_f: Array
    s_ee: Array  # E[Z_e Z_e 1_R]
    s_ef: Array
    s_ff: Array


def _wedge_scalars(c1: Array, c2: Array, rho: Array, s: Array):
    """The scalar pieces of the wedge moments (see :func:`_wedge_moments`).

    ``c1``, ``c2`` are the (clipped) offsets, ``rho = u1 . u2`` and ``s`` the floored
    ``sqrt(1 - rho^2)``. Returns ``(P(R), q1, q2, r1, r2)`` with
    ``q_i = phi(c_i) Phi(-t_i)`` (``= E[delta(U_i - c_i) 1{U_j > c_j}]``) and
    ``r_i = phi(c_i) phi(t_i)``, ``t1 = (c2 - rho c1)/s``, ``t2 = (c1 - rho c2)/s``.
    """
    prob = _bvn(-c1, -c2, rho)
    t1 = (c2 - rho * c1) / s
    t2 = (c1 - rho * c2) / s
    # One stacked ndtr / pdf call each (smaller XLA graph, faster compiles).
    pdf = _npdf(jnp.stack([c1, c2, t1, t2], axis=-1))
    cdf = ndtr(jnp.stack([-t1, -t2], axis=-1))
    g1, g2 = pdf[..., 0], pdf[..., 1]
    return prob, g1 * cdf[..., 0], g2 * cdf[..., 1], g1 * pdf[..., 2], g2 * pdf[..., 3]


def _wedge_moments(alpha1: Array, c1: Array, alpha2: Array, c2: Array) -> _Moments:
    r"""Moments of ``Z ~ N(0, I_2)`` over the wedge ``R = {u1 . Z > c1, u2 . Z > c2}``.

    ``u_i = (cos alpha_i, sin alpha_i)``. Write ``U_i = u_i . Z``, ``rho = u1 . u2``,
    ``s = sqrt(1 - rho^2)``, ``t1 = (c2 - rho c1)/s``, ``t2 = (c1 - rho c2)/s``. Gaussian
    integration by parts (Stein: ``E[Z g(Z)] = E[grad g(Z)]``) with
    ``grad 1_R = u1 delta(U1 - c1) 1{U2 > c2} + u2 delta(U2 - c2) 1{U1 > c1}`` gives

    .. math::
        P(R) &= \Phi_2(-c_1, -c_2; \rho), \\
        E[Z 1_R] &= u_1 \varphi(c_1)\Phi(-t_1) + u_2 \varphi(c_2)\Phi(-t_2), \\
        E[Z Z^\top 1_R] &= P(R)\,I + u_1 M_1^\top + u_2 M_2^\top, \quad
        M_1 = E[Z \delta(U_1 - c_1) 1\{U_2 > c_2\}]
            = \varphi(c_1)\big[c_1 \Phi(-t_1) u_1 + \varphi(t_1) n_1\big],

    with ``n1 = (u2 - rho u1)/s`` (``u1`` turned by 90 degrees towards ``u2``), since given
    ``U1 = c1`` we have ``Z = c1 u1 + W n1``, ``W ~ N(0, 1)`` and ``U2 > c2 <=> W > t1``;
    ``M2`` likewise with 1 <-> 2 (``n2 = (u1 - rho u2)/s``). The antisymmetric parts of the
    two outer products cancel because ``phi(c1) phi(t1) = phi(c2) phi(t2)``; the result is
    symmetrised explicitly.

    Degenerate wedges (``s -> 0``, identical or opposite half-planes): ``s`` is floored at
    1e-12 and ``n_i`` are built from the angles (not by dividing by ``s``), with
    ``n_i = 0`` when ``sin(alpha2 - alpha1) = 0``. Then ``t1 = -t2`` and the first-moment
    weights become ``Phi(-t1) + Phi(t1) = 1``, the limits ``E[Z 1{U1 > max(c1, c2)}]`` and
    ``E[Z 1{c1 < U1 < -c2}]`` come out right, including the 0/0 case ``c1 = c2`` which gets
    ``Phi(0) = 1/2`` from each term. A half-plane alone is a wedge whose second normal is
    perpendicular with offset ``-_FAR``.
    """
    c1 = jnp.clip(c1, -_FAR, _FAR)
    c2 = jnp.clip(c2, -_FAR, _FAR)
    delta = alpha2 - alpha1
    rho = jnp.cos(delta)
    sin_d = jnp.sin(delta)
    s = jnp.maximum(jnp.abs(sin_d), _S_FLOOR)
    turn = jnp.sign(sin_d)
    u1e, u1f = jnp.cos(alpha1), jnp.sin(alpha1)
    u2e, u2f = jnp.cos(alpha2), jnp.sin(alpha2)
    # n1 = (u2 - rho u1)/s = turn * R90 u1 and n2 = (u1 - rho u2)/s = -turn * R90 u2,
    # R90 (a, b) = (-b, a): exact in 2D and free of the 0/0 at s = 0.
    n1e, n1f = -turn * u1f, turn * u1e
    n2e, n2f = turn * u2f, -turn * u2e

    prob, q1, q2, r1, r2 = _wedge_scalars(c1, c2, rho, s)

    m_e = u1e * q1 + u2e * q2
    m_f = u1f * q1 + u2f * q2
    # T = u1 M1^T + u2 M2^T with M_i = c_i q_i u_i + r_i n_i
    t_ee = c1 * q1 * u1e * u1e + r1 * u1e * n1e + c2 * q2 * u2e * u2e + r2 * u2e * n2e
    t_ff = c1 * q1 * u1f * u1f + r1 * u1f * n1f + c2 * q2 * u2f * u2f + r2 * u2f * n2f
    t_ef = c1 * q1 * u1e * u1f + r1 * u1e * n1f + c2 * q2 * u2e * u2f + r2 * u2e * n2f
    t_fe = c1 * q1 * u1f * u1e + r1 * u1f * n1e + c2 * q2 * u2f * u2e + r2 * u2f * n2e
    return _Moments(prob, m_e, m_f, prob + t_ee, 0.5 * (t_ef + t_fe), prob + t_ff)


class _KeptMoments(NamedTuple):
    """Population moments of the kept generated samples in the (e, f) plane (per sample drawn)."""

    kept: Array  # E[1_kept], the keep fraction
    a_ee: Array  # E[x x^T 1_kept] components
    a_ef: Array
    a_ff: Array
    b_e: Array  # E[x y~ 1_kept] components
    b_f: Array


def _kept_moments(m: Array, pieces: tuple[Array, Array, _Moments]) -> _KeptMoments:
    r"""Sum kept pieces ``(label, weight, wedge moments of Z)`` into the ridge moments.

    The pieces are stacked on a trailing axis (evaluating one wedge routine on the stack
    instead of one per piece halves the XLA compile time). With ``x = (m, 0) + Z`` in the
    (e, f) plane, for each piece ``E[x 1_R] = P(R) mu + E[Z 1_R]`` and
    ``E[x x^T 1_R] = P(R) mu mu^T + mu E[Z 1_R]^T + E[Z 1_R] mu^T + E[Z Z^T 1_R]``;
    ``A = sum weight E[x x^T 1_R]`` and ``b = sum label weight E[x 1_R]``.
    """
    label, weight, mo = pieces
    m = m[..., None]

    def total(v):
        return jnp.sum(weight * v, axis=-1)

    return _KeptMoments(
        kept=total(mo.prob),
        a_ee=total(mo.prob * m * m + 2.0 * m * mo.m_e + mo.s_ee),
        a_ef=total(m * mo.m_f + mo.s_ef),
        a_ff=total(mo.s_ff),
        b_e=total(label * (mo.prob * m + mo.m_e)),
        b_f=total(label * mo.m_f),
    )


def _ridge_accuracy(m: Array, lam: Array, mo: _KeptMoments) -> Array:
    r"""``Phi(m w_e / ||w||)`` for ``w = (A + lam I)^{-1} b``.

    Only the direction of ``w`` matters, so the system is rescaled to O(1) before solving:
    divide ``A`` and ``b`` by the kept mass ``P`` and the matrix by ``1 + lam/P``, i.e. solve
    with ``frac A/P + (1 - frac) I``, ``frac = P/(P + lam)``, and use the adjugate (a positive
    multiple of the inverse). This keeps far-out thresholds (kept mass 1e-100, say) from
    underflowing. Nothing kept, or ``b = 0``: ``w = 0`` and the accuracy is 1/2 (the
    convention of :func:`gmmcollapse.theory.basic.infinite_data_accuracy`).
    """
    some = mo.kept > 0
    kept_safe = jnp.where(some, mo.kept, 1.0)
    den = mo.kept + lam
    frac = jnp.where(den > 0, mo.kept / jnp.where(den > 0, den, 1.0), 0.0)
    a_ee = frac * mo.a_ee / kept_safe + (1.0 - frac)
    a_ef = frac * mo.a_ef / kept_safe
    a_ff = frac * mo.a_ff / kept_safe + (1.0 - frac)
    b_e = mo.b_e / kept_safe
    b_f = mo.b_f / kept_safe
    # adj(A) b = det(A) A^{-1} b; det > 0 for a positive-definite A.
    w_e = a_ff * b_e - a_ef * b_f
    w_f = a_ee * b_f - a_ef * b_e
    norm2 = w_e * w_e + w_f * w_f
    ok = some & (norm2 > 0)
    cos_w = jnp.where(ok, w_e / jnp.sqrt(jnp.where(ok, norm2, 1.0)), 0.0)
    return ndtr(m * cos_w)


def _stack(*pieces: Array) -> Array:
    return jnp.stack(pieces, axis=-1)


def _linear_pieces(m, tg, tv, tau, phi=1.0, psi=1.0):
    """Kept pieces of the linear generator, given y = +1: labels +1 and -1 on a trailing axis.

    ``phi``/``psi`` are the independent noisy-oracle keep rates applied on top of the margin
    test (1, 1 for a pure linear verifier)."""
    a_g = m * jnp.cos(tg)
    a_v = m * jnp.cos(tv)
    one = jnp.ones_like(m)
    wedges = _wedge_moments(
        _stack(tg, tg + math.pi),  # {G > 0} = {w_gen.Z > -a_g};  {G < 0} = {-w_gen.Z > a_g}
        _stack(-a_g, a_g),
        _stack(tv, tv + math.pi),  # {V >= tau};  {V <= -tau} = {-w_ver.Z >= tau + a_v}
        _stack(tau - a_v, tau + a_v),
    )
    return _stack(one, -one), _stack(phi * one, psi * one), wedges


def _flip_pieces(m, p, tv, tau, phi=1.0, psi=1.0):
    """Kept pieces of the flip generator, given y = +1 (half-planes; weights 1 - p and p)."""
    a_v = m * jnp.cos(tv)
    one = jnp.ones_like(m)
    far = jnp.full_like(m, -_FAR)  # a perpendicular constraint that removes nothing
    wedges = _wedge_moments(
        _stack(tv, tv + math.pi),
        _stack(tau - a_v, tau + a_v),
        _stack(tv + 0.5 * math.pi, tv + 1.5 * math.pi),
        _stack(far, far),
    )
    return _stack(one, -one), _stack((1.0 - p) * phi, p * psi), wedges


@theory_function(theta_gen=REAL, **VERIFIER, **LEARNER)
def linear_infinite_data_accuracy(
    snr: ArrayLike,
    theta_gen: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike = 0.0,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
) -> Array:
    r"""Exact accuracy of ridge trained on infinitely many linear-generator samples, pruned.

    Population limit of ``w = (X^T Q X / N + lam I)^{-1} X^T Q y~ / N`` (``N`` counts every
    generated sample, pruned ones included; ``lam`` is *not* scaled with ``N``; the convention
    of El Firdoussi et al., arXiv 2410.08942):

    .. math::
        w = \big(E[x x^\top 1_{kept}] + \lambda I\big)^{-1} E[x\,\tilde y\,1_{kept}], \qquad
        \mathrm{acc} = \Phi(w \cdot \mu / \|w\|).

    Outside ``span(e, f)``, ``x`` is N(0, 1) noise independent of the label and of the keep
    decision, so ``E[x y~ 1]`` has no component there and ``w`` lies in the plane: a 2x2
    problem. Given ``y = +1`` (the other class contributes identically), the kept region is
    two pieces, each a wedge of ``Z = x - m e``:

    * label ``+1``: ``{G > 0, V >= tau} = {w_gen . Z > -m cos(theta_gen),
      w_ver . Z >= tau - m cos(theta_ver)}``;
    * label ``-1``: ``{G < 0, V <= -tau} = {-w_gen . Z > m cos(theta_gen),
      -w_ver . Z >= tau + m cos(theta_ver)}``;

    whose Gaussian moments are closed forms in ``Phi``, ``phi`` and :math:`\Phi_2`
    (:func:`_wedge_moments`). The result generally differs from
    ``infinite_data_accuracy(snr, *linear_keep_rates(...))``: selection depends on ``x``.

    Args:
        snr: ``m = ||mu||`` >= 0.
        theta_gen, theta_ver: generator and verifier angles (radians, finite).
        tau: verifier margin, any real or ``+-inf`` (``-inf`` keeps all, ``+inf`` nothing).
        lam: ridge strength >= 0 (0 = least squares).
        phi, psi: keep rates of an independent noisy oracle applied together with the margin
            test (correct / wrong labels); 1, 1 (default) for a pure linear verifier, 1, 0 for
            the oracle on the linear generator's labels (``tau = -inf`` then).

    Returns:
        The signed accuracy in [0, 1]; 1/2 when nothing is kept.

    Example:
        >>> # keep everything; the generator is aligned with mu, so the learner is Bayes
        >>> round(float(linear_infinite_data_accuracy(1.0, 0.0, 0.7, -jnp.inf)), 6)
        0.841345
    """
    return _linear_accuracy(
        _f(snr), _f(theta_gen), _f(theta_ver), _f(tau), _f(lam), _f(phi), _f(psi)
    )


@jax.jit
def _linear_accuracy(m, tg, tv, tau, lam, phi, psi) -> Array:
    m, tg, tv, tau, lam, phi, psi = jnp.broadcast_arrays(m, tg, tv, tau, lam, phi, psi)
    return _ridge_accuracy(m, lam, _kept_moments(m, _linear_pieces(m, tg, tv, tau, phi, psi)))


@theory_function(p=UNIT, **VERIFIER, **LEARNER)
def flip_linear_infinite_data_accuracy(
    snr: ArrayLike,
    p: ArrayLike,
    theta_ver: ArrayLike,
    tau: ArrayLike,
    lam: ArrayLike = 0.0,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
) -> Array:
    r"""Exact infinite-data ridge accuracy for the flip generator pruned by a linear verifier.

    Same learner and convention as :func:`linear_infinite_data_accuracy`. Given ``y = +1``,
    with ``Z = x - m e`` the kept pieces are half-planes:

    * label ``+1``, weight ``1 - p``: ``{w_ver . Z >= tau - m cos(theta_ver)}``;
    * label ``-1``, weight ``p``: ``{-w_ver . Z >= tau + m cos(theta_ver)}``.

    So ``b = E[x y~ 1_kept]`` gets a component along ``f`` whenever ``sin(theta_ver) != 0``
    and ``tau > -inf`` (kept samples have ``y~ Z_ver`` biased upwards), and the learner tilts
    towards ``w_ver``. Even for ``theta_ver = 0`` the breakdown differs from the phi-psi
    ``p* = phi/(phi + psi)``: there ``w`` is along ``mu`` with sign of
    ``(1 - p) E[x_e 1{x_e >= tau}] - p E[x_e 1{x_e <= -tau}]`` (``x_e ~ N(m, 1)``), which
    weights kept samples by ``x_e`` rather than counting them. ``tau = -inf`` (keep all)
    recovers ``Phi(sign(1 - 2p) m)``.

    Args:
        snr: ``m = ||mu||`` >= 0.
        p: generator error rate in [0, 1].
        theta_ver: verifier angle (radians, finite).
        tau: verifier margin, any real or ``+-inf``.
        lam: ridge strength >= 0.
        phi, psi: keep rates of an independent noisy oracle applied together with the margin
            test (default 1, 1: a pure linear verifier).

    Returns:
        The signed accuracy in [0, 1]; 1/2 when nothing is kept.

    Example:
        >>> round(float(flip_linear_infinite_data_accuracy(1.0, 0.3, 0.0, -jnp.inf)), 6)
        0.841345
    """
    return _flip_accuracy(_f(snr), _f(p), _f(theta_ver), _f(tau), _f(lam), _f(phi), _f(psi))


@jax.jit
def _flip_accuracy(m, p, tv, tau, lam, phi, psi) -> Array:
    m, p, tv, tau, lam, phi, psi = jnp.broadcast_arrays(m, p, tv, tau, lam, phi, psi)
    return _ridge_accuracy(m, lam, _kept_moments(m, _flip_pieces(m, p, tv, tau, phi, psi)))
