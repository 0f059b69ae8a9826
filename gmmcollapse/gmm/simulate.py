"""One run of synthesize -> verify -> retrain in the Gaussian mixture, and its vmapped lifts.

:func:`simulate` is a pure function of ``(key, params, spec)``; ``spec`` is static, the rest
traced. :func:`over_seeds` lifts it to independent runs; grids of parameter points are
:func:`gmmcollapse.gmm.run_sweep`'s (the same seeds at every point: common random numbers).

Geometry: by rotation invariance of the noise we take ``mu = snr e_1`` and ``f = e_2``; a
test accuracy is computed exactly as ``Phi(w . mu / ||w||)`` (optionally also on a test set).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.stats import norm

from gmmcollapse import feedback
from gmmcollapse.gmm.learners import logistic, ridge_dual, ridge_from_stats, sufficient_stats
from gmmcollapse.gmm.spec import GMMParams, SimSpec, validate_params
from gmmcollapse.theory.basic import in_float64

__all__ = ["TRACE_COUNT", "SimResult", "over_seeds", "simulate", "summarize"]

#: how many times the run has been traced (for tests that guard against recompilation)
TRACE_COUNT = {"simulate": 0}


class SimResult(NamedTuple):
    """Per-round outcomes of one run; every field has shape ``(rounds,)``.

    Attributes:
        acc: exact test accuracy ``Phi(w.mu/||w||)`` of the model trained in the round.
        acc_test: empirical accuracy on ``spec.n_test`` fresh samples (NaN if ``n_test = 0``).
        gen_acc: accuracy of the round's generator (for flips: ``1 - mean(p)``).
        p: measured label-error rate of the round's synthesized samples.
        phi, psi, p_star: the verifier's measured keep rates and breakdown point.
        keep_fraction: kept samples / n.
    """

    acc: Array
    acc_test: Array
    gen_acc: Array
    p: Array
    phi: Array
    psi: Array
    p_star: Array
    keep_fraction: Array


def _unit(theta: Array, d: int, dtype) -> Array:
    v = jnp.zeros((d,), dtype).at[0].set(jnp.cos(theta).astype(dtype))
    if d > 1:
        v = v.at[1].set(jnp.sin(theta).astype(dtype))
    return v


def _exact_acc(w: Array, snr: Array) -> Array:
    w = w.astype(jnp.float64)
    nrm = jnp.linalg.norm(w)
    return jnp.where(nrm > 0, norm.cdf(snr * w[0] / jnp.where(nrm > 0, nrm, 1.0)), 0.5)


def _sample(key: Array, n_rows: int, d: int, mean: Array, sigma, dtype) -> tuple[Array, Array]:
    ky, kz = jax.random.split(key)
    y = jax.random.rademacher(ky, (n_rows,), dtype=dtype)
    x = y[:, None] * mean[None, :] + jnp.asarray(sigma, dtype) * jax.random.normal(
        kz, (n_rows, d), dtype
    )
    return x, y


def _per_class(rate: Array, y: Array) -> Array:
    """Broadcast a scalar or ``[class +1, class -1]`` rate to one value per sample."""
    both = jnp.broadcast_to(jnp.asarray(rate), (2,))
    return both[(y < 0).astype(jnp.int32)]


class _Carry(NamedTuple):
    w_gen: Array  # generator of the next round
    gram: Array  # accumulated X^T Q X (ridge learner)
    xty: Array  # accumulated X^T Q y~
    n_seen: Array  # accumulated N (synthesized samples, pruned included)
    buf_x: Array  # (rounds, n_max, d) row buffer (logistic + accumulate only, else empty)
    buf_y: Array
    buf_q: Array


def _fit(spec: SimSpec, params: GMMParams, carry: _Carry, x, yt, q, real, n_total):
    """Train the learner on the round's training set; returns the weight vector."""
    x_real, y_real, q_real = real
    if spec.learner == "ridge":
        if spec.use_dual:
            rows_x = jnp.concatenate([x, x_real]) if spec.n_real_max else x
            rows_y = jnp.concatenate([yt, y_real]) if spec.n_real_max else yt
            rows_q = jnp.concatenate([q, q_real]) if spec.n_real_max else q
            return ridge_dual(
                rows_x, rows_y, rows_q, n_total, params.lam.astype(jnp.dtype(spec.dtype))
            )
        return ridge_from_stats(
            carry.gram, carry.xty, n_total, params.lam.astype(jnp.dtype(spec.dtype))
        )
    if spec.data == "accumulate":
        rows_x = carry.buf_x.reshape(-1, spec.d)
        rows_y, rows_q = carry.buf_y.reshape(-1), carry.buf_q.reshape(-1)
    else:
        rows_x, rows_y, rows_q = x, yt, q
    if spec.n_real_max:
        rows_x = jnp.concatenate([rows_x, x_real])
        rows_y = jnp.concatenate([rows_y, y_real])
        rows_q = jnp.concatenate([rows_q, q_real])
    return logistic(
        rows_x,
        rows_y,
        rows_q,
        n_total,
        params.lam.astype(jnp.dtype(spec.dtype)),
        spec.logistic_steps,
    )


def _block(spec: SimSpec, params: GMMParams, w_gen, use_flip, key, b):
    """Synthesize and select one block of ``spec.rows_per_block`` rows (block index ``b``).

    All randomness of block ``b`` comes from ``fold_in(key, b)``, so the data are the same
    whether blocks are generated all at once (vmap) or streamed one by one (scan).
    Returns the rows, the generator's labels, the keep weights and the kernel's counts.
    """
    dtype = jnp.dtype(spec.dtype)
    d, rows = spec.d, spec.rows_per_block
    k_data, k_flip, k_ver = jax.random.split(jax.random.fold_in(key, b), 3)
    mu = params.snr.astype(dtype) * _unit(jnp.zeros(()), d, dtype)
    f = _unit(jnp.asarray(jnp.pi / 2), d, dtype) if d > 1 else jnp.zeros((d,), dtype)
    mean_syn = params.beta.astype(dtype) * mu + params.gamma.astype(dtype) * f
    x, y = _sample(k_data, rows, d, mean_syn, params.sigma, dtype)
    valid = b * rows + jnp.arange(rows) < params.n

    # --- synthesize: the generator's labels. Round 0 of a flip generator flips true labels;
    # every other round labels with a linear model (computed for both, selected: one trace).
    yt = jnp.where(x @ w_gen >= 0, 1.0, -1.0).astype(dtype)
    if spec.generator == "flip":
        flipped = jax.random.uniform(k_flip, (rows,)) < _per_class(params.p, y)
        yt = jnp.where(use_flip, jnp.where(flipped, -y, y), yt)
    correct = yt == y

    # --- verify / select with the shared kernel: noisy oracle, then the linear margin test
    oracle = feedback.noisy_oracle(
        k_ver,
        correct,
        _per_class(params.phi, y)[:, None],
        _per_class(params.psi, y)[:, None],
        eligible=valid,
    )
    w_ver = _unit(params.theta_ver, d, dtype)
    selection = feedback.prune(yt * (x @ w_ver), params.tau, eligible=oracle.mask)
    return x, yt, selection.kept.astype(dtype), feedback.counts(selection, correct, valid=valid)


def _round(spec: SimSpec, params: GMMParams, real, real_stats, key, r, carry: _Carry):
    dtype = jnp.dtype(spec.dtype)
    d = spec.d
    k_blocks, k_test = jax.random.split(key)
    mu = params.snr.astype(dtype) * _unit(jnp.zeros(()), d, dtype)
    use_flip = r == 0
    if spec.generator == "flip":
        gen_acc = jnp.where(
            use_flip,
            1.0 - jnp.mean(jnp.broadcast_to(params.p, (2,))),
            _exact_acc(carry.w_gen, params.snr),
        )
    else:
        gen_acc = _exact_acc(carry.w_gen, params.snr)
    block = partial(_block, spec, params, carry.w_gen, use_flip, k_blocks)

    if spec.stream:
        # accumulate the sufficient statistics over steps of `stream_blocks` blocks:
        # memory O(d^2 + stream_blocks * block_rows * d) for any n. Blocks past n_max hold
        # only masked rows, so padding the step count changes nothing.
        steps = -(-spec.n_blocks // spec.stream_blocks)
        ids = jnp.arange(steps * spec.stream_blocks).reshape(steps, spec.stream_blocks)

        def step(acc, bs):
            xb, yb, qb, cb = jax.vmap(block)(bs)
            g, v = sufficient_stats(xb.reshape(-1, d), yb.reshape(-1), qb.reshape(-1))
            cb = jax.tree.map(jnp.sum, cb)
            return (acc[0] + g, acc[1] + v, jax.tree.map(jnp.add, acc[2], cb)), None

        zero_counts = feedback.Counts(*(jnp.zeros(()) for _ in feedback.Counts._fields))
        init = (jnp.zeros((d, d), dtype), jnp.zeros((d,), dtype), zero_counts)
        (gram, xty, cnt), _ = lax.scan(step, init, ids)
        x = yt = q = None
    else:
        x, yt, q, cnt = jax.vmap(block)(jnp.arange(spec.n_blocks))
        x, yt, q = x.reshape(-1, d), yt.reshape(-1), q.reshape(-1)
        cnt = jax.tree.map(jnp.sum, cnt)
        if spec.learner == "ridge" and not spec.use_dual:
            gram, xty = sufficient_stats(x, yt, q)
        else:
            gram, xty = carry.gram, carry.xty
    rates = feedback.rates(cnt)

    # --- retrain on this round's (or all rounds') kept data, plus real data if mixed in
    keep_old = spec.data == "accumulate"
    n_syn = params.n + (carry.n_seen if keep_old else 0.0)
    carry = carry._replace(
        gram=(carry.gram + gram) if keep_old else gram,
        xty=(carry.xty + xty) if keep_old else xty,
        n_seen=n_syn,
    )
    if spec.learner == "logistic" and keep_old:
        carry = carry._replace(
            buf_x=carry.buf_x.at[r].set(x),
            buf_y=carry.buf_y.at[r].set(yt),
            buf_q=carry.buf_q.at[r].set(q),
        )
    mix = params.mix_real.astype(dtype)
    real_x, real_y, real_q = real
    n_total = (n_syn + params.mix_real * params.n_real).astype(dtype)
    fit_carry = carry
    if spec.learner == "ridge" and not spec.use_dual and spec.n_real_max:
        fit_carry = carry._replace(
            gram=carry.gram + mix * real_stats[0], xty=carry.xty + mix * real_stats[1]
        )
    w = _fit(spec, params, fit_carry, x, yt, q, (real_x, real_y, real_q * mix), n_total)

    acc_test = jnp.nan
    if spec.n_test:
        xt, ytest = _sample(k_test, spec.n_test, d, mu, 1.0, dtype)
        acc_test = jnp.mean(jnp.where(xt @ w >= 0, 1.0, -1.0) == ytest)
    out = SimResult(
        acc=_exact_acc(w, params.snr),
        acc_test=jnp.asarray(acc_test, jnp.float64),
        gen_acc=jnp.asarray(gen_acc, jnp.float64),
        p=rates.p,
        phi=rates.phi,
        psi=rates.psi,
        p_star=rates.p_star,
        keep_fraction=rates.keep_fraction,
    )
    return carry._replace(w_gen=w), jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), out)


@partial(jax.jit, static_argnames="spec")
def _simulate(key: Array, params: GMMParams, spec: SimSpec) -> SimResult:
    TRACE_COUNT["simulate"] += 1  # runs at trace time only
    dtype = jnp.dtype(spec.dtype)
    d = spec.d
    k_real, k_rounds = jax.random.split(key)

    # real data (used by the ridge generator and for mixing in)
    if spec.n_real_max:
        mu = params.snr.astype(dtype) * _unit(jnp.zeros(()), d, dtype)
        real_x, real_y = _sample(k_real, spec.n_real_max, d, mu, 1.0, dtype)
        real_q = (jnp.arange(spec.n_real_max) < params.n_real).astype(dtype)
        real_stats = sufficient_stats(real_x, real_y, real_q)
    else:
        real_x = jnp.zeros((0, d), dtype)
        real_y = real_q = jnp.zeros((0,), dtype)
        real_stats = (jnp.zeros((d, d), dtype), jnp.zeros((d,), dtype))
    real = (real_x, real_y, real_q)

    if spec.generator == "linear":
        w_gen = _unit(params.theta_gen, d, dtype)
    elif spec.generator == "ridge":
        w_gen = ridge_from_stats(
            *real_stats, params.n_real.astype(dtype), params.lam_gen.astype(dtype)
        )
    else:
        w_gen = jnp.zeros((d,), dtype)

    buf_shape = (
        (spec.rounds, spec.n_blocks * spec.rows_per_block)
        if spec.learner == "logistic" and spec.data == "accumulate"
        else (0, 0)
    )
    carry = _Carry(
        w_gen=w_gen,
        gram=jnp.zeros((d, d), dtype),
        xty=jnp.zeros((d,), dtype),
        n_seen=jnp.zeros((), jnp.float64),  # exact counts (float32 would round above 2^24)
        buf_x=jnp.zeros(buf_shape + (d,), dtype),
        buf_y=jnp.zeros(buf_shape, dtype),
        buf_q=jnp.zeros(buf_shape, dtype),
    )
    body = partial(_round, spec, params, real, real_stats)

    def scan_body(c, inp):
        k, r = inp
        return body(k, r, c)

    keys = jax.random.split(k_rounds, spec.rounds)
    _, out = lax.scan(scan_body, carry, (keys, jnp.arange(spec.rounds)))
    return out


@in_float64
def simulate(key: Array, params: GMMParams, spec: SimSpec) -> SimResult:
    """Simulate one run: ``spec.rounds`` rounds of synthesize -> select -> retrain.

    Args:
        key: a typed PRNG key (``jax.random.key(seed)``).
        params: traced :class:`GMMParams` for one parameter point (scalars, or length-2
            per-class ``p``/``phi``/``psi``).
        spec: static :class:`SimSpec`.

    Returns:
        :class:`SimResult` with one entry per round.

    Concrete parameters are validated first (``ValueError``); under an outer ``jit``/``vmap``
    they are traced and pass unchecked.

    Example:
        >>> import jax
        >>> from gmmcollapse.gmm import SimSpec, make_params, simulate
        >>> spec = SimSpec(n_max=800, d=200)
        >>> res = simulate(jax.random.key(0), make_params(800, 2.0, p=0.2, phi=1.0, psi=0.5), spec)
        >>> 0.5 < float(res.acc[0]) < 1.0
        True
    """
    validate_params(params, spec)
    return _simulate(key, params, spec)


@in_float64
def over_seeds(key: Array, params: GMMParams, spec: SimSpec, seeds: int) -> SimResult:
    """``seeds`` independent runs at one parameter point; fields gain a leading seed axis."""
    validate_params(params, spec)
    keys = jax.random.split(key, seeds)
    return jax.vmap(_simulate, in_axes=(0, None, None))(keys, params, spec)


@in_float64
def summarize(result: SimResult, axis: int = -2) -> tuple[SimResult, SimResult]:
    """Mean and standard error (``std / sqrt(seeds)``, ddof = 1) over the seed axis.

    NaN entries (e.g. psi when no wrong label occurred) are ignored.
    """

    def se(v):
        cnt = jnp.sum(~jnp.isnan(v), axis=axis)
        return jnp.nanstd(v, axis=axis, ddof=1) / jnp.sqrt(jnp.maximum(cnt, 1))

    return jax.tree.map(lambda v: jnp.nanmean(v, axis=axis), result), jax.tree.map(se, result)
