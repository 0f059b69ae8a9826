"""Closed forms of the phi-psi model: breakdown point, keep fraction, infinite-data limit.

Conventions (Feng et al., *Beyond Model Collapse*, arXiv 2406.07515, section 3):

* data: ``y`` uniform in {-1, +1}, ``x | y ~ N(y mu, I_d)``, ``snr = ||mu||``;
* generator: the synthesized label ``y~`` is wrong with probability ``p``, independently of x;
* verifier: keeps a correct example with probability ``phi``, a wrong one with ``psi``.

All functions are pure ``jax.numpy``, broadcast over their arguments, and are safe under
``jit``, ``vmap`` and ``grad``. Concrete inputs are validated (``ValueError`` naming the
parameter and its range); where a traced input is out of its domain (NaN included) every
output is NaN, as in ``jax.scipy`` (:func:`theory_function`, :mod:`gmmcollapse._validate`);
:func:`gmmcollapse.theory.checked` turns those into errors.

Precision: every public function of the theory is wrapped in :func:`in_float64`, so it
computes in float64 and returns float64 arrays whatever the user's ``jax_enable_x64`` is, and
leaves that setting as it found it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.stats import norm
from jax.typing import ArrayLike

from gmmcollapse._validate import (
    KEEPS_SOMETHING,
    NONNEG,
    UNIT,
    Arg,
    Interval,
    Rule,
    validated,
)

__all__ = [
    "RATES",
    "bayes_accuracy",
    "breakdown_point",
    "effective_noise",
    "in_float64",
    "infinite_data_accuracy",
    "keep_fraction",
    "theory_function",
]

_F = TypeVar("_F", bound=Callable)


def in_float64(fn: _F) -> _F:
    """Decorator: run ``fn`` with 64-bit types enabled, whatever the caller's JAX setting.

    The call runs under ``jax.enable_x64(True)`` (a context manager: thread-local, undone on
    return), so ``jnp.float64`` means float64 inside it, and jitted functions it calls are
    traced, compiled and cached as float64 programs. Results are float64 arrays; the caller's
    ``jax_enable_x64`` is unchanged afterwards. With x64 on the wrapper changes nothing.
    Name, signature and docstring are ``fn``'s.

    With x64 off, eager calls and ``vmap`` always work, and gradients come back in the dtype of
    the caller's input. A caller's own ``jit`` (or ``grad``) is lowered (or transposed) after
    the call returns, outside the context: most theory functions work there, but programs
    that draw random bits or use some special functions do not compile then (the
    simulations, ``clopper_pearson_interval`` under ``jit``, ``retraining_accuracy`` under
    ``grad``). Run such code with x64 on, e.g. ``with jax.enable_x64(True): jax.jit(f)(x)``.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def theory_function(rules: tuple[Rule, ...] = (), **domains: Arg | Interval) -> Callable:
    """Decorator of every public theory function: :func:`in_float64` around
    :func:`gmmcollapse._validate.validated`.

    ``domains`` name each numeric parameter's allowed values and ``rules`` the joint
    conditions. Concrete inputs out of their domain raise ``ValueError`` (naming the
    parameter and the range) before any compute; non-broadcastable arguments raise
    ``ValueError`` naming them; traced inputs out of their domain (NaN included) make every
    output NaN at their points (booleans False, integer counts unchanged), leaving the other
    points bit for bit as the same transformation gives them on valid input.
    """

    def deco(fn: _F) -> _F:
        return in_float64(validated(rules, **domains)(fn))

    return deco


#: the phi-psi model's rates: generator error p, keep rates phi (correct) and psi (wrong)
RATES = {"p": UNIT, "phi": UNIT, "psi": UNIT}


def f64(x: ArrayLike) -> Array:
    """``x`` as a float64 array (the theory's working precision; call inside :func:`in_float64`)."""
    return jnp.asarray(x, dtype=jnp.float64)


_f = f64


@theory_function((KEEPS_SOMETHING,), phi=UNIT, psi=UNIT)
def breakdown_point(phi: ArrayLike, psi: ArrayLike) -> Array:
    r"""The breakdown point :math:`p^* = \phi / (\phi + \psi) = 1 / (1 + \psi/\phi)`.

    With infinite data, selection with keep rates (phi, psi) recovers the Bayes classifier iff
    the generator's error rate ``p < p*`` (Feng et al. 2024, Theorem 1). No verifier
    (phi = psi): ``p* = 1/2``; an oracle (psi = 0): ``p* = 1``.

    Args:
        phi: keep rate of correctly labelled examples, in [0, 1].
        psi: keep rate of wrongly labelled examples, in [0, 1]; not both zero.

    Example:
        >>> float(breakdown_point(0.9, 0.3))
        0.75
    """
    phi, psi = _f(phi), _f(psi)
    return phi / (phi + psi)


@theory_function((KEEPS_SOMETHING,), **RATES)
def keep_fraction(p: ArrayLike, phi: ArrayLike, psi: ArrayLike) -> Array:
    r"""Fraction of synthesized examples the verifier keeps: :math:`\alpha = (1-p)\phi + p\psi`.

    Example:
        >>> float(keep_fraction(0.2, 1.0, 0.5))
        0.9
    """
    p, phi, psi = _f(p), _f(phi), _f(psi)
    return (1.0 - p) * phi + p * psi


@theory_function((KEEPS_SOMETHING,), **RATES)
def effective_noise(p: ArrayLike, phi: ArrayLike, psi: ArrayLike) -> Array:
    r"""Wrong-label rate among kept examples: :math:`\varepsilon = p\psi / ((1-p)\phi + p\psi)`.

    It is below 1/2 exactly when ``p < p*``. Where nothing is kept (``p = 1, psi = 0`` or
    ``p = 0, phi = 0``) the rate is undefined and NaN is returned.

    Example:
        >>> float(effective_noise(0.5, 1.0, 0.25))
        0.2
    """
    p, phi, psi = _f(p), _f(phi), _f(psi)
    alpha = (1.0 - p) * phi + p * psi
    safe = jnp.where(alpha > 0, alpha, 1.0)
    return jnp.where(alpha > 0, p * psi / safe, jnp.nan)


@theory_function(snr=NONNEG)
def bayes_accuracy(snr: ArrayLike) -> Array:
    r"""Bayes-optimal accuracy :math:`\Phi(\|\mu\|)` of the symmetric two-Gaussian mixture.

    Example:
        >>> round(float(bayes_accuracy(1.0)), 6)
        0.841345
    """
    return norm.cdf(_f(snr))


@theory_function((KEEPS_SOMETHING,), snr=NONNEG, **RATES)
def infinite_data_accuracy(snr: ArrayLike, p: ArrayLike, phi: ArrayLike, psi: ArrayLike) -> Array:
    r"""Accuracy of the linear (ridge / least-squares) learner with infinitely many kept samples.

    .. math::
        \mathrm{acc} = \Phi\big(\operatorname{sign}((1-p)\phi - p\psi)\,\|\mu\|\big)
        = \begin{cases} \Phi(\|\mu\|) & p < p^* \\ 1/2 & p = p^* \\ 1 - \Phi(\|\mu\|) & p > p^*
        \end{cases}

    The population ridge solution on the kept data is proportional to
    ``(1 - 2 eps) mu`` with ``eps = effective_noise(p, phi, psi)``; its sign flips at p*
    (Feng et al. 2024, Theorem 1). If nothing is kept the learner outputs w = 0: accuracy 1/2.

    Example:
        >>> round(float(infinite_data_accuracy(1.0, 0.7, 1.0, 0.2)), 6)  # p* = 5/6 > 0.7
        0.841345
    """
    snr, p, phi, psi = _f(snr), _f(p), _f(phi), _f(psi)
    margin = (1.0 - p) * phi - p * psi
    # p* is rarely representable: treat a margin within rounding error of 0 as exactly p*
    # (so infinite_data_accuracy(snr, breakdown_point(phi, psi), phi, psi) == 1/2).
    tie = jnp.abs(margin) <= 4.0 * jnp.finfo(jnp.float64).eps * jnp.maximum(phi, psi)
    return norm.cdf(jnp.where(tie, 0.0, jnp.sign(margin)) * snr)
