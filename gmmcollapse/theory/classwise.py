r"""Infinite-data limit of the linear learner when error and keep rates depend on the class.

Model (Feng et al., *Beyond Model Collapse*, 2024, section 3, before the simplification to one
``phi`` and one ``psi``; derivation in ``docs/class_specific.md``):

* data: ``y`` uniform in {-1, +1}, ``x | y ~ N(y mu, I_d)``, ``m = snr = ||mu||``;
* generator: the label of an example of true class ``y`` is wrong with probability ``p_y``,
  independently of ``x`` given ``y``;
* verifier: keeps a correct example of true class ``y`` with probability ``phi_y`` and a wrong
  one with probability ``psi_y`` (every rate is indexed by the *true* class);
* learner: ridge with an unpenalised bias, trained on infinitely many samples,

  .. math::
      \min_{w, b}\ \mathbb{E}\big[\mathbf 1_{\text{kept}}\,(\tilde y - w\cdot x - b)^2\big]
      + \lambda \|w\|^2 ,

  the population limit of ``(1/N) sum_i kept_i (y~_i - w.x_i - b)^2 + lam ||w||^2`` with ``N``
  counting pruned samples too (the convention of El Firdoussi et al., arXiv 2410.08942).
  ``bias=False`` drops ``b``.

Per class write

.. math::
    v_y = (1-p_y)\phi_y + p_y\psi_y, \qquad u_y = (1-p_y)\phi_y - p_y\psi_y, \qquad
    V = v_+ + v_- ,

so ``v_y / 2`` is the kept mass of class ``y``, ``alpha = V / 2`` the keep fraction,
``pi_y = v_y / V`` the class share among kept examples and ``k_y = u_y / v_y`` the mean of
``y * y~`` among kept examples of class ``y``. The solution is ``w = s mu`` with

.. math::
    \text{bias:}\quad s = \frac{u_+ v_- + u_- v_+}{V^2/2 + 2 v_+ v_- m^2 + \lambda V}, \qquad
    b = \frac{(u_+ - u_-) - s\,m^2 (v_+ - v_-)}{V};

.. math::
    \text{no bias:}\quad s = \frac{u_+ + u_-}{V(1 + m^2) + 2\lambda}, \qquad b = 0 .

The test accuracy of ``sign(w . x + b)`` is exactly

.. math::
    \mathrm{acc} = \tfrac12\Big[\Phi\Big(\frac{w\cdot\mu + b}{\|w\|}\Big)
                         + \Phi\Big(\frac{w\cdot\mu - b}{\|w\|}\Big)\Big],

and ``1/2`` when ``w = 0`` (the rule then predicts one class, or flips a coin when ``b = 0``).
Conventions for degenerate inputs: if nothing is kept (``V = 0``) the learner is ``w = 0,
b = 0``; if one class is never kept, the kept features carry no information about the labels
and (with a bias) ``w = 0``. Neither case raises: both give accuracy 1/2.

All functions are pure ``jax.numpy`` in float64, broadcast over their arguments and are safe
under ``jit``, ``vmap`` and ``grad`` (``bias`` is a Python bool and selects the formula; pass it
as a static argument). Concrete inputs are validated (``ValueError`` naming the parameter).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.stats import norm
from jax.typing import ArrayLike

from gmmcollapse._validate import NONNEG, UNIT
from gmmcollapse.theory.basic import f64 as _f
from gmmcollapse.theory.basic import theory_function

__all__ = [
    "ClassLimit",
    "class_breakdown_margin",
    "class_infinite_data_accuracy",
    "class_infinite_data_limit",
    "class_is_optimal",
]


#: the six class-specific rates (indexed by the true class)
CLASS_RATES = {f"{rate}_{cls}": UNIT for rate in ("p", "phi", "psi") for cls in ("pos", "neg")}
#: the population learner's inputs: signal strength, the rates and the ridge strength
CLASS_LIMIT = {"snr": NONNEG, **CLASS_RATES, "lam": NONNEG}


def _masses(p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg):
    """(u_+, u_-, v_+, v_-): twice the kept (correct - wrong) and (correct + wrong) masses."""
    kc_pos, kw_pos = (1.0 - p_pos) * phi_pos, p_pos * psi_pos
    kc_neg, kw_neg = (1.0 - p_neg) * phi_neg, p_neg * psi_neg
    return kc_pos - kw_pos, kc_neg - kw_neg, kc_pos + kw_pos, kc_neg + kw_neg


def _safe_div(num: Array, den: Array, fill: float = 0.0) -> Array:
    # Double-where: the unused branch never divides by zero, so grad stays finite.
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fill)


class ClassLimit(NamedTuple):
    """Population solution ``w = w_scale * mu``, ``b = bias`` and its test accuracy.

    Attributes:
        w_scale: ``s`` with ``w = s mu`` (``w`` is always parallel to ``mu``).
        bias: the learned intercept ``b`` (0 when ``bias=False``).
        accuracy: exact test accuracy of ``sign(w . x + b)``; 1/2 when ``w = 0``.
        bayes_gap: ``Phi(snr) - accuracy`` (>= 0); 0 iff the learner is Bayes-optimal.
        margin: :func:`class_breakdown_margin`; the sign of ``w_scale`` (for ``snr > 0``).
    """

    w_scale: Array
    bias: Array
    accuracy: Array
    bayes_gap: Array
    margin: Array


def _margin(u_pos, u_neg, v_pos, v_neg, bias: bool) -> Array:
    if not bias:
        return u_pos + u_neg
    # k_+ + k_- = u_+/v_+ + u_-/v_-, defined as 0 when a class is never kept (then w = 0).
    both = (v_pos > 0) & (v_neg > 0)
    return jnp.where(both, _safe_div(u_pos, v_pos) + _safe_div(u_neg, v_neg), 0.0)


@theory_function(**CLASS_LIMIT)
def class_infinite_data_limit(
    snr: ArrayLike,
    p_pos: ArrayLike,
    p_neg: ArrayLike,
    phi_pos: ArrayLike,
    phi_neg: ArrayLike,
    psi_pos: ArrayLike,
    psi_neg: ArrayLike,
    lam: ArrayLike = 0.0,
    bias: bool = True,
) -> ClassLimit:
    r"""Population ridge solution with class-specific rates, and its accuracy.

    Formulas in the module docstring (derivation: ``docs/class_specific.md``). The accuracy is
    evaluated as ``(1/2)[Phi(sgn(s) m + t) + Phi(sgn(s) m - t)]`` with ``t = b / (|s| m)``,
    algebraically the ``(w.mu +- b)/||w||`` form but without the cancellation of
    ``s m^2 / (|s| m)``.

    Args:
        snr: ``m = ||mu||``, >= 0.
        p_pos, p_neg: generator error rate on true class +1 / -1, in [0, 1].
        phi_pos, phi_neg: keep rate of correct examples of true class +1 / -1, in [0, 1].
        psi_pos, psi_neg: keep rate of wrong examples of true class +1 / -1, in [0, 1].
        lam: ridge strength on ``w`` (the bias is not penalised), >= 0.
        bias: fit an intercept (default) or not. Python bool.

    Returns:
        :class:`ClassLimit`, every field broadcast to the common shape.
    """
    snr, p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg, lam = jnp.broadcast_arrays(
        *map(_f, (snr, p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg, lam))
    )
    u_pos, u_neg, v_pos, v_neg = _masses(p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg)
    big_v = v_pos + v_neg
    m2 = snr * snr
    if bias:
        # alpha Cov(x, y~) = (u_+ v_- + u_- v_+)/V mu and alpha Cov(x) + lam I has eigenvalue
        # V/2 + 2 v_+ v_- m^2 / V + lam along mu; multiply both by V (no division by v_y, so
        # an empty class needs no special case: its u_y = v_y = 0 makes the numerator 0).
        s = _safe_div(
            u_pos * v_neg + u_neg * v_pos, 0.5 * big_v**2 + 2.0 * v_pos * v_neg * m2 + lam * big_v
        )
        b = _safe_div((u_pos - u_neg) - s * m2 * (v_pos - v_neg), big_v)
    else:
        s = _safe_div(u_pos + u_neg, big_v * (1.0 + m2) + 2.0 * lam)
        b = jnp.zeros_like(s)
    w_norm = jnp.abs(s) * snr
    t = _safe_div(b, w_norm)
    sgn_m = jnp.sign(s) * snr
    acc = jnp.where(w_norm > 0, 0.5 * (norm.cdf(sgn_m + t) + norm.cdf(sgn_m - t)), 0.5)
    gap = norm.cdf(snr) - acc
    margin = _margin(u_pos, u_neg, v_pos, v_neg, bias)
    return ClassLimit(s, b, acc, gap, margin)


@theory_function(**CLASS_LIMIT)
def class_infinite_data_accuracy(
    snr: ArrayLike,
    p_pos: ArrayLike,
    p_neg: ArrayLike,
    phi_pos: ArrayLike,
    phi_neg: ArrayLike,
    psi_pos: ArrayLike,
    psi_neg: ArrayLike,
    lam: ArrayLike = 0.0,
    bias: bool = True,
) -> Array:
    r"""Infinite-data test accuracy of the (ridge) linear learner under class-specific rates.

    .. math::
        \mathrm{acc} = \tfrac12\Big[\Phi\Big(\frac{w\cdot\mu + b}{\|w\|}\Big)
                     + \Phi\Big(\frac{w\cdot\mu - b}{\|w\|}\Big)\Big], \qquad w = s\mu,

    with ``s``, ``b`` from the module docstring (1/2 when ``w = 0``). With a bias the direction
    is right iff ``k_+ + k_- > 0`` and the accuracy is Bayes-optimal, ``Phi(snr)``, iff in
    addition ``b = 0``; otherwise it is strictly below. Symmetric rates (``p_pos = p_neg = p``
    and so on) give ``b = 0`` and reduce to :func:`~gmmcollapse.theory.infinite_data_accuracy`
    ``(snr, p, phi, psi)``. Arguments as in :func:`class_infinite_data_limit`.

    Example:
        >>> round(float(class_infinite_data_accuracy(1.0, 0.2, 0.2, 0.9, 0.9, 0.3, 0.3)), 6)
        0.841345
        >>> round(float(class_infinite_data_accuracy(1.0, 0.1, 0.4, 0.9, 0.6, 0.3, 0.2)), 4)
        0.7808
    """
    return class_infinite_data_limit(
        snr, p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg, lam, bias
    ).accuracy


@theory_function(**CLASS_RATES)
def class_breakdown_margin(
    p_pos: ArrayLike,
    p_neg: ArrayLike,
    phi_pos: ArrayLike,
    phi_neg: ArrayLike,
    psi_pos: ArrayLike,
    psi_neg: ArrayLike,
    bias: bool = True,
) -> Array:
    r"""Signed quantity whose sign says whether the learned direction is aligned with ``mu``.

    .. math::
        \text{bias:}\quad k_+ + k_-, \quad
        k_y = \frac{(1-p_y)\phi_y - p_y\psi_y}{(1-p_y)\phi_y + p_y\psi_y};
        \qquad
        \text{no bias:}\quad \sum_y \big[(1-p_y)\phi_y - p_y\psi_y\big].

    ``> 0``: ``w`` points along ``mu``; ``< 0``: against it; ``= 0``: ``w = 0`` (accuracy 1/2).
    It does not depend on ``snr`` or ``lam``. ``k_y`` is the mean of ``y * y~`` among kept
    examples of class ``y``; ``k_y > 0`` iff ``p_y < phi_y / (phi_y + psi_y)``. With a bias, when
    a class is never kept (``(1-p_y) phi_y + p_y psi_y = 0``) the learner has ``w = 0`` and the
    margin is defined as 0. Symmetric rates: both margins have the sign of ``p* - p`` with
    ``p* = phi / (phi + psi)``.

    Example:
        >>> round(float(class_breakdown_margin(0.2, 0.2, 0.9, 0.9, 0.3, 0.3)), 6)  # 2 * 0.66/0.78
        1.692308
    """
    rates = jnp.broadcast_arrays(*map(_f, (p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg)))
    return _margin(*_masses(*rates), bias)


@theory_function(atol=NONNEG, **CLASS_LIMIT)
def class_is_optimal(
    snr: ArrayLike,
    p_pos: ArrayLike,
    p_neg: ArrayLike,
    phi_pos: ArrayLike,
    phi_neg: ArrayLike,
    psi_pos: ArrayLike,
    psi_neg: ArrayLike,
    lam: ArrayLike = 0.0,
    bias: bool = True,
    atol: float = 1e-12,
) -> Array:
    r"""Whether the infinite-data learner reaches the Bayes accuracy ``Phi(snr)`` (boolean).

    Exactly: (``snr = 0``) or (margin ``> 0`` and ``b = 0``); without a bias ``b = 0`` always.
    ``b = 0`` is an equality between floating-point numbers, so the test is
    ``Phi(snr) - accuracy <= atol``; near the optimum the gap is quadratic in ``b``,
    ``gap ~ (m phi(m) / 2) (b / (s m))^2``, so the default ``atol = 1e-12`` accepts
    ``|b| / (s m)`` up to about ``1e-6``.
    """
    lim = class_infinite_data_limit(
        snr, p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg, lam, bias
    )
    return lim.bayes_gap <= atol
