r"""Estimating the breakdown point ``p* = phi / (phi + psi)`` from a labelled sample.

The paper proposes ``p*`` as a measurable proxy (Feng et al., *Beyond Model Collapse*, arXiv
2406.07515, section 3). Run the verifier on generated examples whose correctness is known,
estimate the keep rates on correct examples (``phi``) and on wrong ones (``psi``), and predict
that selection helps if the generator's error rate is below ``p*``. This module gives the point
estimate and a confidence interval.

Interval (a documented choice; the paper gives none):

1. Clopper-Pearson (exact binomial) intervals for ``phi`` (binomial on the ``n_correct`` correct
   examples) and for ``psi`` (on the ``n_wrong`` wrong ones), each at level ``1 - a/2`` with
   ``a = 1 - confidence`` (Bonferroni), so that both hold together with probability at least
   ``confidence``.
2. ``p* = phi / (phi + psi)`` increases in ``phi`` and decreases in ``psi``, so on the rectangle
   ``[phi_lo, phi_hi] x [psi_lo, psi_hi]`` its range is
   ``[phi_lo / (phi_lo + psi_hi), phi_hi / (phi_hi + psi_lo)]``. This is the reported interval.

It covers ``p*`` whenever both rate intervals cover their rates. Each Clopper-Pearson interval
covers its rate with probability at least ``1 - a/2`` for every true rate and every ``n``
(it is exact, not asymptotic), so by the union bound the joint coverage, and hence the coverage
of ``p*``, is at least ``1 - a = confidence``: the interval is conservative, for every
``(phi, psi, n_correct, n_wrong)``. (Given the counts the two rate estimates use disjoint
examples and are independent, so the joint coverage is in fact at least ``(1 - a/2)^2``.) The
tests check this by exact enumeration of all outcomes on a grid that includes near-oracle
verifiers. The earlier Wilson-score version of this construction is *not* conservative: for
``phi ~ 1`` and ``psi`` just below the Wilson lower bound at one kept wrong example
(``~0.145 / n_wrong`` at 0.95) it misses ``p*`` whenever a wrong example is kept, so its coverage
is about ``exp(-0.145) ~ 0.866`` at nominal 0.95, at every ``n_wrong``: the Wilson interval
undercovers near rates 0 and 1. :func:`wilson_interval` stays available as a
separate helper, but the estimate does not use it.

The beta quantiles behind Clopper-Pearson are found by bisection on the float64 bit pattern
with ``jax.scipy.special.betainc``, so everything stays traceable (``jit``, ``vmap``, a traced
``confidence``); the bounds are accurate to ``betainc``'s own rounding, and the bisection keeps
the side that widens the interval.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import betainc
from jax.typing import ArrayLike

from gmmcollapse._validate import COUNT, FLAG, NONNEG, OPEN_UNIT, Arg, Rule, is_concrete
from gmmcollapse.theory.basic import theory_function

__all__ = [
    "BreakdownEstimate",
    "clopper_pearson_interval",
    "estimate_breakdown_point",
    "wilson_interval",
]


class BreakdownEstimate(NamedTuple):
    """Estimate of the breakdown point and of the keep rates behind it.

    Every field is a scalar array for one sample. Under ``vmap`` each field gains the batch axes
    in front, so ``phi_interval`` has shape ``batch + (2,)``.

    Attributes:
        p_star: point estimate ``phi / (phi + psi)``. NaN when the verifier kept nothing
            (``phi = psi = 0``): ``p*`` is then undefined, but the interval is still valid.
        lower: lower confidence bound ``phi_lo / (phi_lo + psi_hi)``.
        upper: upper confidence bound ``phi_hi / (phi_hi + psi_lo)``. ``[lower, upper]`` covers
            the true ``p*`` with probability ``>= confidence`` (exactly, for every true rate and
            sample size: Clopper-Pearson + Bonferroni).
        phi: keep rate among correct examples, ``#(correct & kept) / #correct``.
        psi: keep rate among wrong examples, ``#(~correct & kept) / #wrong``.
        phi_interval: ``[phi_lo, phi_hi]``, the Clopper-Pearson interval at level
            ``1 - (1 - confidence)/2``.
        psi_interval: ``[psi_lo, psi_hi]``, the same for ``psi``.
        n_correct: number of correct examples (integer).
        n_wrong: number of wrong examples (integer).
    """

    p_star: Array
    lower: Array
    upper: Array
    phi: Array
    psi: Array
    phi_interval: Array
    psi_interval: Array
    n_correct: Array
    n_wrong: Array


def _too_many(k, n, i):
    return f"successes must be a whole number in [0, n], got {k.flat[i]:g} > n = {n.flat[i]:g}"


#: k successes in n trials: whole numbers with k <= n
TRIALS = {"successes": COUNT, "n": COUNT}
AT_MOST_N = Rule(("successes", "n"), lambda k, n: k <= n, _too_many, "successes must be at most n")


@theory_function((AT_MOST_N,), **TRIALS, z=NONNEG)
def wilson_interval(successes: ArrayLike, n: ArrayLike, z: ArrayLike) -> tuple[Array, Array]:
    r"""Wilson score interval for a binomial proportion.

    .. math::
        \frac{\hat q + z^2/(2n)}{1 + z^2/n} \pm \frac{z}{1 + z^2/n}
        \sqrt{\frac{\hat q(1-\hat q)}{n} + \frac{z^2}{4n^2}}, \qquad \hat q = k/n ,

    with ``z`` the two-sided normal quantile (Wilson 1927; Brown, Cai & DasGupta, *Stat. Sci.*
    2001). The bounds are clipped to [0, 1], which only removes rounding error: exactly, the
    lower bound is 0 at ``k = 0`` and the upper bound is 1 at ``k = n``. NaN when ``n = 0``.
    ``successes`` and ``n`` are whole numbers with ``0 <= successes <= n``, ``z >= 0``
    (``ValueError`` otherwise; NaN for traced inputs out of range); broadcasts. Approximate: its coverage can fall well below the nominal
    level near rates 0 and 1, so :func:`estimate_breakdown_point` uses
    :func:`clopper_pearson_interval` instead.
    """
    k = jnp.asarray(successes, jnp.float64)
    n = jnp.asarray(n, jnp.float64)
    z = jnp.asarray(z, jnp.float64)
    ok = n > 0
    n_safe = jnp.where(ok, n, 1.0)
    q = k / n_safe
    z2n = z * z / n_safe
    denom = 1.0 + z2n
    centre = (q + 0.5 * z2n) / denom
    # q(1-q)/n + z^2/(4 n^2), written as (q(1-q) + z2n/4)/n
    half = z / denom * jnp.sqrt((q * (1.0 - q) + 0.25 * z2n) / n_safe)
    lo = jnp.where(ok, jnp.clip(centre - half, 0.0, 1.0), jnp.nan)
    hi = jnp.where(ok, jnp.clip(centre + half, 0.0, 1.0), jnp.nan)
    return lo, hi


# Bit pattern of 1.0 in float64. Non-negative float64s are ordered like their int64 bit patterns,
# so bisecting on the integers 0 .. _ONE_BITS visits every float in [0, 1] and ends on adjacent
# floats after 62 halvings (_ONE_BITS < 2**62, and a width w <= 2**m becomes <= 2**(m-1)).
_ONE_BITS = 0x3FF0000000000000
_BISECTIONS = 62


@jax.jit  # compiled once per shape; eager calls would otherwise re-trace the loop each time
def _beta_quantile_below(q: Array, a: Array, b: Array) -> Array:
    """Largest float64 ``x`` in ``[0, 1)`` with ``I_x(a, b) < q``: the ``q`` quantile of
    ``Beta(a, b)``, rounded down. Needs ``0 < q <= 1``, ``a, b > 0``; NaN where ``q`` is NaN.
    Arguments must already have one shape."""

    def body(_, state):
        lo, hi = state
        mid = lo + (hi - lo) // 2
        below = betainc(a, b, lax.bitcast_convert_type(mid, jnp.float64)) < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo = jnp.zeros(q.shape, jnp.int64)
    hi = jnp.full(q.shape, _ONE_BITS, jnp.int64)
    lo, _ = lax.fori_loop(0, _BISECTIONS, body, (lo, hi))
    return jnp.where(jnp.isnan(q), jnp.nan, lax.bitcast_convert_type(lo, jnp.float64))


def _clopper_pearson(k: Array, n: Array, tail: Array) -> tuple[Array, Array]:
    """Clopper-Pearson bounds with miss probability ``tail`` on each side (float64 inputs of one
    shape). Both bounds come from a single lower-tail beta quantile call: the upper bound is
    ``1 - `` the ``tail`` quantile of ``Beta(n - k, k + 1)`` (symmetry), which is accurate where
    it is close to 1."""
    ok = n > 0
    has_lo = ok & (k > 0)
    has_hi = ok & (k < n)
    # Safe shape parameters (>= 1) where a bound is fixed by an edge case.
    a = jnp.stack([jnp.where(has_lo, k, 1.0), jnp.where(has_hi, n - k, 1.0)], axis=-1)
    b = jnp.stack([jnp.where(has_lo, n - k + 1.0, 1.0), jnp.where(has_hi, k + 1.0, 1.0)], axis=-1)
    t = jnp.stack([tail, tail], axis=-1)
    x = _beta_quantile_below(t, a, b)
    lo = jnp.where(has_lo, x[..., 0], 0.0)
    hi = jnp.where(has_hi, 1.0 - x[..., 1], 1.0)
    lo = jnp.where(ok, lo, jnp.nan)
    hi = jnp.where(ok, hi, jnp.nan)
    return lo, hi


@theory_function((AT_MOST_N,), **TRIALS, confidence=OPEN_UNIT)
def clopper_pearson_interval(
    successes: ArrayLike, n: ArrayLike, confidence: ArrayLike = 0.95
) -> tuple[Array, Array]:
    r"""Clopper-Pearson (exact binomial) interval for a binomial proportion.

    With ``k`` successes in ``n`` trials and ``t = (1 - confidence) / 2``, the bounds are the beta
    quantiles

    .. math::
        q_{lo} = B^{-1}(t;\, k,\, n - k + 1), \qquad q_{hi} = B^{-1}(1 - t;\, k + 1,\, n - k),

    i.e. the rates at which ``P(K >= k) = t`` and ``P(K <= k) = t`` (Clopper & Pearson,
    *Biometrika* 1934). Its coverage is at least ``confidence`` for every true rate and every
    ``n`` (it is conservative, unlike Wilson's). Edge cases: ``q_lo = 0`` at ``k = 0`` and
    ``q_hi = 1`` at ``k = n``, exactly; both bounds are NaN when ``n = 0`` (no trial, no
    estimate), as for :func:`wilson_interval`. Float64; broadcasts over all three arguments;
    works under ``jit`` and ``vmap`` with traced arguments (the quantiles are found by bisection
    with ``jax.scipy.special.betainc``, to its rounding, and rounded outwards). Not
    differentiable in a useful way (the bounds are step functions of ``confidence`` on the float
    grid).

    Args:
        successes: number of successes ``k``, a whole number in ``[0, n]``.
        n: number of trials, a whole number ``>= 0``.
        confidence: two-sided level in (0, 1).

    Returns:
        ``(lower, upper)``, each of the broadcast shape.

    Raises:
        ValueError: concrete arguments out of range (``n`` or ``successes`` negative or not
            whole, ``successes > n``, ``confidence`` outside (0, 1)). Traced arguments out of
            range give NaN bounds.

    Example:
        >>> lo, hi = clopper_pearson_interval(3, 10, 0.95)
        >>> round(float(lo), 6), round(float(hi), 6)
        (0.06674, 0.652453)
    """
    k, n, c = jnp.broadcast_arrays(
        jnp.asarray(successes, jnp.float64),
        jnp.asarray(n, jnp.float64),
        jnp.asarray(confidence, jnp.float64),
    )
    return _clopper_pearson(k, n, 0.5 * (1.0 - c))


@theory_function(correct=Arg(FLAG, core=None), kept=Arg(FLAG, core=None), confidence=OPEN_UNIT)
def estimate_breakdown_point(
    correct: ArrayLike, kept: ArrayLike, confidence: ArrayLike = 0.95
) -> BreakdownEstimate:
    r"""Estimate ``p* = phi / (phi + psi)`` and a confidence interval from verifier decisions.

    One entry per generated example. ``correct[i]``: was the generator's output right;
    ``kept[i]``: did the verifier keep it. Then

    .. math::
        \hat\phi = \frac{\#\{\text{correct, kept}\}}{\#\{\text{correct}\}}, \quad
        \hat\psi = \frac{\#\{\text{wrong, kept}\}}{\#\{\text{wrong}\}}, \quad
        \hat p^* = \frac{\hat\phi}{\hat\phi + \hat\psi},

    and the interval ``[phi_lo/(phi_lo + psi_hi), phi_hi/(phi_hi + psi_lo)]`` comes from the
    Bonferroni-adjusted Clopper-Pearson intervals of the two rates (each at level
    ``1 - (1 - confidence)/2``; module docstring). Its coverage of the true ``p*`` is at least
    ``confidence`` for every true ``(phi, psi)`` and every sample size (conservative; checked by
    exact enumeration in the tests). All entries are
    pooled: arrays of any shape count as one sample. For many samples, use ``jax.vmap`` over a
    leading axis.

    Args:
        correct: boolean array (0/1 accepted), one entry per generated example.
        kept: boolean array of the same shape.
        confidence: joint confidence level in (0, 1); may be traced.

    Returns:
        :class:`BreakdownEstimate`.

    Raises:
        ValueError: shapes differ (checked under ``jit`` too, since shapes are static); flags
            not boolean; ``confidence`` outside (0, 1); concrete inputs with no correct or no
            wrong example (then ``phi`` or ``psi`` cannot be estimated). Traced inputs are not
            raised on: a flag other than 0/1 (NaN included) or a confidence outside (0, 1)
            gives NaN in every field but the integer counts, and so does a sample with no
            correct (or no wrong) example, whose rates are undefined.

    Example:
        >>> import numpy as np
        >>> correct = np.array([1] * 10 + [0] * 5, bool)
        >>> kept = np.array([1] * 8 + [0] * 2 + [1] + [0] * 4, bool)
        >>> est = estimate_breakdown_point(correct, kept)
        >>> round(float(est.p_star), 6), int(est.n_correct), int(est.n_wrong)
        (0.8, 10, 5)
    """
    if jnp.shape(correct) != jnp.shape(kept):
        raise ValueError(
            f"correct and kept must have the same shape, got {jnp.shape(correct)} "
            f"and {jnp.shape(kept)}"
        )
    if is_concrete(correct):
        n_c = int(np.count_nonzero(np.asarray(correct)))
        n_total = int(np.size(correct))
        if n_c == 0:
            raise ValueError(
                "correct has no True entry: the keep rate of correct examples (phi) cannot be "
                "estimated"
            )
        if n_c == n_total:
            raise ValueError(
                "correct has no False entry: the keep rate of wrong examples (psi) cannot be "
                "estimated"
            )

    c = jnp.asarray(correct).astype(bool)
    k = jnp.asarray(kept).astype(bool)
    n_correct = jnp.sum(c)
    n_wrong = jnp.sum(~c)
    kept_correct = jnp.sum(c & k)
    kept_wrong = jnp.sum(~c & k)

    nan = jnp.float64(jnp.nan)
    phi = jnp.where(n_correct > 0, kept_correct / jnp.maximum(n_correct, 1), nan)
    psi = jnp.where(n_wrong > 0, kept_wrong / jnp.maximum(n_wrong, 1), nan)
    total = phi + psi
    p_star = jnp.where(total > 0, phi / jnp.where(total > 0, total, 1.0), nan)

    # Bonferroni: each rate interval has miss probability a/2 = (1 - confidence)/2 and is
    # two-sided, so each of its tails has a/4. Both rates go through one quantile call.
    a = 1.0 - jnp.asarray(confidence, jnp.float64)
    shape = jnp.shape(a) + (2,)  # (a non-scalar confidence broadcasts, as before)
    lo, hi = _clopper_pearson(
        jnp.broadcast_to(jnp.stack([kept_correct, kept_wrong]).astype(jnp.float64), shape),
        jnp.broadcast_to(jnp.stack([n_correct, n_wrong]).astype(jnp.float64), shape),
        jnp.broadcast_to(jnp.expand_dims(a / 4.0, -1), shape),
    )
    phi_lo, psi_lo = lo[..., 0], lo[..., 1]
    phi_hi, psi_hi = hi[..., 0], hi[..., 1]
    # The upper bounds are > 0 whenever n > 0 (at k = 0 it is 1 - (a/4)^(1/n)), so both
    # denominators are positive.
    lower = phi_lo / (phi_lo + psi_hi)
    upper = phi_hi / (phi_hi + psi_lo)
    return BreakdownEstimate(
        p_star=p_star,
        lower=lower,
        upper=upper,
        phi=phi,
        psi=psi,
        phi_interval=jnp.stack([phi_lo, phi_hi], axis=-1),
        psi_interval=jnp.stack([psi_lo, psi_hi], axis=-1),
        n_correct=n_correct,
        n_wrong=n_wrong,
    )
