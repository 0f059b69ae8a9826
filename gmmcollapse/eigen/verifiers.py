"""Verifiers for eigenvalue predictions, as scores for the shared selection kernel.

Each function maps candidate predictions of shape ``(n, k, m)`` (n matrices, k candidates,
m eigenvalues) to scores of shape ``(n, k)`` (higher = better) that
:mod:`gmmcollapse.feedback` selects on, e.g. ``feedback.prune(scores, -tol)``.

* :func:`oracle_scores`: minus the relative L1 error against the true eigenvalues (needs the
  ground truth; ``prune(scores, -tau)`` keeps exactly the candidates correct within ``tau``).
* :func:`invariant_scores`: needs no ground truth. For a symmetric A the eigenvalues satisfy
  ``sum(lambda) = trace(A)`` and ``sum(lambda^2) = ||A||_F^2``; the score is minus the larger of
  the two relative violations. A real, imperfect verifier: wrong answers can satisfy both
  identities, and rounding to 3 significant digits perturbs correct ones.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from gmmcollapse.eigen.data import relative_l1_error

__all__ = ["invariant_scores", "invariant_violations", "oracle_scores"]


def _nan_to_worst(s: Array) -> Array:
    # invalid decodes (NaN) must never be selected by a threshold or an argmax
    return jnp.where(jnp.isnan(s), -jnp.inf, s)


def oracle_scores(pred: Array, true: Array) -> Array:
    """``-relative_l1_error(pred, true)``; ``pred`` (n, k, m), ``true`` (n, m) -> (n, k)."""
    return _nan_to_worst(-relative_l1_error(pred, true[:, None, :]))


def invariant_violations(matrices: Array, pred: Array) -> tuple[Array, Array]:
    """Relative violations of the trace and Frobenius identities, each of shape (n, k).

    ``|sum(lambda) - tr A| / ||A||_F`` and ``|sum(lambda^2) - ||A||_F^2| / ||A||_F^2`` (both
    scaled by the matrix's size so one tolerance fits all matrices).
    """
    tr = jnp.trace(matrices, axis1=-2, axis2=-1)[:, None]
    fro2 = jnp.sum(matrices**2, axis=(-2, -1))[:, None]
    fro = jnp.sqrt(jnp.where(fro2 > 0, fro2, 1.0))
    v_trace = jnp.abs(jnp.sum(pred, axis=-1) - tr) / fro
    v_frob = jnp.abs(jnp.sum(pred**2, axis=-1) - fro2) / jnp.where(fro2 > 0, fro2, 1.0)
    return v_trace, v_frob


def invariant_scores(matrices: Array, pred: Array) -> Array:
    """Minus the larger relative violation of the two identities: (n, k); 0 is perfect."""
    v_trace, v_frob = invariant_violations(matrices, pred)
    return _nan_to_worst(-jnp.maximum(v_trace, v_frob))
