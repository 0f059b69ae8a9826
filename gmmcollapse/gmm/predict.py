"""Theory predictions for the simulation's parameter points (the simulator's twin).

:func:`predict` takes the same named parameters as :func:`gmmcollapse.gmm.make_params` (as a
dict of arrays, e.g. a flattened sweep grid, plus ``d``) and the simulation's structure
(``generator``, ``rounds``, ``data``, ``learner``), and returns every prediction those
determine:

* always: ``bayes_accuracy``;
* round-0 rates where they are defined: ``generator_accuracy``, ``p``, ``phi``, ``psi``
  (the verifier's keep rates, the margin test included), ``breakdown_point`` (the phi-psi
  proxy), ``keep_fraction``, ``effective_noise``;
* ``ridge_accuracy`` (exact finite n/d) and ``infinite_data_accuracy`` for every structure the
  theory covers (ridge learner):

  - flip generator, noisy oracle only (``tau = -inf``): :func:`~gmmcollapse.theory.ridge_limit`
    (real data mixed in and the shifted synthetic law included);
  - flip or linear generator with the linear margin test:
    :func:`~gmmcollapse.theory.flip_linear_ridge_accuracy`,
    :func:`~gmmcollapse.theory.linear_ridge_accuracy` (real data mixed in included);
  - the ridge generator, and any run with ``rounds > 1``:
    :func:`~gmmcollapse.theory.retraining_accuracy` (then both keys gain a trailing rounds
    axis, like the simulation's fields); ``data="accumulate"`` has the exact infinite-data
    recursion only, its ``ridge_accuracy`` is NaN;

* ``finite_breakdown_point`` (flip generator, one round): the flip rate where the finite-n/d
  accuracy crosses 1/2;
* ``long_run_accuracy`` (``rounds > 1``, ``data="replace"``): the fixed point of the
  retraining recursion.

Entries that a structure does not determine are NaN, never a number from another model: the
shifted synthetic law together with the margin test, a linear or ridge generator, or several
rounds; real data mixed into several rounds, or into a run whose ridge generator trained on
the same real rows; the logistic learner (no ridge theory; only the rate quantities).

Inputs are checked like the theory's (:data:`DOMAINS`): concrete values out of range raise
``ValueError`` naming the parameter; :func:`predict` also runs under ``jax.jit`` and
``jax.vmap`` (it then computes with ``jax.numpy`` and returns JAX arrays), and every entry of
a point with a traced input out of its domain is NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import jax.numpy as jnp
import numpy as np

from gmmcollapse import theory as T
from gmmcollapse._validate import (
    EXTENDED,
    KEEPS_SOMETHING,
    NONNEG,
    POSITIVE,
    POSITIVE_OR_INF,
    REAL,
    UNIT,
    Interval,
    check_choice,
    guard,
    is_concrete,
    nan_outside,
)
from gmmcollapse.gmm.spec import DATA_MODES, GENERATORS, LEARNERS, PARAM_DEFAULTS
from gmmcollapse.theory.basic import in_float64

__all__ = ["DOMAINS", "predict"]

#: the allowed values of every parameter (those of the theory functions predict calls)
DOMAINS = {
    "n": POSITIVE_OR_INF,
    "d": POSITIVE,
    "snr": NONNEG,
    "p": UNIT,
    "phi": UNIT,
    "psi": UNIT,
    "lam": POSITIVE,
    "theta_gen": REAL,
    "theta_ver": REAL,
    "tau": EXTENDED,
    "n_real": NONNEG,
    "mix_real": Interval(
        0.0, 1.0, whole=True, what="0 or 1 (real rows are added whole or not at all)"
    ),
    "lam_gen": POSITIVE,
    "beta": REAL,
    "gamma": REAL,
    "sigma": POSITIVE,
}


@in_float64
def predict(
    params: Mapping[str, Any],
    generator: str = "flip",
    *,
    rounds: int = 1,
    data: str = "replace",
    learner: str = "ridge",
) -> dict[str, np.ndarray]:
    """Predictions for every point of ``params`` (dict of equal-length arrays or scalars).

    Args:
        params: ``n``, ``d``, ``snr`` and any other :class:`~gmmcollapse.gmm.GMMParams` field
            (missing ones take the simulation defaults). Class-specific (length-2) rates are
            not supported here: use :func:`gmmcollapse.theory.class_infinite_data_accuracy`.
        generator, rounds, data, learner: as in :class:`~gmmcollapse.gmm.SimSpec`.

    Returns:
        ``{name: array}``; shape ``points`` or, for the accuracies of a ``rounds > 1`` run,
        ``points + (rounds,)``.

    Example:
        >>> out = predict({"n": 1600, "d": 400, "snr": 2.0, "p": 0.3, "psi": 0.5, "lam": 0.5})
        >>> round(float(out["ridge_accuracy"]), 4), float(out["breakdown_point"])
        (0.8989, 0.6666666666666666)
    """
    for name, value, allowed in (
        ("generator", generator, GENERATORS),
        ("data", data, DATA_MODES),
        ("learner", learner, LEARNERS),
    ):
        check_choice(name, value, allowed)
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be a whole number >= 1, got {rounds}")
    rounds = int(rounds)
    unknown = set(params) - set(DOMAINS)
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    missing = [k for k in ("n", "d", "snr") if params.get(k) is None]
    if missing:
        raise ValueError(f"params needs {', '.join(missing)}")
    raw = {k: params.get(k, PARAM_DEFAULTS.get(k)) for k in DOMAINS}
    if any(
        np.ndim(raw[k]) > 1 or (np.ndim(raw[k]) == 1 and np.ndim(raw["n"]) == 0)
        for k in ("p", "phi", "psi")
    ):
        raise ValueError(
            "predict() takes scalar rates per point; class-specific rates are not supported"
        )
    raw, mask = guard(raw, DOMAINS, (KEEPS_SOMETHING,))
    # NumPy for concrete inputs, jax.numpy under jit / vmap (same operations, same values)
    xp = np if all(is_concrete(a) for a in raw.values()) else jnp
    v = {k: xp.asarray(a, dtype=xp.float64) for k, a in raw.items()}
    shape = np.broadcast_shapes(*(np.shape(a) for a in v.values()))
    # one flat length per power of two: sweeps of many sizes reuse the same compiled theory
    size = int(np.prod(shape))
    if size == 0:
        raise ValueError(f"params has no points (broadcast shape {shape})")
    bucket = max(8, 1 << (size - 1).bit_length())
    flat = {
        k: xp.pad(xp.broadcast_to(a, shape).ravel(), (0, bucket - size), mode="edge")
        for k, a in v.items()
    }
    out = _predict_flat(flat, generator, rounds, data, learner, xp)
    out = {k: a[:size].reshape(shape + a.shape[1:]) for k, a in out.items()}
    return nan_outside(mask, out)


def _predict_flat(v, generator, rounds, data, learner, xp) -> dict[str, Any]:
    """The predictions on flat arrays; ``xp`` is ``numpy`` or (traced inputs) ``jax.numpy``."""

    def _a(x):
        return xp.asarray(x, dtype=xp.float64)

    def _nan(shape):
        return xp.full(shape, xp.nan)

    shape = v["n"].shape
    mix = v["mix_real"]
    tau, snr = v["tau"], v["snr"]
    linear_test = ~xp.isneginf(tau)
    tau_or_0 = xp.where(linear_test, tau, 0.0)
    shifted = (v["beta"] != 1.0) | (v["gamma"] != 0.0) | (v["sigma"] != 1.0)
    n_mix = v["n_real"] * mix
    ridge = learner == "ridge"
    ver = {"theta_ver": v["theta_ver"], "tau": tau, "phi": v["phi"], "psi": v["psi"]}
    out: dict[str, Any] = {"bayes_accuracy": _a(T.bayes_accuracy(snr))}
    multi = rounds > 1 or generator == "ridge"

    # ---------------------------------------------------------------- round-0 rates
    if generator == "flip":
        p, phi, psi = v["p"], v["phi"], v["psi"]
        # the margin test multiplies the oracle's keep rates (independent given the label)
        lin = T.flip_linear_keep_rates(snr, p, v["theta_ver"], tau_or_0)
        phi_eff = xp.where(linear_test, phi * _a(lin.phi), phi)
        psi_eff = xp.where(linear_test, psi * _a(lin.psi), psi)
        out["generator_accuracy"] = 1.0 - p
    elif generator == "linear":
        lin = T.linear_keep_rates(
            snr, v["theta_gen"], v["theta_ver"], xp.where(linear_test, tau, -xp.inf)
        )
        p = _a(lin.p)
        phi_eff, psi_eff = v["phi"] * _a(lin.phi), v["psi"] * _a(lin.psi)
        out["generator_accuracy"] = 1.0 - p
    else:
        gen = T.ridge_accuracy(v["n_real"], v["d"], snr, 0.0, 1.0, 1.0, v["lam_gen"])
        out["generator_accuracy"] = _a(gen)
        p = phi_eff = psi_eff = _nan(shape)
    out["p"], out["phi"], out["psi"] = _a(p), _a(phi_eff), _a(psi_eff)
    rates_ok = (phi_eff + psi_eff) > 0
    quiet = np.errstate(invalid="ignore", divide="ignore") if xp is np else nullcontext()
    with quiet:
        out["breakdown_point"] = xp.where(rates_ok, phi_eff / (phi_eff + psi_eff), xp.nan)
        alpha = (1.0 - p) * phi_eff + p * psi_eff
        out["keep_fraction"] = alpha
        out["effective_noise"] = xp.where(alpha > 0, p * psi_eff / alpha, xp.nan)

    # ---------------------------------------------------------------- accuracies
    acc_shape = shape + ((rounds,) if rounds > 1 else ())
    finite, infinite = _nan(acc_shape), _nan(acc_shape)
    if ridge and not multi:
        if generator == "flip":
            phi_s = xp.where(rates_ok, phi_eff, 1.0)
            psi_s = xp.where(rates_ok, psi_eff, 1.0)
            rest = (v["d"], snr, p, phi_s, psi_s, v["lam"], v["beta"], v["gamma"], v["sigma"])
            plain_finite, shifted_inf = (
                _a(T.shifted_mixed_ridge_accuracy(n_mix, n, *rest)) for n in (v["n"], xp.inf)
            )
            plain_inf = xp.where(
                shifted, shifted_inf, _a(T.infinite_data_accuracy(snr, p, phi_s, psi_s))
            )
            sel = {
                "snr": snr,
                "p": p,
                "theta_ver": v["theta_ver"],
                "tau": tau_or_0,
                "lam": v["lam"],
                "phi": v["phi"],
                "psi": v["psi"],
                "d": v["d"],
            }
            lin_finite = _a(T.flip_linear_ridge_accuracy(n=v["n"], n_real=n_mix, **sel))
            lin_inf = _a(T.flip_linear_ridge_accuracy(n=xp.inf, n_real=0.0, **sel))
            finite = xp.where(linear_test, xp.where(shifted, xp.nan, lin_finite), plain_finite)
            finite = xp.where(rates_ok, finite, xp.nan)
            infinite = xp.where(linear_test, xp.where(shifted, xp.nan, lin_inf), plain_inf)
            out["finite_breakdown_point"] = xp.where(
                shifted,
                xp.nan,
                _a(
                    T.finite_breakdown_point(
                        v["n"],
                        v["d"],
                        snr,
                        v["theta_ver"],
                        tau,
                        v["lam"],
                        v["phi"],
                        v["psi"],
                        n_mix,
                    )
                ),
            )
        else:  # linear generator
            sel = {
                "snr": snr,
                "theta_gen": v["theta_gen"],
                "theta_ver": v["theta_ver"],
                "tau": tau,
                "lam": v["lam"],
                "phi": v["phi"],
                "psi": v["psi"],
                "d": v["d"],
            }
            finite = xp.where(
                shifted, xp.nan, _a(T.linear_ridge_accuracy(n=v["n"], n_real=n_mix, **sel))
            )
            infinite = xp.where(shifted, xp.nan, _a(T.linear_ridge_accuracy(n=xp.inf, **sel)))
    elif ridge:
        gen_kw = {
            "flip": {"p": v["p"]},
            "linear": {"theta_gen": v["theta_gen"]},
            "ridge": {"n_real": v["n_real"], "lam_gen": v["lam_gen"]},
        }[generator]
        common = dict(generator=generator, lam=v["lam"], **gen_kw, **ver)
        covered = ~shifted & (mix == 0)
        inf_acc = _a(
            T.retraining_accuracy(rounds, xp.inf, v["d"], snr, data=data, **common)
        ).reshape(acc_shape)
        infinite = xp.where(_per_point(covered, rounds), inf_acc, xp.nan)
        if data == "replace":
            fin = _a(T.retraining_accuracy(rounds, v["n"], v["d"], snr, **common))
            finite = xp.where(_per_point(covered, rounds), fin.reshape(acc_shape), xp.nan)
            if rounds > 1:
                lim = T.retraining_limit(v["n"], v["d"], snr, **common)
                out["long_run_accuracy"] = xp.where(
                    covered & _a(lim.converged).astype(bool), _a(lim.accuracy), xp.nan
                )
    out["ridge_accuracy"] = finite
    out["infinite_data_accuracy"] = infinite
    return {k: _a(a) for k, a in out.items()}


def _per_point(mask: Any, rounds: int) -> Any:
    return mask[..., None] if rounds > 1 else mask
