"""Issue 12, section 2: a bad value never becomes a plausible number.

Every public theory function (``gmmcollapse.theory.__all__``) and ``gmm.predict``:

* under ``jit`` and ``vmap``, an input out of its domain (NaN included) gives NaN at its point
  (booleans False), as ``jax.scipy`` does, and leaves the other points bit for bit as the same
  transformation gives them on valid input (XLA fuses differently under ``jit``, so a jitted
  call may differ from the eager one by an ulp even on valid input, before and after this
  change; the eager values are checked to 1e-12);
* concrete bad inputs raise ``ValueError`` naming the parameter (strings too) before compute,
  and arguments that do not broadcast are named;
* :func:`gmmcollapse.theory.checked` turns the traced NaNs into errors naming the parameter.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmcollapse.theory as T
from gmmcollapse.gmm import predict

INF = math.inf
NAN = math.nan

SEL = {
    "n": 1000.0,
    "d": 200.0,
    "snr": 1.0,
    "theta_ver": 0.26,
    "tau": 0.0,
    "lam": 0.1,
    "phi": 1.0,
    "psi": 0.5,
}
CL = {
    "snr": 1.2,
    "p_pos": 0.1,
    "p_neg": 0.3,
    "phi_pos": 0.9,
    "phi_neg": 0.7,
    "psi_pos": 0.3,
    "psi_neg": 0.2,
}
PRED = {
    "n": 800.0,
    "d": 200.0,
    "snr": 1.5,
    "phi": 1.0,
    "psi": 0.5,
    "lam": 0.1,
    "theta_ver": 0.3,
    "tau": 0.2,
}


def _without(d, *names):
    return {k: v for k, v in d.items() if k not in names}


def _retraining(**kw):
    return T.retraining_accuracy(2, generator="linear", theta_gen=1.0, theta_ver=0.26, **kw)


def _retraining_limit(**kw):
    return T.retraining_limit(1000.0, 200.0, 1.0, generator="flip", theta_ver=0.26, tau=0.0, **kw)


def _predict_flip(**kw):
    return predict(kw, "flip")


def _predict_linear(**kw):
    return predict(kw, "linear")


# name -> (function, fixed keywords, the argument varied, three valid values, bad values)
CASES = {
    "bayes_accuracy": (T.bayes_accuracy, {}, "snr", [0.5, 1.0, 2.0], [NAN, -1.0, INF]),
    "breakdown_point": (T.breakdown_point, {"psi": 0.3}, "phi", [0.2, 0.5, 0.9], [NAN, 1.5]),
    "keep_fraction": (T.keep_fraction, {"phi": 1, "psi": 0.5}, "p", [0.1, 0.4, 0.8], [NAN, -0.1]),
    "effective_noise": (T.effective_noise, {"phi": 1, "psi": 0.5}, "p", [0.1, 0.4, 0.8], [1.5]),
    "infinite_data_accuracy": (
        T.infinite_data_accuracy,
        {"snr": 1.0, "phi": 1.0, "psi": 0.5},
        "p",
        [0.1, 0.4, 0.8],
        [NAN, 1.5],
    ),
    "bivariate_normal_cdf": (
        T.bivariate_normal_cdf,
        {"h": 0.3, "k": -0.2},
        "rho",
        [-0.5, 0.3, 0.95],
        [NAN, 1.5],
    ),
    "class_infinite_data_limit": (
        T.class_infinite_data_limit,
        _without(CL, "p_neg"),
        "p_neg",
        [0.1, 0.3, 0.6],
        [NAN, 1.5],
    ),
    "class_infinite_data_accuracy": (
        T.class_infinite_data_accuracy,
        _without(CL, "snr"),
        "snr",
        [0.5, 1.0, 2.0],
        [NAN, -1.0],
    ),
    "class_breakdown_margin": (
        T.class_breakdown_margin,
        _without(CL, "snr", "psi_neg"),
        "psi_neg",
        [0.1, 0.3, 0.6],
        [NAN, -0.5],
    ),
    "class_is_optimal": (T.class_is_optimal, CL, "lam", [0.0, 0.1, 1.0], [NAN, -1.0]),
    "clopper_pearson_interval": (
        T.clopper_pearson_interval,
        {"successes": 3, "n": 10},
        "confidence",
        [0.5, 0.9, 0.95],
        [NAN, 1.0],
    ),
    "wilson_interval": (
        T.wilson_interval,
        {"successes": 3, "z": 1.96},
        "n",
        [5.0, 10.0, 20.0],
        [NAN, -1.0, 4.5],
    ),
    "estimate_breakdown_point": (
        T.estimate_breakdown_point,
        {"correct": np.arange(20) % 3 > 0, "kept": np.arange(20) % 4 > 0},
        "confidence",
        [0.5, 0.9, 0.95],
        [NAN, 1.5],
    ),
    "linear_keep_rates": (
        T.linear_keep_rates,
        {"snr": 1.0, "theta_gen": 0.7, "theta_ver": 0.2},
        "tau",
        [-0.5, 0, 0.5],
        [NAN],
    ),
    "flip_linear_keep_rates": (
        T.flip_linear_keep_rates,
        {"snr": 1.0, "theta_ver": 0.2, "tau": 0.1},
        "p",
        [0.1, 0.4, 0.8],
        [NAN, 1.5],
    ),
    "linear_infinite_data_accuracy": (
        T.linear_infinite_data_accuracy,
        {"snr": 1.0, "theta_ver": 0.2, "tau": 0.1, "lam": 0.1},
        "theta_gen",
        [0.3, 0.7, 1.2],
        [NAN, INF],
    ),
    "flip_linear_infinite_data_accuracy": (
        T.flip_linear_infinite_data_accuracy,
        {"snr": 1.0, "p": 0.3, "theta_ver": 0.2, "tau": 0.1},
        "lam",
        [0.0, 0.1, 1.0],
        [NAN, -1.0],
    ),
    "ridge_accuracy": (
        T.ridge_accuracy,
        {"n": 1600.0, "d": 400.0, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1},
        "p",
        [0.1, 0.4, 0.8],
        [NAN, 1.5],
    ),
    "ridge_limit": (
        T.ridge_limit,
        {
            "n_real": 50.0,
            "n_syn": 800.0,
            "d": 200.0,
            "snr": 1.5,
            "p": 0.2,
            "phi": 0.9,
            "psi": 0.4,
            "lam": 0.1,
        },
        "sigma",
        [0.8, 1.1, 1.4],
        [NAN, -1.0, 0.0],
    ),
    "mixed_ridge_accuracy": (
        T.mixed_ridge_accuracy,
        {"n_syn": 800.0, "d": 200.0, "snr": 1.5, "p": 0.2, "phi": 0.9, "psi": 0.4, "lam": 0.1},
        "n_real",
        [0.0, 50.0, 400.0],
        [NAN, -5.0, INF],
    ),
    "shifted_mixed_ridge_accuracy": (
        T.shifted_mixed_ridge_accuracy,
        {
            "n_real": 50.0,
            "n_syn": 800.0,
            "d": 200.0,
            "snr": 1.5,
            "p": 0.2,
            "phi": 0.9,
            "psi": 0.4,
            "gamma": 0.3,
        },
        "lam",
        [0.05, 0.1, 1.0],
        [NAN, 0.0],
    ),
    "clean_ridge_accuracy": (
        T.clean_ridge_accuracy,
        {"n": 800.0, "d": 200.0, "snr": 1.5, "lam": 0.1},
        "eps",
        [0, 0.2, 0.4],
        [NAN, 1.5],
    ),
    "solve_delta": (
        T.solve_delta,
        {"lam": 0.05, "pi": np.array([0.3, 0.2, 0.1]), "sigma2": np.array([1.0, 4.0, 0.25])},
        "eta",
        [0.2, 0.7, 2.0],
        [NAN, -1.0],
    ),
    "flip_linear_ridge_limit": (
        T.flip_linear_ridge_limit,
        dict(SEL, p=0.3, n_real=40.0),
        "tau",
        [-INF, 0.0, 0.5],
        [NAN],
    ),
    "flip_linear_ridge_accuracy": (
        T.flip_linear_ridge_accuracy,
        SEL,
        "p",
        [0.1, 0.3, 0.6],
        [NAN, 1.5],
    ),
    "linear_ridge_limit": (
        T.linear_ridge_limit,
        dict(_without(SEL, "d"), theta_gen=1.0),
        "d",
        [50.0, 200, 800],
        [NAN, 0.0],
    ),
    "linear_ridge_accuracy": (
        T.linear_ridge_accuracy,
        SEL,
        "theta_gen",
        [0.3, 1.0, 1.4],
        [NAN, INF],
    ),
    "finite_breakdown_point": (
        T.finite_breakdown_point,
        _without(SEL, "psi"),
        "psi",
        [0.2, 0.5, 0.9],
        [NAN, 1.5],
    ),
    "retraining_accuracy": (
        _retraining,
        {"d": 200.0, "snr": 1.0, "tau": 0.0},
        "n",
        [500.0, 1000.0, 2000.0],
        [NAN, -10.0],
    ),
    "retraining_limit": (_retraining_limit, {}, "p", [0.1, 0.2, 0.3], [NAN, 1.5]),
    "predict_flip": (
        _predict_flip,
        {**_without(PRED, "n"), "p": 0.2},
        "n",
        [400, 800, 1600],
        [NAN, -10.0],
    ),
    "predict_linear": (_predict_linear, PRED, "theta_gen", [0.3, 0.7, 1.2], [NAN, -INF]),
}

#: cases whose programs take long to compile: their vmap half runs with -m slow
HEAVY = {"retraining_accuracy", "retraining_limit"}


def _public_functions() -> set[str]:
    return {n for n in T.__all__ if not inspect.isclass(getattr(T, n)) and n != "checked"}


def test_every_public_function_has_a_case():
    assert _public_functions() <= set(CASES)


def _leaves(tree) -> list[np.ndarray]:
    if isinstance(tree, dict):
        tree = [tree[k] for k in sorted(tree)]
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _batches(good, bads):
    """Valid values with the bad ones interleaved, and the same shape with valid values only."""
    x_bad = [good[0], *bads, good[1], good[2]]
    x_good = [good[0], *([good[1]] * len(bads)), good[1], good[2]]
    return jnp.array(x_bad), jnp.array(x_good), list(range(1, 1 + len(bads)))


def _check_transform(name, transform):
    fn, kw, arg, good, bads = CASES[name]
    f = transform(lambda x: fn(**{**kw, arg: x}))
    x_bad, x_good, bad_at = _batches(good, bads)
    got, want = _leaves(f(x_bad)), _leaves(f(x_good))
    eager = _leaves(fn(**{**kw, arg: x_good}))
    keep = [i for i in range(len(x_bad)) if i not in bad_at]
    assert len(got) == len(want) == len(eager)
    for g, w, e in zip(got, want, eager):
        if g.dtype.kind not in "fb":
            continue  # integer counts (iterations, sample sizes) carry no NaN
        if g.shape[:1] != x_bad.shape:
            # an output that does not carry the varied axis (estimate_breakdown_point's phi
            # under jit): NaN as soon as any point is invalid
            assert np.isnan(g).all() if g.dtype.kind == "f" else not g.any(), (name, g)
            continue
        if g.dtype.kind == "f":
            assert np.isnan(g[bad_at]).all(), (name, g)
        else:
            assert not g[bad_at].any(), (name, g)
        # the valid points: bit for bit as without the bad ones
        assert g[keep].tobytes() == w[keep].tobytes(), (name, g[keep], w[keep])
        e = np.broadcast_to(e, g.shape)  # an eager output without the axis holds for each point
        np.testing.assert_allclose(g[keep], e[keep], rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_out_of_domain_is_nan(name):
    _check_transform(name, jax.jit)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in sorted(CASES)],
)
def test_vmap_out_of_domain_is_nan(name):
    _check_transform(name, jax.vmap)


def test_issue_examples():
    def acc(p=0.3, n=1600.0):
        return T.ridge_accuracy(n=n, d=400, snr=1.5, p=p, phi=1.0, psi=0.5, lam=0.1)

    for bad in (NAN, 1.5):
        assert np.isnan(jax.jit(lambda p: acc(p=p))(bad))
    assert np.isnan(jax.jit(lambda n: acc(n=n))(-10.0))
    got = np.asarray(jax.vmap(lambda p: acc(p=p))(jnp.array([0.1, 1.5])))
    assert got[0] == pytest.approx(0.87314251, abs=1e-8) and np.isnan(got[1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_concrete_bad_input_raises_naming_the_parameter(name):
    fn, kw, arg, _, bads = CASES[name]
    for bad in bads:
        with pytest.raises(ValueError, match=rf"^{arg} must be "):
            fn(**{**kw, arg: bad})


def test_strings_are_not_numbers():
    with pytest.raises(ValueError, match=r"^p must be a number, got the string '0\.3'"):
        T.keep_fraction("0.3", 1.0, 0.5)
    with pytest.raises(TypeError, match="^phi must be a real number"):
        T.breakdown_point(np.array(["0.3"]), 0.5)
    with pytest.raises(ValueError, match="^snr must be a number"):
        T.bayes_accuracy("1")
    with pytest.raises(ValueError, match="^psi must be a number"):
        predict({"n": 100.0, "d": 10.0, "snr": 1.0, "psi": "0.5"})


def test_shapes_that_do_not_broadcast_name_the_arguments():
    msg = r"^p \(shape \(2,\)\) does not broadcast with n \(shape \(3,\)\)"
    args = {"d": 400.0, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1}
    with pytest.raises(ValueError, match=msg):
        T.ridge_accuracy(n=np.ones(3) * 800, p=np.ones(2) * 0.3, **args)
    with pytest.raises(ValueError, match=msg):  # shapes are static: the same under jit
        jax.jit(lambda n, p: T.ridge_accuracy(n=n, p=p, **args))(jnp.ones(3) * 800, jnp.ones(2))
    with pytest.raises(ValueError, match=r"^snr \(shape \(4,\)\) does not broadcast with n "):
        predict({"n": np.ones(3) * 100, "d": 10.0, "snr": np.ones(4)})
    with pytest.raises(
        ValueError, match=r"^sigma2 \(shape \(2, 3\), points \(2,\)\) does not broadcast with eta"
    ):
        T.solve_delta(np.ones(3), 0.1, np.ones((3, 2)), np.ones((2, 3)))


@pytest.mark.parametrize(
    "name", ["keep_fraction", "ridge_accuracy", "flip_linear_ridge_accuracy", "ridge_limit"]
)
def test_gradients_at_valid_points_are_unchanged(name):
    fn, kw, arg, good, bads = CASES[name]

    def f(x):
        out = fn(**{**kw, arg: x})
        return jax.tree.leaves(out)[-1] if name == "ridge_limit" else out  # the accuracy

    grad = jax.vmap(jax.grad(f))
    x_bad, x_good, bad_at = _batches(good, bads)
    got, want = np.asarray(grad(x_bad)), np.asarray(grad(x_good))
    keep = [i for i in range(len(x_bad)) if i not in bad_at]
    assert got[keep].tobytes() == want[keep].tobytes()
    assert np.all(np.isfinite(got[keep]))
    for i in keep:
        assert got[i] == pytest.approx(float(jax.grad(f)(x_good[i])), rel=1e-12, abs=1e-14)
    # no NaN leaks out of the invalid points into a batched gradient
    total = np.asarray(jax.grad(lambda x: jnp.sum(jnp.where(jnp.isnan(f(x)), 0.0, f(x))))(x_bad))
    assert np.all(np.isfinite(total)) and np.all(total[bad_at] == 0.0)


# ---------------------------------------------------------------- errors on request: checked


def test_checked_raises_naming_the_parameter():
    f = T.checked(lambda p: T.ridge_accuracy(1600.0, 400.0, 1.5, p, 1.0, 0.5, 0.1))
    assert float(f(0.1)) == pytest.approx(float(T.ridge_accuracy(1600, 400, 1.5, 0.1, 1, 0.5, 0.1)))
    for bad, shown in ((NAN, "nan"), (1.5, "1.5"), (-0.25, "-0.25")):
        with pytest.raises(ValueError, match=rf"^p must be a number in \[0, 1\], got {shown}$"):
            f(bad)
    g = T.checked(jax.vmap(lambda n: T.ridge_accuracy(n, 400.0, 1.5, 0.3, 1.0, 0.5, 0.1)))
    with pytest.raises(ValueError, match=r"^n must be a number in \(0, inf\], got -10(\.0)?$"):
        g(jnp.array([800.0, -10.0]))
    h = T.checked(lambda phi: T.keep_fraction(0.3, phi, 0.0), jit=False)
    with pytest.raises(ValueError, match="^phi and psi must not both be 0"):
        h(0.0)
    # the unchecked functions are untouched by it: NaN again, no checkify state left behind
    assert np.isnan(jax.jit(lambda p: T.ridge_accuracy(1600.0, 400.0, 1.5, p, 1, 0.5, 0.1))(1.5))


def test_checked_feedback_kernel():
    from gmmcollapse import feedback

    scores = jnp.zeros((4, 2))
    f = T.checked(lambda r: feedback.top_fraction(scores, r).kept)
    assert int(f(0.5).sum()) == 2
    with pytest.raises(ValueError, match=r"^r must be a number in \[0, 1\], got 1.5$"):
        f(1.5)
