"""Theory of the ridge classifier: closed forms, reductions, limits, and agreement with simulation."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params, over_seeds, summarize

rates = st.floats(0.0, 1.0)
pos = st.floats(0.05, 1.0)


# ---------------------------------------------------------------- closed forms


def test_breakdown_point_special_cases():
    assert float(T.breakdown_point(1.0, 1.0)) == 0.5  # no verifier
    assert float(T.breakdown_point(1.0, 0.0)) == 1.0  # oracle
    assert float(T.breakdown_point(0.9, 0.3)) == pytest.approx(0.75, abs=1e-15)
    np.testing.assert_allclose(
        T.breakdown_point(jnp.array([1.0, 0.5]), 0.25), [0.8, 2 / 3], rtol=1e-15
    )


@given(p=rates, phi=pos, psi=pos)
def test_effective_noise_below_half_iff_below_breakdown(p, phi, psi):
    eps = float(T.effective_noise(p, phi, psi))
    pstar = float(T.breakdown_point(phi, psi))
    assert eps == pytest.approx(p * psi / ((1 - p) * phi + p * psi), rel=1e-12)
    if abs(p - pstar) > 1e-9:
        assert (eps < 0.5) == (p < pstar)


def test_infinite_data_accuracy_three_regimes():
    snr = 1.3
    pstar = float(T.breakdown_point(0.8, 0.4))  # 2/3
    assert float(T.infinite_data_accuracy(snr, 0.5, 0.8, 0.4)) == pytest.approx(
        norm.cdf(snr), abs=1e-15
    )
    assert float(T.infinite_data_accuracy(snr, 0.9, 0.8, 0.4)) == pytest.approx(
        norm.cdf(-snr), abs=1e-15
    )
    assert float(T.infinite_data_accuracy(snr, 2 / 3, 0.8, 0.4)) == pytest.approx(0.5, abs=1e-12)
    assert pstar == pytest.approx(2 / 3)
    assert float(T.bayes_accuracy(snr)) == pytest.approx(norm.cdf(snr), abs=1e-15)
    assert float(T.keep_fraction(0.25, 0.8, 0.4)) == pytest.approx(0.75 * 0.8 + 0.25 * 0.4)


@given(ratio=st.floats(0.01, 100.0), ratio2=st.floats(0.01, 100.0))
def test_breakdown_point_monotone_in_ratio(ratio, ratio2):
    # p* = 1 / (1 + psi/phi) decreases in psi/phi
    a = (
        float(T.breakdown_point(1.0, ratio))
        if ratio <= 1
        else float(T.breakdown_point(1 / ratio, 1.0))
    )
    b = (
        float(T.breakdown_point(1.0, ratio2))
        if ratio2 <= 1
        else float(T.breakdown_point(1 / ratio2, 1.0))
    )
    if ratio < ratio2:
        assert a >= b
    assert 0.0 <= a <= 1.0


# ---------------------------------------------------------------- reductions (exact algebra)


@settings(max_examples=60, deadline=None)
@given(
    n=st.floats(20, 1e5),
    d=st.floats(10, 2000),
    snr=st.floats(0.0, 4.0),
    eps=rates,
    lam=st.floats(1e-3, 10.0),
)
def test_ridge_accuracy_equals_paper_clean_closed_form(n, d, snr, eps, lam):
    """The group derivation reproduces the proportional-regime (arXiv 2406.07515, 2410.08942) clean-keep formula to rounding error."""
    ours = float(T.ridge_accuracy(n, d, snr, eps, 1.0, 1.0, lam))
    ref = float(T.clean_ridge_accuracy(n, d, snr, eps, lam))
    assert ours == pytest.approx(ref, abs=1e-11)


@settings(max_examples=60, deadline=None)
@given(
    n_real=st.floats(0, 5000),
    n_syn=st.floats(10, 5000),
    d=st.floats(10, 2000),
    snr=st.floats(0.1, 3.0),
    p=rates,
    phi=pos,
    psi=pos,
    lam=st.floats(1e-3, 10.0),
)
def test_mixed_reduces_to_clean_keep_problem(n_real, n_syn, d, snr, p, phi, psi, lam):
    """arXiv 2406.07515 / 2410.08942: N_k = n_real + alpha n_syn samples, eps = p psi n_syn / N_k, ridge lam N/N_k."""
    alpha = (1 - p) * phi + p * psi
    nk = n_real + alpha * n_syn
    eps = p * psi * n_syn / nk
    ref = float(T.clean_ridge_accuracy(nk, d, snr, eps, lam * (n_real + n_syn) / nk))
    got = float(T.mixed_ridge_accuracy(n_real, n_syn, d, snr, p, phi, psi, lam))
    assert got == pytest.approx(ref, abs=1e-10)


def test_mixed_with_no_real_equals_ridge_accuracy():
    args = (1600.0, 400.0, 2.0, 0.3, 0.5, 0.5, 0.5)
    assert float(T.mixed_ridge_accuracy(0.0, *args)) == float(T.ridge_accuracy(*args))


def test_p_zero_is_clean_ridge_on_kept_samples():
    # with p = 0 only correct samples exist; a fraction phi is kept
    got = float(T.ridge_accuracy(2000, 500, 1.5, 0.0, 0.6, 0.9, 0.2))
    ref = float(T.clean_ridge_accuracy(0.6 * 2000, 500, 1.5, 0.0, 0.2 / 0.6))
    assert got == pytest.approx(ref, abs=1e-12)


def test_shifted_newton_path_equals_closed_form():
    """With the unshifted law, the fixed-point solve must give the closed-form answer."""
    args = (300.0, 1500.0, 500.0, 1.7, 0.35, 0.9, 0.4, 0.3)
    closed = float(T.mixed_ridge_accuracy(*args))
    # a traced sigma forces the Newton solver
    newton = float(jax.jit(lambda s: T.shifted_mixed_ridge_accuracy(*args, 1.0, 0.0, s))(1.0))
    assert newton == pytest.approx(closed, abs=1e-12)
    lim = jax.jit(lambda s: T.ridge_limit(*args[:1], *args[1:], 1.0, 0.0, s))(1.0)
    assert bool(lim.converged)


def test_solve_delta_matches_quadratic_and_residual():
    eta, lam = 0.7, 0.05
    pi = jnp.array([0.3, 0.2, 0.1])
    s2 = jnp.array([1.0, 4.0, 0.25])
    delta, ok = T.solve_delta(eta, lam, pi, s2)
    resid = delta * (jnp.sum(pi * s2 / (1 + s2 * delta)) + lam) - eta
    assert bool(ok) and abs(float(resid)) < 1e-13
    # grad via implicit differentiation equals finite differences
    g = jax.grad(lambda e: T.solve_delta(e, lam, pi, s2)[0])(eta)
    h = 1e-6
    fd = (T.solve_delta(eta + h, lam, pi, s2)[0] - T.solve_delta(eta - h, lam, pi, s2)[0]) / (2 * h)
    assert float(g) == pytest.approx(float(fd), rel=1e-6)


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("p", [0.1, 0.4, 0.8, 0.95])
def test_infinite_ratio_limit(p):
    """n/d -> inf gives the infinite-data accuracy; the gap shrinks like d/n."""
    snr, phi, psi, lam, d = 1.5, 0.9, 0.5, 0.3, 100.0
    lim = float(T.infinite_data_accuracy(snr, p, phi, psi))
    gaps = [
        abs(float(T.ridge_accuracy(d * r, d, snr, p, phi, psi, lam)) - lim) for r in (1e3, 1e4, 1e5)
    ]
    assert gaps[-1] < 1e-4
    slopes = np.diff(np.log10(gaps))
    np.testing.assert_allclose(slopes, -1.0, atol=0.1)  # error ~ (d/n)^1


def test_transition_sharpens_with_ratio():
    """At finite n/d the change of sign at p* is smooth; its slope grows with n/d."""
    phi, psi, snr, lam = 1.0, 0.5, 1.5, 0.1
    pstar = 2 / 3
    slopes = []
    for ratio in (1, 10, 100, 1000):
        f = lambda p, r=ratio: T.ridge_accuracy(200.0 * r, 200.0, snr, p, phi, psi, lam)
        assert float(f(pstar)) == pytest.approx(0.5, abs=1e-12)
        slopes.append(-float(jax.grad(f)(pstar)))
    assert all(b > a for a, b in itertools.pairwise(slopes))


# ---------------------------------------------------------------- transformations


def test_jit_vmap_grad():
    f = lambda p, lam: T.ridge_accuracy(1000.0, 300.0, 1.2, p, 0.9, 0.4, lam)
    ps = jnp.linspace(0.0, 1.0, 7)
    looped = np.array([float(f(p, 0.5)) for p in ps])
    np.testing.assert_allclose(jax.vmap(f, (0, None))(ps, 0.5), looped, atol=1e-14)
    np.testing.assert_allclose(jax.jit(f)(ps, 0.5), looped, atol=1e-14)
    g = jax.grad(f, argnums=(0, 1))(0.3, 0.5)
    h = 1e-6
    fd = (f(0.3 + h, 0.5) - f(0.3 - h, 0.5)) / (2 * h)
    assert float(g[0]) == pytest.approx(float(fd), rel=1e-5)
    gs = jax.grad(
        lambda s: T.shifted_mixed_ridge_accuracy(
            100.0, 800.0, 300.0, 1.5, 0.2, 1.0, 0.4, 0.3, 0.8, 0.5, s
        )
    )(1.3)
    assert np.isfinite(float(gs))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"p": 1.5}, "p"),
        ({"p": math.nan}, "p"),
        ({"phi": -0.1}, "phi"),
        ({"phi": 0.0, "psi": 0.0}, "phi"),
        ({"lam": -1.0}, "lam"),
        ({"lam": 0.0}, "lam"),
        ({"d": 0.0}, "d"),
        ({"n": -5.0}, "n"),
        ({"snr": math.inf}, "snr"),
    ],
)
def test_invalid_inputs_raise_with_parameter_name(kwargs, name):
    args = {"n": 100.0, "d": 50.0, "snr": 1.0, "p": 0.2, "phi": 1.0, "psi": 0.5, "lam": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        T.ridge_accuracy(**args)


@settings(max_examples=40, deadline=None)
@given(
    n=st.floats(1, 1e6),
    d=st.floats(1, 1e4),
    snr=st.floats(0, 10),
    p=rates,
    phi=pos,
    psi=pos,
    lam=st.floats(1e-4, 100),
)
def test_accuracies_are_probabilities(n, d, snr, p, phi, psi, lam):
    a = float(T.ridge_accuracy(n, d, snr, p, phi, psi, lam))
    assert 0.0 <= a <= 1.0
    b = float(T.shifted_mixed_ridge_accuracy(n / 3, n, d, snr, p, phi, psi, lam, 0.5, 1.0, 1.7))
    assert 0.0 <= b <= 1.0


# ---------------------------------------------------------------- theory vs simulation

# Tolerance: the simulated mean has standard error SE over seeds (the per-seed spread is
# O(1/sqrt(d))); the proportional-limit formula ignores O(1/d) finite-size terms. We accept
# |sim - theory| <= 4 SE + 1/d.
SIM_CASES = [
    # n, d, snr, p, phi, psi, lam          regime
    (1600, 400, 2.0, 0.3, 0.5, 0.5, 0.5),  # the papers' check: no verifier, keep half
    (200, 400, 1.5, 0.2, 1.0, 0.3, 0.1),  # n < d (dual solver), p < p*
    (8000, 200, 1.0, 0.6, 0.9, 0.3, 1.0),  # n >> d, large lam, p < p* = 0.75
    (4000, 200, 1.0, 0.4, 0.5, 1.0, 0.05),  # p > p* = 1/3: below 1/2
    (1000, 250, 1.2, 0.5, 0.3, 0.3, 0.01),  # keep fraction 0.3, small lam, p = p*: 1/2
]


@pytest.mark.parametrize("case", SIM_CASES)
def test_ridge_accuracy_matches_simulation(case, key):
    n, d, snr, p, phi, psi, lam = case
    spec = SimSpec(n_max=n, d=d)
    m, se = summarize(
        over_seeds(key, make_params(n, snr, p=p, phi=phi, psi=psi, lam=lam), spec, 24)
    )
    th = float(T.ridge_accuracy(n, d, snr, p, phi, psi, lam))
    assert abs(float(m.acc[0]) - th) <= 4 * float(se.acc[0]) + 1.0 / d


MIXED_CASES = [
    # n_real, n_syn, d, snr, p, phi, psi, lam, beta, gamma, sigma
    (400, 1600, 400, 2.0, 0.3, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0),
    (200, 800, 400, 1.5, 0.2, 1.0, 0.3, 0.1, 0.7, 0.8, 1.5),
    (600, 600, 300, 1.0, 0.45, 0.8, 0.6, 1.0, 0.5, 1.0, 2.0),
    (100, 2000, 250, 1.5, 0.7, 1.0, 0.2, 0.2, 1.2, 0.5, 0.6),
]


@pytest.mark.parametrize("case", MIXED_CASES)
def test_mixed_and_shifted_match_simulation(case, key):
    nr, ns, d, snr, p, phi, psi, lam, beta, gamma, sigma = case
    spec = SimSpec(n_max=ns, d=d, n_real_max=nr)
    prm = make_params(
        ns,
        snr,
        p=p,
        phi=phi,
        psi=psi,
        lam=lam,
        n_real=nr,
        mix_real=1.0,
        beta=beta,
        gamma=gamma,
        sigma=sigma,
    )
    m, se = summarize(over_seeds(key, prm, spec, 24))
    th = float(T.shifted_mixed_ridge_accuracy(nr, ns, d, snr, p, phi, psi, lam, beta, gamma, sigma))
    assert abs(float(m.acc[0]) - th) <= 4 * float(se.acc[0]) + 1.0 / d


@pytest.mark.slow
@pytest.mark.parametrize("case", SIM_CASES[:4])
def test_ridge_accuracy_matches_simulation_large_d(case):
    """At d = 800 with 64 seeds the finite-size allowance is halved."""
    n, d, snr, p, phi, psi, lam = case
    n, d = n * 2, d * 2
    spec = SimSpec(n_max=n, d=d)
    m, se = summarize(
        over_seeds(jax.random.key(7), make_params(n, snr, p=p, phi=phi, psi=psi, lam=lam), spec, 64)
    )
    th = float(T.ridge_accuracy(n, d, snr, p, phi, psi, lam))
    assert abs(float(m.acc[0]) - th) <= 4 * float(se.acc[0]) + 1.0 / d


@given(
    name=st.sampled_from(["p", "phi", "psi"]),
    bad=st.one_of(st.floats(-1e6, -1e-9), st.floats(1 + 1e-9, 1e6), st.just(math.nan)),
)
def test_out_of_range_rates_are_rejected_before_compute(name, bad):
    args = {"n": 100.0, "d": 50.0, "snr": 1.0, "p": 0.2, "phi": 1.0, "psi": 0.5, "lam": 0.1}
    args[name] = bad
    with pytest.raises(ValueError, match=rf"^{name} must be a number in \[0, 1\]"):
        T.ridge_accuracy(**args)
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        T.mixed_ridge_accuracy(n_real=10.0, n_syn=args.pop("n"), **args)
