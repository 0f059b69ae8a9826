r"""Estimating the breakdown point ``p* = phi / (phi + psi)`` from a labelled sample.

The paper proposes ``p*`` as a measurable proxy (Feng et al., *Beyond Model Collapse*, 2024;
PAPER.md 1.1). Run the verifier on generated examples whose correctness is known, estimate the
keep rates on correct examples (``phi``) and on wrong ones (``psi``), and predict that selection
helps if the generator's error rate is below ``p*``. This module gives the point estimate and a
confidence interval.

Interval (a documented choice; the paper gives none):

1. Wilson score intervals for ``phi`` (binomial on the ``n_correct`` correct examples) and for
   ``psi`` (on the ``n_wrong`` wrong ones), each at level ``1 - a/2`` with ``a = 1 - confidence``
   (Bonferroni), so that both hold together with probability at least ``confidence``.
2. ``p* = phi / (phi + psi)`` increases in ``phi`` and decreases in ``psi``, so on the rectangle
   ``[phi_lo, phi_hi] x [psi_lo, psi_hi]`` its range is
   ``[phi_lo / (phi_lo + psi_hi), phi_hi / (phi_hi + psi_lo)]``. This is the reported interval.

It covers ``p*`` whenever both rate intervals cover their rates, so its coverage is at least
their joint coverage. Caveats: the Wilson interval is approximate, and its coverage oscillates
around the nominal level in ``n`` and in the true rate (it dips below it near 0 or 1 at small
``n``). The bound therefore holds up to the Wilson error, not exactly. On the other side, the
Bonferroni split and the projection make the interval conservative. Given the counts, the two
rate estimates use disjoint examples and are independent, so the joint coverage is close to
``(1 - a/2)^2 >= 1 - a``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtri
from jax.typing import ArrayLike

from gmmcollapse._validate import check_range, is_concrete

__all__ = ["BreakdownEstimate", "estimate_breakdown_point", "wilson_interval"]


class BreakdownEstimate(NamedTuple):
    """Estimate of the breakdown point and of the keep rates behind it.

    Every field is a scalar array for one sample. Under ``vmap`` each field gains the batch axes
    in front, so ``phi_interval`` has shape ``batch + (2,)``.

    Attributes:
        p_star: point estimate ``phi / (phi + psi)``. NaN when the verifier kept nothing
            (``phi = psi = 0``): ``p*`` is then undefined, but the interval is still valid.
        lower: lower confidence bound ``phi_lo / (phi_lo + psi_hi)``.
        upper: upper confidence bound ``phi_hi / (phi_hi + psi_lo)``. ``[lower, upper]`` covers
            the true ``p*`` with probability ``>= confidence``, up to the Wilson approximation.
        phi: keep rate among correct examples, ``#(correct & kept) / #correct``.
        psi: keep rate among wrong examples, ``#(~correct & kept) / #wrong``.
        phi_interval: ``[phi_lo, phi_hi]``, the Wilson interval at level ``1 - (1 - confidence)/2``.
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


def wilson_interval(successes: ArrayLike, n: ArrayLike, z: ArrayLike) -> tuple[Array, Array]:
    r"""Wilson score interval for a binomial proportion.

    .. math::
        \frac{\hat q + z^2/(2n)}{1 + z^2/n} \pm \frac{z}{1 + z^2/n}
        \sqrt{\frac{\hat q(1-\hat q)}{n} + \frac{z^2}{4n^2}}, \qquad \hat q = k/n ,

    with ``z`` the two-sided normal quantile (Wilson 1927; Brown, Cai & DasGupta, *Stat. Sci.*
    2001). The bounds are clipped to [0, 1], which only removes rounding error: exactly, the
    lower bound is 0 at ``k = 0`` and the upper bound is 1 at ``k = n``. NaN when ``n = 0``.
    Unvalidated helper; broadcasts.
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


def _check_flags(name: str, x) -> None:
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if arr.dtype == bool or arr.size == 0:
        return
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1), got values other than 0 and 1")


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
    Bonferroni-adjusted Wilson intervals of the two rates (module docstring). All entries are
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
            checked: there, no correct (or no wrong) example gives NaN in every field but the
            counts.

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
    _check_flags("correct", correct)
    _check_flags("kept", kept)
    check_range("confidence", confidence, 0.0, 1.0, lo_open=True, hi_open=True)
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

    # Bonferroni: each rate interval has miss probability (1 - confidence)/2 and is two-sided,
    # so z is the 1 - (1 - confidence)/4 normal quantile.
    a = 1.0 - jnp.asarray(confidence, jnp.float64)
    z = ndtri(1.0 - a / 4.0)
    phi_lo, phi_hi = wilson_interval(kept_correct, n_correct, z)
    psi_lo, psi_hi = wilson_interval(kept_wrong, n_wrong, z)
    # The Wilson upper bounds are > 0 for every finite n, so both denominators are positive.
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
