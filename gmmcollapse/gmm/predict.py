"""Theory predictions for the simulation's parameter points (the simulator's twin).

:func:`predict` takes the same named parameters as :func:`gmmcollapse.gmm.make_params` (as a
dict of arrays, e.g. a flattened sweep grid, plus ``d``) and returns every prediction that
those parameters determine for a single round:

* always: ``breakdown_point``, ``keep_fraction``, ``effective_noise``, ``bayes_accuracy``;
* flip generator, no linear test (``tau = -inf``): ``infinite_data_accuracy`` and the exact
  finite-n/d ``ridge_accuracy`` (real data mixed in and the shifted synthetic law included);
* flip generator with a linear verifier: its exact keep rates and ``infinite_data_accuracy``
  (selection depends on x: no finite-n/d formula);
* linear generator: ``generator_accuracy``, the exact keep rates, ``infinite_data_accuracy``.

The noisy oracle (``phi``, ``psi``) and the linear margin test act together (a sample is kept
when both keep it), exactly as in the simulation.

Entries that do not apply to a point are NaN. The ridge generator and multi-round runs have no
closed form here: only the rate-based quantities are returned for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gmmcollapse import theory as T
from gmmcollapse.gmm.spec import _DEFAULTS

__all__ = ["predict"]


def predict(params: Mapping[str, Any], generator: str = "flip") -> dict[str, np.ndarray]:
    """Predictions for every point of ``params`` (dict of equal-length arrays or scalars).

    Args:
        params: ``n``, ``d``, ``snr`` and any other :class:`~gmmcollapse.gmm.GMMParams` field
            (missing ones take the simulation defaults). Class-specific (length-2) rates are
            not supported here: use :func:`gmmcollapse.theory.class_infinite_data_accuracy`.
        generator: ``"flip"``, ``"linear"`` or ``"ridge"`` (as in ``SimSpec``).
    """
    v = {
        k: np.asarray(params.get(k, _DEFAULTS.get(k)), np.float64)
        for k in set(_DEFAULTS) | {"n", "d", "snr"}
    }
    if any(
        np.ndim(v[k]) > 1 or (np.ndim(v[k]) == 1 and np.ndim(v["n"]) == 0)
        for k in ("p", "phi", "psi")
    ):
        raise ValueError(
            "predict() takes scalar rates per point; class-specific rates are not supported"
        )
    shape = np.broadcast_shapes(*(np.shape(a) for a in v.values()))
    v = {k: np.broadcast_to(a, shape) for k, a in v.items()}
    tau, snr = v["tau"], v["snr"]
    linear_test = np.isfinite(tau) | (tau == np.inf)
    out: dict[str, np.ndarray] = {"bayes_accuracy": np.asarray(T.bayes_accuracy(snr))}

    if generator == "flip":
        p, phi, psi = v["p"], v["phi"], v["psi"]
        # the linear margin test multiplies the oracle's keep rates (independent given the label)
        lin = T.flip_linear_keep_rates(snr, p, v["theta_ver"], np.where(linear_test, tau, 0.0))
        phi_eff = np.where(linear_test, phi * np.asarray(lin.phi), phi)
        psi_eff = np.where(linear_test, psi * np.asarray(lin.psi), psi)
        out["generator_accuracy"] = 1.0 - p
        rates_ok = (phi_eff + psi_eff) > 0
        phi_s, psi_s = np.where(rates_ok, phi_eff, 1.0), np.where(rates_ok, psi_eff, 1.0)
        out["phi"], out["psi"] = phi_eff, psi_eff
        out["breakdown_point"] = np.where(
            rates_ok, np.asarray(T.breakdown_point(phi_s, psi_s)), np.nan
        )
        out["keep_fraction"] = np.asarray(T.keep_fraction(p, phi_s, psi_s)) * rates_ok
        out["effective_noise"] = np.where(
            rates_ok, np.asarray(T.effective_noise(p, phi_s, psi_s)), np.nan
        )
        phipsi_limit = np.asarray(T.infinite_data_accuracy(snr, p, phi_s, psi_s))
        lin_limit = np.asarray(
            T.flip_linear_infinite_data_accuracy(
                snr, p, v["theta_ver"], np.where(linear_test, tau, 0.0), v["lam"], phi, psi
            )
        )
        # selection independent of x: the phi-psi limit; with the margin test: the exact limit
        out["infinite_data_accuracy"] = np.where(linear_test, lin_limit, phipsi_limit)
        n_real = v["n_real"] * v["mix_real"]
        ridge = np.asarray(
            T.shifted_mixed_ridge_accuracy(
                n_real,
                v["n"],
                v["d"],
                snr,
                p,
                phi_s,
                psi_s,
                v["lam"],
                v["beta"],
                v["gamma"],
                v["sigma"],
            )
            if np.any(v["sigma"] != 1.0)
            else T.mixed_ridge_accuracy(n_real, v["n"], v["d"], snr, p, phi_s, psi_s, v["lam"])
        )
        out["ridge_accuracy"] = np.where(linear_test | ~rates_ok, np.nan, ridge)
    elif generator == "linear":
        tau_lin = np.where(linear_test, tau, -np.inf)
        lin = T.linear_keep_rates(snr, v["theta_gen"], v["theta_ver"], tau_lin)
        out["generator_accuracy"] = 1.0 - np.asarray(lin.p)
        # the noisy-oracle part (phi, psi) keeps independently of the margin test
        out["p"] = np.asarray(lin.p)
        out["phi"], out["psi"] = v["phi"] * np.asarray(lin.phi), v["psi"] * np.asarray(lin.psi)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["breakdown_point"] = out["phi"] / (out["phi"] + out["psi"])
        out["infinite_data_accuracy"] = np.asarray(
            T.linear_infinite_data_accuracy(
                snr, v["theta_gen"], v["theta_ver"], tau_lin, v["lam"], v["phi"], v["psi"]
            )
        )
    elif generator != "ridge":
        raise ValueError(f"generator must be one of flip, linear, ridge, got {generator!r}")
    return {k: np.asarray(a, np.float64) for k, a in out.items()}
