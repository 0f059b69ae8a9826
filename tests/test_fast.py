"""The exact fast sampler (gmmcollapse.gmm.fast) against the naive simulation and closed forms.

* distributional exactness: per-seed outputs of ``fast_simulate`` (both methods) and of the
  naive ``_simulate`` have the same law (two-sample KS, p > 1e-3; means within 4 SE; the same
  frequency of undefined rates), over configurations covering n < d, n > d, low keep fractions,
  class-specific rates, real-data mixing, the shifted synthetic law and both dtypes;
* the random-matrix pieces against NumPy's ``Z^T Z`` and known moments, singular cases included;
* the multinomial counts' means and variances;
* n = 10^7 in well under a second, close to the proportional theory and the infinite-data limit;
* vmapped == looped, no recompilation for new parameter values, ``eligible``'s truth table.

Compiles dominate the run time (1.5-3 s per distinct spec and batch shape on a 2-core CPU), so
the tests share two specs for the comparisons and one seed count.
"""

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import binom as binom_dist
from scipy.stats import chi2 as chi2_dist
from scipy.stats import chisquare, ks_2samp, kstest, ortho_group

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.gmm import SimSpec, fast, make_params
from gmmcollapse.gmm.fast import (
    TRACE_COUNT,
    bartlett_factor,
    cell_probabilities,
    eligible,
    fast_simulate,
    laguerre_tridiagonal,
    sample_counts,
    wishart,
)
from gmmcollapse.gmm.simulate import _simulate
from gmmcollapse.theory import (
    infinite_data_accuracy,
    ridge_accuracy,
    shifted_mixed_ridge_accuracy,
)

SEEDS = 400
P_MIN = 1e-3  # KS threshold; every comparison below uses fixed seeds, so results are stable

# synthesized data only: float32 naive path, the fast path's tridiagonal (auto) and Bartlett
# methods; 64 test points so that acc_test is compared as well
SPEC_SYN = SimSpec(n_max=160, d=24, n_test=64)
# real rows mixed in (only the Bartlett method applies), float64 naive path
SPEC_MIX = SimSpec(n_max=96, d=24, n_real_max=16, dtype="float64")

CONFIGS_SYN = {
    "n<d": {"n": 16, "snr": 1.5, "p": 0.1, "phi": 0.9, "psi": 0.4, "lam": 0.05},
    "n>d, keep 0.3": {"n": 160, "snr": 1.2, "p": 0.3, "phi": 0.35, "psi": 0.2, "lam": 0.2},
    "p > p*": {"n": 120, "snr": 1.5, "p": 0.45, "phi": 0.5, "psi": 0.7, "lam": 0.1},
    "class-specific": {"n": 100, "snr": 1.5, "p": [0.1, 0.4], "phi": [0.9, 0.5], "psi": [0.3, 0.7]},
    "shifted": {
        "n": 80,
        "snr": 1.5,
        "p": 0.25,
        "phi": 0.8,
        "psi": 0.3,
        "beta": 0.7,
        "gamma": 0.6,
        "sigma": 1.4,
    },
}
CONFIGS_MIX = {
    "mix": {"n": 40, "snr": 1.0, "p": 0.3, "phi": 0.7, "psi": 0.4, "n_real": 12, "mix_real": 1.0},
    "mix, shifted, per class": {
        "n": 96,
        "snr": 1.0,
        "p": [0.2, 0.35],
        "phi": [0.8, 0.6],
        "psi": [0.5, 0.3],
        "n_real": 16,
        "mix_real": 1.0,
        "beta": 1.2,
        "gamma": 0.4,
        "sigma": 0.8,
        "lam": 0.3,
    },
}


def _params(cfg):
    """Rates as ``[class +1, class -1]`` pairs even when equal (the same model), so that every
    configuration has the same shapes and runs through one compiled program per spec."""
    cfg = dict(cfg)
    for rate in ("p", "phi", "psi"):
        cfg[rate] = np.broadcast_to(np.asarray(cfg.get(rate, 1.0 if rate != "p" else 0.0)), (2,))
    return make_params(cfg.pop("n"), cfg.pop("snr"), **cfg)


def _tile(params, seeds):
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (seeds,) + v.shape), params)


# one compiled batched function per (runner, spec): keys and parameters both batched
_naive_batched = jax.jit(jax.vmap(_simulate, in_axes=(0, 0, None)), static_argnums=2)
_fast_batched = jax.jit(jax.vmap(fast_simulate, in_axes=(0, 0, None, None)), static_argnums=(2, 3))


def _run_naive(key, params, spec):
    keys = jax.random.split(key, SEEDS)
    return jax.tree.map(
        lambda v: np.asarray(v)[:, 0], _naive_batched(keys, _tile(params, SEEDS), spec)
    )


def _run_fast(key, params, spec, method="auto"):
    keys = jax.random.split(key, SEEDS)
    out = _fast_batched(keys, _tile(params, SEEDS), spec, method)
    return jax.tree.map(lambda v: np.asarray(v)[:, 0], out)


def _assert_same_law(naive, fast_res, fields, label):
    for f in fields:
        a, b = getattr(naive, f), getattr(fast_res, f)
        # undefined rates (no wrong sample, ...) must be as frequent on both paths
        na, nb = np.isnan(a).mean(), np.isnan(b).mean()
        se_nan = math.sqrt(max(na * (1 - na) + nb * (1 - nb), 1.0 / SEEDS) / SEEDS)
        assert abs(na - nb) <= 4 * se_nan, (label, f, na, nb)
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if len(a) < 20 or len(b) < 20:
            continue
        p_value = ks_2samp(a, b).pvalue
        assert p_value > P_MIN, (label, f, p_value)
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) <= 4 * se + 1e-12, (label, f, a.mean(), b.mean(), se)


FIELDS = ("acc", "p", "phi", "psi", "p_star", "keep_fraction")


@pytest.mark.parametrize("method", ["auto", pytest.param("bartlett", marks=pytest.mark.slow)])
def test_same_law_as_naive_synthesized(method):
    for i, (label, cfg) in enumerate(CONFIGS_SYN.items()):
        params = _params(cfg)
        key = jax.random.key(100 + i)
        naive = _run_naive(key, params, SPEC_SYN)
        fast_res = _run_fast(jax.random.fold_in(key, 1), params, SPEC_SYN, method)
        # the two methods share the count draws (same key), so the rates are compared once
        fields = FIELDS + ("acc_test",) if method == "auto" else ("acc", "acc_test")
        _assert_same_law(naive, fast_res, fields, f"{label} [{method}]")
        np.testing.assert_allclose(fast_res.gen_acc, naive.gen_acc, rtol=1e-12)


@pytest.mark.slow  # distributional test; the synthesized-data law test covers the default suite
def test_same_law_as_naive_mixed_real():
    for i, (label, cfg) in enumerate(CONFIGS_MIX.items()):
        params = _params(cfg)
        key = jax.random.key(200 + i)
        naive = _run_naive(key, params, SPEC_MIX)
        fast_res = _run_fast(jax.random.fold_in(key, 1), params, SPEC_MIX)
        _assert_same_law(naive, fast_res, FIELDS, label)
        assert np.all(np.isnan(fast_res.acc_test))  # n_test = 0


# ----------------------------------------------------------------- random-matrix pieces

_DRAWS = 20000


@jax.jit
def _chi2_draws(keys):
    dofs = jnp.array([1.0, 2.0, 3.0, 10.0, 1e6])
    return jax.vmap(lambda k: fast._chi2(k, dofs))(keys)


def test_chi2_sampler_matches_scipy():
    x = np.asarray(_chi2_draws(jax.random.split(jax.random.key(1), _DRAWS)))
    for j, dof in enumerate([1.0, 2.0, 3.0, 10.0, 1e6]):
        assert kstest(x[:, j], chi2_dist(dof).cdf).pvalue > P_MIN, dof
    assert np.all(np.asarray(fast._chi2(jax.random.key(0), jnp.zeros(3))) == 0)


D_SMALL = 4


@jax.jit
def _wishart_draws(keys, df):
    return jax.vmap(lambda k: wishart(k, df, D_SMALL))(keys)


@jax.jit
def _rotated_tridiagonal_draws(keys, df, haar):
    def one(k, h):
        t_diag, t_off = laguerre_tridiagonal(k, df, D_SMALL)
        t = jnp.diag(t_diag) + jnp.diag(t_off, 1) + jnp.diag(t_off, -1)
        return h @ t @ h.T, jnp.linalg.eigvalsh(t)

    return jax.vmap(one)(keys, haar)


def _numpy_wishart(rng, df, draws):
    z = rng.standard_normal((draws, df, D_SMALL))
    return np.einsum("nki,nkj->nij", z, z)


def _check_wishart_law(w, df, reference, label):
    """Moments E W = df I, Var W_ii = 2 df, Var W_ij = df, and entries/eigenvalues vs Z^T Z."""
    n = len(w)
    mean = w.mean(0)
    var = w.var(0, ddof=1)
    want_var = np.where(np.eye(D_SMALL, dtype=bool), 2.0 * df, float(df))
    assert np.all(np.abs(mean - df * np.eye(D_SMALL)) <= 5 * np.sqrt(want_var / n)), (label, mean)
    # sample variance of a Wishart entry: relative SE below 3% at 20000 draws
    np.testing.assert_allclose(var, want_var, rtol=0.1)
    for i, j in [(0, 0), (0, 1), (2, 3), (3, 3)]:
        assert ks_2samp(w[:, i, j], reference[:, i, j]).pvalue > P_MIN, (label, i, j)
    ev, ev_ref = np.linalg.eigvalsh(w), np.linalg.eigvalsh(reference)
    n_zero = max(D_SMALL - df, 0)  # a singular Wishart has d - df zero eigenvalues
    assert np.all(np.abs(ev[:, :n_zero]) < 1e-9 * df**2), (label, "zero eigenvalues")
    for k in sorted({n_zero, D_SMALL - 1}):  # smallest non-zero and largest eigenvalue
        assert ks_2samp(ev[:, k], ev_ref[:, k]).pvalue > P_MIN, (label, "eig", k)


@pytest.mark.parametrize("df", [2, 4, 9])  # 2 < d: singular Wishart
def test_bartlett_wishart_law(df):
    keys = jax.random.split(jax.random.key(df), _DRAWS)
    w = np.asarray(_wishart_draws(keys, float(df)))
    reference = _numpy_wishart(np.random.default_rng(df), df, _DRAWS)
    _check_wishart_law(w, df, reference, f"bartlett df={df}")
    assert np.all(np.linalg.matrix_rank(w[:50]) == min(df, D_SMALL))


def test_bartlett_factor_structure():
    r = np.asarray(bartlett_factor(jax.random.key(3), 2.0, 5))
    assert np.all(np.tril(r, -1) == 0)  # upper triangular
    assert np.all(r[2:] == 0) and np.all(np.diag(r)[:2] > 0)  # rows >= df vanish
    assert np.all(np.asarray(wishart(jax.random.key(3), 0.0, 5)) == 0)


@pytest.mark.parametrize("df", [2, 9])
def test_laguerre_tridiagonal_law(df):
    """A Haar rotation of T = B^T B is Wishart; T's eigenvalues are those of Z^T Z."""
    keys = jax.random.split(jax.random.key(10 + df), _DRAWS)
    haar = ortho_group.rvs(D_SMALL, size=_DRAWS, random_state=df)
    w, ev = _rotated_tridiagonal_draws(keys, float(df), haar)
    reference = _numpy_wishart(np.random.default_rng(10 + df), df, _DRAWS)
    _check_wishart_law(np.asarray(w), df, reference, f"tridiagonal df={df}")
    ev_ref = np.linalg.eigvalsh(reference)
    assert ks_2samp(np.asarray(ev)[:, -1], ev_ref[:, -1]).pvalue > P_MIN
    t_diag, t_off = laguerre_tridiagonal(jax.random.key(0), 0.0, 3)
    assert np.all(np.asarray(t_diag) == 0) and np.all(np.asarray(t_off) == 0)


@jax.jit
def _count_draws(keys, n, p, phi, psi):
    c = jax.vmap(lambda k: sample_counts(k, n, p, phi, psi))(keys)
    return jnp.stack(
        [c.kept_correct, c.n_correct - c.kept_correct, c.kept_wrong, c.n_wrong - c.kept_wrong], -1
    )


@pytest.mark.parametrize(
    "n, p, phi, psi",
    [
        (1000.0, 0.3, 0.8, 0.4),
        (37.0, [0.1, 0.5], [0.9, 0.4], [0.2, 0.7]),
        (10.0**7, 0.2, 1.0, 0.0),
    ],
)
def test_multinomial_counts(n, p, phi, psi):
    """Each cell's count is Binomial(n, pi_cell): chi-square fit to the exact pmf where the
    pmf is cheap, means and variances always; certain events stay certain."""
    args = [jnp.broadcast_to(jnp.asarray(v, jnp.float64), (2,)) for v in (p, phi, psi)]
    cells = np.asarray(_count_draws(jax.random.split(jax.random.key(5), _DRAWS), n, *args))
    prob = np.asarray(cell_probabilities(*args))
    assert np.all(cells.sum(-1) == n) and np.all(cells >= 0) and np.all(cells == np.round(cells))
    se = np.sqrt(n * prob * (1 - prob) / _DRAWS)
    assert np.all(np.abs(cells.mean(0) - n * prob) <= 4 * se + 1e-9), (cells.mean(0), n * prob)
    np.testing.assert_allclose(cells.var(0), n * prob * (1 - prob), rtol=0.1, atol=1e-9)
    if n > 10**4:
        assert np.all(cells[:, 2] == 0) and np.all(cells[:, 1] == 0)  # psi = 0, phi = 1
        return
    for j in range(4):
        pmf = binom_dist(int(n), prob[j]).pmf(np.arange(int(n) + 1))
        counts = np.bincount(cells[:, j].astype(int), minlength=int(n) + 1)
        big = pmf * _DRAWS > 20  # pool the sparse tails into one cell
        obs = np.append(counts[big], counts[~big].sum())
        exp = np.append(pmf[big], pmf[~big].sum()) * _DRAWS
        if exp[-1] == 0:
            obs, exp = obs[:-1], exp[:-1]
        exp *= obs.sum() / exp.sum()
        assert chisquare(obs, exp).pvalue > P_MIN, (n, j)


# ------------------------------------------------------------------------- large n

SPEC_BIG = SimSpec(n_max=2**24, d=256)


def test_ten_million_samples_fast_and_close_to_theory():
    params = make_params(10**7, 1.0, p=0.3, phi=0.9, psi=0.5, lam=0.1)
    fast_simulate(jax.random.key(0), params, SPEC_BIG).acc.block_until_ready()  # compile
    best, accs = math.inf, []
    for seed in range(5):
        t0 = time.perf_counter()
        accs.append(float(fast_simulate(jax.random.key(seed), params, SPEC_BIG).acc[0]))
        best = min(best, time.perf_counter() - t0)
    assert best < 0.1, best
    theory = float(ridge_accuracy(1e7, 256, 1.0, 0.3, 0.9, 0.5, 0.1))
    # fluctuations are O(1/sqrt(n)) and the finite-size bias O(d/n): both far below 1e-4
    assert abs(np.mean(accs) - theory) < 1e-4, (np.mean(accs), theory)
    assert abs(np.mean(accs) - float(infinite_data_accuracy(1.0, 0.3, 0.9, 0.5))) < 1e-4
    # past the breakdown point (p* = 0.25 here) the same spec, no recompile
    above = make_params(10**7, 1.0, p=0.4, phi=0.5, psi=1.0, lam=0.1)
    acc = float(fast_simulate(jax.random.key(9), above, SPEC_BIG).acc[0])
    assert abs(acc - float(infinite_data_accuracy(1.0, 0.4, 0.5, 1.0))) < 1e-3


def test_ten_million_mixed_shifted_close_to_theory():
    spec = SimSpec(n_max=2**24, d=64, n_real_max=2**20)
    kw = {"p": 0.35, "phi": 0.8, "psi": 0.6, "lam": 0.05, "beta": 0.8, "gamma": 0.5, "sigma": 1.3}
    params = make_params(10**7, 1.0, n_real=10**6, mix_real=1.0, **kw)
    acc = np.mean([float(fast_simulate(jax.random.key(s), params, spec).acc[0]) for s in range(3)])
    theory = float(shifted_mixed_ridge_accuracy(1e6, 1e7, 64, 1.0, **kw))
    assert abs(acc - theory) < 1e-4, (acc, theory)


# -------------------------------------------------------------------- invariances, API


def test_vmap_equals_loop_and_no_recompile():
    params = _params(CONFIGS_SYN["shifted"])
    keys = jax.random.split(jax.random.key(0), SEEDS)
    batched = _fast_batched(keys, _tile(params, SEEDS), SPEC_SYN, "auto")
    for i in range(3):
        single = fast_simulate(keys[i], params, SPEC_SYN)
        for f in single._fields:
            np.testing.assert_allclose(
                np.asarray(getattr(single, f)),
                np.asarray(getattr(batched, f))[i],
                rtol=1e-12,
                atol=1e-14,
                err_msg=f,
            )

    traces = TRACE_COUNT["fast_simulate"]
    for n, p, phi, psi, lam in [(20, 0.1, 0.9, 0.2, 0.3), (150, [0.45, 0.2], 0.3, 0.8, 1e-3)]:
        cfg = {"n": n, "snr": 0.7, "p": p, "phi": phi, "psi": psi, "lam": lam, "sigma": 0.9}
        fast_simulate(jax.random.key(1), _params(cfg), SPEC_SYN).acc.block_until_ready()
    assert TRACE_COUNT["fast_simulate"] == traces


def test_edge_cases():
    key = jax.random.key(4)
    # nothing kept: w = 0, accuracy 1/2, keep fraction 0, p* undefined
    res = fast_simulate(key, _params({"n": 50, "snr": 1.0, "p": 0.3, "phi": 0, "psi": 0}), SPEC_SYN)
    assert res.acc[0] == 0.5 and res.keep_fraction[0] == 0 and np.isnan(res.p_star[0])
    # no wrong label: psi undefined
    res = fast_simulate(
        key, _params({"n": 50, "snr": 1.0, "p": 0, "phi": 0.5, "psi": 0.5}), SPEC_SYN
    )
    assert np.isnan(res.psi[0]) and res.p[0] == 0 and res.gen_acc[0] == 1.0
    # a margin test is outside the model: NaN everywhere instead of a silently wrong answer
    res = fast_simulate(key, _params({"n": 50, "snr": 1.0, "p": 0.2, "tau": 0.0}), SPEC_SYN)
    assert all(np.isnan(np.asarray(v)).all() for v in res)


def test_invalid_spec_or_method_raises():
    params = make_params(10, 1.0)
    with pytest.raises(ValueError, match="learner"):
        fast_simulate(jax.random.key(0), params, dataclasses.replace(SPEC_SYN, learner="logistic"))
    with pytest.raises(ValueError, match="n_real_max"):
        fast_simulate(jax.random.key(0), params, SPEC_MIX, "tridiagonal")
    with pytest.raises(ValueError, match="method"):
        fast_simulate(jax.random.key(0), params, SPEC_SYN, "dense")


def test_eligible_truth_table():
    base = SimSpec(n_max=10, d=4)
    assert eligible(base)
    assert eligible(dataclasses.replace(base, data="accumulate", solver="dual", dtype="float64"))
    assert eligible(dataclasses.replace(base, n_real_max=5, n_test=10))
    assert not eligible(dataclasses.replace(base, generator="linear"))
    assert not eligible(dataclasses.replace(base, generator="ridge", n_real_max=3))
    assert not eligible(dataclasses.replace(base, rounds=2))
    assert not eligible(dataclasses.replace(base, learner="logistic"))
    assert eligible(base, {"p": np.array([0.1, 0.2])})  # no tau: the default -inf
    assert eligible(base, {"tau": np.array([-np.inf, -np.inf])})
    assert not eligible(base, {"tau": np.array([-np.inf, 0.0])})
    assert not eligible(base, {"tau": np.array([-1e300])})
    assert eligible(base, make_params(10, 1.0, p=[0.1, 0.3]))
    assert not eligible(base, make_params(10, 1.0, tau=0.5))
    assert not eligible(dataclasses.replace(base, rounds=3), {"tau": np.array([-np.inf])})
