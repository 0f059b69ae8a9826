r"""Iterated retraining with verification: exact per-round accuracy and its long-run limit.

Round ``r >= 1`` labels ``n`` fresh samples with the sign of round ``r - 1``'s ridge model; the
same verifier (linear margin test ``y~ (w_ver . x) >= tau`` and noisy oracle ``phi``, ``psi``)
selects, and a fresh ridge model is trained on the kept samples (``data = "replace"``). Round
0's generator is i.i.d. flips (``p``), a linear classifier (``theta_gen``) or ridge trained on
``n_real`` clean real samples (``lam_gen``), as in the simulation (``SimSpec.generator``).

**The recursion.** Data are fresh every round, so round ``r``'s samples are independent of the
previous model ``w_{r-1}``. Let ``h`` be the unit direction of ``w_{r-1}`` outside
``span(e, f)``; then ``mu``, ``w_ver`` and the generator all lie in ``span(e, f, h)`` and round
``r`` is the single-round problem of :mod:`gmmcollapse.theory.selection` in three dimensions:
its kept moments are the wedge moments of ``Z ~ N(0, I_3)`` and the finite-n/d solve is the
same. The trained model's components along ``e`` and ``f`` are ``w_e``, ``w_f``; everything else
(the part along ``h`` and the fresh orthogonal part, of norm ``||w_perp||``) is one new direction
``h'`` of norm ``sqrt(w_h^2 + ||w_perp||^2)``. By rotation invariance of the fresh data outside
``span(e, f)`` the next round depends on ``w_{r-1}`` only through the unit vector
``g = (w_e, w_f, sqrt(w_h^2 + ||w_perp||^2)) / ||w||``: the recursion ``g_{r+1} = F(g_r)``
on one unit vector, and the round's accuracy is ``Phi(m g_{r+1, e})``.

The ridge generator of round 0 trains on real data: its limit (``w . mu``, ``||w||``) is the
clean ridge limit of :func:`gmmcollapse.theory.ridge_limit` (``n_real`` samples, ``lam_gen``),
with the rest of its direction uniformly spread outside ``e``, so its overlap with ``f`` is
``O(d^{-1/2})`` and vanishes in the limit: ``g_0 = (cos, 0, sin)``.

**Accumulate** (round ``r`` trains on the kept samples of rounds ``0..r``, ``N = (r+1) n``):
with infinitely many samples per round the learner is
``w_r = (mean_j A_j + lam I)^{-1} mean_j b_j`` over the rounds' kept moments, an exact
recursion on running sums (``n = inf`` here). At finite ``n/d`` it is *not* derived: the rows of
round ``j`` are reused in rounds ``j + 1, ...``, whose generators ``w_j, w_{j+1}, ...`` were
fitted on them, so the part of those rows along the later generators' directions is no longer
independent of their labels and keep decisions: the Gaussian block of the single-round argument
fails. Finite ``n`` with ``data="accumulate"`` raises (NaN under tracing); the simulation
covers it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import ndtr
from jax.typing import ArrayLike

from gmmcollapse._validate import (
    KEEPS_SOMETHING,
    POSITIVE,
    POSITIVE_OR_INF,
    Arg,
    Interval,
    check_choice,
    is_concrete,
)
from gmmcollapse.theory.basic import f64 as _f
from gmmcollapse.theory.basic import theory_function
from gmmcollapse.theory.linear import _flip_pieces, _kept_moments
from gmmcollapse.theory.ridge import ridge_limit
from gmmcollapse.theory.selection import (
    FLIP_OR_LINEAR,
    SELECTION,
    Moments,
    _embed3,
    _moments_2d,
    finite_solve,
    linear_moments_3d,
)

__all__ = ["RetrainingLimit", "retraining_accuracy", "retraining_limit"]

GENERATORS = ("flip", "linear", "ridge")
DATA_MODES = ("replace", "accumulate")


class RetrainingLimit(NamedTuple):
    """Long-run (fixed-point) state of iterated retraining with ``data="replace"``.

    Attributes:
        accuracy: ``Phi(m g_e)`` at the fixed point.
        direction: the fixed unit vector ``g`` (components along ``e``, ``f`` and outside).
        converged: whether ``||g_{r+1} - g_r|| <= tol`` was reached.
        rounds: rounds iterated.
    """

    accuracy: Array
    direction: Array
    converged: Array
    rounds: Array


def _check_args(generator, data, p, theta_gen, n_real, lam_gen):
    check_choice("generator", generator, GENERATORS)
    check_choice("data", data, DATA_MODES)
    own = {"flip": ("p",), "linear": ("theta_gen",), "ridge": ("n_real", "lam_gen")}[generator]
    given = {"p": p, "theta_gen": theta_gen, "n_real": n_real, "lam_gen": lam_gen}
    stray = [k for k, v in given.items() if v is not None and k not in own]
    if stray:
        raise ValueError(
            f"{', '.join(stray)} do(es) not apply to generator={generator!r} "
            f"(it takes {', '.join(own)})"
        )
    if generator == "ridge" and n_real is None:
        raise ValueError("generator='ridge' needs n_real (> 0 real samples to train on)")


def _initial(generator, m, d, p, tg, n_real, lam_gen, ver):
    """Round 0's generator: (moments of its kept samples, its direction or None)."""
    tv, tau, phi, psi = ver
    if generator == "flip":
        return _embed3(_moments_2d(_kept_moments(m, _flip_pieces(m, p, tv, tau, phi, psi))))
    if generator == "linear":
        g = jnp.stack([jnp.cos(tg), jnp.sin(tg), jnp.zeros_like(tg)], -1)
    else:
        clean = ridge_limit(0.0, n_real, d, m, 0.0, 1.0, 1.0, lam_gen)
        # w . e / ||w||; the clean generator never points away from mu
        cos = jnp.where(m > 0, clean.w_mu / jnp.where(m > 0, m, 1.0) / jnp.sqrt(clean.w_norm2), 1.0)
        cos = jnp.clip(cos, -1.0, 1.0)
        g = jnp.stack([cos, jnp.zeros_like(cos), jnp.sqrt(1.0 - cos * cos)], -1)
    return linear_moments_3d(m, g, tv, tau, phi, psi)


def _round_solve(mo: Moments, m, eta, lam):
    zero = jnp.zeros_like(eta)
    return finite_solve(mo, m, jnp.ones_like(eta), zero, eta, lam)


def _broadcast(*xs):
    return jnp.broadcast_arrays(*xs)


def _per_round(rounds, generator, data, n, d, m, p, tg, n_real, lam_gen, lam, ver):
    eta = d / n
    tv, tau, phi, psi = ver
    mo0 = _initial(generator, m, d, p, tg, n_real, lam_gen, ver)
    first = _round_solve(mo0, m, eta, lam)
    if rounds == 1:
        return first.accuracy[..., None]

    if data == "replace":

        def step(g, _):
            out = _round_solve(linear_moments_3d(m, g, tv, tau, phi, psi), m, eta, lam)
            return out.direction, out.accuracy

        _, accs = lax.scan(step, first.direction, None, length=rounds - 1)
    else:

        def step(state, r):
            g, alpha, a, b = state
            mo = linear_moments_3d(m, g, tv, tau, phi, psi)
            alpha, a, b = alpha + mo.alpha, a + mo.a, b + mo.b
            k = r + 2.0  # rounds so far
            out = _round_solve(Moments(alpha / k, a / k, b / k), m, eta, lam)
            return (out.direction, alpha, a, b), out.accuracy

        init = (first.direction, mo0.alpha, mo0.a, mo0.b)
        _, accs = lax.scan(step, init, jnp.arange(rounds - 1, dtype=jnp.float64))
    return jnp.concatenate([first.accuracy[..., None], jnp.moveaxis(accs, 0, -1)], -1)


#: every retraining parameter but the round count and the loop controls
#: (the selection limit's, with round 0's generators: the ridge generator's real samples
#: are > 0, possibly infinite)
RETRAINING = {**SELECTION, **FLIP_OR_LINEAR, "n_real": POSITIVE_OR_INF, "lam_gen": POSITIVE}
_ROUNDS = Arg(Interval(1.0, whole=True), static=True)


@theory_function((KEEPS_SOMETHING,), rounds=_ROUNDS, **RETRAINING)
def retraining_accuracy(
    rounds: int,
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    *,
    generator: str = "flip",
    p: ArrayLike | None = None,
    theta_gen: ArrayLike | None = None,
    n_real: ArrayLike | None = None,
    lam_gen: ArrayLike | None = None,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    theta_ver: ArrayLike = 0.0,
    tau: ArrayLike = -math.inf,
    lam: ArrayLike = 0.1,
    data: str = "replace",
) -> Array:
    r"""Exact per-round accuracy of iterated retraining (last axis = rounds).

    Entry ``r`` is the accuracy of the model trained in round ``r`` (``SimResult.acc[r]`` of
    the simulation with ``SimSpec(generator=..., rounds=..., data=...)``): round 0 is the
    single-round problem (:func:`flip_linear_ridge_accuracy`,
    :func:`linear_ridge_accuracy`, or the same with a ridge generator), round ``r >= 1`` the
    recursion of the module docstring.

    Args:
        rounds: number of rounds R (a Python int >= 1; the output's last axis).
        n: samples synthesized per round (pruned ones included; ``inf`` for infinitely many).
        d: dimension. snr: ``||mu||``.
        generator: round 0's labeller, ``"flip"`` (takes ``p``, default 0), ``"linear"``
            (takes ``theta_gen``, default 0) or ``"ridge"`` (takes ``n_real``, required, and
            ``lam_gen``, default 0.1). A generator parameter given for another generator is
            an error, not silently ignored.
        phi, psi: noisy-oracle keep rates. theta_ver, tau: the linear margin test
            (``tau = -inf``: none). lam: the learner's ridge strength (> 0).
        data: ``"replace"`` (exact at every ``n``) or ``"accumulate"`` (exact for
            ``n = inf`` only; see the module docstring for what is missing at finite n).

    Returns:
        Shape ``broadcast(args) + (rounds,)``; NaN where a traced input is out of its domain.

    Example:
        >>> acc = retraining_accuracy(3, 1000, 200, 1.0, generator="linear", theta_gen=1.0,
        ...                           theta_ver=0.26, tau=0.0)
        >>> [round(float(a), 4) for a in acc]
        [0.7819, 0.8037, 0.81]
    """
    _check_args(generator, data, p, theta_gen, n_real, lam_gen)
    if data == "accumulate" and is_concrete(n) and not bool(jnp.all(jnp.isinf(_f(n)))):
        raise ValueError(
            "data='accumulate' has an exact theory only for n = inf (infinitely many samples "
            "per round); at finite n/d the reused rows are not independent of later generators "
            "(see gmmcollapse.theory.retraining)"
        )
    p = 0.0 if p is None else p
    theta_gen = 0.0 if theta_gen is None else theta_gen
    n_real = 1.0 if n_real is None else n_real
    lam_gen = 0.1 if lam_gen is None else lam_gen
    args = map(_f, (n, d, snr, p, theta_gen, n_real, lam_gen, lam, theta_ver, tau, phi, psi))
    return _retraining(int(rounds), generator, data, *args)


def _retraining_impl(
    rounds, generator, data, n, d, m, p, tg, n_real, lam_gen, lam, tv, tau, phi, psi
):
    n, d, m, p, tg, n_real, lam_gen, lam, tv, tau, phi, psi = _broadcast(
        n, d, m, p, tg, n_real, lam_gen, lam, tv, tau, phi, psi
    )
    ver = (tv, tau, phi, psi)
    accs = _per_round(rounds, generator, data, n, d, m, p, tg, n_real, lam_gen, lam, ver)
    if data == "accumulate":  # exact for n = inf only (a traced finite n gives NaN)
        accs = jnp.where(jnp.isinf(n)[..., None], accs, jnp.nan)
    return accs


_retraining = jax.jit(_retraining_impl, static_argnums=(0, 1, 2))


@theory_function(
    (KEEPS_SOMETHING,),
    tol=Arg(POSITIVE, static=True),
    max_rounds=_ROUNDS,
    **RETRAINING,
)
def retraining_limit(
    n: ArrayLike,
    d: ArrayLike,
    snr: ArrayLike,
    *,
    generator: str = "flip",
    p: ArrayLike | None = None,
    theta_gen: ArrayLike | None = None,
    n_real: ArrayLike | None = None,
    lam_gen: ArrayLike | None = None,
    phi: ArrayLike = 1.0,
    psi: ArrayLike = 1.0,
    theta_ver: ArrayLike = 0.0,
    tau: ArrayLike = -math.inf,
    lam: ArrayLike = 0.1,
    tol: float = 1e-12,
    max_rounds: int = 10_000,
) -> RetrainingLimit:
    r"""The long-run accuracy of iterated retraining (``data="replace"``): the fixed point of
    the recursion ``g_{r+1} = F(g_r)`` reached from round 0's generator.

    Iterates ``F`` (a ``lax.while_loop``) until ``||g_{r+1} - g_r|| <= tol`` or
    ``max_rounds``; same arguments as :func:`retraining_accuracy`. Differentiable in every
    parameter (forward and reverse mode) by the implicit function theorem at the fixed point
    (``lax.custom_root``), not through the loop. The fixed point depends on
    the verifier and on ``n/d`` but not on where the iteration starts as long as it starts in
    the same basin (``g_e > 0``); it is what the models of late rounds approach.

    Example:
        >>> lim = retraining_limit(1000, 200, 1.0, generator="linear", theta_gen=1.0,
        ...                        theta_ver=0.26, tau=0.0)
        >>> round(float(lim.accuracy), 4), bool(lim.converged)
        (0.8132, True)
    """
    _check_args(generator, "replace", p, theta_gen, n_real, lam_gen)
    p = 0.0 if p is None else p
    theta_gen = 0.0 if theta_gen is None else theta_gen
    n_real = 1.0 if n_real is None else n_real
    lam_gen = 0.1 if lam_gen is None else lam_gen
    args = map(_f, (n, d, snr, p, theta_gen, n_real, lam_gen, lam, theta_ver, tau, phi, psi))
    return _limit(generator, float(tol), int(max_rounds), *args)


def _limit_impl(
    generator, tol, max_rounds, n, d, m, p, tg, n_real, lam_gen, lam, tv, tau, phi, psi
):
    n, d, m, p, tg, n_real, lam_gen, lam, tv, tau, phi, psi = _broadcast(
        n, d, m, p, tg, n_real, lam_gen, lam, tv, tau, phi, psi
    )
    ver = (tv, tau, phi, psi)
    eta = d / n
    g0 = _round_solve(_initial(generator, m, d, p, tg, n_real, lam_gen, ver), m, eta, lam)

    def step(g):
        return _round_solve(linear_moments_3d(m, g, tv, tau, phi, psi), m, eta, lam).direction

    def cond(state):
        _, _, done, it = state
        return (it < max_rounds) & ~jnp.all(done)

    def body(state):
        g, _, done, it = state
        g_new = step(g)
        moved = jnp.sqrt(jnp.sum((g_new - g) ** 2, -1))
        g_new = jnp.where(done[..., None], g, g_new)
        return g_new, g, done | (moved <= tol), it + 1

    shape = g0.accuracy.shape
    g, _, done, it = lax.while_loop(
        cond,
        body,
        lax.stop_gradient((g0.direction, g0.direction, jnp.zeros(shape, bool), 1)),
    )

    # Derivatives by the implicit function theorem at the fixed point g = F(g), not by
    # differentiating the loop (which reverse mode cannot do): the iteration's result is the
    # root, and the tangent solves (dF/dg - I) dg = -dF/dtheta with one 3 x 3 system per point.
    def tangent_solve(lin, rhs):
        basis = jnp.eye(3)
        cols = [lin(jnp.broadcast_to(basis[k], rhs.shape)) for k in range(3)]
        jac = jnp.stack(cols, axis=-1)  # jac[..., :, k] = J e_k
        return jnp.linalg.solve(jac, rhs[..., None])[..., 0]

    g = lax.custom_root(lambda x: step(x) - x, lax.stop_gradient(g), lambda _, x: x, tangent_solve)
    return RetrainingLimit(ndtr(m * g[..., 0]), g, done, jnp.full(shape, it))


_limit = jax.jit(_limit_impl, static_argnums=(0, 1, 2))
