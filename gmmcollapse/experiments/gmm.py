"""The Gaussian-mixture experiments behind the five GMM figures, at three scales.

Each experiment declares its sweeps (axes, fixed values, named verifier cases, seeds) for the
scales ``smoke`` (seconds, used by the tests), ``quick`` (this 2-core CPU, the whole set in a
few minutes) and ``paper`` (accelerators: larger d, finer grids, more seeds), runs them with
:func:`gmmcollapse.gmm.sweep.run_sweep` and writes ``<results_dir>/<file>.npz``. The figures
(:mod:`gmmcollapse.plots.gmm`) only read those files.

Launch: ``gmmcollapse reproduce --only gmm --scale quick`` (all five, about 3 minutes here)
or ``python sims/gmm_<name>.py --scale quick``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gmmcollapse import theory as T
from gmmcollapse._validate import check_choice
from gmmcollapse.gmm.predict import predict
from gmmcollapse.gmm.sweep import Results, Sweep, run_sweep
from gmmcollapse.theory.basic import in_float64

__all__ = ["EXPERIMENTS", "SCALES", "Experiment", "run_experiment"]

SCALES = ("smoke", "quick", "paper")

#: verifiers used across figures, as GMMParams values (noisy oracle x linear margin test)
NO_VERIFIER = {"phi": 1.0, "psi": 1.0, "tau": -math.inf}
ORACLE = {"phi": 1.0, "psi": 0.0, "tau": -math.inf}
WEAK_LINEAR = {
    "phi": 1.0,
    "psi": 1.0,
    "theta_ver": math.pi / 12,
    "tau": 0.0,
}  # Feng et al., arXiv 2406.07515
#: linear verifiers whose finite-n/d breakdown point the phase figure shows (flip generator)
LINEAR_VERIFIERS = {
    "theta_ver = 0.3, tau = -1": {"theta_ver": 0.3, "tau": -1.0},
    "theta_ver = 0.8, tau = -0.3": {"theta_ver": 0.8, "tau": -0.3},
    "theta_ver = 1.2, tau = 0": {"theta_ver": 1.2, "tau": 0.0},
    "theta_ver = 1.4, tau = 0.5": {"theta_ver": 1.4, "tau": 0.5},
}


def _pick(scale: str, smoke, quick, paper):
    check_choice("scale", scale, SCALES)
    return {"smoke": smoke, "quick": quick, "paper": paper}[scale]


def _theory(generator: str = "flip", rounds: int = 1, data: str = "replace") -> Callable:
    return lambda pts: predict(pts, generator, rounds=rounds, data=data)


# ------------------------------------------------------------------ 1. phase diagram


def phase(scale: str, out: str, progress: bool = True) -> list[str]:
    """Infinite-data and finite-n/d accuracy over (p, psi/phi), with the p* boundary.

    The verifier's quality is the ratio psi/phi (log axis); phi = 1 for ratio <= 1, psi = 1
    above (an adversarial verifier keeps wrong labels more often than right ones).
    """
    n_p, n_r = _pick(scale, (11, 9), (201, 161), (801, 641))
    snr, ratio_nd = 1.5, 2.0  # finite panel: n/d = 2, lam = 0.1
    p = np.linspace(0.0, 1.0, n_p)
    ratio = np.logspace(-2, 1, n_r)
    pp, rr = np.meshgrid(p, ratio, indexing="ij")
    phi = np.where(rr <= 1, 1.0, 1.0 / rr)
    psi = np.where(rr <= 1, rr, 1.0)
    data = {
        "theory/infinite_data_accuracy": np.asarray(T.infinite_data_accuracy(snr, pp, phi, psi)),
        "theory/ridge_accuracy": np.asarray(
            T.ridge_accuracy(ratio_nd, 1.0, snr, pp, phi, psi, 0.1)
        ),
        "theory/breakdown_point": np.asarray(T.breakdown_point(phi, psi)),
    }
    meta = {
        "name": "phase",
        "scale": scale,
        "snr": snr,
        "n_over_d": ratio_nd,
        "lam": 0.1,
        "axis_order": ["p", "ratio"],
    }
    path = os.path.join(out, "gmm_phase.npz")
    Results(axes={"p": p, "ratio": ratio}, data=data, meta=meta).save(path)

    # the finite-n/d breakdown of linear verifiers (selection reads x) against the phi-psi
    # proxy computed from their keep rates, which does not depend on n/d
    n_nd = _pick(scale, 9, 61, 121)
    nd = np.logspace(-1, 3, n_nd)
    cases = {name: v for name, v in LINEAR_VERIFIERS.items()}
    tv = np.array([c["theta_ver"] for c in cases.values()])[:, None]
    tau = np.array([c["tau"] for c in cases.values()])[:, None]
    finite = np.asarray(T.finite_breakdown_point(nd[None, :], 1.0, snr, tv, tau, 0.1))
    limit = np.asarray(T.finite_breakdown_point(np.inf, 1.0, snr, tv[:, 0], tau[:, 0], 0.1))
    rates = T.flip_linear_keep_rates(snr, 0.0, tv[:, 0], tau[:, 0])
    data = {
        "theory/finite_breakdown_point": finite,
        "theory/infinite_breakdown_point": limit,
        "theory/breakdown_point": np.asarray(rates.p_star),
    }
    meta = {"name": "phase_breakdown", "scale": scale, "snr": snr, "lam": 0.1}
    meta.update({"cases": list(cases), "axis_order": ["case", "n_over_d"]})
    path2 = os.path.join(out, "gmm_phase_breakdown.npz")
    Results(axes={"case": np.arange(len(cases)), "n_over_d": nd}, data=data, meta=meta).save(path2)
    return [path, path2]


# ------------------------------------------------------------------ 2. transition vs n/d


def transition(scale: str, out: str, progress: bool = True) -> list[str]:
    """Accuracy vs p at several n/d: theory curves and simulated points (mean +- SE)."""
    d, seeds, n_pts = _pick(scale, (16, 2, 3), (200, 16, 13), (1000, 64, 41))
    ratios = np.array(
        _pick(scale, [1.0, 4.0], [0.5, 2.0, 8.0, 32.0], [0.25, 1.0, 4.0, 16.0, 64.0, 256.0])
    )
    fixed = {"d": d, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1}  # p* = 2/3
    sim = Sweep(
        "transition",
        axes={"n": ratios * d, "p": np.linspace(0.0, 1.0, n_pts)},
        fixed=fixed,
        seeds=seeds,
        seed=2,
    )
    fine = Sweep(
        "transition_theory", axes={"n": ratios * d, "p": np.linspace(0.0, 1.0, 401)}, fixed=fixed
    )
    paths = [
        os.path.join(out, "gmm_transition.npz"),
        os.path.join(out, "gmm_transition_theory.npz"),
    ]
    run_sweep(sim, _theory(), paths[0], progress)
    run_sweep(fine, _theory(), paths[1], progress)
    return paths


# ------------------------------------------------------------------ 3. accuracy vs data size


def datasize(scale: str, out: str, progress: bool = True) -> list[str]:
    """Accuracy vs number of synthesized samples for several verifiers, two generators.

    (a) i.i.d. label flips at p = 0.3 (selection by a noisy oracle is independent of x);
    (b) the linear classifier at angle pi/3 to mu (accuracy Phi(snr/2) = 0.69 at snr = 1).
    Verifiers: none, the weak linear verifier at pi/12 with margin 0 (keeps a sample iff
    its label agrees with sign(w_ver . x)), and the oracle. Reference: clean labels.
    """
    d, seeds, n_max_exp, n_pts = _pick(
        scale, (16, 2, 2.5, 2), (100, 8, 4.5, 11), (1000, 32, 6.0, 25)
    )
    n = np.unique(np.round(np.logspace(2, n_max_exp, n_pts)))
    fixed = {"d": d, "snr": 1.0, "lam": 0.1}
    cases = {"none": NO_VERIFIER, "weak linear (pi/12)": WEAK_LINEAR, "oracle": ORACLE}
    fine = np.logspace(1.5, n_max_exp + 0.2, _pick(scale, 9, 81, 161))
    paths = []
    for gen, extra in (("flip", {"p": 0.3}), ("linear", {"theta_gen": math.pi / 3})):
        sw = Sweep(
            f"datasize_{gen}",
            axes={"n": n},
            fixed={**fixed, **extra},
            cases=cases,
            spec={"generator": gen},
            seeds=seeds,
            seed=3,
        )
        paths.append(os.path.join(out, f"gmm_datasize_{gen}.npz"))
        run_sweep(sw, _theory(gen), paths[-1], progress)
        # the exact finite-n/d theory on a fine grid (theory only): the curves
        curves = Sweep(
            f"datasize_{gen}_theory", axes={"n": fine}, fixed={**fixed, **extra}, cases=cases
        )
        paths.append(os.path.join(out, f"gmm_datasize_{gen}_theory.npz"))
        run_sweep(curves, _theory(gen), paths[-1], progress)
    clean = Sweep("datasize_clean", axes={"n": n}, fixed={**fixed, "p": 0.0}, seeds=seeds, seed=3)
    paths.append(os.path.join(out, "gmm_datasize_clean.npz"))
    run_sweep(clean, _theory("flip"), paths[-1], progress)
    clean_th = Sweep("datasize_clean_theory", axes={"n": fine}, fixed={**fixed, "p": 0.0})
    paths.append(os.path.join(out, "gmm_datasize_clean_theory.npz"))
    run_sweep(clean_th, _theory("flip"), paths[-1], progress)
    return paths


# ------------------------------------------------------------------ 4. rounds


def rounds(scale: str, out: str, progress: bool = True) -> list[str]:
    """Iterated retraining: the model of round r generates round r+1's data.

    Round 0's generator is ridge trained on ``n_real`` real samples; every round synthesizes
    ``n`` samples, the verifier selects, a fresh ridge model is trained on this round's kept
    data (replace) or on all rounds' kept data (accumulate).
    """
    d, seeds, n_rounds, n = _pick(scale, (16, 2, 3, 64), (100, 16, 8, 1000), (500, 64, 20, 10000))
    n_real = _pick(scale, 32, 200, 1000)
    fixed = {"d": d, "snr": 1.0, "lam": 0.1, "n": n, "n_real": n_real, "lam_gen": 0.1}
    cases = {
        "none": NO_VERIFIER,
        "noisy oracle (phi=1, psi=0.5)": {"phi": 1.0, "psi": 0.5, "tau": -math.inf},
        "weak linear (pi/12)": WEAK_LINEAR,
        "oracle": ORACLE,
    }
    paths = []
    for mode in ("replace", "accumulate"):
        sw = Sweep(
            f"rounds_{mode}",
            axes={},
            fixed=fixed,
            cases=cases,
            spec={"generator": "ridge", "rounds": n_rounds, "data": mode},
            seeds=seeds,
            seed=4,
        )
        path = os.path.join(out, f"gmm_rounds_{mode}.npz")
        # exact per-round theory: finite n/d for replace, the infinite-data recursion for
        # accumulate (its finite-n/d theory is not derived; see theory.retraining)
        run_sweep(sw, _theory("ridge", n_rounds, mode), path, progress)
        paths.append(path)
    return paths


# ------------------------------------------------------------------ 5. linear verifier plane


def linear_phase(scale: str, out: str, progress: bool = True) -> list[str]:
    """The linear verifier's (theta_ver, tau) plane for a linear generator at pi/3.

    Exact infinite-data accuracy (selection depends on x), the phi-psi prediction from the
    verifier's measured keep rates (which would hold if selection ignored x), and simulated
    spot checks at large n.
    """
    n_t, n_tau = _pick(scale, (9, 7), (121, 81), (361, 241))
    d, seeds, n, n_sim = _pick(scale, (16, 2, 256, 3), (50, 8, 20000, 5), (200, 32, 200000, 9))
    theta_gen, snr = math.pi / 3, 1.0
    tv = np.linspace(-math.pi, math.pi, n_t)
    taus = np.linspace(-1.0, 3.0, n_tau)
    theory = Sweep(
        "linear_phase",
        axes={"theta_ver": tv, "tau": taus},
        fixed={"snr": snr, "theta_gen": theta_gen, "lam": 0.1, "n": n, "d": d},
    )
    sims = Sweep(
        "linear_phase_sim",
        axes={
            "theta_ver": np.linspace(-2 * math.pi / 3, 2 * math.pi / 3, n_sim),
            "tau": np.linspace(-0.5, 2.0, n_sim),
        },
        fixed={"snr": snr, "theta_gen": theta_gen, "lam": 0.1, "n": n, "d": d},
        spec={"generator": "linear"},
        seeds=seeds,
        seed=5,
    )
    paths = [
        os.path.join(out, "gmm_linear_phase.npz"),
        os.path.join(out, "gmm_linear_phase_sim.npz"),
    ]
    run_sweep(theory, _theory("linear"), paths[0], progress)
    run_sweep(sims, _theory("linear"), paths[1], progress)
    return paths


# ------------------------------------------------------------------ 6. best data size


def _best_size_theory(generator: str) -> Callable:
    """Theory for the best-size maps: the finite-n/d accuracy and its n = inf limit only
    (no rates, no breakdown bisection: these grids have hundreds of thousands of points)."""
    fn = T.flip_linear_ridge_accuracy if generator == "flip" else T.linear_ridge_accuracy
    own = ("p",) if generator == "flip" else ("theta_gen",)

    def theory(pts):
        kw = {k: pts[k] for k in (*own, "snr", "theta_ver", "tau", "lam", "n_real", "d")}
        kw.setdefault("n_real", 0.0)
        return {
            "ridge_accuracy": np.asarray(fn(n=pts["n"], **kw)),
            "infinite_data_accuracy": np.asarray(fn(n=np.inf, **{**kw, "n_real": 0.0})),
        }

    return theory


#: the best-size figure's two curves (panel c), simulated on the projected path
BEST_SIZE_CASES = {
    # Feng et al.'s (arXiv 2406.07515) weak verifier at pi/12 on a linear generator at pi/3, real data mixed in
    "real + synthesized, verifier at pi/12": {
        "generator": "linear",
        "fixed": {
            "snr": 1.0,
            "lam": 0.1,
            "theta_gen": math.pi / 3,
            "theta_ver": math.pi / 12,
            "tau": 0.0,
            "mix_real": 1.0,
        },
        "n_real_over_d": 10.0,
    },
    # synthesized only: a verifier almost orthogonal to mu that keeps large margins
    "synthesized only, verifier at 1.45 rad, tau = 0.9": {
        "generator": "flip",
        "fixed": {"snr": 2.0, "lam": 0.1, "p": 0.1, "theta_ver": 1.45, "tau": 0.9},
        "n_real_over_d": 0.0,
    },
}


def best_size(scale: str, out: str, progress: bool = True) -> list[str]:
    """Where does more synthesized data hurt? The n*/d that maximises the exact accuracy.

    (a) synthesized data only, flip generator (p = 0.1, snr = 2, lam = 0.1): n*/d over the
    verifier's (theta_ver, tau); (b) real data mixed in (linear generator at pi/3, snr = 1,
    lam = 0.1, tau = 0): n*/d over (theta_ver, n_real/d); (c) the two cases of
    :data:`BEST_SIZE_CASES`: theory curves and simulated points (projected path).
    """
    n_t, n_tau, n_n, n_r = _pick(scale, (7, 5, 9, 4), (61, 49, 81, 41), (181, 145, 161, 81))
    d, seeds, n_sim = _pick(scale, (16, 2, 4), (100, 64, 13), (400, 256, 25))
    nd = np.logspace(-1, 3, n_n)
    paths = []
    maps = {
        "synthetic": (
            "flip",
            {"theta_ver": np.linspace(0.0, math.pi / 2, n_t), "tau": np.linspace(-1.0, 2.0, n_tau)},
            {"snr": 2.0, "lam": 0.1, "p": 0.1, "n_real": 0.0},
        ),
        "real": (
            "linear",
            {
                "theta_ver": np.linspace(0.0, math.pi / 2, n_t),
                "n_real": d * np.logspace(-1, 1.5, n_r),
            },
            {"snr": 1.0, "lam": 0.1, "theta_gen": math.pi / 3, "tau": 0.0},
        ),
    }
    for name, (gen, axes, fixed) in maps.items():
        sw = Sweep(f"best_size_{name}", axes={**axes, "n": d * nd}, fixed={**fixed, "d": d})
        paths.append(os.path.join(out, f"gmm_best_size_{name}.npz"))
        run_sweep(sw, _best_size_theory(gen), paths[-1], progress)
    for i, (label, case) in enumerate(BEST_SIZE_CASES.items()):
        n_real = case["n_real_over_d"] * d
        fixed = {**case["fixed"], "d": d, "n_real": n_real}
        gen = case["generator"]
        spec = {"generator": gen, "n_real_max": int(n_real)}
        sim = Sweep(
            label,  # the figure's legend reads it from the results' metadata
            axes={"n": np.unique(np.round(d * np.logspace(-1, 3, n_sim)))},
            fixed=fixed,
            spec=spec,
            seeds=seeds,
            seed=6 + i,
        )
        paths.append(os.path.join(out, f"gmm_best_size_case{i}.npz"))
        run_sweep(sim, _theory(gen), paths[-1], progress)
        curve = Sweep(f"best_size_case{i}_theory", axes={"n": d * nd}, fixed=fixed, spec=spec)
        paths.append(os.path.join(out, f"gmm_best_size_case{i}_theory.npz"))
        run_sweep(curve, _theory(gen), paths[-1], progress)
    return paths


@dataclass(frozen=True)
class Experiment:
    name: str
    run: Callable[[str, str, bool], list[str]]
    summary: str


EXPERIMENTS = {
    e.name: e
    for e in (
        Experiment(
            "phase", phase, "phase diagram of accuracy over (p, psi/phi) with the p* boundary"
        ),
        Experiment("transition", transition, "accuracy vs p at several n/d: theory and simulation"),
        Experiment("datasize", datasize, "accuracy vs number of synthesized samples per verifier"),
        Experiment("rounds", rounds, "accuracy over rounds of iterated retraining"),
        Experiment("linear_phase", linear_phase, "linear verifier's (theta_ver, tau) plane"),
        Experiment(
            "best_size", best_size, "the data size that maximises accuracy, and when more hurts"
        ),
    )
}


@in_float64  # float64 arrays as the experiment was written for, whatever the caller set
def run_experiment(name: str, scale: str, out: str, progress: bool = True) -> list[str]:
    """Run one experiment by name; returns the result files written."""
    check_choice("experiment", name, EXPERIMENTS)
    _pick(scale, 0, 0, 0)
    os.makedirs(out, exist_ok=True)
    return EXPERIMENTS[name].run(scale, out, progress)


def sim_main(name: str, argv: list[str] | None = None) -> list[str]:
    """Command-line body shared by the ``sims/gmm_<name>.py`` scripts."""
    import argparse

    parser = argparse.ArgumentParser(
        description=f"Run the GMM experiment {name!r}: {EXPERIMENTS[name].summary}."
    )
    parser.add_argument("--scale", choices=SCALES, default="quick")
    parser.add_argument("--results", default="results/gmm")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    paths = run_experiment(name, args.scale, args.results, progress=not args.quiet)
    print(*paths, sep="\n")
    return paths
