"""The Gaussian-mixture simulation: learners vs NumPy/SciPy, primal == dual, vmapped == looped,
no recompilation, verifier and generator semantics vs closed forms, rounds, validation.

Every distinct (SimSpec, parameter shapes, seed count) compiles once (1.5-3 s on a 2-core CPU),
so the tests share a few module-level specs and one seed count per spec.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.gmm import (
    SimSpec,
    logistic,
    make_params,
    over_seeds,
    ridge_dual,
    ridge_from_stats,
    simulate,
    sufficient_stats,
    summarize,
)
from gmmcollapse.gmm.simulate import TRACE_COUNT, _per_class

# The workhorse: one round, flip generator, primal ridge learner, float64 so that exactness
# tests are meaningful, room for 5 real samples (unused unless n_real > 0); S seeds for every
# over_seeds call on it (a new S would recompile).
SPEC = SimSpec(n_max=64, d=8, n_real_max=5, dtype="float64")
S = 128


def _np(result):
    return {f: np.asarray(v) for f, v in result._asdict().items()}


def _looped(key, params, spec, seeds):
    """``seeds`` runs of :func:`simulate`, stacked. Used for specs other than SPEC: compiling
    the unbatched run costs about half of compiling its vmapped lift (checked equal below)."""
    keys = jax.random.split(key, seeds)
    return jax.tree.map(lambda *v: np.stack(v), *[simulate(k, params, spec) for k in keys])


def _assert_results_close(got, want, rtol=1e-10, atol=1e-12):
    for f, v in _np(got).items():
        np.testing.assert_allclose(v, np.asarray(getattr(want, f)), rtol=rtol, atol=atol, err_msg=f)


# ------------------------------------------------------------------------------- learners


def _data(rng, rows, d, frac_kept=0.7):
    x = rng.standard_normal((rows, d))
    y = np.sign(x[:, 0] + 0.8 * rng.standard_normal(rows))
    q = (rng.random(rows) < frac_kept).astype(float)
    return x, y, q


def _with_garbage(x, y, q, rng):
    """Overwrite the dropped rows (q = 0): the result must not change."""
    x2, y2 = x.copy(), y.copy()
    x2[q == 0] = 1e3 * rng.standard_normal(((q == 0).sum(), x.shape[1]))
    y2[q == 0] = -y2[q == 0]
    return x2, y2


@pytest.mark.parametrize("rows,d", [(40, 5), (6, 10)])
def test_ridge_primal_and_dual_vs_numpy_solve(rows, d):
    rng = np.random.default_rng(rows)
    x, y, q = _data(rng, rows, d)
    n_total, lam = rows + 3.0, 0.37  # N counts pruned samples too: not the number of rows
    gram, xty = sufficient_stats(jnp.asarray(x), jnp.asarray(y), jnp.asarray(q))
    np.testing.assert_allclose(gram, x.T @ np.diag(q) @ x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(xty, x.T @ (q * y), rtol=1e-13, atol=1e-13)
    want = np.linalg.solve(
        x.T @ np.diag(q) @ x / n_total + lam * np.eye(d), x.T @ (q * y) / n_total
    )
    np.testing.assert_allclose(
        ridge_from_stats(gram, xty, n_total, lam), want, rtol=1e-10, atol=1e-13
    )
    np.testing.assert_allclose(ridge_dual(x, y, q, n_total, lam), want, rtol=1e-10, atol=1e-13)
    x2, y2 = _with_garbage(x, y, q, rng)
    np.testing.assert_allclose(ridge_dual(x2, y2, q, n_total, lam), want, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        ridge_from_stats(*sufficient_stats(x2, y2, q), n_total, lam), want, rtol=1e-10, atol=1e-13
    )


def _scipy_logistic(x, y, q, n_total, lam):
    def fun(w):
        m = y * (x @ w)
        loss = np.sum(q * np.logaddexp(0.0, -m)) / n_total + 0.5 * lam * w @ w
        grad = -(x.T @ (q * y * expit(-m))) / n_total + lam * w  # d softplus(-m) = -sigmoid(-m)
        return loss, grad

    opts = {"gtol": 1e-13, "ftol": 1e-16, "maxiter": 10_000}
    res = minimize(fun, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options=opts)
    assert np.linalg.norm(fun(res.x)[1]) < 1e-9
    return res.x


@pytest.mark.parametrize("separable", [False, True])
def test_logistic_vs_scipy(separable):
    rng = np.random.default_rng(11)
    x, y, q = _data(rng, 60, 4)
    if separable:  # the minimiser exists only thanks to lam
        y = np.sign(x[:, 0])
    n_total, lam = 75.0, 0.05
    want = _scipy_logistic(x, y, q, n_total, lam)
    fit = jax.jit(logistic, static_argnames="steps")  # one compilation for all calls here
    np.testing.assert_allclose(fit(x, y, q, n_total, lam), want, rtol=1e-7, atol=1e-9)
    x2, y2 = _with_garbage(x, y, q, rng)
    np.testing.assert_allclose(fit(x2, y2, q, n_total, lam), want, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------ primal == dual


@pytest.mark.parametrize("mix_real", [0.0, 1.0])
def test_primal_equals_dual_simulation(key, mix_real):
    # SPEC solves the d x d system (auto: rows = 64 + 5 > d = 8); its twin the rows x rows one.
    # The push-through identity makes them equal; the dual also appends the real rows.
    primal, dual = SPEC, dataclasses.replace(SPEC, solver="dual")
    assert dual.use_dual and not primal.use_dual
    for i, params in enumerate(
        [
            make_params(64, 1.5, p=0.2, phi=0.9, psi=0.3, lam=0.05, n_real=5, mix_real=mix_real),
            make_params(
                13, 0.7, p=0.0, tau=0.2, theta_ver=0.4, lam=1.3, n_real=3, mix_real=mix_real
            ),
        ]
    ):
        kk = jax.random.fold_in(key, i)
        a, b = simulate(kk, params, primal), simulate(kk, params, dual)
        np.testing.assert_allclose(a.acc, b.acc, rtol=0, atol=1e-8)
        np.testing.assert_array_equal(a.keep_fraction, b.keep_fraction)
        assert 0.5 < float(a.acc[0]) < 1.0


# ------------------------------------------------------------------- vmapped == looped


def test_over_seeds_equals_looped_simulate(key):
    params = make_params(50, 1.2, p=0.2, phi=0.9, psi=0.4, tau=-0.5, theta_ver=0.3)
    got = over_seeds(key, params, SPEC, S)
    assert got.acc.shape == (S, 1)
    _assert_results_close(got, _looped(key, params, SPEC, S))
    assert np.unique(np.asarray(got.acc)).size == S  # the seeds really differ


# ----------------------------------------------------------------------- recompilation


def test_new_parameter_values_do_not_recompile(key):
    base = {"p": 0.2, "phi": 0.9, "psi": 0.4, "lam": 0.1, "tau": -1.0, "snr": 1.0, "theta_ver": 0.0}
    first = simulate(key, make_params(64, **base), SPEC)
    over_seeds(key, make_params(64, **base), SPEC, S)
    count = TRACE_COUNT["simulate"]
    changes = {
        "p": 0.35,
        "phi": 0.6,
        "psi": 0.1,
        "lam": 2.0,
        "tau": 0.4,
        "snr": 2.5,
        "theta_ver": 0.7,
        "n": 20,
    }
    for name, value in changes.items():
        kw = {**base, "n": 64, name: value}
        n = kw.pop("n")
        res = simulate(key, make_params(n, **kw), SPEC)
        assert not np.array_equal(res.acc, first.acc), name  # the new value took effect
        over_seeds(jax.random.fold_in(key, 1), make_params(n, **kw), SPEC, S)
    assert TRACE_COUNT["simulate"] == count

    # the counter is live: a parameter *shape* no other test uses (p, phi and psi all
    # class-specific) traces once (abstractly: eval_shape traces without compiling), and new
    # values at that shape do not trace again
    def shapes(p, phi, psi):
        return jax.eval_shape(
            lambda k, x: simulate(k, x, SPEC), key, make_params(64, 1.0, p=p, phi=phi, psi=psi)
        )

    assert shapes([0.1, 0.4], [1.0, 0.9], [1.0, 1.0]).acc.shape == (1,)
    assert TRACE_COUNT["simulate"] == count + 1
    shapes([0.3, 0.0], [0.5, 1.0], [0.2, 0.9])
    assert TRACE_COUNT["simulate"] == count + 1


# -------------------------------------------------------------------- verifier semantics


def test_oracle_verifier(key):
    oracle = over_seeds(key, make_params(64, 1.0, p=0.3, phi=1.0, psi=0.0), SPEC, S)
    none = over_seeds(key, make_params(64, 1.0, p=0.3), SPEC, S)
    np.testing.assert_array_equal(oracle.phi, 1.0)
    np.testing.assert_array_equal(oracle.psi, 0.0)
    np.testing.assert_array_equal(oracle.keep_fraction, 1.0 - oracle.p)
    np.testing.assert_array_equal(none.keep_fraction, 1.0)
    # same seeds -> paired difference; the oracle wins by far more than 5 standard errors
    diff = np.asarray(oracle.acc - none.acc)[:, 0]
    assert diff.mean() > 5 * diff.std(ddof=1) / math.sqrt(S)
    # in distribution the oracle run is clean training on ~0.7 * 64 samples; the ridge penalty
    # is N lam with N = 64 (pruned included), so the clean run uses n = 45, lam = 0.1 * 64 / 45
    clean = over_seeds(key, make_params(45, 1.0, lam=0.1 * 64 / 45), SPEC, S)
    a, c = np.asarray(oracle.acc)[:, 0], np.asarray(clean.acc)[:, 0]
    se = math.sqrt(a.var(ddof=1) / S + c.var(ddof=1) / S)
    assert abs(a.mean() - c.mean()) < 5 * se


def test_no_verifier_keeps_every_valid_sample(key):
    for n in (64, 16):
        res = over_seeds(key, make_params(n, 1.0, p=0.3, phi=1.0, psi=1.0, tau=-np.inf), SPEC, S)
        np.testing.assert_array_equal(res.keep_fraction, 1.0)  # the 64 - n masked rows not counted
        np.testing.assert_array_equal(res.phi, 1.0)
        # psi is undefined (NaN) exactly when a run drew no wrong label
        psi, p = np.asarray(res.psi), np.asarray(res.p)
        np.testing.assert_array_equal(np.isnan(psi), p == 0)
        np.testing.assert_array_equal(psi[p > 0], 1.0)
        # the error rate is a count over exactly n samples
        np.testing.assert_allclose(res.p * n, np.round(res.p * n), atol=1e-9)


def test_masked_rows_match_smaller_capacity_in_distribution(key):
    # n = 16 in a capacity of 64 vs a capacity of exactly 16: same distribution of every output
    # (if the 48 masked rows leaked into training, acc would be far higher).
    params = make_params(16, 1.0, p=0.3, phi=0.9, psi=0.4)
    big = _np(over_seeds(key, params, SPEC, S))
    small = _looped(jax.random.fold_in(key, 1), params, SimSpec(n_max=16, d=8, dtype="float64"), S)
    for f in ("acc", "p", "phi", "psi", "keep_fraction"):
        a, b = big[f][:, 0], getattr(small, f)[:, 0]
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) < 5 * se, f
    np.testing.assert_allclose(
        big["keep_fraction"] * 16, np.round(big["keep_fraction"] * 16), atol=1e-9
    )
    # measured p pools over n = 16 samples x S seeds: 5 binomial standard errors around 0.3
    assert abs(big["p"].mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / (16 * S))


def test_class_specific_rates(key):
    # p = [class +1, class -1]; mean error 0.25, generator accuracy 1 - 0.25
    seeds = 64
    res = _looped(key, make_params(64, 1.0, p=[0.1, 0.4], phi=1.0, psi=[1.0, 1.0]), SPEC, seeds)
    assert abs(float(res.p.mean()) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / (64 * seeds))
    np.testing.assert_allclose(res.gen_acc, 0.75, rtol=1e-12)
    # p and psi index the same class: all flips in class -1, whose wrong samples are always
    # dropped -> psi = 0; all flips in class +1, whose wrong samples are always kept -> psi = 1
    res = _looped(key, make_params(64, 1.0, p=[0.0, 0.4], phi=1.0, psi=[1.0, 0.0]), SPEC, seeds)
    np.testing.assert_array_equal(res.psi, 0.0)
    res = _looped(key, make_params(64, 1.0, p=[0.4, 0.0], phi=1.0, psi=[1.0, 0.0]), SPEC, seeds)
    np.testing.assert_array_equal(res.psi, 1.0)
    # Which entry is class +1 is invisible in the outputs (the model is symmetric under
    # (x, y) -> (-x, -y)), so check the indexing helper for the documented [+1, -1] order.
    y = jnp.array([1.0, -1.0, -1.0, 1.0])
    np.testing.assert_array_equal(_per_class(jnp.array([0.1, 0.4]), y), [0.1, 0.4, 0.4, 0.1])
    np.testing.assert_array_equal(_per_class(jnp.asarray(0.3), y), [0.3] * 4)


def test_linear_verifier_rates_match_closed_form(key):
    # keep iff y~ (w_ver . x) >= tau with y (w_ver . x) ~ N(cos(theta_ver) snr, 1):
    # phi = Phi(cos(tv) snr - tau), psi = Phi(-tau - cos(tv) snr)   (flip labels ignore x)
    snr, tau, tv = 1.5, 0.5, 0.6
    res = over_seeds(key, make_params(64, snr, p=0.3, tau=tau, theta_ver=tv), SPEC, S)
    mean, se = summarize(res)
    m = math.cos(tv) * snr
    phi, psi = norm.cdf(m - tau), norm.cdf(-tau - m)
    assert abs(float(mean.phi[0]) - phi) < 5 * float(se.phi[0])
    assert abs(float(mean.psi[0]) - psi) < 5 * float(se.psi[0])
    # and the standard errors are those of a binomial over ~0.7 * 64 * S correct samples
    assert float(se.phi[0]) < 2 * math.sqrt(phi * (1 - phi) / (0.7 * 64 * S))


# -------------------------------------------------------------------------- generators

# the linear generator at large n, with an empirical test set
LINEAR = SimSpec(n_max=4000, d=4, generator="linear", n_test=4000)


def test_linear_generator_and_test_set(key):
    for i, (snr, theta) in enumerate([(1.0, 0.0), (2.0, 0.7), (1.5, 1.2)]):
        res = simulate(jax.random.fold_in(key, i), make_params(4000, snr, theta_gen=theta), LINEAR)
        gen = norm.cdf(math.cos(theta) * snr)
        np.testing.assert_allclose(res.gen_acc, gen, rtol=1e-6)
        # the labels it actually produced: error rate 1 - gen over n = 4000 samples
        assert abs(float(res.p[0]) - (1 - gen)) < 5 * math.sqrt(gen * (1 - gen) / 4000)
        # the empirical test accuracy is a binomial(n_test, acc) / n_test
        acc = float(res.acc[0])
        assert 0.5 < acc < 1.0
        assert abs(float(res.acc_test[0]) - acc) < 4 * math.sqrt(acc * (1 - acc) / 4000)


# the ridge generator (trained on real data), two accumulating rounds
RIDGE_GEN = SimSpec(
    n_max=2000, d=4, generator="ridge", rounds=2, data="accumulate", n_real_max=20, dtype="float64"
)


def test_ridge_generator(key):
    res = simulate(key, make_params(2000, 1.5, n_real=20, lam_gen=0.1), RIDGE_GEN)
    gen = float(res.gen_acc[0])
    assert 0.5 < gen < 1.0
    assert gen <= norm.cdf(1.5) + 1e-12  # no linear classifier beats the Bayes rule
    assert abs(float(res.p[0]) - (1 - gen)) < 5 * math.sqrt(gen * (1 - gen) / 2000)
    # round 1's generator is round 0's model
    assert float(res.gen_acc[1]) == float(res.acc[0])


def test_normaliser_counts_pruned_synthetic_and_real_samples(key):
    # tau = +inf prunes every synthesized sample, so round r's learner is ridge on the real
    # data alone, w_r = (G_real + N_r lam I)^{-1} b_real with N_r = (r + 1) n + n_real
    # (accumulated synthetic samples, pruned ones included, plus the real ones). The ridge
    # generator is the same estimator with N = n_real and lam_gen, so it reproduces w_r
    # exactly when lam_gen n_real = lam N_r.
    n, n_real, lam = 30, 20, 0.1
    accs = []
    for r in range(2):
        lam_gen = lam * ((r + 1) * n + n_real) / n_real
        kw = {"n_real": n_real, "mix_real": 1.0, "lam": lam, "lam_gen": lam_gen, "tau": np.inf}
        res = simulate(key, make_params(n, 1.5, **kw), RIDGE_GEN)
        np.testing.assert_array_equal(res.keep_fraction, 0.0)
        np.testing.assert_allclose(res.acc[r], res.gen_acc[0], rtol=1e-12)
        accs.append(float(res.acc[r]))
    assert accs[0] != accs[1]  # the two normalisers really give different models


# ---------------------------------------------------------------------------- rounds

ROUNDS = {
    data: SimSpec(n_max=64, d=8, rounds=3, data=data, n_real_max=8)
    for data in ("replace", "accumulate")
}


SEEDS_ROUNDS = 64


def test_rounds_replace_and_accumulate(key):
    params = make_params(64, 1.0, p=0.3, phi=1.0, psi=0.0)
    res = {data: _looped(key, params, spec, SEEDS_ROUNDS) for data, spec in ROUNDS.items()}
    for r in res.values():
        for f, v in r._asdict().items():
            assert v.shape == (SEEDS_ROUNDS, 3), f
    # round 0 flips true labels (generator accuracy 1 - p); round r > 0 labels with the
    # model of round r - 1
    for r in res.values():
        np.testing.assert_allclose(r.gen_acc[:, 0], 0.7, rtol=1e-12)
        np.testing.assert_array_equal(r.gen_acc[:, 1:], r.acc[:, :-1])
    # round 0 sees the same data in both modes; later rounds differ
    _assert_results_close(
        jax.tree.map(lambda v: v[:, 0], res["replace"]),
        jax.tree.map(lambda v: v[:, 0], res["accumulate"]),
        rtol=1e-6,
    )
    assert not np.allclose(res["replace"].acc[:, 2], res["accumulate"].acc[:, 2])
    # with the oracle verifier, accumulating clean data raises accuracy from round 0 to 2:
    # the mean paired gain must exceed 3 standard errors
    gain = np.asarray(res["accumulate"].acc[:, 2] - res["accumulate"].acc[:, 0])
    assert gain.mean() > 3 * gain.std(ddof=1) / math.sqrt(SEEDS_ROUNDS)


def test_mixing_real_data_changes_training_only(key):
    spec = ROUNDS["accumulate"]
    kw = {"p": 0.3, "phi": 1.0, "psi": 0.0, "n_real": 8}
    off = _looped(key, make_params(64, 1.0, **kw, mix_real=0.0), spec, SEEDS_ROUNDS)
    on = _looped(key, make_params(64, 1.0, **kw, mix_real=1.0), spec, SEEDS_ROUNDS)
    # round 0's synthesized labels and selection do not depend on the learner ...
    for f in ("p", "phi", "psi", "keep_fraction"):
        np.testing.assert_array_equal(getattr(on, f)[:, 0], getattr(off, f)[:, 0])
    # ... but the model trained on them does
    assert np.abs(np.asarray(on.acc - off.acc)).min(axis=0)[0] > 0


# --------------------------------------------------------------------------- logistic


@pytest.mark.parametrize("data,rounds", [("replace", 1), ("accumulate", 2)])
def test_logistic_learner_in_simulation(key, data, rounds):
    spec = SimSpec(n_max=300, d=5, learner="logistic", data=data, rounds=rounds)
    res = simulate(key, make_params(300, 2.0, lam=0.01), spec)
    assert res.acc.shape == (rounds,)
    # clean labels, 300 samples in d = 5: close to the Bayes accuracy Phi(2) = 0.977
    assert (np.asarray(res.acc) > 0.95).all()
    assert (np.asarray(res.acc) <= norm.cdf(2.0) + 1e-12).all()
    # pruned rows carry no weight: with every sample pruned (tau = +inf) the loss is the
    # penalty alone, w = 0, and the exact accuracy of w = 0 is 1/2
    res = simulate(key, make_params(300, 2.0, lam=0.01, tau=np.inf), spec)
    np.testing.assert_array_equal(res.keep_fraction, 0.0)
    np.testing.assert_array_equal(res.acc, 0.5)


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"p": 1.2}, r"^p must .*1\.2"),
        ({"n": 65}, r"^n must .*65"),
        ({"lam": 0.0}, r"^lam must"),
        ({"phi": 0.0, "psi": 0.0}, r"^phi and psi must not both be 0"),
        ({"tau": np.nan}, r"^tau must"),
        ({"psi": [0.5, 1.5]}, r"^psi must .*\(entry 1\)"),
    ],
)
def test_invalid_params_raise(key, kwargs, pattern):
    kw = {"n": 64, "snr": 1.0, **kwargs}
    params = make_params(**kw)
    for run in (
        lambda: simulate(key, params, SPEC),
        lambda: over_seeds(key, params, SPEC, 2),
    ):
        with pytest.raises(ValueError, match=pattern):
            run()


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"d": 0}, r"^d must"),
        ({"n_max": 0}, r"^n_max must"),
        ({"generator": "foo"}, r"^generator must .*'foo'"),
        ({"learner": "svm"}, r"^learner must"),
        ({"generator": "ridge"}, r"^n_real_max must"),
    ],
)
def test_invalid_spec_raises(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        SimSpec(**{"n_max": 10, "d": 3, **kwargs})
