"""The library changes nothing global: importing it (every submodule) and calling it leave JAX's
configuration as the user set it, and a user's float32 code stays float32.

Each check runs in a fresh interpreter (the test process itself has x64 turned on by the
harness, conftest.py, and has imported everything long ago). The theory and the simulations
must still compute in float64 where they always did: their results with x64 off are compared
bit for bit with the same calls made here, with x64 on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from gmmcollapse import gmm
from gmmcollapse import theory as T

_CHILD = r"""
import importlib, json, math, pkgutil, sys, warnings
import jax
import jax.numpy as jnp

x64 = sys.argv[1] == "1"
jax.config.update("jax_enable_x64", x64)


def snapshot():
    return {k: repr(getattr(jax.config, k, None)) for k in jax.config.values}


before = snapshot()
import gmmcollapse

names = [m.name for m in pkgutil.walk_packages(gmmcollapse.__path__, "gmmcollapse.")]
for name in names:
    importlib.import_module(name)
after = snapshot()
changed = sorted(k for k in before if before[k] != after[k])
assert not changed, f"importing gmmcollapse changed {changed}"
assert jax.config.jax_enable_x64 is x64

from gmmcollapse import gmm
from gmmcollapse import theory as T

out = {"modules": len(names)}
# a user's float32 computation around (and through) theory calls
x = jnp.linspace(0.0, 2.0, 5, dtype=jnp.float32)
with warnings.catch_warnings():
    warnings.simplefilter("error")  # no "float64 is not available" truncation inside
    acc = T.bayes_accuracy(1.0)
    rid = T.ridge_accuracy(1600, 400, 2.0, 0.3, 0.5, 0.5, 0.5)
    bvn = T.bivariate_normal_cdf(0.0, 0.0, 0.5)
    lim = T.retraining_limit(400.0, 200.0, 1.5, p=0.2, phi=1.0, psi=0.5)
    rates = T.flip_linear_keep_rates(1.0, 0.2, 0.2, 0.1)
    p_star = rates.p_star
    pred = gmm.predict({"n": 1600, "d": 400, "snr": 2.0, "p": 0.3, "psi": 0.5, "lam": 0.5})
out["theory_dtypes"] = sorted({
    str(a.dtype)
    for a in jax.tree.leaves((acc, rid, bvn, lim, rates, p_star))
    if jnp.issubdtype(a.dtype, jnp.floating)
})
out["limit_rounds"] = str(lim.rounds.dtype)
out["predict_dtypes"] = sorted({str(a.dtype) for a in pred.values()})
out["theory"] = [float(acc), float(rid), float(bvn), float(lim.accuracy), float(p_star)]
out["bvn_error"] = abs(float(bvn) - (0.25 + math.asin(0.5) / (2 * math.pi)))
out["user_dtypes"] = [
    str((x * 2.0).dtype),
    str(jnp.zeros(3).dtype),
    str(jnp.sin(x).dtype),
    str(jax.jit(lambda s: jnp.sin(s) * T.bayes_accuracy(s))(x).dtype),
    str(jax.vmap(lambda s: jnp.sin(s) * T.bayes_accuracy(s))(x).dtype),
    str(jax.grad(lambda s: T.bayes_accuracy(s) * s)(jnp.float32(1.0)).dtype),
]
# simulations: float32 samples by default, float64 on request, whatever the user's setting
key = jax.random.key(0)
with warnings.catch_warnings():
    warnings.simplefilter("error")
    params = gmm.make_params(64, 2.0, p=0.2, psi=0.5)
    out["params_dtype"] = str(params.snr.dtype)
    for dtype in ("float32", "float64"):
        spec = gmm.SimSpec(n_max=64, d=8, rounds=2, dtype=dtype, n_test=16)
        res = gmm.simulate(key, params, spec)
        out[f"sim_{dtype}"] = [str(res.acc.dtype), res.acc.tolist(), res.acc_test.tolist()]
    # a user's own jit around a simulation: compiled with x64 on (the documented way)
    with jax.enable_x64(True):
        jitted = jax.jit(lambda k: gmm.simulate(k, params, spec))(key)
    out["jitted_equal"] = jitted.acc.tolist() == res.acc.tolist()
out["x64_after"] = jax.config.jax_enable_x64
print(json.dumps(out))
"""


def _child(x64: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "1" if x64 else "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _here() -> dict:
    """The same calls in this process (x64 on, as before the library stopped turning it on)."""
    assert jax.config.jax_enable_x64
    lim = T.retraining_limit(400.0, 200.0, 1.5, p=0.2, phi=1.0, psi=0.5)
    out = {
        "theory": [
            float(T.bayes_accuracy(1.0)),
            float(T.ridge_accuracy(1600, 400, 2.0, 0.3, 0.5, 0.5, 0.5)),
            float(T.bivariate_normal_cdf(0.0, 0.0, 0.5)),
            float(lim.accuracy),
            float(T.flip_linear_keep_rates(1.0, 0.2, 0.2, 0.1).p_star),
        ]
    }
    key = jax.random.key(0)
    params = gmm.make_params(64, 2.0, p=0.2, psi=0.5)
    for dtype in ("float32", "float64"):
        spec = gmm.SimSpec(n_max=64, d=8, rounds=2, dtype=dtype, n_test=16)
        res = gmm.simulate(key, params, spec)
        out[f"sim_{dtype}"] = [str(res.acc.dtype), res.acc.tolist(), res.acc_test.tolist()]
    return out


@pytest.fixture(scope="module")
def here():
    return _here()


@pytest.mark.parametrize(
    "x64",
    # x64 off is what a user starts with; on (the test harness's own setting) is slow-marked
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["x64-off", "x64-on"],
)
def test_import_and_calls_leave_jax_config_alone(x64, here):
    got = _child(x64)
    assert got["modules"] > 30
    assert got["x64_after"] is x64
    # the theory is float64 and exactly what it was with x64 on
    assert got["theory_dtypes"] == ["float64"]
    assert got["predict_dtypes"] == ["float64"]
    assert got["limit_rounds"] == "int64"  # counts, as before
    assert got["theory"] == here["theory"]
    assert got["bvn_error"] < 1e-15
    assert got["params_dtype"] == "float64"
    # simulations: bitwise the same runs, float32 and float64 samples alike
    assert got["sim_float32"] == here["sim_float32"]
    assert got["sim_float64"] == here["sim_float64"]
    assert got["sim_float64"][0] == "float64"
    assert got["jitted_equal"]
    # the user's own computations keep the user's dtypes: with x64 off everything stays float32
    # (the float64 results fold into float32 code as any float64 array does); with x64 on JAX's
    # usual promotion, as before
    if x64:
        assert got["user_dtypes"] == ["float32", "float64", "float32"] + ["float64"] * 2 + [
            "float32"
        ]
    else:
        assert got["user_dtypes"] == ["float32"] * 6


def test_theory_results_are_float64_arrays_under_a_float32_caller():
    with jax.enable_x64(False):
        phi = np.array([0.9, 0.5])
        out = T.breakdown_point(phi, 0.3)
        assert not jax.config.jax_enable_x64
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, phi / (phi + 0.3))
    assert jax.config.jax_enable_x64  # the harness' setting is back
