"""Estimating p* from labelled verifier decisions: exact counts, coverage, batching, errors."""

import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import binomtest

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.theory import BreakdownEstimate, estimate_breakdown_point, wilson_interval


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


def _hand_example():
    # 10 correct (8 kept), 5 wrong (1 kept), shuffled so that order cannot matter.
    correct = np.array([1] * 10 + [0] * 5, bool)
    kept = np.array([1] * 8 + [0] * 2 + [1] + [0] * 4, bool)
    perm = np.random.default_rng(3).permutation(15)
    return correct[perm], kept[perm]


def _wilson_by_hand(k, n, z):
    q = k / n
    centre = (q + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(q * (1 - q) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def test_exact_counts_by_hand():
    correct, kept = _hand_example()
    est = estimate_breakdown_point(correct, kept, confidence=0.9)
    assert isinstance(est, BreakdownEstimate)
    assert int(est.n_correct) == 10 and int(est.n_wrong) == 5
    assert float(est.phi) == pytest.approx(0.8, abs=1e-15)
    assert float(est.psi) == pytest.approx(0.2, abs=1e-15)
    assert float(est.p_star) == pytest.approx(0.8, abs=1e-15)
    # Bonferroni: each rate at level 1 - 0.1/2 = 0.95, i.e. z = Phi^{-1}(0.975) = 1.95996...
    z = NormalDist().inv_cdf(1 - 0.1 / 4)
    phi_lo, phi_hi = _wilson_by_hand(8, 10, z)
    psi_lo, psi_hi = _wilson_by_hand(1, 5, z)
    np.testing.assert_allclose(est.phi_interval, [phi_lo, phi_hi], rtol=1e-12)
    np.testing.assert_allclose(est.psi_interval, [psi_lo, psi_hi], rtol=1e-12)
    assert float(est.lower) == pytest.approx(phi_lo / (phi_lo + psi_hi), rel=1e-12)
    assert float(est.upper) == pytest.approx(phi_hi / (phi_hi + psi_lo), rel=1e-12)
    # Rounded values (z = 1.959964; e.g. psi_hi = 0.330345 + 0.294120 by pencil):
    # phi in [0.490162, 0.943318], psi in [0.036224, 0.624465], p* in [0.439754, 0.963019].
    np.testing.assert_allclose(est.phi_interval, [0.490162, 0.943318], atol=1e-6)
    np.testing.assert_allclose(est.psi_interval, [0.036224, 0.624465], atol=1e-6)
    assert float(est.lower) == pytest.approx(0.439754, abs=1e-6)
    assert float(est.upper) == pytest.approx(0.963019, abs=1e-6)


@pytest.mark.parametrize("k, n", [(0, 7), (3, 7), (7, 7), (1, 200), (57, 200)])
def test_wilson_matches_scipy(k, n):
    z = NormalDist().inv_cdf(0.975)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n, z)
    assert float(lo) == pytest.approx(ci.low, abs=1e-12)
    assert float(hi) == pytest.approx(ci.high, abs=1e-12)


def _simulate(rng, reps, n, p, phi, psi):
    correct = rng.random((reps, n)) >= p
    kept = rng.random((reps, n)) < np.where(correct, phi, psi)
    return correct, kept


@pytest.mark.parametrize(
    "p, phi, psi",
    [(0.3, 0.9, 0.3), (0.5, 0.6, 0.5), (0.2, 0.95, 0.05), (0.4, 0.3, 0.1)],
)
def test_coverage_by_simulation(p, phi, psi):
    # 2000 repetitions of n = 200 labelled decisions. The joint Wilson + projection interval is
    # conservative: measured coverage ~0.97-0.99 for a nominal 0.95. Require >= 0.93 (nominal
    # minus 2 points; the binomial standard error of the estimate at 0.95 is 0.5 points).
    reps, n, confidence = 2000, 200, 0.95
    correct, kept = _simulate(np.random.default_rng(11), reps, n, p, phi, psi)
    assert (correct.any(1) & ~correct.all(1)).all()  # both kinds present in every sample
    est = jax.jit(jax.vmap(estimate_breakdown_point, in_axes=(0, 0, None)))(
        correct, kept, confidence
    )
    truth = phi / (phi + psi)
    covered = (np.asarray(est.lower) <= truth) & (truth <= np.asarray(est.upper))
    assert covered.mean() >= confidence - 0.02
    # the interval always contains the point estimate where it is defined
    defined = np.isfinite(est.p_star)
    assert np.all(est.lower[defined] <= est.p_star[defined] + 1e-15)
    assert np.all(est.p_star[defined] <= est.upper[defined] + 1e-15)


def test_vmap_equals_loop_and_traced_confidence_does_not_recompile():
    correct, kept = _simulate(np.random.default_rng(5), 6, 50, 0.35, 0.8, 0.4)
    batched = jax.vmap(estimate_breakdown_point, in_axes=(0, 0, None))(correct, kept, 0.9)
    assert batched.phi_interval.shape == (6, 2)
    for i in range(6):
        one = estimate_breakdown_point(correct[i], kept[i], 0.9)
        for got, want in zip(batched, one):
            np.testing.assert_allclose(got[i], want, rtol=1e-13)
    f = jax.jit(estimate_breakdown_point)
    widths = [
        float(
            f(correct[0], kept[0], jnp.float64(c)).upper
            - f(correct[0], kept[0], jnp.float64(c)).lower
        )
        for c in (0.8, 0.9, 0.99)
    ]
    assert widths[0] < widths[1] < widths[2]
    assert f._cache_size() == 1


def test_nothing_kept_gives_nan_point_and_full_interval():
    correct = np.array([True, True, False, False, False])
    est = estimate_breakdown_point(correct, np.zeros(5, bool))
    assert math.isnan(float(est.p_star))
    assert float(est.lower) == 0.0 and float(est.upper) == 1.0


def test_integer_flags_accepted():
    correct, kept = _hand_example()
    a = estimate_breakdown_point(correct, kept)
    b = estimate_breakdown_point(correct.astype(int), kept.astype(np.float32))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_errors():
    correct, kept = _hand_example()
    with pytest.raises(ValueError, match="same shape"):
        estimate_breakdown_point(correct, kept[:-1])
    with pytest.raises(ValueError, match="same shape"):
        jax.jit(estimate_breakdown_point)(correct, kept[:-1])
    for bad in (0.0, 1.0, 1.5, -0.2, math.nan):
        with pytest.raises(ValueError, match="confidence"):
            estimate_breakdown_point(correct, kept, bad)
    with pytest.raises(ValueError, match="no True entry"):
        estimate_breakdown_point(np.zeros(4, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="no False entry"):
        estimate_breakdown_point(np.ones(4, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="no True entry"):
        estimate_breakdown_point(np.zeros(0, bool), np.zeros(0, bool))
    with pytest.raises(ValueError, match="kept must be boolean"):
        estimate_breakdown_point(correct, kept * 2)
    # Under jit nothing can be inspected: missing wrong examples give NaN, not an exception.
    est = jax.jit(estimate_breakdown_point)(np.ones(4, bool), np.ones(4, bool))
    assert int(est.n_wrong) == 0
    for field in (est.p_star, est.lower, est.upper, est.psi, est.psi_interval):
        assert np.all(np.isnan(field))
