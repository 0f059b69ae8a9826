r"""Exact sampler for selection that reads x: O(n) projections plus an O(d) Gaussian block.

When the generator or the verifier looks at ``x`` (a linear or ridge generator, the linear
margin test ``y~ (w_ver . x) >= tau``, several rounds of retraining), the counts-only sampler
of :mod:`gmmcollapse.gmm.fast` does not apply. This one still never forms an ``n x d`` matrix:

1. Let ``P = span(e, f, h)`` hold ``mu = m e``, the verifier (in ``span(e, f)``) and the
   round's generator (``h``: its direction outside ``span(e, f)``; any unit vector when it has
   none). Draw only each row's class ``y`` and its three coordinates in ``P``
   (``x_P = y m e + z_P``), the flip and oracle coins: O(n).
2. Decide labels and keep with the shared kernel (:mod:`gmmcollapse.feedback`), exactly as the
   naive path does on the full rows, and accumulate ``S = U^T U`` over the kept rows (real rows
   too, when mixed in), ``U = [y~ x_P, 1]`` (``K x 4``).
3. The rest of every kept row, ``y~ z_perp``, is an i.i.d. ``N(0, I_{d-3})`` block ``Gamma``,
   independent of ``U`` (sign symmetry). Rotating the ``K`` rows by an orthogonal matrix whose
   first columns span ``col(U)`` turns the ridge problem into four rows
   ``[F_{:, :3} | Xi]`` with targets ``F_{:, 3}`` (``F^T F = S``, ``Xi`` i.i.d. normal) plus
   ``K - 4`` rows ``[0 | Z]`` with target 0, whose Gram ``Z^T Z`` is Wishart(K - 4): realised
   as ``H T H^T`` with the tridiagonal Laguerre ``T`` and an independent Haar ``H`` that the
   accuracy cannot see. The solve is a 4 x 4 Woodbury correction of a tridiagonal system:
   O(d).

Outputs are functions of ``w . e``, ``w . f`` and ``||w||`` (the exact accuracy, the next
round's generator), so the sampler is equal in law to the naive path
(:func:`gmmcollapse.gmm.simulate._simulate`), not draw for draw; the proof is in
``docs/fast_sampler.md`` (section 11). Multi-round runs (``data="replace"``) carry the model's
unit vector ``(g_e, g_f, g_out)`` from round to round: fresh data are rotation invariant
outside ``span(e, f)``, so nothing else about the previous model matters.

Precision: the projected coordinates and the coins are drawn in ``spec.dtype``, as the naive
path draws its rows (float32 by default: half the random bits, and random bits are what this
path spends its time on); the statistics, the Gaussian block and the solve are float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.stats import norm

from gmmcollapse import feedback
from gmmcollapse.gmm.fast import _fit_tridiagonal, laguerre_tridiagonal
from gmmcollapse.gmm.simulate import SimResult
from gmmcollapse.gmm.spec import GMMParams, SimSpec
from gmmcollapse.theory.basic import in_float64

__all__ = ["BLOCK_ROWS", "TRACE_COUNT", "eligible", "projected_simulate", "why_not"]

#: how many times :func:`projected_simulate` has been traced (tests guard against recompiles)
TRACE_COUNT = {"projected_simulate": 0}

#: rows drawn per step of the O(n) pass (memory per run: a few times this many floats)
BLOCK_ROWS = 1024

_F64 = jnp.float64
_K = 3  # dimension of the projected block P = span(e, f, h)


def why_not(spec: SimSpec, pts: Mapping[str, Any] | GMMParams | None = None) -> str | None:
    """``None`` when :func:`projected_simulate` samples this model exactly, else the reason.

    Needs the ridge learner, ``data="replace"`` when ``rounds > 1``, ``d >= 4``, the unshifted
    synthetic law (``beta = 1, gamma = 0, sigma = 1``) at every point, and no real rows mixed
    into a run that reuses them (several rounds, or a ridge generator trained on them).
    """
    if spec.learner != "ridge":
        return "it needs the ridge learner"
    if spec.rounds > 1 and spec.data != "replace":
        return "several rounds need data='replace' (accumulate reuses rows)"
    if spec.d < 4:
        return "it needs d >= 4"
    if pts is None:
        return None
    if isinstance(pts, GMMParams):
        pts = pts._asdict()

    def values(name, default):
        v = pts.get(name)
        return np.asarray(default if v is None else v, np.float64)

    if np.any(values("beta", 1.0) != 1.0) or np.any(values("gamma", 0.0) != 0.0):
        return "it needs the unshifted synthetic law (beta = 1, gamma = 0)"
    if np.any(values("sigma", 1.0) != 1.0):
        return "it needs the unshifted synthetic law (sigma = 1)"
    mixed = np.any((values("mix_real", 0.0) != 0.0) & (values("n_real", 0.0) > 0))
    if mixed and (spec.rounds > 1 or spec.generator == "ridge"):
        return "real rows mixed into several rounds or into a ridge generator's run are reused"
    return None


def eligible(spec: SimSpec, pts: Mapping[str, Any] | GMMParams | None = None) -> bool:
    """Whether :func:`projected_simulate` samples this model exactly (see :func:`why_not`)."""
    return why_not(spec, pts) is None


def _per_class(rate: Array, y: Array) -> Array:
    both = jnp.broadcast_to(jnp.asarray(rate, _F64), (2,))
    return both[(y < 0).astype(jnp.int32)]


def _unit_ver(theta: Array) -> Array:
    return jnp.stack([jnp.cos(theta), jnp.sin(theta), jnp.zeros_like(theta)]).astype(_F64)


def _class_specific(params: GMMParams) -> bool:
    """Whether any rate depends on the class (a static property: length-2 rates)."""
    return any(jnp.ndim(r) > 0 for r in (params.p, params.phi, params.psi))


def _synth_block(
    spec: SimSpec, params: GMMParams, g: Array, use_flip: Array, key: Array, b: Array, rows: int
):
    """One block of synthesized rows in ``P``: the stats ``U^T Q U`` and the kernel's counts.

    Random numbers are what this path costs, so it draws as few as the law allows: the three
    coordinates of ``z_P`` (in ``spec.dtype``, as the naive path draws its rows) and one
    uniform per row that decides both the flip and the oracle's coin (given ``U < p`` the
    rescaled ``U / p`` is again uniform and independent of the event, and likewise
    ``(U - p)/(1 - p)`` given ``U >= p``). The class ``y`` is drawn only for class-specific
    rates: otherwise mirroring a row (``y, z -> -y, -z``, coins unchanged) leaves ``y~ x``,
    the label's correctness and the keep decision unchanged, so every row may be taken from
    class ``+1``.
    """
    dtype = jnp.dtype(spec.dtype)
    k_y, k_z, k_u = jax.random.split(jax.random.fold_in(key, b), 3)
    m = params.snr.astype(_F64)
    if _class_specific(params):
        y = jax.random.rademacher(k_y, (rows,), dtype=_F64)
    else:
        y = jnp.ones((rows,), _F64)
    x = jax.random.normal(k_z, (rows, _K), dtype).astype(_F64).at[:, 0].add(y * m)
    u = jax.random.uniform(k_u, (rows,), dtype).astype(_F64)
    valid = b * rows + jnp.arange(rows) < params.n
    # synthesize: flips in round 0 of a flip generator, else sign(g . x) (the naive rule)
    yt = jnp.where(x @ g >= 0, 1.0, -1.0)
    p = jnp.where(use_flip, _per_class(params.p, y), 0.0)
    flipped = u < p
    yt = jnp.where(use_flip, jnp.where(flipped, -y, y), yt)
    coin = jnp.where(
        flipped, u / jnp.where(p > 0, p, 1.0), (u - p) / jnp.where(p < 1, 1.0 - p, 1.0)
    )
    correct = yt == y
    # verify: the noisy oracle, then the linear margin test (the naive path's kernel calls)
    oracle = feedback.noisy_oracle(
        None,
        correct,
        _per_class(params.phi, y)[:, None],
        _per_class(params.psi, y)[:, None],
        eligible=valid,
        uniforms=coin,
    )
    score = yt * (x @ _unit_ver(params.theta_ver.astype(_F64)))
    selection = feedback.prune(score, params.tau.astype(_F64), eligible=oracle.mask)
    q = selection.kept.astype(_F64)
    rows_u = jnp.concatenate([yt[:, None] * x, jnp.ones((rows, 1), _F64)], axis=1)
    return (rows_u * q[:, None]).T @ rows_u, feedback.counts(selection, correct, valid=valid)


def _real_stats(key: Array, params: GMMParams, rows: int, dtype) -> Array:
    """``U^T U`` of the real rows (all kept, correct): ``u = y x = mu + z'`` in ``P``."""
    m = params.snr.astype(_F64)
    z = jax.random.normal(key, (rows, _K), dtype).astype(_F64).at[:, 0].add(m)
    q = (jnp.arange(rows) < params.n_real).astype(_F64) * params.mix_real.astype(_F64)
    u = jnp.concatenate([z, jnp.ones((rows, 1), _F64)], axis=1)
    return (u * q[:, None]).T @ u


def _fit(key: Array, stats: Array, n_total: Array, lam: Array, d: int):
    """Ridge on the kept rows from ``S = U^T U`` alone (module docstring, step 3).

    Returns ``(w_P, ||w_perp||^2)``: the coordinates of ``w`` in ``P`` and the squared norm
    of the rest.
    """
    k_tri, k_xi = jax.random.split(key)
    kept = stats[_K, _K]
    rank = jnp.minimum(kept, _K + 1.0)  # rows in general position: rank min(K, 4) a.s.
    evals, evecs = jnp.linalg.eigh(stats)  # ascending
    active = jnp.arange(_K + 1) >= (_K + 1) - rank
    f = jnp.where(active[:, None], jnp.sqrt(jnp.maximum(evals, 0.0))[:, None] * evecs.T, 0.0)
    b_p, target = f[:, :_K], f[:, _K]  # F^T F = S: the four rotated rows and their targets
    dp = d - _K
    xi = jax.random.normal(k_xi, (_K + 1, dp), _F64) * active[:, None]
    t_diag, t_off = laguerre_tridiagonal(k_tri, kept - rank, dp)
    zero = jnp.zeros((1,), _F64)
    # M = T/N + lam I (tridiagonal); Y = M^{-1} Xi^T
    y = lax.linalg.tridiagonal_solve(
        jnp.concatenate([zero, t_off / n_total]),
        t_diag / n_total + lam,
        jnp.concatenate([t_off / n_total, zero]),
        xi.T,
    )
    # w = D^{-1} B^T (N I + B D^{-1} B^T)^{-1} t,  D = diag(lam I_3, M),  B = [b_p | Xi]
    s = n_total * jnp.eye(_K + 1, dtype=_F64) + b_p @ b_p.T / lam + xi @ y
    c = jnp.linalg.solve(s, target)
    w_p = b_p.T @ c / lam
    w_perp = y @ c
    return w_p, jnp.sum(w_perp * w_perp)


def _accuracy(w_e: Array, w_norm: Array, m: Array) -> Array:
    return jnp.where(w_norm > 0, norm.cdf(m * w_e / jnp.where(w_norm > 0, w_norm, 1.0)), 0.5)


def _round(spec: SimSpec, params: GMMParams, real: Array, carry, inp):
    """One round: synthesize and select in ``P`` (O(n)), fit (O(d)), measure."""
    g, first_flip = carry
    key, r = inp
    k_blocks, k_fit, k_test = jax.random.split(key, 3)
    m = params.snr.astype(_F64)
    use_flip = first_flip & (r == 0)
    rows = BLOCK_ROWS
    # A traced trip count: only the blocks that hold rows run, and one compiled program
    # serves every n <= n_max (the sweep groups all projected points of one d together).
    # The block size does not depend on n_max, so a point's draws do not depend on which
    # grid (or group) it is in: common random numbers across grids, as on the naive path.
    n_blocks = jnp.ceil(params.n.astype(_F64) / rows).astype(jnp.int32)

    def step(b, acc):
        stats, cnt = _synth_block(spec, params, g, use_flip, k_blocks, b, rows)
        cnt = jax.tree.map(jnp.sum, cnt)
        return acc[0] + stats, jax.tree.map(jnp.add, acc[1], cnt)

    zero_counts = feedback.Counts(*(jnp.zeros((), _F64) for _ in feedback.Counts._fields))
    stats, cnt = lax.fori_loop(0, n_blocks, step, (real, zero_counts))
    rates = feedback.rates(cnt)
    n_total = params.n.astype(_F64) + params.mix_real.astype(_F64) * params.n_real.astype(_F64)
    w_p, perp2 = _fit(k_fit, stats, n_total, params.lam.astype(_F64), spec.d)
    out2 = w_p[2] ** 2 + perp2
    w_norm = jnp.sqrt(w_p[0] ** 2 + w_p[1] ** 2 + out2)
    acc = _accuracy(w_p[0], w_norm, m)
    g_norm = jnp.linalg.norm(g)
    gen_acc = jnp.where(
        use_flip, 1.0 - jnp.mean(jnp.broadcast_to(params.p, (2,))), _accuracy(g[0], g_norm, m)
    )
    acc_test = jnp.asarray(jnp.nan, _F64)
    if spec.n_test:
        # given w, each fresh test point is right w.p. acc, independently (as in fast.py)
        acc_test = jnp.mean(jax.random.uniform(k_test, (spec.n_test,), _F64) < acc, dtype=_F64)
    # the next generator: sign(w . x) depends on w's direction only; w = 0 stays 0 (the naive
    # path then labels every row +1)
    vec = jnp.stack([w_p[0], w_p[1], jnp.sqrt(out2)])
    g_next = jnp.where(w_norm > 0, vec / jnp.where(w_norm > 0, w_norm, 1.0), 0.0)
    res = SimResult(
        acc=acc,
        acc_test=acc_test,
        gen_acc=gen_acc,
        p=rates.p,
        phi=rates.phi,
        psi=rates.psi,
        p_star=rates.p_star,
        keep_fraction=rates.keep_fraction,
    )
    return (g_next, first_flip), jax.tree.map(lambda v: jnp.asarray(v, _F64), res)


def _initial_generator(key: Array, params: GMMParams, spec: SimSpec) -> Array:
    """Round 0's generator as ``(g_e, g_f, g_out)``; zeros for flips (unused in round 0)."""
    if spec.generator == "linear":
        return _unit_ver(params.theta_gen.astype(_F64))
    if spec.generator == "ridge":
        # ridge on n_real clean real rows: exactly the fast path's clean fit (all rows kept,
        # correct), whose (w . e, w . f, ||w||) have the naive path's law
        clean = params._replace(
            lam=params.lam_gen, beta=jnp.ones(()), gamma=jnp.zeros(()), sigma=jnp.ones(())
        )
        k_rows = jnp.stack([params.n_real.astype(_F64), jnp.zeros((), _F64)])
        w_e, w_f, w_norm = _fit_tridiagonal(key, k_rows, clean, params.n_real.astype(_F64), spec.d)
        out = jnp.sqrt(jnp.maximum(w_norm**2 - w_e**2 - w_f**2, 0.0))
        return jnp.stack([w_e, w_f, out]) / w_norm
    return jnp.zeros((_K,), _F64)


@in_float64
@partial(jax.jit, static_argnames="spec")
def projected_simulate(key: Array, params: GMMParams, spec: SimSpec) -> SimResult:
    r"""``spec.rounds`` rounds of synthesize -> select -> ridge, sampled exactly in O(n + d).

    Same arguments and outputs as :func:`gmmcollapse.gmm.simulate._simulate` (fields of shape
    ``(rounds,)``, float64) and equal to it in law for an :func:`eligible` model. Every
    parameter is traced (``n`` included, ``n <= spec.n_max``); vmap over keys and parameters.
    A point outside the model (shifted law, or mixed real rows that a later round or the
    ridge generator reuses) returns NaN in every field: check :func:`eligible` first.

    Example:
        >>> import jax
        >>> from gmmcollapse.gmm import SimSpec, make_params
        >>> spec = SimSpec(n_max=10**5, d=256, generator="linear")
        >>> params = make_params(10**5, 1.0, theta_gen=1.0, theta_ver=0.26, tau=0.0)
        >>> res = projected_simulate(jax.random.key(0), params, spec)
        >>> round(float(res.acc[0]), 2)
        0.8
    """
    TRACE_COUNT["projected_simulate"] += 1  # runs at trace time only
    reason = why_not(spec)
    if reason is not None:
        raise ValueError(f"projected_simulate cannot run this spec: {reason}")
    k_real, k_gen, k_rounds = jax.random.split(key, 3)
    if spec.n_real_max and spec.generator != "ridge":
        real = _real_stats(k_real, params, spec.n_real_max, jnp.dtype(spec.dtype))
    else:
        real = jnp.zeros((_K + 1, _K + 1), _F64)
    g0 = _initial_generator(k_gen, params, spec)
    keys = jax.random.split(k_rounds, spec.rounds)
    first_flip = jnp.asarray(spec.generator == "flip")
    _, out = lax.scan(
        partial(_round, spec, params, real), (g0, first_flip), (keys, jnp.arange(spec.rounds))
    )
    # outside the model: make misuse visible instead of silently wrong
    shifted = (params.beta != 1.0) | (params.gamma != 0.0) | (params.sigma != 1.0)
    reused = (params.mix_real != 0.0) & (params.n_real > 0)
    if spec.rounds == 1 and spec.generator != "ridge":
        reused = jnp.zeros((), bool)
    bad = jnp.any(shifted) | jnp.any(reused)
    return jax.tree.map(lambda v: jnp.where(bad, jnp.nan, v), out)
