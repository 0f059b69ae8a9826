"""Estimating p* from labelled verifier decisions: exact counts, coverage, batching, errors."""

import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import beta, binom, binomtest

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.theory import (
    BreakdownEstimate,
    clopper_pearson_interval,
    estimate_breakdown_point,
    wilson_interval,
)


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
    # Bonferroni: each rate gets a Clopper-Pearson interval at level 1 - 0.1/2 = 0.95.
    phi_ci = binomtest(8, 10).proportion_ci(confidence_level=0.95, method="exact")
    psi_ci = binomtest(1, 5).proportion_ci(confidence_level=0.95, method="exact")
    np.testing.assert_allclose(est.phi_interval, [phi_ci.low, phi_ci.high], rtol=1e-11)
    np.testing.assert_allclose(est.psi_interval, [psi_ci.low, psi_ci.high], rtol=1e-11)
    phi_lo, phi_hi, psi_lo, psi_hi = phi_ci.low, phi_ci.high, psi_ci.low, psi_ci.high
    assert float(est.lower) == pytest.approx(phi_lo / (phi_lo + psi_hi), rel=1e-11)
    assert float(est.upper) == pytest.approx(phi_hi / (phi_hi + psi_lo), rel=1e-11)
    # By hand: at k = 1 the lower bound solves 1 - (1 - x)^5 = 0.025.
    assert psi_lo == pytest.approx(1 - 0.975**0.2, rel=1e-12)
    # Rounded values: phi in [0.443905, 0.974789], psi in [0.005051, 0.716418],
    # p* in [0.382570, 0.994845].
    np.testing.assert_allclose(est.phi_interval, [0.443905, 0.974789], atol=1e-6)
    np.testing.assert_allclose(est.psi_interval, [0.005051, 0.716418], atol=1e-6)
    assert float(est.lower) == pytest.approx(0.382570, abs=1e-6)
    assert float(est.upper) == pytest.approx(0.994845, abs=1e-6)


@pytest.mark.parametrize("k, n", [(0, 7), (3, 7), (7, 7), (1, 200), (57, 200)])
def test_wilson_matches_scipy(k, n):
    z = NormalDist().inv_cdf(0.975)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n, z)
    assert float(lo) == pytest.approx(ci.low, abs=1e-12)
    assert float(hi) == pytest.approx(ci.high, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 50, 200, 1000])
@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.975, 0.99, 1 - 1e-6])
def test_clopper_pearson_matches_scipy_beta_quantiles(n, confidence):
    k = np.arange(n + 1)
    t = (1 - confidence) / 2
    lo, hi = clopper_pearson_interval(k, n, confidence)
    want_lo = np.where(k > 0, beta.ppf(t, np.maximum(k, 1), n - k + 1), 0.0)
    want_hi = np.where(k < n, beta.ppf(1 - t, k + 1, np.maximum(n - k, 1)), 1.0)
    np.testing.assert_allclose(lo, want_lo, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(hi, want_hi, rtol=1e-10, atol=1e-11)
    # Edges exactly, and the closed forms there: P(K = n) = x^n, P(K = 0) = (1 - x)^n.
    assert float(lo[0]) == 0.0 and float(hi[-1]) == 1.0
    assert float(lo[-1]) == pytest.approx(t ** (1 / n), rel=1e-12)
    assert float(hi[0]) == pytest.approx(1 - t ** (1 / n), rel=1e-11)
    assert np.all(lo <= hi)
    # monotone in k, as the exact interval must be
    assert np.all(np.diff(lo) > 0) and np.all(np.diff(hi) > 0)


def test_clopper_pearson_empty_group_is_nan_and_validation():
    lo, hi = clopper_pearson_interval(0, 0, 0.95)
    assert math.isnan(float(lo)) and math.isnan(float(hi))
    lo, hi = jax.jit(clopper_pearson_interval)(0, 0, 0.95)
    assert math.isnan(float(lo)) and math.isnan(float(hi))
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson_interval(4, 3, 0.95)
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson_interval(1.5, 3, 0.95)
    with pytest.raises(ValueError, match="n must"):
        clopper_pearson_interval(0, -1, 0.95)
    for bad in (0.0, 1.0, math.nan):
        with pytest.raises(ValueError, match="confidence"):
            clopper_pearson_interval(1, 3, bad)


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_clopper_pearson_broadcasting_equals_loop(batch):
    rng = np.random.default_rng(batch)
    n = rng.integers(0, 60, size=(batch, 1))  # includes n = 0 sometimes for larger batches
    n[0, 0] = 0 if batch == 7 else n[0, 0]
    frac = np.array([0.0, 0.3, 1.0])
    k = np.floor(frac * n)  # shape (batch, 3): edges k = 0 and k = n included
    conf = np.linspace(0.8, 0.99, 3)  # shape (3,), broadcasts along the last axis
    lo, hi = clopper_pearson_interval(k, n, conf)
    assert lo.shape == hi.shape == (batch, 3)
    jlo, jhi = jax.jit(clopper_pearson_interval)(k, n, conf)
    for i in range(batch):
        for j in range(3):
            one = clopper_pearson_interval(k[i, j], n[i, 0], conf[j])
            # batched betainc may differ from the scalar one in the last bit
            np.testing.assert_allclose([lo[i, j], hi[i, j]], one, rtol=1e-13)
            np.testing.assert_allclose([jlo[i, j], jhi[i, j]], one, rtol=1e-13)
    # scalar n broadcast against a vector of counts
    lo, hi = clopper_pearson_interval(np.arange(batch), batch, 0.9)
    for i in range(batch):
        one = clopper_pearson_interval(i, batch, 0.9)
        np.testing.assert_allclose([lo[i], hi[i]], one, rtol=1e-13)


# --- exact coverage by enumeration -----------------------------------------------------------
# For n_correct correct and n_wrong wrong examples, the outcome is (k_c, k_w) with k_c ~
# Bin(n_correct, phi) and k_w ~ Bin(n_wrong, psi) independent. Every outcome is evaluated once
# through the public function (as boolean flags); coverage is then an exact weighted sum.

_SIZES = [(5, 3), (20, 7), (50, 50), (200, 10)]
_PHIS = [1.0, 0.99, 0.9, 0.5]


def _wilson_bad_psi(n_wrong, confidence):
    # Just below the old Wilson lower bound for psi at k_w = 1 (~0.145 / n_wrong at 0.95): a
    # near-oracle verifier there is missed by the Wilson construction whenever k_w >= 1.
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 4)
    return 0.99 * float(wilson_interval(1, n_wrong, z)[0])


def _psis(n_wrong, confidence):
    return [0.0, 0.15 / n_wrong, _wilson_bad_psi(n_wrong, confidence), 0.01, 0.3, 0.9]


def _all_outcomes(n_correct, n_wrong):
    k_c, k_w = np.meshgrid(np.arange(n_correct + 1), np.arange(n_wrong + 1), indexing="ij")
    k_c, k_w = k_c.ravel(), k_w.ravel()
    correct = np.concatenate([np.ones(n_correct, bool), np.zeros(n_wrong, bool)])
    i = np.arange(n_correct + n_wrong)
    kept = np.where(correct[None], i[None] < k_c[:, None], i[None] - n_correct < k_w[:, None])
    return k_c, k_w, np.broadcast_to(correct, kept.shape), kept


def _exact_coverage(k_c, k_w, n_correct, n_wrong, lower, upper, phi, psi):
    truth = phi / (phi + psi)
    weight = binom.pmf(k_c, n_correct, phi) * binom.pmf(k_w, n_wrong, psi)
    assert weight.sum() == pytest.approx(1.0, abs=1e-12)
    covered = (lower <= truth) & (truth <= upper)
    return float(weight[covered].sum())


def _old_wilson_bounds(k_c, k_w, n_correct, n_wrong, confidence):
    # The construction this module used before: Bonferroni-adjusted Wilson intervals.
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 4)
    phi_lo, phi_hi = (np.asarray(b) for b in wilson_interval(k_c, n_correct, z))
    psi_lo, psi_hi = (np.asarray(b) for b in wilson_interval(k_w, n_wrong, z))
    return phi_lo / (phi_lo + psi_hi), phi_hi / (phi_hi + psi_lo)


_batched_estimate = jax.jit(jax.vmap(estimate_breakdown_point, in_axes=(0, 0, None)))


@pytest.mark.parametrize("n_correct, n_wrong", _SIZES)
def test_exact_coverage_is_at_least_nominal(n_correct, n_wrong):
    k_c, k_w, correct, kept = _all_outcomes(n_correct, n_wrong)
    for confidence in (0.95, 0.9):
        est = _batched_estimate(correct, kept, confidence)
        lower, upper = np.asarray(est.lower), np.asarray(est.upper)
        np.testing.assert_array_equal(est.n_correct, n_correct)
        for phi in _PHIS:
            for psi in _psis(n_wrong, confidence):
                cov = _exact_coverage(k_c, k_w, n_correct, n_wrong, lower, upper, phi, psi)
                assert cov >= confidence - 1e-12, (n_correct, n_wrong, phi, psi, cov)


@pytest.mark.parametrize("n_correct, n_wrong", _SIZES)
def test_old_wilson_construction_undercovers_near_oracle(n_correct, n_wrong):
    # Regression check that the enumeration can fail: the Wilson version of the same
    # construction misses p* for a near-oracle verifier (phi = 1, psi just below the Wilson lower
    # bound at k_w = 1, ~0.145 / n_wrong at 0.95) whenever a wrong example is kept, so its
    # coverage is exactly P(k_w = 0) = (1 - psi)^n_wrong ~ exp(-0.145) ~ 0.866 < 0.95.
    k_c, k_w, _, _ = _all_outcomes(n_correct, n_wrong)
    phi = 1.0
    for confidence in (0.95, 0.9):
        psi = _wilson_bad_psi(n_wrong, confidence)
        lower, upper = _old_wilson_bounds(k_c, k_w, n_correct, n_wrong, confidence)
        cov = _exact_coverage(k_c, k_w, n_correct, n_wrong, lower, upper, phi, psi)
        assert cov == pytest.approx((1 - psi) ** n_wrong, abs=1e-12)
        assert cov < 0.87 < confidence, cov


def _simulate(rng, reps, n, p, phi, psi):
    correct = rng.random((reps, n)) >= p
    kept = rng.random((reps, n)) < np.where(correct, phi, psi)
    return correct, kept


@pytest.mark.parametrize(
    "p, phi, psi",
    [(0.3, 0.9, 0.3), (0.5, 0.6, 0.5), (0.2, 0.95, 0.05), (0.4, 0.3, 0.1)],
)
def test_coverage_by_simulation(p, phi, psi):
    # 2000 repetitions of n = 200 labelled decisions (the correct/wrong split is random here,
    # unlike in the exact enumeration above). The Clopper-Pearson + Bonferroni + projection
    # interval is conservative. Require >= 0.93 (nominal minus 2 points; the binomial standard
    # error of the estimate at 0.95 is 0.5 points).
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


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_vmap_equals_loop_and_traced_confidence_does_not_recompile(batch):
    correct, kept = _simulate(np.random.default_rng(5), batch, 50, 0.35, 0.8, 0.4)
    batched = jax.vmap(estimate_breakdown_point, in_axes=(0, 0, None))(correct, kept, 0.9)
    assert batched.phi_interval.shape == (batch, 2)
    # confidence batched too, one level per sample
    levels = np.linspace(0.8, 0.99, batch)
    per_level = jax.jit(jax.vmap(estimate_breakdown_point))(correct, kept, levels)
    for i in range(batch):
        one = estimate_breakdown_point(correct[i], kept[i], 0.9)
        for got, want in zip(batched, one):
            np.testing.assert_allclose(got[i], want, rtol=1e-13)
        one = estimate_breakdown_point(correct[i], kept[i], levels[i])
        for got, want in zip(per_level, one):
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
