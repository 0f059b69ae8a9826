"""The eigenvalue-experiment figures, drawn from a run's ``results.json`` only.

* ``warmup``: greedy decoding vs the best of k beams picked by an oracle vs the beam the model
  itself finds most likely, at every tolerance (the warm-up table of the eigenvalue experiment,
  Feng et al., arXiv 2406.07515).
* ``pstar``: final accuracy of the model retrained on each strategy's selection against the
  strategy's measured p*, with the generator's accuracy as a line; error bars are 2 paired
  standard errors of the difference to the generator (same held-out matrices). The
  noisy-oracle family traces the crossover: the p* from which it beats the generator by 2 SE.
* ``datasize``: final accuracy against the number of synthesized inputs, per strategy.

Each function takes the run directory and an output directory, writes ``eigen_<name>.png`` and
``.pdf`` and returns (paths, headline numbers).
"""

from __future__ import annotations

import itertools
import json
import math
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from gmmcollapse._validate import check_choice
from gmmcollapse.plots.gmm import _save, _style

__all__ = ["FIGURES", "crossover", "draw", "load_run"]


def load_run(run_dir: str, command: str = "eigen") -> dict:
    """The ``results.json`` of a run directory (clear error if the run has not finished);
    ``command`` is the CLI command that makes it, named in the error."""
    path = os.path.join(run_dir, "results.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: run the experiment first (gmmcollapse {command} --out {run_dir})"
        )
    with open(path) as f:
        return json.load(f)


def _tau(r: dict) -> str:
    return f"{r['config']['tau']:g}"


def _acc(entry, tau: str) -> float:
    acc = (entry or {}).get("acc") if isinstance(entry, dict) and "acc" in entry else entry
    if not acc or acc.get(tau) is None:
        return math.nan
    return float(acc[tau])


def warmup(run_dir: str, out_dir: str):
    _style()
    r = load_run(run_dir)
    w = r["warmup"]
    rows = [
        ("greedy", "greedy decoding"),
        ("oracle_best_of_k", f"best of {w['beam']} beams (oracle)"),
        ("lowest_perplexity", f"most likely of {w['beam']} beams (self)"),
    ]
    taus = list(w["greedy"])
    fig, ax = plt.subplots(figsize=(7.5, 4.2), constrained_layout=True)
    width = 0.8 / len(rows)
    x = np.arange(len(taus))
    for i, (key, label) in enumerate(rows):
        vals = [100 * w[key][t] for t in taus]
        bars = ax.bar(x + (i - 1) * width, vals, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=1)
    ax.set_xticks(x, [f"{100 * float(t):g}%" for t in taus])
    ax.set_xlabel("tolerance (relative L1 error)")
    ax.set_ylabel("correct (%)")
    c = r["config"]
    ax.set_title(f"Warm-up: the generator on {c['n_test']} held-out {c['k']}x{c['k']} matrices")
    top = max(100 * w[key][t] for key, _ in rows for t in taus)
    ax.set_ylim(0, 1.25 * top + 1)
    ax.legend(loc="upper right", fontsize=8)
    tau = _tau(r)
    head = {key: w[key][tau] for key, _ in rows} | {"tau": float(tau)}
    return _save(fig, out_dir, "eigen_warmup"), head


def crossover(points: list[tuple[float, float]], level: float) -> float:
    """Smallest p* at which the piecewise-linear curve through (p*, acc) reaches ``level``.

    NaN when the curve never reaches it; the lowest p* when it starts above.
    """
    pts = sorted((p, a) for p, a in points if math.isfinite(p) and math.isfinite(a))
    if not pts:
        return math.nan
    if pts[0][1] >= level:
        return pts[0][0]
    for (p0, a0), (p1, a1) in itertools.pairwise(pts):
        if a0 < level <= a1:
            return p0 + (level - a0) * (p1 - p0) / (a1 - a0)
    return math.nan


def pstar(run_dir: str, out_dir: str):
    _style()
    r = load_run(run_dir)
    tau = _tau(r)
    gen = _acc(r["generator"], tau)
    strat = r["strategies"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    ax.axhline(100 * gen, color="k", ls="--", lw=1.2, label=f"generator ({100 * gen:.1f}%)")
    # the noisy family with its end points: no verifier (p* = 1/2), the perfect oracle (p* = 1)
    members = [n for n in strat if n.startswith("noisy_oracle_")] + ["none", "oracle_prune"]
    family = sorted(
        (strat[n]["p_star"], _acc(strat[n], tau), strat[n].get("vs_generator"))
        for n in members
        if n in strat and strat[n].get("p_star") is not None
    )
    if family:
        ax.plot(
            [p for p, _, _ in family],
            [100 * a for _, a, _ in family],
            color="0.6",
            lw=1,
            zorder=1,
            label="noisy oracle, phi = 1, psi = p_noise",
        )
    markers = iter("osD^vP*Xh<>")
    for name, s in strat.items():
        if s.get("p_star") is None or s.get("acc") is None:
            continue
        se = (s.get("vs_generator") or {}).get("se", 0.0)
        ax.errorbar(
            s["p_star"],
            100 * _acc(s, tau),
            yerr=200 * se,
            fmt=next(markers, "o"),
            ms=6,
            capsize=2,
            label=name,
            zorder=3,
        )
    # where the family beats the generator by two paired standard errors (same test matrices)
    sig = [(p, v["delta"] - 2 * v["se"]) for p, _, v in family if v is not None]
    cross = crossover(sig, 0.0)
    if math.isfinite(cross):
        ax.axvline(cross, color="C3", lw=0.8, ls=":")
        ax.annotate(
            f"beats the generator by 2 SE\nfrom p* = {cross:.2f}",
            (cross, 100 * gen),
            xytext=(5, -28),
            textcoords="offset points",
            color="C3",
            fontsize=8,
        )
    ax.set_xlabel("measured breakdown point p* = phi / (phi + psi)")
    ax.set_ylabel(f"accuracy at {100 * float(tau):g}% (%)")
    c = r["config"]
    ax.set_title(
        f"Retrained on {c['n_syn']} synthesized inputs ({c['retrain_steps']} steps each); "
        f"generator error p = {strat['none']['p']:.2f}"
        if "none" in strat and strat["none"].get("p") is not None
        else "Retrained models vs p*"
    )
    ax.legend(fontsize=7, loc="best", ncol=2)
    head = {"generator": gen, "p_star_beats_generator_2se": cross} | {
        n: _acc(s, tau) for n, s in strat.items()
    }
    return _save(fig, out_dir, "eigen_pstar"), head


def datasize(run_dir: str, out_dir: str):
    _style()
    r = load_run(run_dir)
    tau = _tau(r)
    gen = _acc(r["generator"], tau)
    fig, ax = plt.subplots(figsize=(7, 4.3), constrained_layout=True)
    ax.axhline(100 * gen, color="k", ls="--", lw=1.2, label="generator")
    head = {"generator": gen}
    for name, pts in r.get("curves", {}).items():
        pts = sorted(pts, key=lambda p: p["n_syn"])
        xs = [p["n_syn"] for p in pts]
        ys = [100 * _acc(p, tau) for p in pts]
        ax.plot(xs, ys, "o-", label=name)
        head[name] = {str(x): y / 100 for x, y in zip(xs, ys, strict=True)}
    ax.set_xscale("log")
    ax.set_xlabel("synthesized inputs")
    ax.set_ylabel(f"accuracy at {100 * float(tau):g}% (%)")
    ax.set_title(f"Data size (real data of the generator: {r['config']['n_real']})")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "eigen_datasize"), head


FIGURES = {"warmup": warmup, "pstar": pstar, "datasize": datasize}


def draw(name: str, run_dir: str, out_dir: str):
    """Draw one figure by name (``warmup``, ``pstar``, ``datasize``)."""
    check_choice("figure", name, FIGURES)
    return FIGURES[name](run_dir, out_dir)
