"""The shared feedback-selection kernel: per-candidate scores -> which candidates to train on.

Every domain (the Gaussian mixture, the eigenvalue transformer, the summarizer) produces, for
``n`` inputs, ``k`` candidate outputs each, and a score per candidate (a verifier's score, the
model's log-probability, minus a distance to the ground truth, ...). Selection turns those
scores into a boolean mask of shape ``(n, k)``; when ground-truth correctness is known,
:func:`measure` reports the verifier's keep rates on correct and wrong candidates (phi, psi)
and the breakdown point ``p* = phi / (phi + psi)`` (Feng et al. 2024).

The kernel knows nothing about any domain. Each strategy is written for ONE instance
(arrays ``(n, k)``) and is pure and jit-compatible; batches and parameter grids are lifted
with ``jax.vmap`` (e.g. ``jax.vmap(prune, in_axes=(0, None))`` for one ``tau`` over a leading
batch axis). Strategy parameters (``tau``, ``phi``, ``psi``, ``r``)
are traced values, so sweeping them never recompiles.

Strategies compose through ``eligible``: a candidate that is not eligible is never selected.
E.g. "best of k among those the verifier accepts" is
``best_of_k(scores, eligible=prune(verifier_scores, tau).mask)``.

Conventions:
    * higher score = better;
    * ties are broken towards the lower candidate / input index (stable sorts);
    * an input is *kept* when any of its candidates is selected; ``choice`` is the selected
      candidate with the highest score, ``-1`` for inputs with none.

NaN policy (one rule for every strategy; a bad value never becomes a plausible selection):
    * **a NaN score is never selected**: a candidate whose score is NaN is ineligible for
      :func:`prune`, :func:`best_of_k`, :func:`top_fraction`, :func:`random_fraction` and
      :func:`from_mask` (given ``scores``), exactly as if ``eligible`` were False there;
    * flags (``correct``, ``eligible``, ``valid``, a mask) must be boolean or 0/1: a concrete
      NaN or other value raises ``ValueError`` naming the argument; under ``jit``/``vmap`` a
      bad flag makes its candidate ineligible (never selected) and makes :func:`counts` /
      :func:`measure` NaN (the measurement is undefined; NaN is never counted as correct);
    * strategy parameters (``tau`` in [-inf, inf], ``phi``, ``psi``, ``r`` in [0, 1]) are
      checked like the theory's (:mod:`gmmcollapse._validate`): a concrete value out of range
      raises ``ValueError``; a traced one gives the *empty selection* (mask False, ``choice``
      -1, ``kept`` False) at every candidate it governs: ``tau = NaN`` keeps nothing, as
      the comparison ``score >= NaN`` already implies, and a rate of 1.5 keeps nothing rather
      than everything. :func:`gmmcollapse.theory.checked` turns these into errors;
    * :func:`measure` of a sample without correct (or without wrong) candidates reports
      ``phi`` (or ``psi``) and ``p_star`` as NaN, *undefined*, and warns (``RuntimeWarning``)
      when its input is concrete. It does not raise, so that a run whose generator happens to
      be perfect keeps going; :func:`gmmcollapse.theory.estimate_breakdown_point`, which must
      build confidence intervals for both rates, raises ``ValueError`` on such concrete input.
      Under tracing both give NaN. Where both are defined they agree (same ``phi``, ``psi``,
      ``p*``; tested).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from gmmcollapse._validate import EXTENDED, FLAG, UNIT, check_broadcast, guard, is_concrete

__all__ = [
    "Rates",
    "Selection",
    "best_of_k",
    "from_mask",
    "measure",
    "noisy_oracle",
    "prune",
    "random_fraction",
    "top_fraction",
]


class Selection(NamedTuple):
    """Result of a selection strategy on one instance.

    Attributes:
        mask: ``(n, k)`` bool, the selected candidates.
        choice: ``(n,)`` int32, per input the selected candidate with the highest score
            (lowest index on ties), or -1 when none is selected.
        kept: ``(n,)`` bool, whether any candidate of the input is selected.
    """

    mask: Array
    choice: Array
    kept: Array


class Rates(NamedTuple):
    """Keep rates measured against ground truth, over all (valid) candidates.

    Attributes:
        phi: fraction of correct candidates selected (NaN if there is no correct one).
        psi: fraction of wrong candidates selected (NaN if there is no wrong one).
        p: fraction of candidates that are wrong (the generator's error rate).
        p_star: ``phi / (phi + psi)``, the breakdown point of this selector.
        effective_noise: fraction of the *selected* candidates that are wrong.
        n_selected: number of selected candidates.
        keep_fraction: ``n_selected`` over the number of valid candidates.
    """

    phi: Array
    psi: Array
    p: Array
    p_star: Array
    effective_noise: Array
    n_selected: Array
    keep_fraction: Array


def _as2d(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def _flags(name: str, x: ArrayLike) -> tuple[Array, Array | None]:
    """``x`` as a 2-d boolean array, and where it is a valid flag (``None``: everywhere).

    Concrete flags other than 0/1 (NaN included) raise ``ValueError`` naming ``name``.
    """
    x = _as2d(x)
    if x.dtype == bool:
        return x, None
    FLAG.check(name, x)
    ok = None if is_concrete(x) else FLAG.contains(x)
    return x.astype(bool), ok


def _valid_flags(name: str, x: ArrayLike, shape) -> Array:
    """A flag argument as booleans of ``shape``, False where it is not a valid flag."""
    flags, ok = _flags(name, x)
    if ok is not None:
        flags = flags & ok
    return jnp.broadcast_to(flags, shape)


def _scored(s: Array) -> Array:
    """Candidates with a score (the NaN policy: a NaN score is never selected)."""
    return ~jnp.isnan(s) if jnp.issubdtype(s.dtype, jnp.inexact) else jnp.ones(s.shape, bool)


def _eligible(scores: Array, eligible: ArrayLike | None) -> Array:
    ok = _scored(scores)
    if eligible is None:
        return ok
    return ok & _valid_flags("eligible", eligible, scores.shape)


def _params_ok(shape, against: str, **params) -> Array | None:
    """Check strategy parameters (name=(domain, value)); the traced validity broadcast to
    ``shape`` (the candidates or inputs they govern), or ``None`` when nothing is traced."""
    check_broadcast({against: tuple(shape), **{k: np.shape(v) for k, (_, v) in params.items()}})
    _, ok = guard({k: v for k, (_, v) in params.items()}, {k: d for k, (d, _) in params.items()})
    return None if ok is None else jnp.broadcast_to(ok, shape)


def _best_index(s: Array, ok: Array) -> Array:
    # first index of the largest score among ``ok`` candidates (0 when none is ok). Not a plain
    # argmax of where(ok, s, -inf): with -inf scores that ties with, and can pick, a non-ok one.
    top = jnp.max(jnp.where(ok, s, -jnp.inf), axis=1, keepdims=True)
    return jnp.argmax(ok & (s == top), axis=1)


def from_mask(mask: ArrayLike, scores: ArrayLike | None = None) -> Selection:
    """Build a :class:`Selection` from a ``(n, k)`` (or ``(n,)``) mask.

    ``choice`` is the selected candidate with the highest ``scores`` (first one if no scores).
    Candidates whose score is NaN are dropped from the mask (the NaN policy).
    """
    flags = _as2d(mask)
    mask = _valid_flags("mask", flags, flags.shape)
    if scores is None:
        s = jnp.zeros(mask.shape)
    else:
        s = _as2d(scores).astype(jnp.result_type(float))
        mask = mask & _scored(s)
    kept = jnp.any(mask, axis=1)
    choice = jnp.where(kept, _best_index(s, mask), -1).astype(jnp.int32)
    return Selection(mask, choice, kept)


def prune(scores: ArrayLike, tau: ArrayLike, eligible: ArrayLike | None = None) -> Selection:
    """Threshold pruning: select every eligible candidate with ``score >= tau``.

    ``tau = -inf`` selects everything (no verifier) but candidates scored NaN. Shapes:
    ``scores`` ``(n, k)`` or ``(n,)``; ``tau`` a scalar or anything broadcastable to ``scores``.
    """
    s = _as2d(scores)
    ok = _params_ok(s.shape, "scores", tau=(EXTENDED, tau))
    mask = (s >= jnp.asarray(tau)) & _eligible(s, eligible)
    if ok is not None:
        mask = mask & ok
    return from_mask(mask, s)


def noisy_oracle(
    key: Array | None,
    correct: ArrayLike,
    phi: ArrayLike,
    psi: ArrayLike,
    eligible: ArrayLike | None = None,
    *,
    uniforms: ArrayLike | None = None,
) -> Selection:
    """Noisy oracle: keep each correct candidate w.p. ``phi``, each wrong one w.p. ``psi``.

    Decisions are independent across candidates (one uniform draw each, from ``key``; or
    pass the draws as ``uniforms``, uniform on [0, 1) with the shape of ``correct``, and
    ``key=None``: a caller that already holds independent uniforms saves drawing them).
    ``phi`` and ``psi`` broadcast against ``correct``, so per-input (e.g. class-specific)
    rates are ``(n, 1)`` arrays. ``phi = 1, psi = 0`` is the oracle; ``phi = psi = 1`` keeps
    everything. A candidate whose ``correct`` flag is not a valid flag (a traced NaN) is never
    selected.
    """
    if (key is None) == (uniforms is None):
        raise ValueError("noisy_oracle takes exactly one of key and uniforms")
    c, c_ok = _flags("correct", correct)
    ok = _params_ok(c.shape, "correct", phi=(UNIT, phi), psi=(UNIT, psi))
    u = jax.random.uniform(key, c.shape) if uniforms is None else _as2d(uniforms)
    rate = jnp.where(c, jnp.asarray(phi), jnp.asarray(psi))
    mask = (u < rate) & _eligible(c, eligible)
    for part in (ok, c_ok):
        if part is not None:
            mask = mask & part
    return from_mask(mask)


def best_of_k(scores: ArrayLike, eligible: ArrayLike | None = None) -> Selection:
    """Per input, select the single eligible candidate with the highest score.

    Inputs with no eligible candidate are not kept; a NaN score is never the best. With the
    model's log-probability as score this is self-selection; with minus the distance to the
    truth, oracle best-of-k.
    """
    s = _as2d(scores)
    ok = _eligible(s, eligible)
    best = _best_index(s, ok)
    kept = jnp.any(ok, axis=1)
    mask = (jnp.arange(s.shape[1])[None, :] == best[:, None]) & kept[:, None]
    return Selection(mask, jnp.where(kept, best, -1).astype(jnp.int32), kept)


def _count(r: Array, n: int) -> Array:
    # floor(r n) inputs, computed so that e.g. r = 0.125, n = 8 gives exactly 1
    return jnp.floor(r * n + 1e-9).astype(jnp.int32)


def top_fraction(scores: ArrayLike, r: ArrayLike, eligible: ArrayLike | None = None) -> Selection:
    """Keep the ``floor(r n)`` inputs whose best eligible candidate scores highest.

    Each kept input contributes its best eligible candidate (so ``k = 1`` is plain top-r
    selection of inputs). Inputs without an eligible candidate rank last and are never kept.
    Ties are broken by position: of inputs with equal best scores, the earlier ones are kept.
    ``r`` is traced: any value in [0, 1] runs without recompiling.
    """
    s = _as2d(scores)
    n = s.shape[0]
    ok = _params_ok((n,), "the inputs", r=(UNIT, r))
    inner = best_of_k(scores, eligible)
    best_score = jnp.where(
        inner.kept, jnp.max(jnp.where(inner.mask, s, -jnp.inf), axis=1), -jnp.inf
    )
    # inputs without an eligible candidate go last even when a kept one's best score is -inf
    order = jnp.lexsort((-best_score, ~inner.kept))
    rank = jnp.empty((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    kept = (rank < _count(jnp.asarray(r), n)) & inner.kept
    if ok is not None:
        kept = kept & ok
    return Selection(inner.mask & kept[:, None], jnp.where(kept, inner.choice, -1), kept)


def random_fraction(
    key: Array, scores: ArrayLike, r: ArrayLike, eligible: ArrayLike | None = None
) -> Selection:
    """Keep exactly ``floor(r n)`` inputs chosen uniformly at random (without replacement).

    A kept input contributes its first eligible candidate (by convention candidate 0 is the
    greedy / top-beam output). ``scores`` is used only for its shape. Inputs with no eligible
    candidate are never kept, so fewer than ``floor(r n)`` may be kept then (a candidate
    scored NaN is not eligible).
    """
    s = _as2d(scores)
    r_ok = _params_ok(s.shape[:1], "the inputs", r=(UNIT, r))
    ok = _eligible(s, eligible)
    n = s.shape[0]
    # rank a random key per input; ineligible inputs rank last
    u = jnp.where(jnp.any(ok, axis=1), jax.random.uniform(key, (n,)), 2.0)
    rank = jnp.empty((n,), jnp.int32).at[jnp.argsort(u)].set(jnp.arange(n, dtype=jnp.int32))
    kept = (rank < _count(jnp.asarray(r), n)) & jnp.any(ok, axis=1)
    if r_ok is not None:
        kept = kept & r_ok
    first = jnp.argmax(ok, axis=1)
    mask = (jnp.arange(s.shape[1])[None, :] == first[:, None]) & kept[:, None]
    return Selection(mask, jnp.where(kept, first, -1).astype(jnp.int32), kept)


def _ratio(a: Array, b: Array) -> Array:
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), jnp.nan)


class Counts(NamedTuple):
    """Candidate counts behind :class:`Rates`; they add across chunks of candidates.

    Attributes:
        n_correct, n_wrong: valid candidates that are correct / wrong.
        kept_correct, kept_wrong: of those, the selected ones.
    """

    n_correct: Array
    n_wrong: Array
    kept_correct: Array
    kept_wrong: Array


def counts(
    selection: Selection | ArrayLike, correct: ArrayLike, valid: ArrayLike | None = None
) -> Counts:
    """Count correct / wrong candidates and how many of each were selected.

    Use :func:`rates` on the (possibly summed) counts; :func:`measure` does both at once.
    ``correct`` and ``valid`` are flags (boolean or 0/1): a concrete other value (NaN
    included) raises ``ValueError``; a traced one makes every count NaN.
    """
    flags = selection.mask if isinstance(selection, Selection) else _as2d(selection)
    mask, mask_ok = _flags("selection", flags)
    c, c_ok = _flags("correct", correct)
    c = jnp.broadcast_to(c, mask.shape)
    if valid is None:
        v, v_ok = jnp.ones(mask.shape, bool), None
    else:
        v, v_ok = _flags("valid", valid)
        v = jnp.broadcast_to(v, mask.shape)
    f = jnp.result_type(float)
    out = Counts(
        n_correct=jnp.sum(c & v, dtype=f),
        n_wrong=jnp.sum(~c & v, dtype=f),
        kept_correct=jnp.sum(mask & c & v, dtype=f),
        kept_wrong=jnp.sum(mask & ~c & v, dtype=f),
    )
    oks = [jnp.all(ok) for ok in (mask_ok, c_ok, v_ok) if ok is not None]
    if not oks:
        return out
    good = jnp.all(jnp.stack(oks))
    return Counts(*(jnp.where(good, x, jnp.nan) for x in out))


def rates(c: Counts) -> Rates:
    """Keep rates from counts: ``phi = kept_correct / n_correct`` etc.

    NaN where undefined: ``phi`` without correct candidates, ``psi`` without wrong ones
    (and then ``p_star``), ``effective_noise`` when nothing is selected, everything when no
    candidate is valid or a count is NaN (bad traced flags).
    """
    n_sel = c.kept_correct + c.kept_wrong
    phi = _ratio(c.kept_correct, c.n_correct)
    psi = _ratio(c.kept_wrong, c.n_wrong)
    return Rates(
        phi=phi,
        psi=psi,
        p=_ratio(c.n_wrong, c.n_correct + c.n_wrong),
        p_star=_ratio(phi, phi + psi),
        effective_noise=_ratio(c.kept_wrong, n_sel),
        n_selected=n_sel,
        keep_fraction=_ratio(n_sel, c.n_correct + c.n_wrong),
    )


def measure(
    selection: Selection | ArrayLike, correct: ArrayLike, valid: ArrayLike | None = None
) -> Rates:
    """Measured keep rates of a selection against ground-truth correctness.

    Counts run over candidates (all ``n k`` of them, or those with ``valid``), so for
    best-of-k, ``phi`` is the fraction of correct candidates that were picked. ``p*`` measured
    this way is the paper's proxy: selection helps when the generator's error ``p < p*``.
    Equal to ``rates(counts(selection, correct, valid))``.

    Without correct (wrong) candidates ``phi`` (``psi``) and ``p_star`` are undefined: NaN,
    with a ``RuntimeWarning`` for concrete input (the module's NaN policy says why this does
    not raise, unlike :func:`gmmcollapse.theory.estimate_breakdown_point`).

    Args:
        selection: a :class:`Selection` or a mask of shape ``(n, k)`` / ``(n,)``.
        correct: bool (or 0/1), same shape as the mask.
        valid: optional bool mask of candidates to count (e.g. padding excluded).
    """
    c = counts(selection, correct, valid)
    if is_concrete(c.n_correct):
        missing = [
            (kind, rate)
            for kind, rate, n in (("correct", "phi", c.n_correct), ("wrong", "psi", c.n_wrong))
            if float(n) == 0
        ]
        if missing:
            warnings.warn(
                f"measure: no {' and no '.join(k for k, _ in missing)} candidate, so "
                f"{' and '.join(r for _, r in missing)} and p_star are undefined (NaN)",
                RuntimeWarning,
                stacklevel=2,
            )
    return rates(c)
