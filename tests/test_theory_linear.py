"""Linear generator / linear verifier theory: Monte Carlo, exact special cases, autodiff."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import gmmcollapse  # noqa: F401  (turns on float64)
from gmmcollapse.theory import (
    KeepRates,
    flip_linear_infinite_data_accuracy,
    flip_linear_keep_rates,
    infinite_data_accuracy,
    linear_infinite_data_accuracy,
    linear_keep_rates,
)
from gmmcollapse.theory.linear import (
    _flip_pieces,
    _kept_moments,
    _linear_pieces,
    _wedge_moments,
)

N_MC = 2_000_000  # Monte Carlo samples per check
Z_TOL = 4.0  # tolerance in standard errors

# One compiled scalar version of each function; grids are looped in Python over it, which
# keeps the number of XLA compilations (about 1 s each) and so the test time down.
lin_acc = jax.jit(linear_infinite_data_accuracy)
flip_acc = jax.jit(flip_linear_infinite_data_accuracy)
lin_rates = jax.jit(linear_keep_rates)
flip_rates = jax.jit(flip_linear_keep_rates)
phi_psi_acc = jax.jit(infinite_data_accuracy)  # the phi-psi theory, for comparison


def on_grid(fn, *args):
    """Evaluate a scalar jitted fn on the numpy broadcast of args (outputs stacked last)."""
    cols = np.broadcast_arrays(*(np.asarray(a, float) for a in args))
    out = [fn(*(float(c) for c in point)) for point in zip(*(c.ravel() for c in cols))]
    return np.asarray(out, float).reshape(cols[0].shape + np.shape(out[0]))


def simulate(seed, m, theta_ver, tau, *, theta_gen=None, p=None, d=2, n=N_MC):
    """Draw n generated samples of the full model (both classes) in d dims (e, f, rest)."""
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], n)
    x = rng.standard_normal((n, d))
    x[:, 0] += y * m
    w_ver = np.zeros(d)
    w_ver[:2] = np.cos(theta_ver), np.sin(theta_ver)
    if p is None:
        w_gen = np.zeros(d)
        w_gen[:2] = np.cos(theta_gen), np.sin(theta_gen)
        y_gen = np.sign(x @ w_gen)
    else:
        y_gen = np.where(rng.random(n) < p, -y, y)
    keep = y_gen * (x @ w_ver) >= tau
    return x, y, y_gen, keep


def ridge_accuracy_mc(x, y_gen, keep, lam, m, batches=20):
    """Accuracy of w = (X^T Q X/N + lam I)^{-1} X^T Q y~/N, and a batch-means standard error."""

    def fit(idx):
        xk = x[idx][keep[idx]]
        a = xk.T @ xk / len(idx) + lam * np.eye(x.shape[1])
        w = np.linalg.solve(a, xk.T @ y_gen[idx][keep[idx]] / len(idx))
        return norm.cdf(m * w[0] / np.linalg.norm(w))

    parts = [fit(idx) for idx in np.array_split(np.arange(len(x)), batches)]
    return fit(np.arange(len(x))), np.std(parts, ddof=1) / math.sqrt(batches)


def sample_moments(columns):
    """Means and standard errors of 1-D samples (contiguous columns: fast)."""
    cols = [np.asarray(c, float) for c in columns]
    return np.array([c.mean() for c in cols]), np.array([c.std() / math.sqrt(c.size) for c in cols])


def assert_within(theory, mean, se, label="", floor=1e-12):
    z = np.abs(np.asarray(theory) - np.asarray(mean)) / np.maximum(np.asarray(se), floor)
    assert np.all(z < Z_TOL), (label, theory, mean, se, z)


# --------------------------------------------------------------------------- wedge moments


wedge_moments = jax.jit(_wedge_moments)


@pytest.fixture(scope="module")
def gaussian_2d():
    return np.random.default_rng(11).standard_normal((N_MC, 2))


WEDGES = [
    (0.3, 0.2, 1.9, -0.5),  # generic
    (0.5, -0.3, 0.5 + math.pi, -0.2),  # opposite half-planes: a slab
    (1.0, 0.4, 1.0 + math.pi, -0.4),  # opposite half-planes, empty slab
    (0.7, -0.3, 0.7, -0.3),  # identical half-planes (s = 0, c1 = c2: the 0/0 case)
    (0.0, 0.1, 0.0, -0.4),  # parallel half-planes, one inside the other
    (2.0, 1.0, 2.0 + math.pi / 2, -50.0),  # half-plane alone
    (-1.2, -1.0, 2.5, 0.8),  # obtuse
]


@pytest.mark.parametrize("wedge", WEDGES)
def test_wedge_moments_monte_carlo(wedge, gaussian_2d):
    a1, c1, a2, c2 = wedge
    z = gaussian_2d
    ind = (z @ [math.cos(a1), math.sin(a1)] > c1) & (z @ [math.cos(a2), math.sin(a2)] > c2)
    z0, z1 = z[:, 0].copy(), z[:, 1].copy()
    mean, se = sample_moments(
        [ind, ind * z0, ind * z1, ind * z0 * z0, ind * z0 * z1, ind * z1 * z1]
    )
    assert_within(np.array(wedge_moments(*(jnp.float64(v) for v in wedge))), mean, se)


# --------------------------------------------------------------------------- against simulation


_lin_moments = jax.jit(lambda m, *a: _kept_moments(m, _linear_pieces(m, *a)))
_flip_moments = jax.jit(lambda m, *a: _kept_moments(m, _flip_pieces(m, *a)))


def linear_moments(m, tg, tv, tau):
    return np.array(_lin_moments(*(jnp.float64(v) for v in (m, tg, tv, tau))))


def flip_moments(m, p, tv, tau):
    return np.array(_flip_moments(*(jnp.float64(v) for v in (m, p, tv, tau))))


def check_against_simulation(x, y, y_gen, keep, rates, moments, accuracy, lam, m):
    """Keep rates, kept moments and the ridge accuracy, each within Z_TOL standard errors."""
    wrong = y_gen != y
    for name, theory, sample in (
        ("p", rates.p, wrong),
        ("phi", rates.phi, keep[~wrong]),
        ("psi", rates.psi, keep[wrong]),
    ):
        q = sample.mean()
        assert_within(float(theory), q, math.sqrt(q * (1 - q) / sample.size), name)
    # E[1_kept], E[x x^T 1_kept] (ee, ef, ff) and E[x y~ 1_kept] (e, f), per generated sample.
    k = keep.astype(float)
    x0, x1 = k * x[:, 0], k * x[:, 1]
    mean, se = sample_moments([k, x0 * x0, x0 * x1, x1 * x1, y_gen * x0, y_gen * x1])
    assert_within(moments, mean, se, "moments")
    acc, se = ridge_accuracy_mc(x, y_gen, keep, lam, m)
    assert_within(accuracy, acc, se, "accuracy")


@pytest.mark.parametrize(
    ("m", "tg", "tv", "tau", "lam"),
    [
        (1.0, 0.3, 0.9, 0.2, 0.0),
        (1.5, 0.8, -0.4, 0.5, 0.3),
        (2.0, 1.2, 0.2, 1.0, 0.0),
        (1.0, 2.0, 0.1, -0.3, 1.0),
    ],
)
def test_linear_generator_against_simulation(m, tg, tv, tau, lam):
    x, y, y_gen, keep = simulate(1, m, tv, tau, theta_gen=tg)
    check_against_simulation(
        x, y, y_gen, keep, lin_rates(m, tg, tv, tau), linear_moments(m, tg, tv, tau),
        float(lin_acc(m, tg, tv, tau, lam)), lam, m,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("m", "p", "tv", "tau", "lam", "d"),
    [
        (1.0, 0.3, 0.9, 0.2, 0.0, 2),
        (2.0, 0.4, 1.2, 1.0, 0.0, 2),
        (2.0, 0.6, 2.5, -0.5, 0.2, 2),
        (1.5, 0.45, -0.4, 0.5, 0.3, 3),  # an extra noise dimension changes nothing
    ],
)
def test_flip_generator_against_simulation(m, p, tv, tau, lam, d):
    x, y, y_gen, keep = simulate(2, m, tv, tau, p=p, d=d)
    check_against_simulation(
        x, y, y_gen, keep, flip_rates(m, p, tv, tau), flip_moments(m, p, tv, tau),
        float(flip_acc(m, p, tv, tau, lam)), lam, m,
    )  # fmt: skip


def test_keep_rates_agree_with_wedge_masses():
    m, tg, tv, tau = 1.3, 0.4, -0.7, 0.3
    r = lin_rates(m, tg, tv, tau)
    kept = linear_moments(m, tg, tv, tau)[0]
    p, phi, psi = map(float, r)
    assert kept == pytest.approx((1 - p) * phi + p * psi, abs=1e-15)


def test_x_dependent_selection_beats_the_phi_psi_prediction():
    # Flip generator, aligned verifier, tau = -1, p = 0.8: the measured keep rates give
    # p* = Phi(2)/(Phi(2) + Phi(0)) ~ 0.66 < p, so the phi-psi theory predicts the anti-aligned
    # learner; but the kept wrong labels sit at x_e <= 1, where they pull w the right way
    # (E[x_e 1{x_e <= 1}] > 0 for x_e ~ N(1, 1)), so the exact learner is Bayes.
    m, p, tv, tau = 1.0, 0.8, 0.0, -1.0
    rates = flip_rates(m, p, tv, tau)
    assert float(rates.p_star) < p
    assert phi_psi_acc(m, p, float(rates.phi), float(rates.psi)) == pytest.approx(norm.cdf(-m))
    theory = float(flip_acc(m, p, tv, tau, 0.0))
    assert theory == pytest.approx(norm.cdf(m), abs=1e-14)
    x, _, y_gen, keep = simulate(5, m, tv, tau, p=p)
    acc, se = ridge_accuracy_mc(x, y_gen, keep, 0.0, m)
    assert_within(theory, acc, se)


# --------------------------------------------------------------------------- exact special cases


def test_keep_all_flip_is_the_phi_psi_limit():
    m = np.array([0.0, 0.5, 1.0, 2.5])[:, None, None, None]
    p = np.array([0.0, 0.2, 0.5, 0.7, 1.0])[None, :, None, None]
    tv = np.array([0.0, 1.0, -2.0])[None, None, :, None]
    lam = np.array([0.0, 0.7])
    got = on_grid(flip_acc, m, p, tv, -np.inf, lam)
    want = np.broadcast_to(on_grid(phi_psi_acc, m, p, 1.0, 1.0), got.shape)
    np.testing.assert_allclose(got, want, atol=1e-14)
    rates = on_grid(flip_rates, m[..., 0], p[..., 0], tv[..., 0], -np.inf)
    assert np.all(rates[..., 1:] == 1.0)  # phi = psi = 1


def test_linear_generator_error_rate():
    m = np.array([0.0, 0.5, 1.0, 3.0])[:, None]
    tg = np.array([0.0, 0.4, 1.5, 3.0])[None, :]
    r = on_grid(lin_rates, m, tg, 0.3, 0.1)
    np.testing.assert_allclose(r[..., 0], norm.cdf(-m * np.cos(tg)), atol=1e-16)
    assert r[0, 0, 0] == 0.5 and r[3, 0, 0] == pytest.approx(norm.cdf(-3.0), abs=1e-17)


def test_keep_all_linear():
    m = np.array([0.5, 1.0, 2.0])
    r = on_grid(lin_rates, m, 0.6, -0.3, -np.inf)
    np.testing.assert_allclose(r[:, 1:], 1.0, atol=1e-15)
    # generator aligned with mu and everything kept: the learner is Bayes
    np.testing.assert_allclose(
        on_grid(lin_acc, m, 0.0, -0.3, -np.inf, 0.0), norm.cdf(m), atol=1e-14
    )


def test_verifier_equal_to_generator_keeps_everything_when_tau_nonpositive():
    # y~ V = sign(G) G = |G| >= 0 >= tau: every sample, right or wrong, is kept.
    m = np.array([0.3, 1.0, 2.0])[:, None, None]
    t = np.array([0.0, 0.5, 1.2, 2.8])[None, :, None]
    tau = np.array([-0.7, 0.0])
    r = on_grid(lin_rates, m, t, t, tau)
    np.testing.assert_allclose(r[..., 1:], 1.0, atol=1e-15)
    keep_all = on_grid(lin_acc, m, t, t, -np.inf, 0.2)
    np.testing.assert_allclose(
        on_grid(lin_acc, m, t, t, tau, 0.2), np.broadcast_to(keep_all, (3, 4, 2)), atol=1e-14
    )


def test_verifier_equal_to_generator_positive_tau():
    # V = G: phi = P(G >= tau | G > 0), psi = P(G <= -tau | G < 0), one-dimensional.
    m, t, tau = 1.4, 0.6, 0.5
    a = m * math.cos(t)
    r = lin_rates(m, t, t, tau)
    assert float(r.phi) == pytest.approx(norm.cdf(a - tau) / norm.cdf(a), abs=1e-14)
    assert float(r.psi) == pytest.approx(norm.cdf(-tau - a) / norm.cdf(-a), abs=1e-14)


def test_all_aligned_agrees_with_phi_psi():
    # theta_gen = theta_ver = 0: selection only looks at x_e, so w is along mu.
    m = np.array([0.2, 1.0, 2.0])[:, None]
    tau = np.array([-2.0, -0.5, 0.0, 0.3, 1.5, 4.0])[None, :]
    got = on_grid(lin_acc, m, 0.0, 0.0, tau, 0.0)
    r = on_grid(lin_rates, m, 0.0, 0.0, tau)
    np.testing.assert_allclose(got, np.broadcast_to(norm.cdf(m), got.shape), atol=1e-14)
    phi_psi = on_grid(phi_psi_acc, m, r[..., 0], r[..., 1], r[..., 2])
    np.testing.assert_allclose(got, phi_psi, atol=1e-14)


@pytest.mark.parametrize("tau", [-0.5, 0.0, 0.5, 1.5])
def test_flip_aligned_verifier_exact_breakdown(tau):
    # theta_ver = 0: w is along mu with the sign of b_e = (1 - p) E1 - p E2, x_e ~ N(m, 1):
    # E1 = E[x_e 1{x_e >= tau}] = m Phi(m - tau) + phi(m - tau),
    # E2 = E[x_e 1{x_e <= -tau}] = m Phi(-tau - m) - phi(tau + m).
    m = 1.0
    e1 = m * norm.cdf(m - tau) + norm.pdf(m - tau)
    e2 = m * norm.cdf(-tau - m) - norm.pdf(tau + m)
    p = np.array([0.05, 0.3, 0.6, 0.9, 0.97])
    got = on_grid(flip_acc, m, p, 0.0, tau, 0.0)
    np.testing.assert_allclose(got, norm.cdf(np.sign((1 - p) * e1 - p * e2) * m), atol=1e-14)
    # the exact breakdown (where b_e = 0; none if E2 <= 0) is not the phi-psi p*
    p_exact = e1 / (e1 + e2) if e2 > 0 else np.inf
    assert abs(float(flip_rates(m, 0.5, 0.0, tau).p_star) - p_exact) > 1e-3


@pytest.mark.parametrize(("p", "tau", "lam"), [(0.2, 0.0, 0.0), (0.7, 0.8, 0.3), (0.4, -1.0, 2.0)])
def test_flip_orthogonal_verifier_closed_form(p, tau, lam):
    # theta_ver = pi/2: kept samples have y~ Z_f >= tau. By hand, with P = Phi(-tau),
    # g = phi(tau): A = [[(m^2+1) P, m(1-2p) g], [m(1-2p) g, P + tau g]] + lam I,
    # b = ((1-2p) m P, g).
    m = 1.3
    big_p, g = norm.cdf(-tau), norm.pdf(tau)
    a = np.array(
        [[(m * m + 1) * big_p, m * (1 - 2 * p) * g], [m * (1 - 2 * p) * g, big_p + tau * g]]
    )
    w = np.linalg.solve(a + lam * np.eye(2), [(1 - 2 * p) * m * big_p, g])
    want = norm.cdf(m * w[0] / np.linalg.norm(w))
    assert float(flip_acc(m, p, math.pi / 2, tau, lam)) == pytest.approx(want, abs=1e-14)


def test_two_by_two_solve_matches_numpy():
    rng = np.random.default_rng(7)
    for _ in range(10):
        m, tg, tv = rng.uniform(0.2, 2.5), rng.uniform(-3, 3), rng.uniform(-3, 3)
        tau, lam = rng.uniform(-1.5, 1.5), float(rng.choice([0.0, 0.3, 1e6]))
        mo = linear_moments(m, tg, tv, tau)
        a = np.array([[mo[1], mo[2]], [mo[2], mo[3]]]) + lam * np.eye(2)
        w = np.linalg.solve(a, mo[4:])
        want = norm.cdf(m * w[0] / np.linalg.norm(w))
        assert float(lin_acc(m, tg, tv, tau, lam)) == pytest.approx(want, abs=1e-12)


def test_degenerate_inputs():
    assert float(flip_acc(1.0, 0.2, 0.4, np.inf, 0.0)) == 0.5  # nothing kept
    assert float(lin_acc(1.0, 0.2, 0.4, np.inf, 0.5)) == 0.5
    r = lin_rates(1.0, 0.2, 0.4, np.inf)
    assert float(r.phi) == 0.0 and float(r.psi) == 0.0 and math.isnan(float(r.p_star))
    assert float(lin_acc(0.0, 0.2, 0.4, 0.1, 0.0)) == 0.5  # snr = 0
    assert float(lin_rates(0.0, 0.2, 0.4, 0.1).p) == 0.5
    # p underflows to 0 (m cos(theta_gen) > 38): psi is conditional on a null event -> NaN
    assert math.isnan(float(lin_rates(45.0, 0.0, 0.0, 0.0).psi))
    # far threshold: kept mass ~ 1e-185; the rescaled solve does not underflow to w = 0
    assert float(flip_acc(1.0, 0.1, 0.0, 30.0, 0.0)) == pytest.approx(norm.cdf(1.0), abs=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 4.0),
    st.floats(-4.0, 4.0),
    st.floats(-4.0, 4.0),
    st.one_of(st.floats(-3.0, 3.0), st.sampled_from([-np.inf, np.inf])),
    st.floats(0.0, 5.0),
)
def test_outputs_are_probabilities(m, tg, tv, tau, lam):
    r = lin_rates(m, tg, tv, tau)
    assert all(0.0 <= float(v) <= 1.0 for v in r)
    acc = float(lin_acc(m, tg, tv, tau, lam))
    assert 1.0 - norm.cdf(m) - 1e-14 <= acc <= norm.cdf(m) + 1e-14  # between the two extremes
    mo = linear_moments(m, tg, tv, tau)
    p, phi, psi = map(float, r)
    assert mo[0] == pytest.approx((1 - p) * phi + p * psi, abs=1e-14)
    assert mo[1] >= 0 and mo[3] >= 0 and mo[1] * mo[3] >= mo[2] ** 2 - 1e-14  # PSD


def test_reflection_and_periodicity():
    base = float(lin_acc(1.2, 0.7, -0.4, 0.3, 0.1))
    assert float(lin_acc(1.2, -0.7, 0.4, 0.3, 0.1)) == pytest.approx(base, abs=1e-14)  # f -> -f
    assert float(lin_acc(1.2, 0.7 + 2 * math.pi, -0.4, 0.3, 0.1)) == pytest.approx(base, abs=1e-13)
    r1, r2 = lin_rates(1.2, 0.7, -0.4, 0.3), lin_rates(1.2, -0.7, 0.4, 0.3)
    np.testing.assert_allclose(np.array(r1), np.array(r2), atol=1e-15)


# --------------------------------------------------------------------------- JAX behaviour


def test_keep_rates_pytree_and_p_star():
    r = KeepRates(jnp.float64(0.2), jnp.float64(0.9), jnp.float64(0.3))
    assert float(r.p_star) == pytest.approx(0.75)
    tv = jnp.linspace(-1.0, 1.0, 4)
    out = jax.jit(jax.vmap(lambda t: linear_keep_rates(1.0, 0.3, t, 0.2)))(tv)
    assert isinstance(out, KeepRates) and out.phi.shape == (4,)
    np.testing.assert_allclose(np.array(out).T, on_grid(lin_rates, 1.0, 0.3, tv, 0.2), atol=1e-15)


def test_vmap_grid_equals_loop_and_eager():
    tv = jnp.linspace(-1.5, 1.5, 5)
    tau = jnp.array([-jnp.inf, -0.5, 0.0, 0.7])
    inner = jax.vmap(linear_infinite_data_accuracy, (None, None, None, 0, None))
    grid = jax.jit(jax.vmap(inner, (None, None, 0, None, None)))(1.1, 0.4, tv, tau, 0.2)
    looped = on_grid(lin_acc, 1.1, 0.4, tv[:, None], tau[None, :], 0.2)
    np.testing.assert_allclose(grid, looped, atol=1e-15)
    eager = linear_infinite_data_accuracy(1.1, 0.4, tv[:, None], tau[None, :], 0.2)
    assert eager.shape == (5, 4) and eager.dtype == jnp.float64
    np.testing.assert_allclose(eager, looped, atol=1e-15)


def test_no_recompilation_for_new_values():
    # Swept values are traced arguments: new values reuse the one compiled program.
    flip_acc(1.0, 0.2, 0.2, 0.1, 0.0)
    before = flip_acc._cache_size()
    for p in (0.1, 0.3, 0.6):
        flip_acc(1.3, p, -0.2, 0.4, 0.5)
    assert flip_acc._cache_size() == before


def _as_vector(fn):
    return jax.jit(jax.grad(lambda v: fn(v[0], v[1], v[2], v[3], v[4])))


grad_lin = _as_vector(linear_infinite_data_accuracy)
grad_flip = _as_vector(flip_linear_infinite_data_accuracy)
grad_psi = _as_vector(lambda m, tg, tv, tau, lam: linear_keep_rates(m, tg, tv, tau).psi)


def test_gradients_match_finite_differences():
    x0 = np.array([1.2, 0.3, -0.3, 0.4, 0.2])  # (snr, theta_gen or p, theta_ver, tau, lam)
    for grad, fn in (
        (grad_lin, lambda v: float(lin_acc(*map(float, v)))),
        (grad_flip, lambda v: float(flip_acc(*map(float, v)))),
        (grad_psi, lambda v: float(lin_rates(*map(float, v[:4])).psi)),
    ):
        g = np.asarray(grad(jnp.asarray(x0)))
        for i in range(5):
            h = np.zeros(5)
            h[i] = 1e-5
            fd = (fn(x0 + h) - fn(x0 - h)) / 2e-5
            assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8), (i, g[i], fd)


@pytest.mark.parametrize(
    "point",
    [
        (1.0, 0.5, 0.5, 0.0, 0.0),  # theta_gen = theta_ver: degenerate wedges
        (1.0, 0.5, 0.5 + math.pi, 0.0, 0.0),  # opposite directions
        (1.0, 0.3, 0.9, -np.inf, 0.0),  # keep all
        (1.0, 0.3, 0.9, np.inf, 0.5),  # keep nothing
        (0.0, 0.3, 0.9, 0.2, 0.0),  # snr = 0
        (1.0, 0.0, 0.0, 0.0, 0.0),  # everything aligned (and flip with p = 0)
        (1.0, 1.0, 0.3, 0.2, 0.0),  # flip with p = 1
    ],
)
def test_gradients_finite_at_degenerate_points(point):
    v = jnp.asarray(point)
    for grad in (grad_lin, grad_flip, grad_psi):
        g = np.asarray(grad(v))
        assert np.all(np.isfinite(g)), (point, g)


def test_validation():
    # the range text says whether inf is allowed: "[0, inf)" refuses it (issue 12)
    with pytest.raises(ValueError, match=r"snr must be a number in \[0, inf\)"):
        linear_keep_rates(-1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"theta_ver must be a number in \(-inf, inf\)"):
        linear_keep_rates(1.0, 0.0, np.inf, 0.0)
    with pytest.raises(ValueError, match="theta_gen must be a number"):
        linear_infinite_data_accuracy(1.0, np.nan, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]"):
        flip_linear_keep_rates(1.0, 1.5, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"lam must be a number in \[0, inf\)"):
        flip_linear_infinite_data_accuracy(1.0, 0.2, 0.0, 0.0, lam=-0.1)
    with pytest.raises(ValueError, match="tau must be a number"):
        flip_linear_infinite_data_accuracy(1.0, 0.2, 0.0, np.nan)
