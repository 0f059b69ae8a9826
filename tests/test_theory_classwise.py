"""Class-specific rates: closed form vs symmetric theory, Monte Carlo, optimality conditions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.theory import (
    class_breakdown_margin,
    class_infinite_data_accuracy,
    class_infinite_data_limit,
    class_is_optimal,
    infinite_data_accuracy,
)

RATE_NAMES = ("p_pos", "p_neg", "phi_pos", "phi_neg", "psi_pos", "psi_neg")


def _rates(*values):
    """Keyword arguments for the six class-specific rates, in signature order."""
    return dict(zip(RATE_NAMES, values, strict=True))


# The worked example of docs/class_specific.md: both classes below their own p* = 0.75, yet the
# learner with an intercept is not Bayes-optimal.
EXAMPLE = _rates(0.1, 0.4, 0.9, 0.6, 0.3, 0.2)
# Different rates per class but the same kept-correct (0.45) and kept-wrong (0.05) mass.
BALANCED = _rates(0.1, 0.25, 0.5, 0.6, 0.5, 0.2)


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_symmetric_rates_reduce_to_infinite_data_accuracy(bias, lam):
    snr, p, phi, psi = np.meshgrid(
        [0.0, 0.5, 1.0, 2.5],
        np.linspace(0, 1, 11),
        [0.1, 0.5, 1.0],
        [0.0, 0.3, 1.0],
        indexing="ij",
    )
    away = np.abs(p - phi / (phi + psi)) > 1e-6  # at p = p* the sign of ~0 is rounding noise
    snr, p, phi, psi = (a[away] for a in (snr, p, phi, psi))
    got = class_infinite_data_accuracy(snr, p, p, phi, phi, psi, psi, lam, bias=bias)
    want = infinite_data_accuracy(snr, p, phi, psi)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    lim = class_infinite_data_limit(snr, p, p, phi, phi, psi, psi, lam, bias=bias)
    np.testing.assert_array_equal(lim.bias, 0.0)
    margin = class_breakdown_margin(p, p, phi, phi, psi, psi, bias=bias)
    np.testing.assert_array_equal(np.sign(margin), np.sign(phi / (phi + psi) - p))


def _monte_carlo_fit(rng, snr, rates, lam, bias, n=2_000_000, d=3):
    """Ridge (intercept unpenalised) on the kept samples, (1/N) normalisation with N = all."""
    mu = np.zeros(d)
    mu[0] = snr
    y = rng.choice([-1.0, 1.0], n)
    x = y[:, None] * mu + rng.standard_normal((n, d))
    pos = y > 0
    wrong = rng.random(n) < np.where(pos, rates["p_pos"], rates["p_neg"])
    keep_rate = np.where(
        wrong,
        np.where(pos, rates["psi_pos"], rates["psi_neg"]),
        np.where(pos, rates["phi_pos"], rates["phi_neg"]),
    )
    kept = rng.random(n) < keep_rate
    feats = x[kept]
    if bias:
        feats = np.hstack([feats, np.ones((feats.shape[0], 1))])
    labels = np.where(wrong, -y, y)[kept]
    penalty = lam * np.eye(feats.shape[1])
    if bias:
        penalty[-1, -1] = 0.0
    sol = np.linalg.solve(feats.T @ feats / n + penalty, feats.T @ labels / n)
    w, b = sol[:d], (sol[d] if bias else 0.0)
    nw = np.linalg.norm(w)
    acc = 0.5 * (norm.cdf((w @ mu + b) / nw) + norm.cdf((w @ mu - b) / nw))
    return w, b, acc, mu


@pytest.mark.parametrize(
    "snr, rates, lam, bias",
    [
        (1.0, EXAMPLE, 0.0, True),
        (1.0, EXAMPLE, 0.3, True),
        (1.0, EXAMPLE, 0.0, False),
        (
            1.5,
            _rates(0.3, 0.1, 0.5, 0.9, 0.5, 0.1),
            0.0,
            True,
        ),
        # class -1 beyond its own breakdown point (k_- < 0) but k_+ + k_- > 0
        (
            2.0,
            _rates(0.05, 0.7, 0.9, 0.8, 0.5, 0.5),
            0.1,
            True,
        ),
    ],
)
def test_monte_carlo_matches_closed_form(snr, rates, lam, bias):
    # Coefficient standard errors are about 1/sqrt(#kept) ~ 1e-3 at N = 2e6 (measured
    # deviations 1e-4 to 2e-3); tolerances are ~5 standard errors.
    w, b, acc, mu = _monte_carlo_fit(np.random.default_rng(20240607), snr, rates, lam, bias)
    lim = class_infinite_data_limit(snr, **rates, lam=lam, bias=bias)
    np.testing.assert_allclose(w, float(lim.w_scale) * mu, atol=5e-3)
    assert abs(b - float(lim.bias)) < 5e-3
    assert abs(acc - float(lim.accuracy)) < 2e-3


def test_worked_example_bias_costs_accuracy():
    # Hand computation in docs/class_specific.md.
    lim = class_infinite_data_limit(1.0, **EXAMPLE)
    s = 0.5784 / 1.5584
    b = (0.5 - 0.4 * s) / 1.28
    t = b / s
    acc = 0.5 * (norm.cdf(1 + t) + norm.cdf(1 - t))
    assert float(lim.w_scale) == pytest.approx(s, rel=1e-12)
    assert float(lim.bias) == pytest.approx(b, rel=1e-12)
    assert float(lim.accuracy) == pytest.approx(acc, rel=1e-12)
    assert float(lim.accuracy) == pytest.approx(0.780823, abs=1e-6)
    assert float(lim.margin) == pytest.approx(0.78 / 0.84 + 0.28 / 0.44, rel=1e-12)
    assert float(lim.bayes_gap) > 0.06
    assert not bool(class_is_optimal(1.0, **EXAMPLE))
    # Without the intercept the same rates give the Bayes accuracy.
    assert bool(class_is_optimal(1.0, **EXAMPLE, bias=False))
    # The loss is quadratic in t for small t: (m phi(m) / 2) t^2 is within 10% here.
    assert float(lim.bayes_gap) == pytest.approx(0.5 * norm.pdf(1.0) * t * t, rel=0.1)


@pytest.mark.parametrize("snr", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("lam", [0.0, 2.0])
def test_balanced_kept_masses_are_bayes_optimal(snr, lam):
    lim = class_infinite_data_limit(snr, **BALANCED, lam=lam)
    assert abs(float(lim.bias)) < 1e-15
    assert float(lim.accuracy) == pytest.approx(norm.cdf(snr), abs=1e-14)
    assert bool(class_is_optimal(snr, **BALANCED, lam=lam))


def test_bias_zero_condition_matches_formula():
    # b = 0 iff (u+ - u-)(V^2/2 + 2 v+ v- m^2 + lam V) = m^2 (v+ - v-)(u+ v- + u- v+).
    rng = np.random.default_rng(0)
    rates = rng.uniform(0, 1, (6, 200))
    snr, lam = rng.uniform(0.1, 3, 200), rng.uniform(0, 1, 200)
    p_pos, p_neg, phi_pos, phi_neg, psi_pos, psi_neg = rates
    u_pos, v_pos = (1 - p_pos) * phi_pos - p_pos * psi_pos, (1 - p_pos) * phi_pos + p_pos * psi_pos
    u_neg, v_neg = (1 - p_neg) * phi_neg - p_neg * psi_neg, (1 - p_neg) * phi_neg + p_neg * psi_neg
    big_v = v_pos + v_neg
    lhs = (u_pos - u_neg) * (big_v**2 / 2 + 2 * v_pos * v_neg * snr**2 + lam * big_v)
    rhs = snr**2 * (v_pos - v_neg) * (u_pos * v_neg + u_neg * v_pos)
    b = class_infinite_data_limit(snr, *rates, lam=lam).bias
    den = big_v * (big_v**2 / 2 + 2 * v_pos * v_neg * snr**2 + lam * big_v)
    np.testing.assert_allclose(b, (lhs - rhs) / den, atol=1e-13)


def test_no_bias_learner_direction_and_anti_alignment():
    # sum_y u_y < 0: anti-aligned, accuracy 1 - Phi(m), with or without ridge.
    rates = _rates(0.8, 0.5, 0.9, 0.9, 0.9, 0.9)
    assert float(class_breakdown_margin(**rates, bias=False)) < 0
    for lam in (0.0, 1.0):
        acc = class_infinite_data_accuracy(1.2, **rates, lam=lam, bias=False)
        assert float(acc) == pytest.approx(1 - norm.cdf(1.2), abs=1e-14)


def test_the_two_margins_can_disagree():
    # Class +1 rarely kept but clean (k_+ = 1); class -1 kept a lot, mostly wrong (k_- < 0).
    rates = _rates(0.1, 0.6, 0.1, 1.0, 0.0, 0.9)
    with_bias = class_infinite_data_limit(1.0, **rates, bias=True)
    no_bias = class_infinite_data_limit(1.0, **rates, bias=False)
    assert float(with_bias.margin) > 0 and float(with_bias.w_scale) > 0
    assert float(no_bias.margin) < 0 and float(no_bias.w_scale) < 0
    assert float(no_bias.accuracy) == pytest.approx(1 - norm.cdf(1.0), abs=1e-14)


@pytest.mark.parametrize("bias", [True, False])
def test_empty_kept_sets_give_one_half(bias):
    # Nothing kept; only class +1 kept; only class -1 kept (the latter two only matter with bias).
    cases = [
        _rates(0.0, 1.0, 0.0, 0.7, 0.5, 0.0),
        _rates(0.2, 0.3, 0.9, 0.0, 0.4, 0.0),
        _rates(0.2, 0.3, 0.0, 0.8, 0.0, 0.1),
    ]
    grad = jax.grad(class_infinite_data_accuracy, argnums=tuple(range(8)))
    for i, rates in enumerate(cases):
        lim = class_infinite_data_limit(1.0, **rates, bias=bias)
        if bias or i == 0:
            assert float(lim.accuracy) == 0.5
            assert float(lim.margin) == 0.0
        for leaf in lim:
            assert np.all(np.isfinite(leaf))
        g = grad(1.0, *rates.values(), 0.0, bias)
        assert all(np.isfinite(gi) for gi in g)


def test_jit_vmap_grad():
    args = (1.3, 0.15, 0.35, 0.8, 0.7, 0.3, 0.25, 0.2)
    f = jax.jit(class_infinite_data_accuracy, static_argnames="bias")
    assert float(f(*args)) == pytest.approx(float(class_infinite_data_accuracy(*args)), abs=1e-15)
    # vmap over a grid of p_neg equals a loop
    p_neg = jnp.linspace(0.0, 1.0, 7)
    batched = jax.vmap(lambda q: class_infinite_data_accuracy(1.3, 0.15, q, 0.8, 0.7, 0.3, 0.25))(
        p_neg
    )
    looped = [float(class_infinite_data_accuracy(1.3, 0.15, q, 0.8, 0.7, 0.3, 0.25)) for q in p_neg]
    np.testing.assert_allclose(batched, looped, atol=1e-15)
    # grad against central differences, every argument
    g = jax.grad(class_infinite_data_accuracy, argnums=tuple(range(8)))(*args)
    h = 1e-6
    for i in range(8):
        up = list(args)
        dn = list(args)
        up[i] += h
        dn[i] -= h
        fd = (class_infinite_data_accuracy(*up) - class_infinite_data_accuracy(*dn)) / (2 * h)
        assert float(g[i]) == pytest.approx(float(fd), abs=1e-7)


def test_broadcasting_shape():
    acc = class_infinite_data_accuracy(
        jnp.array([0.5, 1.0, 2.0])[:, None], 0.1, jnp.linspace(0, 1, 4)[None, :], 0.9, 0.6, 0.3, 0.2
    )
    assert acc.shape == (3, 4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"p_pos": 1.5}, "p_pos"),
        ({"psi_neg": -0.1}, "psi_neg"),
        ({"phi_pos": math.nan}, "phi_pos"),
        ({"lam": -1.0}, "lam"),
        ({"snr": -0.5}, "snr"),
    ],
)
def test_validation(kwargs, name):
    full = {"snr": 1.0, **EXAMPLE, "lam": 0.0}
    full.update(kwargs)
    with pytest.raises(ValueError, match=name):
        class_infinite_data_accuracy(**full)
    if name not in ("snr", "lam"):
        rates = {k: v for k, v in full.items() if k not in ("snr", "lam")}
        with pytest.raises(ValueError, match=name):
            class_breakdown_margin(**rates)
