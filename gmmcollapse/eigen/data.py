"""Random symmetric matrices and their eigenvalues, generated on the fly from a key.

Conventions of Charton, *Linear Algebra with Transformers* (2022; the setting of Feng et
al.'s eigenvalue experiment, arXiv 2406.07515): entries
i.i.d. uniform in [-A, A], symmetrised by copying the upper triangle (so every entry, diagonal
included, is uniform in [-A, A]); eigenvalues sorted in decreasing order. No files needed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from gmmcollapse._validate import check_int, check_range

__all__ = [
    "TOLERANCES",
    "EigenBatch",
    "accuracy",
    "eigenvalues",
    "relative_l1_error",
    "sample_matrices",
]

#: the tolerances Charton reports (relative L1 error), as fractions
TOLERANCES = (0.05, 0.02, 0.01, 0.005)


class EigenBatch(NamedTuple):
    """A batch of problems: ``matrices`` (batch, k, k) and sorted ``eigenvalues`` (batch, k)."""

    matrices: Array
    eigenvalues: Array


def sample_matrices(key: Array, batch: int, k: int = 5, scale: float = 10.0) -> EigenBatch:
    """``batch`` symmetric ``k x k`` matrices with entries uniform in [-scale, scale].

    The upper triangle (diagonal included) is drawn and mirrored; eigenvalues come from
    ``jnp.linalg.eigvalsh`` in float64 and are sorted decreasing.
    """
    check_int("batch", batch, 1)
    check_int("k", k, 1)
    check_range("scale", scale, 0.0, lo_open=True)
    u = jax.random.uniform(key, (batch, k, k), jnp.float64, -scale, scale)
    upper = jnp.triu(u)
    m = upper + jnp.swapaxes(jnp.triu(u, 1), -1, -2)
    return EigenBatch(m, eigenvalues(m))


def eigenvalues(matrices: Array) -> Array:
    """Eigenvalues of symmetric matrices (..., k, k), sorted in decreasing order."""
    return jnp.flip(jnp.linalg.eigvalsh(matrices), axis=-1)


def relative_l1_error(pred: Array, true: Array) -> Array:
    """``sum |pred - true| / sum |true|`` over the last axis (NaN predictions give NaN)."""
    num = jnp.sum(jnp.abs(pred - true), axis=-1)
    den = jnp.sum(jnp.abs(true), axis=-1)
    return num / jnp.where(den > 0, den, 1.0)


def accuracy(
    pred: Array, true: Array, valid: Array | None = None, tolerances=TOLERANCES
) -> dict[str, Array]:
    """Fraction of predictions within each relative-L1 tolerance; invalid decodes count as wrong.

    Args:
        pred, true: (batch, k) eigenvalues; ``pred`` may contain NaN (invalid decodes).
        valid: optional (batch, k) or (batch,) bool; a row is correct only if all its numbers
            are valid.
        tolerances: fractions, e.g. ``(0.05, 0.02, 0.01, 0.005)``.

    Returns:
        ``{"0.05": acc, ...}`` keyed by the tolerance as a string.
    """
    err = relative_l1_error(pred, true)
    ok = jnp.isfinite(err)
    if valid is not None:
        v = jnp.asarray(valid)
        ok &= jnp.all(v, axis=-1) if v.ndim == err.ndim + 1 else v
    return {f"{t:g}": jnp.mean(ok & (jnp.where(ok, err, jnp.inf) <= t)) for t in tolerances}
