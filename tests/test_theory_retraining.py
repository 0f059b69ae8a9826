"""Iterated retraining with verification: exact per-round theory and its long-run limit.

Covers :func:`gmmcollapse.theory.retraining_accuracy` and
:func:`~gmmcollapse.theory.retraining_limit`: reductions to the single-round functions, the
infinite-data recursion, the fixed point, argument checks, batching, JAX transformations and
agreement with the (naive, independent) simulation round by round.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params, over_seeds, summarize

INF = math.inf
D = 200.0
# Exact checks use R rounds throughout: the theory compiles once per (rounds, generator, data,
# argument shapes), so a common R lets the tests share compiled programs (about 1 s each).
R = 4

VERIFIERS = [
    # theta_ver, tau, phi, psi
    (0.0, -INF, 1.0, 1.0),  # no verifier
    (0.4, 0.3, 1.0, 1.0),  # margin test, tau > 0
    (1.0, -0.5, 0.9, 0.5),  # margin test, tau < 0, with a noisy oracle
]
GENERATORS = [
    ("flip", {"p": 0.3}),
    ("flip", {"p": 0.85}),
    ("linear", {"theta_gen": 1.1}),
    ("linear", {"theta_gen": -0.3}),
    ("ridge", {"n_real": 60.0, "lam_gen": 0.2}),
]


def _ver_kw(ver):
    tv, tau, phi, psi = ver
    return {"theta_ver": tv, "tau": tau, "phi": phi, "psi": psi}


# ====================================================================== reductions


@pytest.mark.parametrize("ver", VERIFIERS)
@pytest.mark.parametrize("ratio", [0.4, 3.0, INF])
def test_one_round_is_the_single_round_theory(ratio, ver):
    n, snr, lam = ratio * D, 1.2, 0.1
    tv, tau, phi, psi = ver
    got = T.retraining_accuracy(1, n, D, snr, p=0.3, lam=lam, **_ver_kw(ver))
    assert got.shape == (1,)
    want = T.flip_linear_ridge_accuracy(n, D, snr, 0.3, tv, tau, lam, phi, psi)
    assert float(got[0]) == pytest.approx(float(want), abs=1e-12)
    got = T.retraining_accuracy(
        1, n, D, snr, generator="linear", theta_gen=1.1, lam=lam, **_ver_kw(ver)
    )
    want = T.linear_ridge_accuracy(n, D, snr, 1.1, tv, tau, lam, phi, psi)
    assert float(got[0]) == pytest.approx(float(want), abs=1e-12)
    # the first round is the same for both data modes (accumulate: n = inf only)
    if math.isinf(n):
        acc = T.retraining_accuracy(1, n, D, snr, p=0.3, lam=lam, data="accumulate", **_ver_kw(ver))
        want = T.flip_linear_ridge_accuracy(n, D, snr, 0.3, tv, tau, lam, phi, psi)
        assert float(acc[0]) == pytest.approx(float(want), abs=1e-12)


@pytest.mark.parametrize("ratio", [0.4, 3.0, INF])
@pytest.mark.parametrize("tau", [-INF, -0.3, 0.0, 0.6])
def test_rounds_with_verifier_along_mu_are_linear_generators(ratio, tau):
    """With the verifier along mu (theta_ver = 0) the problem is symmetric about e, so round
    r is the single-round linear generator at angle arccos(g_e) with g_e = Phi^-1(acc_{r-1})
    / snr: an independent check of the recursion, and of the ridge generator's round 0
    (a clean-ridge model on n_real real samples, g_e from :func:`ridge_accuracy`)."""
    n, snr, lam, phi, psi = ratio * D, 1.2, 0.1, 1.0, 0.6
    ver = {"theta_ver": 0.0, "tau": tau, "phi": phi, "psi": psi, "lam": lam}
    for gen, kw in GENERATORS:
        acc = np.asarray(T.retraining_accuracy(R, n, D, snr, generator=gen, **kw, **ver))
        if gen == "ridge":
            g_e = (
                norm.ppf(
                    float(T.ridge_accuracy(kw["n_real"], D, snr, 0.0, 1.0, 1.0, kw["lam_gen"]))
                )
                / snr
            )
            first = T.linear_ridge_accuracy(n, D, snr, math.acos(g_e), 0.0, tau, lam, phi, psi)
            assert acc[0] == pytest.approx(float(first), abs=1e-12)
        for r in range(1, R):
            g_e = np.clip(norm.ppf(acc[r - 1]) / snr, -1.0, 1.0)
            want = T.linear_ridge_accuracy(n, D, snr, math.acos(g_e), 0.0, tau, lam, phi, psi)
            assert acc[r] == pytest.approx(float(want), abs=1e-10), (gen, r)


@pytest.mark.parametrize("ver", VERIFIERS)
@pytest.mark.parametrize("gen", ["flip", "linear"])
def test_infinite_data_replace_iterates_the_infinite_data_map(gen, ver):
    """n = inf, replace: round 0 is the infinite-data accuracy of the generator; round r the
    infinite-data accuracy of a linear generator along round r-1's model (whose direction,
    in span(e, f) when n = inf, is the limit's)."""
    snr, lam = 1.1, 0.2
    tv, tau, phi, psi = ver
    acc = np.asarray(
        T.retraining_accuracy(
            R,
            INF,
            D,
            snr,
            generator=gen,
            lam=lam,
            **({"p": 0.35} if gen == "flip" else {"theta_gen": 1.2}),
            **_ver_kw(ver),
        )
    )
    if gen == "flip":
        want = T.flip_linear_infinite_data_accuracy(snr, 0.35, tv, tau, lam, phi, psi)
        lim = T.flip_linear_ridge_limit(INF, D, snr, 0.35, tv, tau, lam, phi, psi)
    else:
        want = T.linear_infinite_data_accuracy(snr, 1.2, tv, tau, lam, phi, psi)
        lim = T.linear_ridge_limit(INF, D, snr, 1.2, tv, tau, lam, phi, psi)
    assert acc[0] == pytest.approx(float(want), abs=1e-12)
    for r in range(1, R):
        e, f, out = map(float, lim.direction)
        assert out == 0.0
        theta = math.atan2(f, e)
        want = T.linear_infinite_data_accuracy(snr, theta, tv, tau, lam, phi, psi)
        assert acc[r] == pytest.approx(float(want), abs=1e-12), r
        lim = T.linear_ridge_limit(INF, D, snr, theta, tv, tau, lam, phi, psi)


def test_large_ratio_converges_to_infinite_data_rounds():
    """Per round, |finite - infinite| = O(d/n)."""
    kw = {"generator": "linear", "theta_gen": 1.0, "theta_ver": 0.26, "tau": 0.0}
    limit = np.asarray(T.retraining_accuracy(R, INF, D, 1.0, **kw))
    ratios = np.array([1e3, 1e4, 1e5])
    gaps = np.abs(np.asarray(T.retraining_accuracy(R, D * ratios, D, 1.0, **kw)) - limit)
    assert np.all(gaps[-1] < 1e-4)
    np.testing.assert_allclose(np.diff(np.log10(gaps), axis=0), -1.0, atol=0.05)


def test_accumulate():
    """Exact for n = inf only; finite concrete n raises, finite traced n is NaN."""
    with pytest.raises(ValueError, match="accumulate"):
        T.retraining_accuracy(R, 1000.0, D, 1.0, p=0.2, data="accumulate")
    with pytest.raises(ValueError, match="accumulate"):  # one finite entry is enough
        T.retraining_accuracy(R, jnp.array([INF, 1000.0]), D, 1.0, p=0.2, data="accumulate")
    traced = jax.jit(lambda n: T.retraining_accuracy(R, n, D, 1.0, p=0.2, data="accumulate"))
    out = np.asarray(traced(jnp.array([INF, 1000.0])))
    assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))
    # a Bayes generator with a verifier along mu stays Bayes in both modes
    for data in ("replace", "accumulate"):
        acc = T.retraining_accuracy(
            R, INF, D, 1.3, generator="linear", theta_gen=0.0, theta_ver=0.0, tau=0.5, data=data
        )
        np.testing.assert_allclose(acc, norm.cdf(1.3), atol=1e-12)
    # no verifier, flips: every round's kept data are clean-direction; from round 1 on the
    # generator is Bayes (the n = inf round-0 model is along mu for p < 1/2)
    acc = np.asarray(T.retraining_accuracy(R, INF, D, 1.3, p=0.3, data="accumulate"))
    np.testing.assert_allclose(acc, norm.cdf(1.3), atol=1e-12)
    # with a margin test, accumulating differs from replacing after round 0
    kw = {"generator": "linear", "theta_gen": 1.0, "theta_ver": 0.26, "tau": 0.0}
    rep = np.asarray(T.retraining_accuracy(R, INF, D, 1.0, **kw))
    acc = np.asarray(T.retraining_accuracy(R, INF, D, 1.0, data="accumulate", **kw))
    assert acc[0] == rep[0]
    assert np.all(np.abs(acc[1:] - rep[1:]) > 1e-3)
    assert np.all(np.abs(np.diff(acc)) > 0)


# ====================================================================== long-run limit

LIMIT_CASES = {
    # generator: (generator kwargs, snr, theta_ver, tau, phi, psi); n = (finite, inf)
    "flip": ({"p": 0.3}, 1.2, 0.4, 0.3, 1.0, 1.0),
    "linear": ({"theta_gen": 1.0}, 1.0, 0.26, 0.0, 0.9, 0.6),
    "ridge": ({"n_real": 60.0, "lam_gen": 0.2}, 1.5, 1.0, -0.5, 1.0, 1.0),
}


@pytest.mark.parametrize(
    "gen",
    [
        pytest.param("flip", marks=pytest.mark.slow),
        "linear",
        pytest.param("ridge", marks=pytest.mark.slow),
    ],
)
def test_limit_is_the_many_rounds_accuracy(gen):
    kw, snr, tv, tau, phi, psi = LIMIT_CASES[gen]
    ver = {"theta_ver": tv, "tau": tau, "phi": phi, "psi": psi}
    n = jnp.array([120.0, 500.0, INF])
    lim = T.retraining_limit(n, D, snr, generator=gen, **kw, **ver)
    assert np.all(lim.converged) and 3 < int(lim.rounds[0]) < 200
    acc = T.retraining_accuracy(200, n, D, snr, generator=gen, **kw, **ver)
    np.testing.assert_allclose(lim.accuracy, acc[:, -1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(jnp.linalg.norm(lim.direction, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(lim.accuracy, norm.cdf(snr * lim.direction[:, 0]), atol=1e-14)
    assert np.all(np.abs(acc[:, 0] - acc[:, -1]) > 1e-3)  # the rounds did move
    if gen == "linear":  # stopped by max_rounds before converging: reported as such
        short = T.retraining_limit(n, D, snr, generator=gen, max_rounds=2, **kw, **ver)
        assert not np.any(short.converged) and np.all(short.rounds == 2)


# ====================================================================== argument checks


@pytest.mark.parametrize(
    ("generator", "kw", "stray"),
    [
        ("flip", {"theta_gen": 0.3}, "theta_gen"),
        ("flip", {"n_real": 10.0}, "n_real"),
        ("flip", {"lam_gen": 0.1}, "lam_gen"),
        ("linear", {"p": 0.2}, "p"),
        ("linear", {"n_real": 10.0, "lam_gen": 0.1}, "n_real, lam_gen"),
        ("ridge", {"n_real": 10.0, "p": 0.2}, "p"),
        ("ridge", {"n_real": 10.0, "theta_gen": 0.0}, "theta_gen"),
    ],
)
def test_stray_generator_parameter_raises(generator, kw, stray):
    for fn, extra in ((T.retraining_accuracy, (3,)), (T.retraining_limit, ())):
        with pytest.raises(ValueError, match=rf"^{stray} do\(es\) not apply to generator"):
            fn(*extra, 500.0, D, 1.0, generator=generator, **kw)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"generator": "ridge"}, "generator='ridge' needs n_real"),
        ({"generator": "gan"}, "generator must be one of"),
        ({"data": "keep"}, "data must be one of"),
        ({"p": 1.5}, "p must be"),
        ({"p": math.nan}, "p must be"),
        ({"generator": "linear", "theta_gen": math.inf}, "theta_gen must be"),
        ({"generator": "ridge", "n_real": 0.0}, "n_real must be"),
        ({"generator": "ridge", "n_real": 10.0, "lam_gen": 0.0}, "lam_gen must be"),
        ({"n": -10.0}, "n must be"),
        ({"n": math.nan}, "n must be"),
        ({"d": 0.0}, "d must be"),
        ({"snr": -1.0}, "snr must be"),
        ({"lam": -1.0}, "lam must be"),
        ({"lam": 0.0}, "lam must be"),
        ({"tau": math.nan}, "tau must be"),
        ({"theta_ver": math.inf}, "theta_ver must be"),
        ({"phi": 1.5}, "phi must be"),
        ({"phi": 0.0, "psi": 0.0}, "phi and psi must not both be 0"),
    ],
)
def test_invalid_inputs_raise_naming_the_parameter(kw, name):
    args = {"n": 500.0, "d": D, "snr": 1.0, **kw}
    with pytest.raises(ValueError, match=f"^{re.escape(name)}"):
        T.retraining_accuracy(R, **args)
    if kw.get("data") is None:
        with pytest.raises(ValueError, match=f"^{re.escape(name)}"):
            T.retraining_limit(**args)


def test_invalid_counts_raise():
    for rounds in (0, 1.5, -2):
        with pytest.raises(ValueError, match="^rounds must be"):
            T.retraining_accuracy(rounds, 500.0, D, 1.0)
    with pytest.raises(ValueError, match="^tol must be"):
        T.retraining_limit(500.0, D, 1.0, tol=0.0)
    with pytest.raises(ValueError, match="^max_rounds must be"):
        T.retraining_limit(500.0, D, 1.0, max_rounds=0)


# One jitted version per generator with every number traced (rounds and generator are static
# through the closure): invalid values reuse the compiled program.
def _traced_acc(generator):
    names = {"flip": ("p",), "linear": ("theta_gen",), "ridge": ("n_real", "lam_gen")}[generator]

    @jax.jit
    def f(n, d, snr, g, lam, tv, tau, phi, psi):
        gen_kw = {k: g[i] for i, k in enumerate(names)}
        return T.retraining_accuracy(
            R,
            n,
            d,
            snr,
            generator=generator,
            lam=lam,
            theta_ver=tv,
            tau=tau,
            phi=phi,
            psi=psi,
            **gen_kw,
        )

    return f


TRACED = {g: _traced_acc(g) for g in ("flip", "linear", "ridge")}
GOOD = {"n": 500.0, "d": D, "snr": 1.0, "lam": 0.1, "tv": 0.3, "tau": 0.2, "phi": 1.0, "psi": 0.5}
GOOD_GEN = {"flip": [0.3], "linear": [0.7], "ridge": [50.0, 0.1]}


@pytest.mark.parametrize(
    ("generator", "name", "bad"),
    [
        ("flip", "g", [1.5]),  # p
        ("flip", "g", [math.nan]),
        ("linear", "g", [math.inf]),  # theta_gen
        ("ridge", "g", [0.0, 0.1]),  # n_real
        ("ridge", "g", [50.0, -1.0]),  # lam_gen
        ("flip", "lam", -1.0),
        ("flip", "n", -10.0),
        ("linear", "n", math.nan),
        ("flip", "tau", math.nan),
        ("ridge", "tv", math.nan),
        ("linear", "phi", 1.5),
        ("flip", "d", 0.0),
        ("flip", "snr", -1.0),
    ],
)
def test_traced_out_of_domain_is_nan(generator, name, bad):
    args = {**GOOD, "g": jnp.asarray(GOOD_GEN[generator])}
    ok = np.asarray(TRACED[generator](**args))
    assert ok.shape == (R,) and np.all(np.isfinite(ok))
    args[name] = jnp.asarray(bad) if name == "g" else bad
    out = np.asarray(TRACED[generator](**args))
    assert out.shape == (R,) and np.all(np.isnan(out))


# ====================================================================== batch == loop

GEN_BATCH_KW = {
    "flip": lambda rng, b: {"p": rng.uniform(0.0, 1.0, (b, 3))},
    "linear": lambda rng, b: {"theta_gen": rng.uniform(-1.5, 1.5, (b, 3))},
    "ridge": lambda rng, b: {"n_real": rng.uniform(20.0, 400.0, (b, 1)), "lam_gen": 0.3},
}


def _check_batch(gen, b):
    """Arguments that broadcast differently: n (b, 1) with an inf entry, tau (3,), the
    generator's parameter (b, 3) or (b, 1), lam (1, 3)."""
    rng = np.random.default_rng(b)
    n = np.concatenate([[INF], rng.uniform(50.0, 5000.0, b - 1)])[:, None]
    tau = np.array([-0.5, 0.0, 0.7])
    lam = np.array([[0.05, 0.1, 0.5]])
    gen_kw = GEN_BATCH_KW[gen](rng, b)
    kw = {"generator": gen, "theta_ver": 0.4, "phi": 0.9, "psi": 0.6}
    got = T.retraining_accuracy(R, n, D, 1.2, tau=tau, lam=lam, **gen_kw, **kw)
    lim = T.retraining_limit(n, D, 1.2, tau=tau, lam=lam, **gen_kw, **kw)
    assert got.shape == (b, 3, R) and lim.direction.shape == (b, 3, 3)
    for i, j in np.ndindex(b, 3):
        one = {k: float(np.broadcast_to(v, (b, 3))[i, j]) for k, v in gen_kw.items()}
        one |= {"tau": float(tau[j]), "lam": float(lam[0, j])}
        want = T.retraining_accuracy(R, float(n[i, 0]), D, 1.2, **one, **kw)
        np.testing.assert_allclose(got[i, j], want, rtol=1e-12, atol=1e-15)
        want = T.retraining_limit(float(n[i, 0]), D, 1.2, **one, **kw)
        np.testing.assert_allclose(lim.accuracy[i, j], want.accuracy, rtol=1e-12)
        np.testing.assert_allclose(lim.direction[i, j], want.direction, rtol=1e-12, atol=1e-15)
        assert bool(lim.converged[i, j]) and bool(want.converged)
    # a batch iterates until every point has converged (converged points are frozen), so
    # its round count is the slowest point's
    assert np.all(np.asarray(lim.rounds) == int(np.asarray(lim.rounds).max()))


@pytest.mark.parametrize("b", [1, 3, 7])
def test_retraining_batch_equals_loop(b):
    _check_batch("linear", b)


@pytest.mark.slow
@pytest.mark.parametrize("gen", ["flip", "ridge"])
@pytest.mark.parametrize("b", [1, 3, 7])
def test_retraining_batch_equals_loop_other_generators(gen, b):
    _check_batch(gen, b)


# ====================================================================== JAX transformations


@pytest.mark.slow  # batch-of-1/3/7 tests cover the vmapped program in the default suite
def test_jit_and_vmap_give_the_same_values():
    taus = jnp.array([-1.0, 0.0, 0.5])
    f = lambda tau: T.retraining_accuracy(
        R, 600.0, D, 1.1, generator="linear", theta_gen=0.9, theta_ver=0.3, tau=tau
    )
    eager = np.stack([np.asarray(f(float(t))) for t in taus])
    np.testing.assert_allclose(jax.jit(f)(taus), eager, rtol=1e-13)
    np.testing.assert_allclose(jax.vmap(f)(taus), eager, rtol=1e-13)
    g = lambda tau: T.retraining_limit(600.0, D, 1.1, p=0.3, theta_ver=0.3, tau=tau)
    eager = [g(float(t)) for t in taus]
    for batched in (jax.jit(g)(taus), jax.vmap(g)(taus)):
        assert isinstance(batched, T.RetrainingLimit)
        np.testing.assert_allclose(batched.accuracy, [e.accuracy for e in eager], rtol=1e-12)
        assert np.all(batched.converged)


GRAD_CASES = [("linear", {"theta_gen": 1.0}, 150.0, (0.26, -0.2, 0.3))]


@pytest.mark.parametrize(("generator", "kw", "n", "point"), GRAD_CASES)
def test_gradient_matches_finite_differences(generator, kw, n, point):
    """d (accuracy of the last round) / d (theta_ver, tau, lam) through the scan of rounds."""

    def last(v):
        return T.retraining_accuracy(
            R, n, D, 1.1, generator=generator, theta_ver=v[0], tau=v[1], lam=v[2], **kw
        )[-1]

    v0 = np.asarray(point)
    g = np.asarray(jax.grad(last)(jnp.asarray(v0)))
    assert np.all(np.isfinite(g))
    for i in range(3):
        h = np.zeros(3)
        h[i] = 1e-6
        fd = (float(last(v0 + h)) - float(last(v0 - h))) / 2e-6
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-9), (i, g[i], fd)


@pytest.mark.slow  # two custom_root programs; grad is covered by test_gradient_matches_*
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_limit_derivative_by_implicit_function(mode):
    """The limit iterates a while_loop; its derivative comes from the implicit function
    theorem at the fixed point (lax.custom_root): both modes match central differences."""

    def f(tau):
        return T.retraining_limit(
            1000.0, D, 1.0, generator="linear", theta_gen=1.0, theta_ver=0.26, tau=tau
        ).accuracy

    d = float((jax.grad if mode == "reverse" else jax.jacfwd)(f)(0.0))
    fd = (float(f(1e-6)) - float(f(-1e-6))) / 2e-6
    assert d == pytest.approx(fd, rel=1e-5)


# ====================================================================== degenerate cases


def test_degenerate_inputs():
    # nothing kept: every round 1/2 (w = 0), and the limit stays there
    acc = T.retraining_accuracy(R, 500.0, D, 1.0, p=0.2, theta_ver=0.3, tau=INF)
    np.testing.assert_array_equal(acc, 0.5)
    # snr = 0: chance
    acc = T.retraining_accuracy(R, 500.0, D, 0.0, generator="linear", theta_gen=0.3, tau=0.2)
    np.testing.assert_array_equal(acc, 0.5)
    # psi = 0 oracle, no margin test, flips: round 0 is clean ridge on the kept rows; after
    # that the generator is a linear model and the oracle keeps only its correct labels
    acc = np.asarray(T.retraining_accuracy(R, 500.0, D, 1.0, p=0.4, psi=0.0))
    assert acc[0] == pytest.approx(
        float(T.ridge_accuracy(500.0, D, 1.0, 0.4, 1.0, 0.0, 0.1)), abs=1e-12
    )
    assert np.all(np.isfinite(acc)) and np.all(acc > 0.5)
    # generator parallel to the verifier (first round), tau <= 0: the margin test is a no-op
    a = T.retraining_accuracy(
        1, 500.0, D, 1.0, generator="linear", theta_gen=0.7, theta_ver=0.7, tau=0.0
    )
    b = T.retraining_accuracy(1, 500.0, D, 1.0, generator="linear", theta_gen=0.7)
    assert float(a[0]) == pytest.approx(float(b[0]), abs=1e-12)
    # a ridge generator on infinitely many real samples is Bayes; so is every later round
    # without a verifier
    acc = T.retraining_accuracy(R, INF, D, 1.0, generator="ridge", n_real=INF)
    np.testing.assert_allclose(acc, norm.cdf(1.0), atol=1e-12)


# ====================================================================== theory vs simulation
#
# Tolerance, per round: |sim - theory| <= 4 SE + 1/d. 4 SE keeps the false-alarm rate of one
# check at about 1e-4 (normal tails) for the Monte Carlo error of the mean over seeds; 1/d
# allows for the O(1/d) finite-size corrections of the proportional limit. Rounds of one run
# are correlated (each trains on the previous model); each round is checked on its own.

SEEDS = 100
SIM_D = 200
SIM_N = 400
SIM_CASES = {
    # generator: (snr, generator kwargs, theta_ver, tau, lam, phi, psi)
    "flip": (1.2, {"p": 0.35}, 0.5, 0.3, 0.1, 1.0, 1.0),
    "linear": (1.0, {"theta_gen": 1.0}, 0.26, 0.0, 0.1, 1.0, 0.5),
    "ridge": (1.2, {"n_real": 100, "lam_gen": 0.1}, 0.4, -0.3, 0.1, 1.0, 1.0),
}


def check_rounds(
    generator, n, d, snr, gen_kw, tv, tau, lam, phi, psi, seeds, rounds, seed, label=""
):
    spec = SimSpec(
        n_max=n,
        d=d,
        generator=generator,
        rounds=rounds,
        data="replace",
        n_real_max=int(gen_kw.get("n_real", 0)),
        dtype="float64",
        solver="primal",
    )
    # the ridge generator trains on the real rows; they are not mixed into training
    prm = make_params(
        n, snr, theta_ver=tv, tau=tau, lam=lam, phi=phi, psi=psi, mix_real=0.0, **gen_kw
    )
    mean, se = summarize(over_seeds(jax.random.key(seed), prm, spec, seeds))
    mean, se = np.asarray(mean.acc), np.asarray(se.acc)
    th = np.asarray(
        T.retraining_accuracy(
            rounds,
            n,
            d,
            snr,
            generator=generator,
            theta_ver=tv,
            tau=tau,
            lam=lam,
            phi=phi,
            psi=psi,
            **gen_kw,
        )
    )
    gaps = np.abs(mean - th) / se
    print(
        f"{label or generator}: theory {np.round(th, 4)}, sim {np.round(mean, 4)}, "
        f"SE {np.round(se, 4)}, gap/SE {np.round(gaps, 2)}"
    )
    assert np.all(np.abs(mean - th) <= 4 * se + 1.0 / d), (th, mean, se)
    return th, mean, se


@pytest.mark.parametrize("generator", list(SIM_CASES))
def test_rounds_match_simulation(generator):
    snr, gen_kw, tv, tau, lam, phi, psi = SIM_CASES[generator]
    th, _, _ = check_rounds(
        generator, SIM_N, SIM_D, snr, gen_kw, tv, tau, lam, phi, psi, SEEDS, 5, 41
    )
    assert np.ptp(th) > 0.01  # the rounds differ: the recursion is exercised


def _slow_cases():
    return [
        # generator, n, snr, gen kwargs, theta_ver, tau, lam, phi, psi
        ("flip", 100, 1.5, {"p": 0.2}, 0.5, 0.3, 0.1, 1.0, 1.0),  # n < d
        ("flip", 2000, 1.0, {"p": 0.6}, 1.0, -0.5, 0.1, 1.0, 0.4),
        ("flip", 800, 2.0, {"p": 0.1}, 1.5, 1.0, 0.01, 1.0, 1.0),  # the falling-with-n case
        ("linear", 100, 1.3, {"theta_gen": 0.6}, -0.4, 0.4, 0.1, 1.0, 0.4),
        ("linear", 2000, 1.0, {"theta_gen": 1.2}, 0.0, -INF, 0.05, 1.0, 1.0),  # no verifier
        ("ridge", 300, 1.0, {"n_real": 50, "lam_gen": 0.5}, 0.8, 0.2, 0.1, 0.9, 0.5),
        ("ridge", 2000, 1.5, {"n_real": 400, "lam_gen": 0.05}, -0.3, 0.0, 0.3, 1.0, 1.0),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("case", _slow_cases())
def test_rounds_match_simulation_slow(case):
    gen, n, snr, gen_kw, tv, tau, lam, phi, psi = case
    check_rounds(gen, n, 400, snr, gen_kw, tv, tau, lam, phi, psi, 200, 8, 43, str(case))
