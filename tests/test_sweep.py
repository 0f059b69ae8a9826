"""The sweep driver: grid layout, cases, simulation == direct runs, chunking and capacity
groups, theory-only sweeps, the results file, validation before compilation.

Compilation dominates the cost (1-3 s per (SimSpec, chunk size)), so the simulated tests share
one module-scoped sweep (d = 4, float64, 3 seeds) whose two capacity groups are reused by the
direct and chunked comparisons.

The sweep is forced onto the primal path (``path="primal"``): the automatic choice would be
the fast sampler, equal to ``over_seeds`` in distribution only.

Exactness: the same key gives the same random draws at a grid point whether it is run alone
(``over_seeds``) or in a chunk of any size (common random numbers), so every count-based
field (measured p, phi, psi, keep fraction, ...) agrees bitwise. ``acc`` goes through a float
solve and is compared at float64 rounding level, rtol 1e-12 (any indexing or padding mistake
moves it by ~1e-2); the bitwise guarantees of the chunked, sharded and resumed sweep are in
``tests/test_sweep_scale.py``.
"""

import math
import os
import warnings

import jax
import numpy as np
import pytest

import gmmcollapse  # noqa: F401  (enables float64)
import gmmcollapse.theory as T
from gmmcollapse.gmm import SimSpec, make_params, over_seeds
from gmmcollapse.gmm.predict import predict
from gmmcollapse.gmm.simulate import TRACE_COUNT
from gmmcollapse.gmm.sweep import Results, Sweep, grid_points, load_results, run_sweep, save_results

D, SEEDS, SEED = 4, 3, 7
FIXED = {"d": D, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1}  # p* = 2/3
P = [0.0, 0.15, 0.3, 0.45, 0.6]
N = [100, 300]  # capacities 128 and 512: two static groups
SPEC = {"dtype": "float64"}

#: fields that are functions of the random draws only (counts), hence bitwise reproducible
COUNT_FIELDS = ("gen_acc", "p", "phi", "psi", "p_star", "keep_fraction")


def _sweep(**kw):
    args = {
        "name": "base",
        "axes": {"p": P, "n": N},
        "fixed": FIXED,
        "spec": SPEC,
        "path": "primal",
    }
    return Sweep(**{**args, "seeds": SEEDS, "seed": SEED, **kw})


@pytest.fixture(scope="module")
def base():
    return run_sweep(_sweep(), lambda pts: predict(pts), progress=False)


def _summary(values):
    """Mean and SE over seeds (axis 0), ignoring NaN, the way the sweep computes them."""
    v = np.asarray(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # psi is all-NaN at p = 0: nothing wrong
        mean = np.nanmean(v, axis=0)
        se = np.nanstd(v, axis=0, ddof=1) / np.sqrt(np.maximum(np.sum(~np.isnan(v), axis=0), 1))
    return mean, se


def _assert_same_sim(got: Results, want: Results):
    """Simulation arrays equal: count fields bitwise, accuracy to float64 rounding."""
    sim_keys = {k for k in want.data if k.startswith("sim_")}
    assert {k for k in got.data if k.startswith("sim_")} == sim_keys
    for k in sim_keys:
        a, b = got[k], want[k]
        assert a.shape == b.shape, k
        if k.split("/")[1] in COUNT_FIELDS:
            np.testing.assert_array_equal(a, b, err_msg=k)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=k)


# ------------------------------------------------------------------------------ grid layout


def test_grid_points_product_order_and_fixed_broadcast():
    axes = {"p": [0.1, 0.2], "n": [10, 20, 30]}
    pts = grid_points(axes, {"snr": 2.0, "phi": [0.9, 0.7]})
    pp, nn = np.meshgrid(axes["p"], axes["n"], indexing="ij")
    # C order: the last axis varies fastest, so reshape(grid shape) recovers the grid
    np.testing.assert_array_equal(pts["p"], pp.ravel())
    np.testing.assert_array_equal(pts["n"], nn.ravel())
    np.testing.assert_array_equal(pts["p"].reshape(2, 3)[:, 0], axes["p"])
    assert pts["snr"].shape == (6,) and np.all(pts["snr"] == 2.0)
    # per-class rates keep their trailing axis of 2 ([class +1, class -1]) at every point
    assert pts["phi"].shape == (6, 2)
    np.testing.assert_array_equal(pts["phi"], np.tile([0.9, 0.7], (6, 1)))
    for v in pts.values():
        assert v.dtype == np.float64
    # broadcast values are real copies: writing one point must not change the others
    pts["snr"][0] = 5.0
    assert pts["snr"][1] == 2.0


def test_grid_points_without_axes_is_one_point():
    pts = grid_points({}, {"n": 50, "psi": [0.1, 0.2]})
    assert pts["n"].shape == (1,) and pts["psi"].shape == (1, 2)


def test_sweep_shape_names_and_points_agree():
    s = Sweep("s", axes={"p": [0.0, 0.5, 1.0], "n": [10, 20]}, fixed={"snr": 1.0})
    assert s.shape == (3, 2) and s.axis_names == ["p", "n"]
    pts = s.points()
    assert pts["p"].reshape(s.shape)[2, 1] == 1.0 and pts["n"].reshape(s.shape)[2, 1] == 20


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"axes": {"foo": [1.0]}}, "unknown sweep parameter.*foo"),
        ({"axes": {"p": [0.1]}, "fixed": {"bar": 1.0}}, "unknown sweep parameter.*bar"),
        ({"axes": {"p": [0.1]}, "cases": {"a": {"baz": 1.0}}}, "unknown sweep parameter.*baz"),
        ({"axes": {"p": [0.1]}, "fixed": {"p": 0.2}}, "both swept and fixed: p"),
        ({"axes": {"psi": [0.1]}, "cases": {"a": {"psi": 0.0}}}, "both swept and fixed: psi"),
        ({"axes": {"p": []}}, "axis p must have at least one value"),
        ({"axes": {"p": [0.1]}, "seeds": -1}, "seeds"),
    ],
)
def test_sweep_definition_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sweep("bad", **kwargs)


# ------------------------------------------------------------------------------------ cases


def test_cases_form_a_leading_axis_with_defaults():
    fixed = {"n": 100, "d": 50, "snr": 1.5, "lam": 0.1, "psi": 0.5}
    cases = {
        "oracle": {"phi": 1.0, "psi": 0.0},  # overrides the fixed psi
        "linear": {"psi": 1.0, "theta_ver": 0.3, "tau": 0.0},  # a pure linear verifier
    }
    s = Sweep("cases", axes={"p": P}, fixed=fixed, cases=cases)
    assert s.shape == (2, len(P)) and s.axis_names == ["case", "p"]
    pts = {k: v.reshape(s.shape) for k, v in s.points().items()}
    np.testing.assert_array_equal(pts["p"], [P, P])
    np.testing.assert_array_equal(pts["psi"], [[0.0] * len(P), [1.0] * len(P)])
    np.testing.assert_array_equal(pts["lam"], 0.1)  # fixed values reach every case
    # parameters a case does not mention take the GMMParams defaults (as in make_params)
    defaults = make_params(1, 1.0)
    np.testing.assert_array_equal(pts["phi"][1], float(defaults.phi))
    np.testing.assert_array_equal(pts["tau"][0], float(defaults.tau))  # -inf: no linear test
    np.testing.assert_array_equal(pts["theta_ver"][0], float(defaults.theta_ver))
    np.testing.assert_array_equal(pts["tau"][1], 0.0)
    np.testing.assert_array_equal(pts["theta_ver"][1], 0.3)

    res = run_sweep(s, lambda q: predict(q), progress=False)
    assert res.meta["cases"] == ["oracle", "linear"]
    assert list(res.axes) == ["case", "p"] and res.meta["axis_order"] == ["case", "p"]
    np.testing.assert_array_equal(res.axes["case"], [0, 1])
    ridge = res["theory/ridge_accuracy"]
    assert ridge.shape == (2, len(P))
    want = np.asarray(T.ridge_accuracy(100, 50, 1.5, np.asarray(P), 1.0, 0.0, 0.1))
    np.testing.assert_allclose(ridge[0], want, rtol=1e-12, atol=0)
    # the linear test selects on x: the finite-n/d theory of theory.selection
    want = np.asarray(T.flip_linear_ridge_accuracy(100, 50, 1.5, np.asarray(P), 0.3, 0.0, 0.1))
    np.testing.assert_allclose(ridge[1], want, rtol=1e-12, atol=0)
    inf_data = res["theory/infinite_data_accuracy"]
    want = np.asarray(T.flip_linear_infinite_data_accuracy(1.5, np.asarray(P), 0.3, 0.0, 0.1))
    np.testing.assert_allclose(inf_data[1], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        inf_data[0], np.asarray(T.infinite_data_accuracy(1.5, np.asarray(P), 1.0, 0.0)), rtol=1e-12
    )


def test_a_size_set_by_some_cases_only_is_an_error():
    s = Sweep("c", axes={"p": [0.1]}, fixed={"snr": 1.0, "n": 10}, cases={"a": {"d": 5}, "b": {}})
    with pytest.raises(ValueError, match="^d is set by some cases only"):
        s.points()


# ------------------------------------------------------------------------------- simulation


def test_simulation_equals_direct_runs_per_capacity_group(base):
    """Every point equals over_seeds(key(seed), point, SimSpec(n_max = capacity of n), seeds)."""
    assert base["sim_mean/acc"].shape == (len(P), len(N), 1)
    groups = [(g["d"], g["n_max"], g["path"]) for g in base.meta["groups"]]
    assert groups == [(D, 128, "primal"), (D, 512, "primal")]
    specs = {100: SimSpec(n_max=128, d=D, **SPEC), 300: SimSpec(n_max=512, d=D, **SPEC)}
    rates = {k: v for k, v in FIXED.items() if k not in ("d", "snr")}
    for j, n in enumerate(N):
        for i, p in enumerate(P):
            res = over_seeds(
                jax.random.key(SEED), make_params(n, FIXED["snr"], p=p, **rates), specs[n], SEEDS
            )
            for field, values in res._asdict().items():
                mean, se = _summary(values)
                got_mean, got_se = base[f"sim_mean/{field}"][i, j], base[f"sim_se/{field}"][i, j]
                if field in COUNT_FIELDS:
                    np.testing.assert_array_equal(got_mean, mean, err_msg=field)
                    np.testing.assert_array_equal(got_se, se, err_msg=field)
                elif field == "acc":
                    np.testing.assert_allclose(got_mean, mean, rtol=1e-12, atol=0)
                    np.testing.assert_allclose(got_se, se, rtol=1e-9, atol=1e-15)


def test_simulated_rates_match_the_closed_forms_on_the_same_grid(base):
    """Monte Carlo vs closed form, which also pins the orientation of sim and theory arrays.

    Each of the SEEDS * n samples is mislabelled w.p. p and kept w.p. (1-p) phi + p psi,
    independently, so the measured means are binomial: tolerance 5 standard errors.
    """
    n_total = SEEDS * np.asarray(N, float)[None, :]
    for sim, theory in (
        ("p", 1.0 - base["theory/generator_accuracy"]),
        ("keep_fraction", base["theory/keep_fraction"]),
    ):
        assert theory.shape == (len(P), len(N))
        se = np.sqrt(theory * (1.0 - theory) / n_total)
        assert np.all(np.abs(base[f"sim_mean/{sim}"][..., 0] - theory) <= 5 * se + 1e-12), sim
    np.testing.assert_allclose(1.0 - base["theory/generator_accuracy"][:, 0], P, atol=1e-15)


@pytest.mark.parametrize("chunk", [1, 3])  # 3 on 5 points: the last chunk is padded
def test_chunked_equals_unchunked(chunk, base):
    one_group = {"axes": {"p": P, "n": [100]}}
    auto = run_sweep(_sweep(**one_group), progress=False)  # chunk = 0: all 5 points at once
    chunked = run_sweep(_sweep(chunk=chunk, **one_group), progress=False)
    _assert_same_sim(chunked, auto)
    # and the one-group sweep equals the n = 100 column of the two-group one
    for k, v in auto.data.items():
        np.testing.assert_allclose(v[:, 0], base[k][:, 0], rtol=1e-12, atol=1e-15, err_msg=k)


def test_theory_only_sweep_is_the_closed_form_and_compiles_nothing():
    before = dict(TRACE_COUNT)
    res = run_sweep(_sweep(seeds=0), lambda pts: predict(pts), progress=False)
    assert TRACE_COUNT == before
    assert not any(k.startswith("sim_") for k in res.data)
    pp, nn = np.meshgrid(P, N, indexing="ij")
    want = np.asarray(
        T.ridge_accuracy(nn, D, FIXED["snr"], pp, FIXED["phi"], FIXED["psi"], FIXED["lam"])
    )
    np.testing.assert_allclose(res["theory/ridge_accuracy"], want, rtol=1e-12, atol=0)
    want = np.asarray(T.infinite_data_accuracy(FIXED["snr"], pp, FIXED["phi"], FIXED["psi"]))
    np.testing.assert_allclose(res["theory/infinite_data_accuracy"], want, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------- results file


def test_save_load_round_trip(base, tmp_path):
    path = tmp_path / "sub" / "base.npz"  # the folder is created
    save_results(path, base)
    assert os.listdir(tmp_path / "sub") == ["base.npz"]  # no temporary file left behind
    back = load_results(path)
    assert list(back.axes) == ["p", "n"]  # sweep order, not alphabetical
    for k, v in base.axes.items():
        np.testing.assert_array_equal(back.axes[k], v)
    assert set(back.data) == set(base.data)
    for k, v in base.data.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v, err_msg=k)  # NaN where NaN
    assert back.meta == base.meta
    # enough to re-run: the stored definition rebuilds the same sweep
    rebuilt, original = Sweep(**back.meta["sweep"]).points(), _sweep().points()
    assert rebuilt.keys() == original.keys()
    for k, v in original.items():
        np.testing.assert_array_equal(rebuilt[k], v, err_msg=k)


def test_axis_order_comes_from_metadata(tmp_path):
    res = Results(
        axes={"z": np.array([1.0, 2.0]), "a": np.array([3.0])},
        data={"theory/x": np.zeros((2, 1))},
        meta={"axis_order": ["z", "a"]},
    )
    res.save(tmp_path / "r.npz")
    assert list(load_results(tmp_path / "r.npz").axes) == ["z", "a"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.npz"
    old = Results(axes={"p": np.array([0.5])}, data={"theory/x": np.array([1.0])}, meta={"v": 1})
    save_results(path, old)

    def broken_savez(file, **arrays):
        file.write(b"partial")  # an open temporary file next to the target
        raise OSError("disk full")

    monkeypatch.setattr("gmmcollapse.store.np.savez", broken_savez)
    new = Results(axes={"p": np.array([0.7])}, data={"theory/x": np.array([2.0])}, meta={"v": 2})
    with pytest.raises(OSError, match="disk full"):
        save_results(path, new)
    assert os.listdir(tmp_path) == ["r.npz"]
    assert load_results(path).meta == {"v": 1}


# ------------------------------------------------------------------------------ validation

_NAN, _INF = math.nan, math.inf


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"p": 1.5}, "p"),
        ({"p": _NAN}, "p"),
        ({"psi": -0.1}, "psi"),
        ({"phi": 0.0, "psi": 0.0}, "phi"),
        ({"lam": -1.0}, "lam"),
        ({"sigma": 0.0}, "sigma"),
        ({"n": 100.5}, "n"),
        ({"n": _NAN}, "n"),
        ({"n": _INF}, "n"),
        ({"d": 2.5}, "d"),
        ({"d": _NAN}, "d"),
        ({"d": 0.0}, "d"),
        ({"n_real": _NAN}, "n_real"),
        ({"n_real": 2.5}, "n_real"),
    ],
)
def test_invalid_value_anywhere_fails_before_compiling(bad, name):
    # The bad point is in the *second* static group, with a spec (d = 3, float32) that no
    # other test compiles: a driver that validated group by group would compile the first.
    # The theory (closed forms compile too) must not run either.
    def theory(pts):
        raise AssertionError("theory evaluated before the grid was validated")

    s = Sweep(
        "invalid",
        axes={"lam_gen": [0.1, 0.2]},
        fixed={"n": 10, "d": 3, "snr": 1.0},
        cases={"ok": {}, "bad": {"n": 100, **bad}},
        seeds=2,
    )
    before = TRACE_COUNT["simulate"]
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        run_sweep(s, theory, progress=False)
    assert TRACE_COUNT["simulate"] == before
