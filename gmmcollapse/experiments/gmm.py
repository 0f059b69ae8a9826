"""The Gaussian-mixture experiments behind the GMM figures, at three scales.

Each experiment has the face of the model experiments: a frozen config dataclass whose
``smoke`` (seconds, used by the tests), ``quick`` (this 2-core CPU, the whole set in a few
minutes) and ``paper`` (accelerators: larger d, finer grids, more seeds) presets are in
:attr:`Experiment.scales`; :meth:`Experiment.describe` (the plan: result files, grids,
seeds), :meth:`Experiment.run` (the sweeps, through :func:`gmmcollapse.gmm.sweep.run_sweep`,
each written to ``<results_dir>/<file>.npz``) and :meth:`Experiment.report` (a summary of the
files written). The figures (:mod:`gmmcollapse.plots.gmm`) only read those files.

Launch: ``gmmcollapse reproduce --only gmm --scale quick`` (all six, about 3 minutes here)
or ``python sims/gmm_<name>.py --scale quick``.

Example:
    >>> cfg = EXPERIMENTS["transition"].config("smoke", seeds=4)
    >>> cfg.d, cfg.seeds
    (16, 4)
    >>> print(EXPERIMENTS["transition"].describe(cfg).splitlines()[1])
      gmm_transition.npz: n x p grid 2x3 = 6 points x 4 seeds = 24 runs
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gmmcollapse import theory as T
from gmmcollapse._validate import check_choice
from gmmcollapse.gmm.predict import predict
from gmmcollapse.gmm.sweep import Results, Sweep, load_results, run_sweep
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "BestSizeConfig",
    "DatasizeConfig",
    "Experiment",
    "Job",
    "LinearPhaseConfig",
    "PhaseConfig",
    "RoundsConfig",
    "TransitionConfig",
    "make_config",
    "run_experiment",
]

#: the scale presets every experiment has
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


@dataclass(frozen=True)
class Job:
    """One result file of an experiment: its name, grid shape and seeds (for the plan), and
    ``compute(path, progress)``, which writes it."""

    file: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    seeds: int
    compute: Callable[[str, bool], Any]

    def describe(self) -> str:
        g = int(np.prod(self.shape))
        grid = (
            f"{' x '.join(self.axes) or 'one point'} grid {'x'.join(map(str, self.shape)) or '1'}"
        )
        runs = f" = {g} points x {self.seeds} seeds = {g * self.seeds} runs" if self.seeds else ""
        return f"  {self.file}: {grid}{runs}{'' if self.seeds else ', theory only'}"


def _sweep_job(file: str, sweep: Sweep, theory: Callable) -> Job:
    return Job(
        file, tuple(sweep.axis_names), sweep.shape, sweep.seeds,
        lambda path, progress: run_sweep(sweep, theory, path, progress),
    )  # fmt: skip


def _theory(generator: str = "flip", rounds: int = 1, data: str = "replace") -> Callable:
    return lambda pts: predict(pts, generator, rounds=rounds, data=data)


# ------------------------------------------------------------------ 1. phase diagram


@dataclass(frozen=True)
class PhaseConfig:
    """Grid sizes of the phase figure (theory only)."""

    scale: str = "quick"
    n_p: int = 201  # points along the flip rate p in [0, 1]
    n_ratio: int = 161  # points along psi/phi in [0.01, 10] (log axis)
    n_nd: int = 61  # points along n/d in [0.1, 1000] of the linear verifiers' breakdown panel


def phase(cfg: PhaseConfig) -> list[Job]:
    """Infinite-data and finite-n/d accuracy over (p, psi/phi), with the p* boundary.

    The verifier's quality is the ratio psi/phi (log axis); phi = 1 for ratio <= 1, psi = 1
    above (an adversarial verifier keeps wrong labels more often than right ones).
    """
    snr, ratio_nd = 1.5, 2.0  # finite panel: n/d = 2, lam = 0.1

    def grid(path: str, progress: bool) -> None:
        p = np.linspace(0.0, 1.0, cfg.n_p)
        ratio = np.logspace(-2, 1, cfg.n_ratio)
        pp, rr = np.meshgrid(p, ratio, indexing="ij")
        phi = np.where(rr <= 1, 1.0, 1.0 / rr)
        psi = np.where(rr <= 1, rr, 1.0)
        data = {
            "theory/infinite_data_accuracy": np.asarray(
                T.infinite_data_accuracy(snr, pp, phi, psi)
            ),
            "theory/ridge_accuracy": np.asarray(
                T.ridge_accuracy(ratio_nd, 1.0, snr, pp, phi, psi, 0.1)
            ),
            "theory/breakdown_point": np.asarray(T.breakdown_point(phi, psi)),
        }
        meta = {
            "name": "phase",
            "scale": cfg.scale,
            "snr": snr,
            "n_over_d": ratio_nd,
            "lam": 0.1,
            "axis_order": ["p", "ratio"],
        }
        Results(axes={"p": p, "ratio": ratio}, data=data, meta=meta).save(path)

    # the finite-n/d breakdown of linear verifiers (selection reads x) against the phi-psi
    # proxy computed from their keep rates, which does not depend on n/d
    def breakdown(path: str, progress: bool) -> None:
        nd = np.logspace(-1, 3, cfg.n_nd)
        cases = dict(LINEAR_VERIFIERS)
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
        meta = {"name": "phase_breakdown", "scale": cfg.scale, "snr": snr, "lam": 0.1}
        meta.update({"cases": list(cases), "axis_order": ["case", "n_over_d"]})
        axes = {"case": np.arange(len(cases)), "n_over_d": nd}
        Results(axes=axes, data=data, meta=meta).save(path)

    return [
        Job("gmm_phase.npz", ("p", "ratio"), (cfg.n_p, cfg.n_ratio), 0, grid),
        Job(
            "gmm_phase_breakdown.npz", ("case", "n_over_d"), (len(LINEAR_VERIFIERS), cfg.n_nd),
            0, breakdown,
        ),
    ]  # fmt: skip


# ------------------------------------------------------------------ 2. transition vs n/d


@dataclass(frozen=True)
class TransitionConfig:
    """Sizes of the transition figure."""

    scale: str = "quick"
    d: int = 200
    seeds: int = 16
    n_p: int = 13  # simulated points along p in [0, 1]
    ratios: tuple[float, ...] = (0.5, 2.0, 8.0, 32.0)  # the values of n/d


def transition(cfg: TransitionConfig) -> list[Job]:
    """Accuracy vs p at several n/d: theory curves and simulated points (mean +- SE)."""
    ratios = np.array(list(cfg.ratios))
    fixed = {"d": cfg.d, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1}  # p* = 2/3
    sim = Sweep(
        "transition",
        axes={"n": ratios * cfg.d, "p": np.linspace(0.0, 1.0, cfg.n_p)},
        fixed=fixed,
        seeds=cfg.seeds,
        seed=2,
    )
    fine = Sweep(
        "transition_theory",
        axes={"n": ratios * cfg.d, "p": np.linspace(0.0, 1.0, 401)},
        fixed=fixed,
    )
    return [
        _sweep_job("gmm_transition.npz", sim, _theory()),
        _sweep_job("gmm_transition_theory.npz", fine, _theory()),
    ]


# ------------------------------------------------------------------ 3. accuracy vs data size


@dataclass(frozen=True)
class DatasizeConfig:
    """Sizes of the datasize figure."""

    scale: str = "quick"
    d: int = 100
    seeds: int = 8
    log10_n_max: float = 4.5  # simulated n from 100 to 10**log10_n_max (log spaced)
    n_points: int = 11  # simulated values of n (before rounding to whole, unique values)
    n_fine: int = 81  # theory curve points


def datasize(cfg: DatasizeConfig) -> list[Job]:
    """Accuracy vs number of synthesized samples for several verifiers, two generators.

    (a) i.i.d. label flips at p = 0.3 (selection by a noisy oracle is independent of x);
    (b) the linear classifier at angle pi/3 to mu (accuracy Phi(snr/2) = 0.69 at snr = 1).
    Verifiers: none, the weak linear verifier at pi/12 with margin 0 (keeps a sample iff
    its label agrees with sign(w_ver . x)), and the oracle. Reference: clean labels.
    """
    d, seeds, n_max_exp = cfg.d, cfg.seeds, cfg.log10_n_max
    n = np.unique(np.round(np.logspace(2, n_max_exp, cfg.n_points)))
    fixed = {"d": d, "snr": 1.0, "lam": 0.1}
    cases = {"none": NO_VERIFIER, "weak linear (pi/12)": WEAK_LINEAR, "oracle": ORACLE}
    fine = np.logspace(1.5, n_max_exp + 0.2, cfg.n_fine)
    jobs = []
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
        jobs.append(_sweep_job(f"gmm_datasize_{gen}.npz", sw, _theory(gen)))
        # the exact finite-n/d theory on a fine grid (theory only): the curves
        curves = Sweep(
            f"datasize_{gen}_theory", axes={"n": fine}, fixed={**fixed, **extra}, cases=cases
        )
        jobs.append(_sweep_job(f"gmm_datasize_{gen}_theory.npz", curves, _theory(gen)))
    clean = Sweep("datasize_clean", axes={"n": n}, fixed={**fixed, "p": 0.0}, seeds=seeds, seed=3)
    jobs.append(_sweep_job("gmm_datasize_clean.npz", clean, _theory("flip")))
    clean_th = Sweep("datasize_clean_theory", axes={"n": fine}, fixed={**fixed, "p": 0.0})
    jobs.append(_sweep_job("gmm_datasize_clean_theory.npz", clean_th, _theory("flip")))
    return jobs


# ------------------------------------------------------------------ 4. rounds


@dataclass(frozen=True)
class RoundsConfig:
    """Sizes of the rounds figure."""

    scale: str = "quick"
    d: int = 100
    seeds: int = 16
    rounds: int = 8
    n: int = 1000  # synthesized samples per round
    n_real: int = 200  # real samples of round 0's ridge generator


def rounds(cfg: RoundsConfig) -> list[Job]:
    """Iterated retraining: the model of round r generates round r+1's data.

    Round 0's generator is ridge trained on ``n_real`` real samples; every round synthesizes
    ``n`` samples, the verifier selects, a fresh ridge model is trained on this round's kept
    data (replace) or on all rounds' kept data (accumulate).
    """
    fixed = {
        "d": cfg.d, "snr": 1.0, "lam": 0.1, "n": cfg.n, "n_real": cfg.n_real, "lam_gen": 0.1,
    }  # fmt: skip
    cases = {
        "none": NO_VERIFIER,
        "noisy oracle (phi=1, psi=0.5)": {"phi": 1.0, "psi": 0.5, "tau": -math.inf},
        "weak linear (pi/12)": WEAK_LINEAR,
        "oracle": ORACLE,
    }
    jobs = []
    for mode in ("replace", "accumulate"):
        sw = Sweep(
            f"rounds_{mode}",
            axes={},
            fixed=fixed,
            cases=cases,
            spec={"generator": "ridge", "rounds": cfg.rounds, "data": mode},
            seeds=cfg.seeds,
            seed=4,
        )
        # exact per-round theory: finite n/d for replace, the infinite-data recursion for
        # accumulate (its finite-n/d theory is not derived; see theory.retraining)
        jobs.append(_sweep_job(f"gmm_rounds_{mode}.npz", sw, _theory("ridge", cfg.rounds, mode)))
    return jobs


# ------------------------------------------------------------------ 5. linear verifier plane


@dataclass(frozen=True)
class LinearPhaseConfig:
    """Sizes of the linear_phase figure."""

    scale: str = "quick"
    n_theta: int = 121  # theory points along theta_ver in [-pi, pi]
    n_tau: int = 81  # theory points along tau in [-1, 3]
    d: int = 50
    seeds: int = 8
    n: int = 20000  # synthesized samples
    n_sim: int = 5  # simulated points along each of theta_ver and tau


def linear_phase(cfg: LinearPhaseConfig) -> list[Job]:
    """The linear verifier's (theta_ver, tau) plane for a linear generator at pi/3.

    Exact infinite-data accuracy (selection depends on x), the phi-psi prediction from the
    verifier's measured keep rates (which would hold if selection ignored x), and simulated
    spot checks at large n.
    """
    theta_gen, snr = math.pi / 3, 1.0
    fixed = {"snr": snr, "theta_gen": theta_gen, "lam": 0.1, "n": cfg.n, "d": cfg.d}
    theory = Sweep(
        "linear_phase",
        axes={
            "theta_ver": np.linspace(-math.pi, math.pi, cfg.n_theta),
            "tau": np.linspace(-1.0, 3.0, cfg.n_tau),
        },
        fixed=fixed,
    )
    sims = Sweep(
        "linear_phase_sim",
        axes={
            "theta_ver": np.linspace(-2 * math.pi / 3, 2 * math.pi / 3, cfg.n_sim),
            "tau": np.linspace(-0.5, 2.0, cfg.n_sim),
        },
        fixed=fixed,
        spec={"generator": "linear"},
        seeds=cfg.seeds,
        seed=5,
    )
    return [
        _sweep_job("gmm_linear_phase.npz", theory, _theory("linear")),
        _sweep_job("gmm_linear_phase_sim.npz", sims, _theory("linear")),
    ]


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


@dataclass(frozen=True)
class BestSizeConfig:
    """Sizes of the best_size figure."""

    scale: str = "quick"
    n_theta: int = 61  # points along theta_ver in [0, pi/2] (both maps)
    n_tau: int = 49  # points along tau in [-1, 2] (map a)
    n_nd: int = 81  # points along n/d in [0.1, 1000] (maps and theory curves)
    n_real_pts: int = 41  # points along n_real/d in [0.1, 10**1.5] (map b)
    d: int = 100
    seeds: int = 64
    n_sim: int = 13  # simulated values of n per curve (before rounding to whole, unique values)


def best_size(cfg: BestSizeConfig) -> list[Job]:
    """Where does more synthesized data hurt? The n*/d that maximises the exact accuracy.

    (a) synthesized data only, flip generator (p = 0.1, snr = 2, lam = 0.1): n*/d over the
    verifier's (theta_ver, tau); (b) real data mixed in (linear generator at pi/3, snr = 1,
    lam = 0.1, tau = 0): n*/d over (theta_ver, n_real/d); (c) the two cases of
    :data:`BEST_SIZE_CASES`: theory curves and simulated points (projected path).
    """
    d = cfg.d
    nd = np.logspace(-1, 3, cfg.n_nd)
    theta_ver = np.linspace(0.0, math.pi / 2, cfg.n_theta)
    maps = {
        "synthetic": (
            "flip",
            {"theta_ver": theta_ver, "tau": np.linspace(-1.0, 2.0, cfg.n_tau)},
            {"snr": 2.0, "lam": 0.1, "p": 0.1, "n_real": 0.0},
        ),
        "real": (
            "linear",
            {"theta_ver": theta_ver, "n_real": d * np.logspace(-1, 1.5, cfg.n_real_pts)},
            {"snr": 1.0, "lam": 0.1, "theta_gen": math.pi / 3, "tau": 0.0},
        ),
    }
    jobs = []
    for name, (gen, axes, fixed) in maps.items():
        sw = Sweep(f"best_size_{name}", axes={**axes, "n": d * nd}, fixed={**fixed, "d": d})
        jobs.append(_sweep_job(f"gmm_best_size_{name}.npz", sw, _best_size_theory(gen)))
    for i, (label, case) in enumerate(BEST_SIZE_CASES.items()):
        n_real = case["n_real_over_d"] * d
        fixed = {**case["fixed"], "d": d, "n_real": n_real}
        gen = case["generator"]
        spec = {"generator": gen, "n_real_max": int(n_real)}
        sim = Sweep(
            label,  # the figure's legend reads it from the results' metadata
            axes={"n": np.unique(np.round(d * np.logspace(-1, 3, cfg.n_sim)))},
            fixed=fixed,
            spec=spec,
            seeds=cfg.seeds,
            seed=6 + i,
        )
        jobs.append(_sweep_job(f"gmm_best_size_case{i}.npz", sim, _theory(gen)))
        curve = Sweep(f"best_size_case{i}_theory", axes={"n": d * nd}, fixed=fixed, spec=spec)
        jobs.append(_sweep_job(f"gmm_best_size_case{i}_theory.npz", curve, _theory(gen)))
    return jobs


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class Experiment:
    """One GMM figure experiment: its scale presets and the result files it computes.

    Attributes:
        name: the figure's name (``sims/gmm_<name>.py``, ``figures/gmm_<name>.py``).
        summary: one line for help texts.
        scales: ``{"smoke" | "quick" | "paper": config}``, frozen config dataclasses.
        plan: ``config -> [Job]``, the result files in the order they are computed.
    """

    name: str
    summary: str
    scales: Mapping[str, Any]
    plan: Callable[[Any], list[Job]]

    def config(self, scale: str = "quick", **overrides: Any) -> Any:
        """The preset ``scale`` with fields replaced (``ValueError`` for an unknown one)."""
        check_choice("scale", scale, self.scales)
        base = self.scales[scale]
        allowed = [f.name for f in dataclasses.fields(base) if f.name != "scale"]
        bad = sorted(set(overrides) - set(allowed))
        if bad:
            raise ValueError(
                f"unknown {self.name} config field(s) {bad}; allowed: {', '.join(allowed)}"
            )
        return dataclasses.replace(base, **overrides)

    def describe(self, cfg: Any) -> str:
        """The dry-run plan: every result file with its grid, seeds and runs."""
        head = f"gmm {self.name} {cfg.scale}: {self.summary}"
        return "\n".join([head, *(job.describe() for job in self.plan(cfg))])

    @in_float64  # float64 arrays as the experiment was written for, whatever the caller set
    def run(self, cfg: Any, out: str, progress: bool = True) -> list[str]:
        """Compute every result file into the folder ``out``; returns their paths."""
        os.makedirs(out, exist_ok=True)
        paths = []
        for job in self.plan(cfg):
            paths.append(os.path.join(out, job.file))
            job.compute(paths[-1], progress)
        return paths

    def report(self, paths: list[str]) -> str:
        """One line per result file: its grid and the seconds it took."""
        lines = [f"gmm {self.name}:"]
        for path in paths:
            res = load_results(path)
            shape = "x".join(str(np.size(v)) for v in res.axes.values()) or "1"
            kind = "simulation and theory" if "sim_mean/acc" in res.data else "theory"
            secs = res.meta.get("seconds")
            took = f", {secs:.1f} s" if isinstance(secs, (int, float)) else ""
            lines.append(f"  {os.path.basename(path)}: grid {shape}, {kind}{took}")
        return "\n".join(lines)


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "phase",
            "phase diagram of accuracy over (p, psi/phi) with the p* boundary",
            {
                "smoke": PhaseConfig("smoke", n_p=11, n_ratio=9, n_nd=9),
                "quick": PhaseConfig("quick", n_p=201, n_ratio=161, n_nd=61),
                "paper": PhaseConfig("paper", n_p=801, n_ratio=641, n_nd=121),
            },
            phase,
        ),
        Experiment(
            "transition",
            "accuracy vs p at several n/d: theory and simulation",
            {
                "smoke": TransitionConfig("smoke", d=16, seeds=2, n_p=3, ratios=(1.0, 4.0)),
                "quick": TransitionConfig(
                    "quick", d=200, seeds=16, n_p=13, ratios=(0.5, 2.0, 8.0, 32.0)
                ),
                "paper": TransitionConfig(
                    "paper", d=1000, seeds=64, n_p=41, ratios=(0.25, 1.0, 4.0, 16.0, 64.0, 256.0)
                ),
            },
            transition,
        ),
        Experiment(
            "datasize",
            "accuracy vs number of synthesized samples per verifier",
            {
                "smoke": DatasizeConfig(
                    "smoke", d=16, seeds=2, log10_n_max=2.5, n_points=2, n_fine=9
                ),
                "quick": DatasizeConfig(
                    "quick", d=100, seeds=8, log10_n_max=4.5, n_points=11, n_fine=81
                ),
                "paper": DatasizeConfig(
                    "paper", d=1000, seeds=32, log10_n_max=6.0, n_points=25, n_fine=161
                ),
            },
            datasize,
        ),
        Experiment(
            "rounds",
            "accuracy over rounds of iterated retraining",
            {
                "smoke": RoundsConfig("smoke", d=16, seeds=2, rounds=3, n=64, n_real=32),
                "quick": RoundsConfig("quick", d=100, seeds=16, rounds=8, n=1000, n_real=200),
                "paper": RoundsConfig("paper", d=500, seeds=64, rounds=20, n=10000, n_real=1000),
            },
            rounds,
        ),
        Experiment(
            "linear_phase",
            "linear verifier's (theta_ver, tau) plane",
            {
                "smoke": LinearPhaseConfig(
                    "smoke", n_theta=9, n_tau=7, d=16, seeds=2, n=256, n_sim=3
                ),
                "quick": LinearPhaseConfig(
                    "quick", n_theta=121, n_tau=81, d=50, seeds=8, n=20000, n_sim=5
                ),
                "paper": LinearPhaseConfig(
                    "paper", n_theta=361, n_tau=241, d=200, seeds=32, n=200000, n_sim=9
                ),
            },
            linear_phase,
        ),
        Experiment(
            "best_size",
            "the data size that maximises accuracy, and when more hurts",
            {
                "smoke": BestSizeConfig(
                    "smoke", n_theta=7, n_tau=5, n_nd=9, n_real_pts=4, d=16, seeds=2, n_sim=4
                ),
                "quick": BestSizeConfig(
                    "quick", n_theta=61, n_tau=49, n_nd=81, n_real_pts=41, d=100, seeds=64, n_sim=13
                ),
                "paper": BestSizeConfig(
                    "paper",
                    n_theta=181,
                    n_tau=145,
                    n_nd=161,
                    n_real_pts=81,
                    d=400,
                    seeds=256,
                    n_sim=25,
                ),
            },
            best_size,
        ),
    )
}


def make_config(name: str, scale: str = "quick", **overrides: Any) -> Any:
    """The config of experiment ``name`` at ``scale``, fields replaced by ``overrides``."""
    check_choice("experiment", name, EXPERIMENTS)
    return EXPERIMENTS[name].config(scale, **overrides)


def run_experiment(name: str, scale: str, out: str, progress: bool = True) -> list[str]:
    """Run one experiment by name at a preset scale; returns the result files written."""
    check_choice("experiment", name, EXPERIMENTS)
    exp = EXPERIMENTS[name]
    return exp.run(exp.config(scale), out, progress)


def sim_main(name: str, argv: list[str] | None = None) -> list[str]:
    """Command-line body shared by the ``sims/gmm_<name>.py`` scripts."""
    import argparse

    exp = EXPERIMENTS[name]
    parser = argparse.ArgumentParser(description=f"Run the GMM experiment {name!r}: {exp.summary}.")
    parser.add_argument("--scale", choices=SCALES, default="quick")
    parser.add_argument("--results", default="results/gmm")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    args = parser.parse_args(argv)
    if args.dry_run:
        print(exp.describe(exp.config(args.scale)))
        return []
    paths = run_experiment(name, args.scale, args.results, progress=not args.quiet)
    print(*paths, sep="\n")
    return paths
