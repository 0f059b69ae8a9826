"""Issue 12, section 2: the feedback kernel's one NaN policy (module docstring of
``gmmcollapse.feedback``): a NaN score is never selected, flags are 0/1, a traced parameter
out of range selects nothing, and ``measure`` agrees with ``estimate_breakdown_point``."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmcollapse.feedback as fb
import gmmcollapse.theory as T

NAN = math.nan


def _empty(sel: fb.Selection) -> bool:
    return (
        not np.asarray(sel.mask).any()
        and not np.asarray(sel.kept).any()
        and (np.asarray(sel.choice) == -1).all()
    )


def _same(a: fb.Selection, b: fb.Selection) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


# ---------------------------------------------------------------- a NaN score is never selected

SCORES = np.array([[NAN, 1.0, 0.5], [0.2, NAN, NAN], [NAN, NAN, NAN], [3.0, 2.0, 1.0]])


@pytest.mark.parametrize("jit", [False, True])
def test_best_of_k_never_picks_a_nan_score(jit):
    f = jax.jit(fb.best_of_k) if jit else fb.best_of_k
    sel = f(SCORES)
    np.testing.assert_array_equal(sel.choice, [1, 0, -1, 0])
    np.testing.assert_array_equal(sel.kept, [True, True, False, True])
    assert not np.asarray(sel.mask)[np.isnan(SCORES)].any()
    # consistent with prune, which never kept a NaN score
    pruned = fb.prune(SCORES, -np.inf)
    np.testing.assert_array_equal(pruned.mask, ~np.isnan(SCORES))
    np.testing.assert_array_equal(pruned.choice, sel.choice)


def test_every_strategy_skips_nan_scores(key):
    nan = np.isnan(SCORES)
    top = fb.top_fraction(SCORES, 1.0)
    np.testing.assert_array_equal(top.kept, [True, True, False, True])  # row 2: only NaN
    rnd = fb.random_fraction(key, SCORES, 1.0)
    np.testing.assert_array_equal(rnd.choice, [1, 0, -1, 0])  # first candidate with a score
    masked = fb.from_mask(np.ones(SCORES.shape, bool), SCORES)
    np.testing.assert_array_equal(masked.mask, ~nan)
    np.testing.assert_array_equal(masked.choice, [1, 0, -1, 0])
    for sel in (top, rnd, masked):
        assert not np.asarray(sel.mask)[nan].any()


# ---------------------------------------------------------------- flags


def test_nan_in_correct_is_never_counted_as_correct():
    mask = np.array([True, True, False, True])
    bad = np.array([1.0, NAN, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"^correct must be boolean \(or 0/1\), got nan"):
        fb.measure(mask, bad)
    with pytest.raises(ValueError, match=r"^valid must be boolean \(or 0/1\), got 2"):
        fb.measure(mask, np.array([1, 0, 1, 0]), valid=np.array([1, 2, 1, 1]))
    traced = jax.jit(fb.measure)(mask, bad)
    assert all(np.isnan(x) for x in traced), traced
    cnt = jax.jit(fb.counts)(mask, bad)
    assert all(np.isnan(x) for x in cnt)
    good = fb.measure(mask, np.array([1.0, 1.0, 0.0, 0.0]))  # 0/1 floats are fine
    assert float(good.phi) == 1.0 and float(good.psi) == 0.5


def test_noisy_oracle_flags(key):
    with pytest.raises(ValueError, match="^correct must be boolean"):
        fb.noisy_oracle(key, np.array([1.0, NAN]), 1.0, 1.0)
    u = jnp.zeros((3, 2))  # every draw below every positive rate: all candidates kept
    sel = jax.jit(lambda c: fb.noisy_oracle(None, c, 1.0, 1.0, uniforms=u))(
        jnp.array([[1.0, 0.0], [NAN, 1.0], [0.0, 0.0]])
    )
    np.testing.assert_array_equal(sel.mask, [[True, True], [False, True], [True, True]])


# ---------------------------------------------------------------- traced parameters


def test_traced_rates_out_of_range_select_nothing(key):
    c = jnp.array([[True, False], [False, True], [True, True]])
    oracle = jax.jit(lambda phi, psi: fb.noisy_oracle(key, c, phi, psi))
    for phi, psi in ((1.5, 0.5), (NAN, 0.5), (1.0, -0.1)):
        assert _empty(oracle(phi, psi)), (phi, psi)
    assert not _empty(oracle(1.0, 0.5))
    # per-input rates: only the input with the bad rate loses its candidates
    phis = jnp.array([[1.0], [1.0], [1.5]])
    got = oracle(phis, 0.5)
    want = oracle(jnp.array([[1.0], [1.0], [1.0]]), 0.5)
    np.testing.assert_array_equal(got.mask[:2], want.mask[:2])
    assert not np.asarray(got.mask[2]).any() and int(got.choice[2]) == -1

    s = jnp.arange(8.0).reshape(4, 2)
    for r in (1.5, NAN, -0.5):
        assert _empty(jax.jit(fb.top_fraction)(s, r)), r
        assert _empty(jax.jit(fb.random_fraction)(key, s, r)), r
    assert _empty(jax.jit(fb.prune)(s, NAN))
    half = jax.vmap(fb.top_fraction, in_axes=(None, 0))(s, jnp.array([0.5, 1.5]))
    assert int(np.asarray(half.kept[0]).sum()) == 2 and not np.asarray(half.kept[1]).any()
    assert _same(jax.jit(fb.top_fraction)(s, 0.5), fb.top_fraction(s, 0.5))


def test_bad_parameters_are_named():
    s = np.zeros((4, 2))
    with pytest.raises(ValueError, match="^tau must be a number, got the string"):
        fb.prune(s, "0.3")
    with pytest.raises(ValueError, match=r"^r must be a number"):
        fb.top_fraction(s, "0.5")
    with pytest.raises(ValueError, match=r"^tau \(shape \(3,\)\) does not broadcast with scores"):
        fb.prune(s, np.zeros(3))
    with pytest.raises(ValueError, match=r"^phi \(shape \(3, 1\)\) does not broadcast with corr"):
        fb.noisy_oracle(jax.random.key(0), np.ones((4, 2), bool), np.ones((3, 1)), 0.5)


# ---------------------------------------------------------------- measure vs the estimate


def test_measure_agrees_with_estimate_breakdown_point():
    rng = np.random.default_rng(3)
    correct = rng.uniform(size=60) < 0.7
    kept = rng.uniform(size=60) < np.where(correct, 0.8, 0.3)
    r = fb.measure(kept, correct)
    est = T.estimate_breakdown_point(correct, kept)
    for name in ("phi", "psi", "p_star"):
        assert float(getattr(r, name)) == pytest.approx(float(getattr(est, name)), abs=1e-6)


def test_no_wrong_candidate_is_undefined_not_silent():
    kept = np.array([True, False, True])
    correct = np.ones(3, bool)
    with pytest.warns(RuntimeWarning, match="no wrong candidate, so psi and p_star are undef"):
        r = fb.measure(kept, correct)
    assert np.isnan(r.psi) and np.isnan(r.p_star) and float(r.phi) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no False entry"):
        T.estimate_breakdown_point(correct, kept)
    # traced: both NaN, without a warning (nothing can be inspected there)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traced = jax.jit(fb.measure)(kept, correct)
        est = jax.jit(T.estimate_breakdown_point)(correct, kept)
    assert np.isnan(traced.psi) and np.isnan(traced.p_star)
    assert np.isnan(est.psi) and np.isnan(est.p_star)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both kinds present: no warning
        fb.measure(kept, np.array([True, False, True]))
