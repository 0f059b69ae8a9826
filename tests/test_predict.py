"""gmm.predict, the simulation's theory twin, and the review defects E1-E3 of issue 10.

* every structure the simulation covers gets the theory that applies to it (single-round flips
  with and without the margin test, linear and ridge generators, several rounds, accumulate),
  and NaN, never another model's number, where no exact theory exists;
* E1: ``solve_delta`` (the shifted law's fixed point) on a batch equals the point-by-point
  values for batches of 1, 3 and 7 (a batch of 3 used to line up with the 3 groups);
* E2: the shifted law's ``beta`` and ``gamma`` change the prediction at ``sigma = 1``;
* E3: fractional ``mix_real`` is rejected everywhere (predict, validate_params, the CLI path).
"""

import math

import numpy as np
import pytest

import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params, predict, validate_params

INF = math.inf


# ---------------------------------------------------------------- E1: batched shifted theory


@pytest.mark.parametrize("b", [1, 3, 7])
def test_shifted_batch_equals_loop(b):
    """Regression (E1): the fixed point's group axis no longer lines up with the batch."""
    n_syn = np.linspace(400.0, 1600.0, b)[None, :]
    sigma = np.linspace(0.8, 1.4, b)[:, None]  # broadcasts against n_syn into (b, b)
    batched = np.asarray(
        T.shifted_mixed_ridge_accuracy(50.0, n_syn, 200, 1.5, 0.2, 0.9, 0.4, 0.1, 0.8, 0.3, sigma)
    )
    assert batched.shape == (b, b)
    for i in range(b):
        for j in range(b):
            one = float(
                T.shifted_mixed_ridge_accuracy(
                    50.0, n_syn[0, j], 200, 1.5, 0.2, 0.9, 0.4, 0.1, 0.8, 0.3, sigma[i, 0]
                )
            )
            assert batched[i, j] == pytest.approx(one, abs=1e-13)


def test_shifted_issue_example():
    args = (0, np.array([800.0, 400.0, 1600.0]), 200, 1.5, 0.2, 0.9, 0.4, 0.1, 0.8, 0.3, 1.3)
    loop = [float(T.shifted_mixed_ridge_accuracy(0, n, *args[2:])) for n in (800.0, 400.0, 1600.0)]
    np.testing.assert_allclose(T.shifted_mixed_ridge_accuracy(*args), loop, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- E2: beta, gamma at sigma = 1


def test_beta_gamma_change_the_prediction_at_unit_sigma():
    base = {"n": 800.0, "d": 200.0, "snr": 1.5, "p": 0.2, "psi": 0.5, "lam": 0.1}
    plain = predict(base)["ridge_accuracy"]
    shifted = predict({**base, "beta": 0.7, "gamma": 0.4})["ridge_accuracy"]
    want = T.shifted_mixed_ridge_accuracy(0.0, 800.0, 200.0, 1.5, 0.2, 1.0, 0.5, 0.1, 0.7, 0.4)
    assert float(shifted) == pytest.approx(float(want), abs=1e-14)
    assert abs(float(shifted) - float(plain)) > 1e-3
    # and the infinite-data limit is the shifted law's, not the phi-psi one
    inf = predict({**base, "beta": 0.7, "gamma": 0.4})["infinite_data_accuracy"]
    want_inf = T.shifted_mixed_ridge_accuracy(0.0, INF, 200.0, 1.5, 0.2, 1.0, 0.5, 0.1, 0.7, 0.4)
    assert float(inf) == pytest.approx(float(want_inf), abs=1e-14)
    assert float(inf) < float(T.bayes_accuracy(1.5)) - 1e-3


# ---------------------------------------------------------------- E3: fractional mix_real


def test_fractional_mix_real_is_rejected():
    with pytest.raises(ValueError, match="mix_real must be 0 or 1"):
        predict({"n": 100.0, "d": 50.0, "snr": 1.0, "n_real": 20.0, "mix_real": 0.5})
    spec = SimSpec(n_max=100, d=50, n_real_max=20)
    with pytest.raises(ValueError, match="mix_real must be 0 or 1"):
        validate_params(make_params(100, 1.0, n_real=20, mix_real=0.3), spec)
    validate_params(make_params(100, 1.0, n_real=20, mix_real=1.0), spec)  # whole rows: fine


# ---------------------------------------------------------------- what predict returns


def test_margin_test_gets_the_finite_theory():
    pts = {"n": np.array([100.0, 1000.0]), "d": 100.0, "snr": 1.0, "p": 0.3}
    pts.update(theta_ver=0.3, tau=0.2, phi=1.0, psi=0.6, n_real=40.0, mix_real=1.0)
    out = predict(pts)
    want = T.flip_linear_ridge_accuracy(pts["n"], 100.0, 1.0, 0.3, 0.3, 0.2, 0.1, 1.0, 0.6, 40.0)
    np.testing.assert_allclose(out["ridge_accuracy"], want, rtol=0, atol=1e-14)
    want = T.finite_breakdown_point(pts["n"], 100.0, 1.0, 0.3, 0.2, 0.1, 1.0, 0.6, 40.0)
    np.testing.assert_allclose(out["finite_breakdown_point"], want, rtol=0, atol=1e-14)
    lin = predict({**pts, "p": 0.0, "theta_gen": 1.0}, "linear")
    want = T.linear_ridge_accuracy(pts["n"], 100.0, 1.0, 1.0, 0.3, 0.2, 0.1, 1.0, 0.6, 40.0)
    np.testing.assert_allclose(lin["ridge_accuracy"], want, rtol=0, atol=1e-14)


@pytest.mark.slow  # four retraining programs; tests/test_theory_retraining.py covers them
def test_rounds_get_a_trailing_axis_and_the_limit():
    pts = {"n": np.array([500.0, 1000.0, 2000.0]), "d": 100.0, "snr": 1.0, "n_real": 80.0}
    pts.update(theta_ver=0.26, tau=0.0)
    out = predict(pts, "ridge", rounds=4)
    assert out["ridge_accuracy"].shape == (3, 4)
    assert out["infinite_data_accuracy"].shape == (3, 4)
    assert out["long_run_accuracy"].shape == (3,)
    want = T.retraining_accuracy(
        4, pts["n"], 100.0, 1.0, generator="ridge", n_real=80.0, theta_ver=0.26, tau=0.0
    )
    np.testing.assert_allclose(out["ridge_accuracy"], want, rtol=0, atol=1e-14)
    acc = predict(pts, "ridge", rounds=4, data="accumulate")
    assert np.all(np.isnan(acc["ridge_accuracy"]))  # not derived at finite n/d
    want = T.retraining_accuracy(
        4, INF, 100.0, 1.0, generator="ridge", n_real=80.0, theta_ver=0.26, tau=0.0,
        data="accumulate",
    )  # fmt: skip
    np.testing.assert_allclose(acc["infinite_data_accuracy"][0], want, rtol=0, atol=1e-14)
    one = predict(pts, "ridge")  # one round of the ridge generator: the same theory, R = 1
    np.testing.assert_allclose(one["ridge_accuracy"], out["ridge_accuracy"][:, 0], atol=1e-14)


@pytest.mark.parametrize(
    "generator, extra, rounds, learner, why",
    [
        ("flip", {"sigma": 1.3, "tau": 0.0}, 1, "ridge", "shifted law with the margin test"),
        ("linear", {"beta": 0.8}, 1, "ridge", "shifted law with a linear generator"),
        ("flip", {"n_real": 20.0, "mix_real": 1.0}, 3, "ridge", "real rows reused over rounds"),
        ("ridge", {"n_real": 20.0, "mix_real": 1.0}, 1, "ridge", "generator's rows mixed in"),
        ("flip", {}, 1, "logistic", "no ridge theory for the logistic learner"),
    ],
)
def test_uncovered_structures_are_nan(generator, extra, rounds, learner, why):
    pts = {"n": 500.0, "d": 100.0, "snr": 1.0, "p": 0.2 if generator == "flip" else 0.0}
    if generator == "ridge":
        pts["n_real"] = 20.0
    out = predict({**pts, **extra}, generator, rounds=rounds, learner=learner)
    assert np.all(np.isnan(out["ridge_accuracy"])), why
    assert np.isfinite(out["bayes_accuracy"])


@pytest.mark.parametrize("b", [1, 3, 7])
def test_predict_batch_equals_loop(b):
    rng = np.random.default_rng(b)
    pts = {
        "n": rng.uniform(50, 2000, b).round(),
        "d": 100.0,
        "snr": rng.uniform(0.5, 2.0, b),
        "p": rng.uniform(0.0, 0.6, b),
        "theta_ver": rng.uniform(-1.0, 1.0, b),
        "tau": np.where(np.arange(b) % 2, -INF, 0.3),
        "psi": 0.5,
    }
    out = predict(pts)
    for i in range(b):
        one = predict({k: (v[i] if np.ndim(v) else v) for k, v in pts.items()})
        for k, v in one.items():
            np.testing.assert_allclose(out[k][i], v, rtol=1e-12, atol=1e-14, err_msg=k)


def test_bad_structure_is_an_error():
    with pytest.raises(ValueError, match="generator"):
        predict({"n": 1.0, "d": 1.0, "snr": 1.0}, "gan")
    with pytest.raises(ValueError, match="rounds"):
        predict({"n": 1.0, "d": 1.0, "snr": 1.0}, rounds=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        predict({"n": 1.0, "d": 1.0, "snr": 1.0, "rho": 0.5})
