"""Bivariate normal CDF: accuracy against independent references, limits, properties, autodiff."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

import gmmcollapse  # noqa: F401  (turns on float64)
from gmmcollapse.theory import bivariate_normal_cdf

bvn = jax.jit(bivariate_normal_cdf)

RHOS = [-1.0, -0.999999, -0.95, -0.925, -0.9249, -0.5, 0.0, 0.3, 0.93, 0.99999, 1.0]
LIMITS = [-9.0, -3.0, -1.5, -0.3, 0.7, 2.0, 5.5]


def owen_reference(h, k, rho):
    """Owen (1956): Phi2 = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - [hk < 0]/2, h, k != 0."""
    if rho == 1.0:
        return norm.cdf(min(h, k))
    if rho == -1.0:
        return max(0.0, norm.cdf(h) + norm.cdf(k) - 1.0)
    s = math.sqrt((1.0 - rho) * (1.0 + rho))
    a_h = (k - rho * h) / (h * s)
    a_k = (h - rho * k) / (k * s)
    beta = 0.5 if h * k < 0 else 0.0
    t = scipy.special.owens_t(h, a_h) + scipy.special.owens_t(k, a_k)
    return 0.5 * (norm.cdf(h) + norm.cdf(k)) - t - beta


def quad_reference(h, k, rho):
    """Adaptive quadrature of int_{-inf}^h phi(x) Phi((k - rho x)/s) dx, split at the kink."""
    s = math.sqrt((1.0 - rho) * (1.0 + rho))
    lo, hi = -40.0, min(h, 40.0)
    cuts = [lo, hi]
    if rho != 0.0:
        x0 = k / rho
        cuts += [c for c in (x0 - 12 * s, x0, x0 + 12 * s) if lo < c < hi]
    cuts = sorted(cuts)

    def f(x):
        return norm.pdf(x) * scipy.special.ndtr((k - rho * x) / s)

    return sum(
        scipy.integrate.quad(f, a, b, epsabs=1e-300, epsrel=1e-13, limit=500)[0]
        for a, b in itertools.pairwise(cuts)
    )


def test_grid_against_owens_t():
    h, k, r = (np.array(v).ravel() for v in np.meshgrid(LIMITS, LIMITS, RHOS, indexing="ij"))
    ref = np.array([owen_reference(*args) for args in zip(h, k, r)])
    got = np.asarray(bvn(h, k, r))
    err = np.max(np.abs(got - ref))
    assert err < 1e-14, err  # measured: 2.5e-15


def test_zero_limits_against_quadrature_and_closed_form():
    # Owen's formula divides by h and k; check the axes by quadrature, the origin exactly.
    rhos = np.array([-0.999999, -0.5, 0.3, 0.93, 0.99999])
    got0 = np.asarray(bvn(0.0, 0.0, rhos))
    assert np.max(np.abs(got0 - (0.25 + np.arcsin(rhos) / (2 * np.pi)))) < 1e-15
    for r in rhos:
        for x in (-2.5, 3.0):
            assert abs(float(bvn(x, 0.0, r)) - quad_reference(x, 0.0, r)) < 1e-14
            assert abs(float(bvn(0.0, x, r)) - quad_reference(0.0, x, r)) < 1e-14


def test_against_scipy_multivariate_normal():
    for h, k, r in [(0.3, -0.5, 0.6), (1.0, 2.0, -0.95), (-1.0, 0.5, 0.99999)]:
        ref = multivariate_normal.cdf(
            [h, k],
            mean=[0.0, 0.0],
            cov=[[1.0, r], [r, 1.0]],
            abseps=1e-12,
            releps=1e-12,
            rng=np.random.default_rng(0),
        )
        assert abs(float(bvn(h, k, r)) - ref) < 1e-13


def test_switch_point_is_continuous():
    h = jnp.array([-1.2, 0.3, 2.0])
    k = jnp.array([0.5, -0.7, 1.9])
    for sgn in (1.0, -1.0):
        below = bvn(h, k, sgn * np.nextafter(0.925, 0.0))
        at = bvn(h, k, sgn * 0.925)
        assert np.max(np.abs(np.asarray(below - at))) < 1e-14


def test_infinite_limits_and_endpoints():
    inf = np.inf
    for r in (-1.0, -0.97, 0.2, 0.99, 1.0):
        for x in (-2.0, 0.0, 1.3):
            assert float(bvn(inf, x, r)) == pytest.approx(norm.cdf(x), abs=1e-15)
            assert float(bvn(x, inf, r)) == pytest.approx(norm.cdf(x), abs=1e-15)
            assert float(bvn(-inf, x, r)) == 0.0
            assert float(bvn(x, -inf, r)) == 0.0
        assert float(bvn(inf, inf, r)) == 1.0
        assert float(bvn(-inf, inf, r)) == 0.0
    x = np.array([-1.0, 0.2, 2.5])
    y = np.array([0.5, 0.2, -0.4])
    np.testing.assert_allclose(bvn(x, y, 1.0), norm.cdf(np.minimum(x, y)), atol=1e-16)
    np.testing.assert_allclose(
        bvn(x, y, -1.0), np.maximum(0.0, norm.cdf(x) + norm.cdf(y) - 1.0), atol=1e-16
    )


def test_broadcasting_jit_vmap():
    h = jnp.linspace(-3, 3, 5)[:, None]
    k = jnp.linspace(-2, 2, 4)[None, :]
    out = bvn(h, k, 0.4)
    assert out.shape == (5, 4) and out.dtype == jnp.float64
    looped = np.array([[float(bvn(a, b, 0.4)) for b in k[0]] for a in h[:, 0]])
    np.testing.assert_allclose(np.asarray(out), looped, rtol=1e-15, atol=1e-17)
    vm = jax.jit(jax.vmap(jax.vmap(bivariate_normal_cdf, (None, 0, None)), (0, None, None)))
    np.testing.assert_allclose(vm(h[:, 0], k[0], 0.4), out, atol=1e-16)


_grad = jax.jit(jax.grad(bivariate_normal_cdf, argnums=(0, 1, 2)))


@pytest.mark.parametrize("rho", [-0.99999, -0.95, -0.6, 0.0, 0.5, 0.93, 0.99999])
def test_gradients_are_the_densities(rho):
    # dPhi2/dh = phi(h) Phi((k - rho h)/s);  dPhi2/drho = bivariate normal density at (h, k).
    h, k = 0.4, -0.3
    s = math.sqrt(1 - rho * rho)
    gh, gk, gr = _grad(h, k, rho)
    assert float(gh) == pytest.approx(norm.pdf(h) * norm.cdf((k - rho * h) / s), rel=1e-11)
    assert float(gk) == pytest.approx(norm.pdf(k) * norm.cdf((h - rho * k) / s), rel=1e-11)
    dens = multivariate_normal.pdf([h, k], cov=[[1, rho], [rho, 1]])
    assert float(gr) == pytest.approx(dens, rel=1e-9, abs=1e-14)


def test_gradients_finite_at_edges():
    for h, k, r in [
        (0.5, 0.5, 1.0),
        (0.5, -0.5, -1.0),
        (0.3, 0.3, 0.925),
        (1.0, 1.0, 0.9999999999),
        (jnp.inf, 0.2, 0.5),
        (-jnp.inf, 0.2, -0.99),
        (50.0, -60.0, 0.99),
        (0.0, 0.0, 0.0),
    ]:
        g = _grad(float(h), float(k), float(r))
        assert all(np.isfinite(np.asarray(x)) for x in g), (h, k, r, g)


def test_validation():
    with pytest.raises(ValueError, match=r"rho must be a number in \[-1, 1\]"):
        bivariate_normal_cdf(0.0, 0.0, 1.5)
    with pytest.raises(ValueError, match="h must be a number"):
        bivariate_normal_cdf(np.nan, 0.0, 0.0)


reals = st.floats(-8.0, 8.0, allow_nan=False)
corrs = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(reals, reals, corrs, st.floats(0.0, 2.0), st.floats(0.0, 0.5))
def test_properties(h, k, rho, dx, drho):
    rho2 = min(1.0, rho + drho)
    vals = np.asarray(
        bvn(
            jnp.array([h, k, h + dx, h, h, h]),
            jnp.array([k, h, k, k + dx, k, -k]),
            jnp.array([rho, rho, rho, rho, rho2, -rho]),
        )
    )
    v, v_swap, v_h, v_k, v_rho, v_refl = vals
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(v_swap, abs=1e-15)  # symmetric in (h, k)
    assert v_h >= v - 1e-15 and v_k >= v - 1e-15  # nondecreasing in h and k
    assert v_rho >= v - 1e-15  # nondecreasing in rho (the derivative is a density)
    ph, pk = norm.cdf(h), norm.cdf(k)
    assert max(0.0, ph + pk - 1.0) - 1e-15 <= v <= min(ph, pk) + 1e-15  # Frechet bounds
    # Phi2(h, k; rho) + Phi2(h, -k; -rho) = P(X <= h)
    assert v + v_refl == pytest.approx(ph, abs=2e-15)


def test_custom_derivatives_match_finite_differences():
    # The JVP rule is hand-written: check it against central differences of the values.
    eps = 1e-6
    for h, k, r in [(0.4, -0.3, 0.2), (-1.1, 0.7, -0.96), (0.8, 1.5, 0.97), (2.0, -2.5, 0.6)]:
        g = _grad(h, k, r)
        fd = [
            (float(bvn(h + eps, k, r)) - float(bvn(h - eps, k, r))) / (2 * eps),
            (float(bvn(h, k + eps, r)) - float(bvn(h, k - eps, r))) / (2 * eps),
            (float(bvn(h, k, r + eps)) - float(bvn(h, k, r - eps))) / (2 * eps),
        ]
        np.testing.assert_allclose(np.array(g), fd, rtol=1e-7, atol=1e-10)
    # second derivatives exist too (the rule is itself differentiable)
    hess = jax.jit(jax.hessian(lambda v: bivariate_normal_cdf(v[0], v[1], v[2])))
    assert np.all(np.isfinite(np.asarray(hess(jnp.array([0.3, -0.2, 0.5])))))
