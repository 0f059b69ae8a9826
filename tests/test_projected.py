"""The exact sampler for selection that reads x (gmmcollapse.gmm.projected) against the naive path.

* distributional exactness: per-seed outputs of ``projected_simulate`` and of the naive
  ``_simulate`` have the same law (two-sample KS, p > 1e-3; means within 4 SE; the same
  frequency of undefined rates), over configurations covering flips and linear generators
  with the margin test (tau > 0 and < 0), no verifier, a noisy oracle on top of the margin
  test, n < d, class-specific rates (the path that draws the class), real data mixed in, both
  dtypes, and three rounds of retraining from flip, linear and ridge generators;
* agreement with the exact theory at n = 10^6;
* vmapped == looped, no recompilation for new parameter values, what ``plan`` picks and
  ``why_not``'s reasons, NaN outside the model.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import ks_2samp

import gmmcollapse  # noqa: F401  (enables float64)
import gmmcollapse.theory as T
from gmmcollapse import feedback
from gmmcollapse.gmm import SimSpec, make_params
from gmmcollapse.gmm.paths import plan
from gmmcollapse.gmm.projected import TRACE_COUNT, eligible, projected_simulate, why_not
from gmmcollapse.gmm.simulate import _simulate

SEEDS = 400
P_MIN = 1e-3  # KS threshold; fixed seeds, so the outcome is stable

SPECS = {
    "flip": SimSpec(n_max=160, d=24, n_test=64),
    "linear": SimSpec(n_max=160, d=24, generator="linear", dtype="float64"),
    "mix": SimSpec(n_max=96, d=24, generator="linear", n_real_max=16, dtype="float64"),
    "rounds_flip": SimSpec(n_max=128, d=24, rounds=3),
    "rounds_linear": SimSpec(n_max=128, d=24, generator="linear", rounds=3, dtype="float64"),
    "rounds_ridge": SimSpec(n_max=128, d=24, generator="ridge", n_real_max=16, rounds=3),
}

CONFIGS = {
    "flip": {
        "tau > 0": {"n": 160, "snr": 1.2, "p": 0.3, "theta_ver": 0.26, "tau": 0.4, "lam": 0.1},
        "tau < 0, n < d": {"n": 16, "snr": 1.5, "p": 0.45, "theta_ver": -0.5, "tau": -0.3},
        "oracle + margin": {
            "n": 120,
            "snr": 1.0,
            "p": 0.4,
            "phi": 1.0,
            "psi": 0.4,
            "theta_ver": 0.8,
            "tau": 0.0,
            "lam": 0.3,
        },
        "class-specific": {
            "n": 100,
            "snr": 1.5,
            "p": [0.1, 0.4],
            "phi": [0.9, 0.5],
            "psi": [0.3, 0.7],
            "theta_ver": 0.3,
            "tau": 0.2,
        },
    },
    "linear": {
        "no verifier": {"n": 160, "snr": 1.0, "theta_gen": 1.0},
        "margin": {"n": 100, "snr": 1.0, "theta_gen": 1.0, "theta_ver": 0.26, "tau": 0.3},
        "parallel, oracle": {
            "n": 60,
            "snr": 1.3,
            "theta_gen": 0.5,
            "theta_ver": 0.5,
            "tau": -0.2,
            "psi": 0.0,
        },
    },
    "mix": {
        "real + margin": {
            "n": 96,
            "snr": 1.0,
            "theta_gen": 1.2,
            "theta_ver": 0.3,
            "tau": 0.1,
            "n_real": 12,
            "mix_real": 1.0,
            "lam": 0.2,
        },
    },
    "rounds_flip": {
        "margin": {"n": 128, "snr": 1.0, "p": 0.25, "theta_ver": 0.3, "tau": 0.1},
    },
    "rounds_linear": {
        "oracle + margin": {
            "n": 100,
            "snr": 1.2,
            "theta_gen": 1.1,
            "theta_ver": -0.2,
            "tau": 0.3,
            "psi": 0.5,
        },
    },
    "rounds_ridge": {
        "noisy oracle": {"n": 128, "snr": 1.0, "n_real": 16, "psi": 0.5},
        "margin": {"n": 128, "snr": 1.0, "n_real": 12, "theta_ver": 0.3, "tau": 0.0},
    },
}


def _params(cfg, per_class=True):
    """Rates as ``[class +1, class -1]`` pairs (the class-drawing branch of the sampler) unless
    ``per_class`` is False; within one spec every configuration then shares one program."""
    cfg = dict(cfg)
    for rate in ("p", "phi", "psi"):
        v = np.asarray(cfg.get(rate, 0.0 if rate == "p" else 1.0), np.float64)
        cfg[rate] = np.broadcast_to(v, (2,)) if per_class else v
    return make_params(cfg.pop("n"), cfg.pop("snr"), **cfg)


def _tile(params, seeds):
    return jax.tree.map(lambda v: jnp.broadcast_to(v, (seeds,) + v.shape), params)


_naive_batched = jax.jit(jax.vmap(_simulate, in_axes=(0, 0, None)), static_argnums=2)
_proj_batched = jax.jit(jax.vmap(projected_simulate, in_axes=(0, 0, None)), static_argnums=2)


def _run(fn, key, params, spec):
    keys = jax.random.split(key, SEEDS)
    return jax.tree.map(np.asarray, fn(keys, _tile(params, SEEDS), spec))


def _assert_same_law(naive, proj, fields, label):
    for f in fields:
        for r in range(getattr(naive, f).shape[1]):
            a, b = getattr(naive, f)[:, r], getattr(proj, f)[:, r]
            na, nb = np.isnan(a).mean(), np.isnan(b).mean()
            se_nan = math.sqrt(max(na * (1 - na) + nb * (1 - nb), 1.0 / SEEDS) / SEEDS)
            assert abs(na - nb) <= 4 * se_nan, (label, f, r, na, nb)
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            if len(a) < 20 or len(b) < 20 or (np.ptp(a) == 0 and np.ptp(b) == 0):
                continue
            p_value = ks_2samp(a, b).pvalue
            assert p_value > P_MIN, (label, f, r, p_value)
            se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            assert abs(a.mean() - b.mean()) <= 4 * se + 1e-12, (label, f, r, a.mean(), b.mean())


FIELDS = ("acc", "gen_acc", "p", "phi", "psi", "p_star", "keep_fraction")


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(g, marks=pytest.mark.slow) if g in ("rounds_ridge", "rounds_linear") else g
        for g in CONFIGS
    ],
)
def test_same_law_as_naive(group):
    spec = SPECS[group]
    assert eligible(spec) and plan(spec).path in ("projected", "fast")
    for i, (label, cfg) in enumerate(CONFIGS[group].items()):
        params = _params(cfg)
        assert plan(spec, params._asdict()).path == "projected", label
        key = jax.random.key(300 + 10 * i + len(group))
        naive = _run(_naive_batched, key, params, spec)
        proj = _run(_proj_batched, jax.random.fold_in(key, 1), params, spec)
        fields = FIELDS + (("acc_test",) if spec.n_test else ())
        _assert_same_law(naive, proj, fields, f"{group}: {label}")


@pytest.mark.slow  # a second distributional test of the same sampler
def test_class_symmetric_rates_skip_the_class_draw_and_keep_the_law():
    """Scalar rates take the branch that draws no class (mirror symmetry): same law."""
    spec = SPECS["flip"]
    cfg = CONFIGS["flip"]["tau > 0"]
    key = jax.random.key(400)
    naive = _run(_naive_batched, key, _params(cfg, per_class=False), spec)
    proj = _run(_proj_batched, jax.random.fold_in(key, 1), _params(cfg, per_class=False), spec)
    _assert_same_law(naive, proj, FIELDS + ("acc_test",), "scalar rates")


def test_linear_generator_accuracy_is_exact():
    spec = SPECS["linear"]
    params = _params(CONFIGS["linear"]["margin"])
    out = projected_simulate(jax.random.key(0), params, spec)
    assert float(out.gen_acc[0]) == pytest.approx(
        float(T.bayes_accuracy(1.0 * math.cos(1.0))), abs=1e-12
    )


@pytest.mark.parametrize(
    "generator, kw, theory",
    [
        (
            "flip",
            {"p": 0.3},
            lambda: T.flip_linear_ridge_accuracy(10**6, 256, 1.0, 0.3, 0.26, 0.0, 0.1),
        ),
        (
            "linear",
            {"theta_gen": 1.0},
            lambda: T.linear_ridge_accuracy(10**6, 256, 1.0, 1.0, 0.26, 0.0, 0.1),
        ),
    ],
)
def test_a_million_samples_match_the_theory(generator, kw, theory):
    """n = 10^6, d = 256: the proportional theory is within its O(1/n) and the Monte Carlo
    error (per-seed SD about 1e-4 here) of 8 seeds."""
    spec = SimSpec(n_max=10**6, d=256, generator=generator)
    params = make_params(10**6, 1.0, theta_ver=0.26, tau=0.0, lam=0.1, **kw)
    keys = jax.random.split(jax.random.key(1), 8)
    acc = np.asarray(jax.vmap(projected_simulate, in_axes=(0, None, None))(keys, params, spec).acc)
    assert abs(acc.mean() - float(theory())) < 4 * acc.std(ddof=1) / math.sqrt(8) + 2e-4


@pytest.mark.slow  # compiles the sampler at several shapes
def test_vmap_equals_loop_and_no_recompile():
    spec = SPECS["rounds_linear"]
    cfgs = [CONFIGS["rounds_linear"]["oracle + margin"], {"n": 77, "snr": 0.8, "theta_gen": 0.3}]
    keys = jax.random.split(jax.random.key(5), 3)
    run = jax.jit(projected_simulate, static_argnums=2)
    looped = [run(k, _params(c), spec) for c in cfgs for k in keys]
    before = TRACE_COUNT["projected_simulate"]
    for c in cfgs[::-1]:
        run(keys[0], _params(c), spec)
    assert TRACE_COUNT["projected_simulate"] == before  # new values: no new trace
    batched = jax.vmap(jax.vmap(projected_simulate, (0, None, None)), (None, 0, None))(
        keys, jax.tree.map(lambda *v: jnp.stack(v), *[_params(c) for c in cfgs]), spec
    )
    for i, out in enumerate(looped):
        np.testing.assert_allclose(
            np.asarray(batched.acc).reshape(-1, 3)[i], np.asarray(out.acc), rtol=1e-10
        )


def test_plan_and_reasons():
    flip = SimSpec(n_max=64, d=16)
    margin = {"tau": np.array([0.0, -np.inf])}
    assert plan(flip, {"tau": np.array([-np.inf])}).path == "fast"
    assert plan(flip, margin).path == "projected"
    assert plan(SimSpec(n_max=64, d=16, generator="linear")).path == "projected"
    assert plan(SimSpec(n_max=64, d=16, rounds=4)).path == "projected"
    logistic = SimSpec(n_max=64, d=16, generator="linear", learner="logistic")
    assert plan(logistic).path == "primal" and "ridge learner" in why_not(logistic)
    acc = SimSpec(n_max=64, d=16, rounds=3, data="accumulate")
    assert plan(acc).path != "projected" and "replace" in why_not(acc)
    assert "d >= 4" in why_not(SimSpec(n_max=64, d=3, generator="linear"))
    assert "beta" in why_not(flip, {"beta": [1.0, 0.5], "tau": [0.0, 0.0]})
    assert "sigma" in why_not(flip, {"sigma": [1.5], "tau": [0.0]})
    ridge = SimSpec(n_max=64, d=16, generator="ridge", n_real_max=8)
    assert "reused" in why_not(ridge, {"n_real": [8], "mix_real": [1.0]})
    assert (
        why_not(SimSpec(n_max=64, d=16, n_real_max=8), {"n_real": [8], "mix_real": [1.0]}) is None
    )
    with pytest.raises(ValueError, match="projected"):
        plan(logistic, path="projected")


def test_outside_the_model_is_nan_not_a_number():
    spec = SimSpec(n_max=64, d=16, generator="linear")
    out = projected_simulate(jax.random.key(0), make_params(64, 1.0, sigma=1.3), spec)
    assert np.all(np.isnan(np.asarray(out.acc)))
    with pytest.raises(ValueError, match="ridge learner"):
        projected_simulate(
            jax.random.key(0), make_params(64, 1.0), SimSpec(n_max=64, d=16, learner="logistic")
        )


def test_noisy_oracle_takes_predrawn_uniforms():
    correct = jnp.array([True, False, True, False])
    u = jnp.array([0.2, 0.2, 0.95, 0.6])
    sel = feedback.noisy_oracle(None, correct, 0.9, 0.5, uniforms=u)
    np.testing.assert_array_equal(np.asarray(sel.kept), [True, True, False, False])
    with pytest.raises(ValueError, match="exactly one"):
        feedback.noisy_oracle(jax.random.key(0), correct, 0.9, 0.5, uniforms=u)
    with pytest.raises(ValueError, match="exactly one"):
        feedback.noisy_oracle(None, correct, 0.9, 0.5)
