"""The five GMM figures. Each function reads result files and draws; nothing is computed here
beyond indexing and the summaries printed in the figure (e.g. the best data size).

Every function takes ``results_dir`` (where :mod:`gmmcollapse.experiments.gmm` wrote its
``.npz`` files) and ``out_dir`` and writes ``<name>.png`` and ``<name>.pdf``; it returns the
paths written plus a dict of headline numbers for logs and closing notes.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from gmmcollapse._validate import check_choice
from gmmcollapse.gmm.sweep import load_results

__all__ = ["FIGURES", "draw"]


def _style():
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def _save(fig, out_dir: str, name: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{name}.{ext}") for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _load(results_dir: str, name: str):
    path = os.path.join(results_dir, f"{name}.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: run the experiment first (gmmcollapse reproduce --only gmm)"
        )
    return load_results(path)


def phase(results_dir: str, out_dir: str):
    _style()
    r = _load(results_dir, "gmm_phase")
    p, ratio = r.axes["p"], r.axes["ratio"]
    fig, axes = plt.subplots(1, 3, figsize=(16.5, 4.5), constrained_layout=True)
    panels = [
        ("theory/infinite_data_accuracy", "infinite data (n/d -> inf)"),
        (
            "theory/ridge_accuracy",
            f"finite data: n/d = {r.meta['n_over_d']:g}, lam = {r.meta['lam']:g}",
        ),
    ]
    for ax, (key, title) in zip(axes[:2], panels):
        im = ax.pcolormesh(
            ratio, p, r[key], cmap="RdBu", vmin=0.0, vmax=1.0, shading="auto", rasterized=True
        )
        ax.plot(ratio, 1.0 / (1.0 + ratio), color="k", lw=2, label=r"$p^* = 1/(1+\psi/\phi)$")
        ax.axhline(0.5, color="k", lw=0.8, ls=":", label="no verifier: p* = 1/2")
        ax.set_xscale("log")
        ax.set_xlabel(r"verifier quality $\psi/\phi$ (keep rate wrong / correct)")
        ax.set_title(title)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("generator error rate p")
    axes[1].set_yticklabels([])
    axes[0].legend(loc="upper right", fontsize=8, framealpha=0.9)
    fig.colorbar(
        im,
        ax=axes[:2],
        label=f"test accuracy (snr = {r.meta['snr']:g}; Bayes {_bayes(r.meta['snr']):.3f})",
    )
    # (c) linear verifiers: the exact finite-n/d breakdown against the phi-psi proxy
    b = _load(results_dir, "gmm_phase_breakdown")
    ax = axes[2]
    colors = sns.color_palette("deep", len(b.meta["cases"]))
    nd = b.axes["n_over_d"]
    gaps = {}
    for i, name in enumerate(b.meta["cases"]):
        ax.plot(nd, b["theory/finite_breakdown_point"][i], color=colors[i], lw=1.8, label=name)
        proxy = float(b["theory/breakdown_point"][i])
        ax.axhline(proxy, color=colors[i], ls="--", lw=1.1)
        gaps[name] = round(float(b["theory/infinite_breakdown_point"][i]) - proxy, 4)
    ax.plot([], [], color="grey", ls="--", label="phi-psi proxy p* from keep rates")
    ax.set_xscale("log")
    ax.set_ylim(0.5, 1.02)
    ax.set_xlabel("n / d")
    ax.set_ylabel("breakdown: p where accuracy crosses 1/2")
    ax.set_title(
        f"(c) linear verifiers: exact finite-n/d breakdown (lam = {b.meta['lam']:g})", fontsize=10
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Breakdown point: selection recovers the Bayes classifier iff p < p*")
    return _save(fig, out_dir, "gmm_phase"), {"infinite-data breakdown minus proxy": gaps}


def _bayes(snr):
    return 0.5 * (1 + math.erf(snr / math.sqrt(2)))


def transition(results_dir: str, out_dir: str):
    _style()
    sim = _load(results_dir, "gmm_transition")
    th = _load(results_dir, "gmm_transition_theory")
    fx = sim.meta["sweep"]["fixed"]
    d = fx["d"]
    pstar = fx["phi"] / (fx["phi"] + fx["psi"])
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    colors = sns.color_palette("viridis", len(th.axes["n"]))
    gaps = []
    for i, n in enumerate(th.axes["n"]):
        ax.plot(
            th.axes["p"],
            th["theory/ridge_accuracy"][i],
            color=colors[i],
            lw=1.6,
            label=f"n/d = {n / d:g}",
        )
        m, se = sim["sim_mean/acc"][i, :, 0], sim["sim_se/acc"][i, :, 0]
        ax.errorbar(sim.axes["p"], m, yerr=2 * se, fmt="o", ms=3.5, color=colors[i], capsize=2)
        gaps.append(np.max(np.abs(m - sim["theory/ridge_accuracy"][i]) / np.maximum(se, 1e-12)))
    ax.plot(
        th.axes["p"],
        th["theory/infinite_data_accuracy"][0],
        color="k",
        ls="--",
        lw=1.2,
        label="n/d -> inf",
    )
    ax.axvline(pstar, color="grey", ls=":", lw=1)
    ax.text(pstar + 0.01, 0.97, f"p* = {pstar:.3g}", color="grey", va="top")
    ax.set_xlabel("generator error rate p")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"Smooth at finite n/d, sharp as n/d -> inf (d = {d:g}, phi = {fx['phi']:g}, psi = {fx['psi']:g})\n"
        "lines: theory; points: simulation, mean +- 2 SE",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "gmm_transition"), {"max |sim - theory| / SE": float(np.max(gaps))}


def datasize(results_dir: str, out_dir: str):
    _style()
    clean = _load(results_dir, "gmm_datasize_clean")
    clean_th = _load(results_dir, "gmm_datasize_clean_theory")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True, constrained_layout=True)
    best, gaps = {}, {}
    for ax, gen in zip(axes, ("flip", "linear")):
        r = _load(results_dir, f"gmm_datasize_{gen}")
        th = _load(results_dir, f"gmm_datasize_{gen}_theory")
        names, n = r.meta["cases"], r.axes["n"]
        colors = sns.color_palette("deep", len(names))
        for i, name in enumerate(names):
            m, se = r["sim_mean/acc"][i, :, 0], r["sim_se/acc"][i, :, 0]
            ax.errorbar(n, m, yerr=2 * se, fmt="o", ms=3.5, capsize=2, color=colors[i])
            ax.plot(
                th.axes["n"], th["theory/ridge_accuracy"][i], color=colors[i], lw=1.5, label=name
            )
            ax.axhline(r["theory/infinite_data_accuracy"][i, -1], color=colors[i], ls=":", lw=1.2)
            curve = th["theory/ridge_accuracy"][i]
            best[f"{gen}/{name}"] = float(th.axes["n"][int(np.argmax(curve))])
            gaps[f"{gen}/{name}"] = round(
                float(np.max(np.abs(m - r["theory/ridge_accuracy"][i]) / np.maximum(se, 1e-12))), 2
            )
        ax.errorbar(
            n,
            clean["sim_mean/acc"][:, 0],
            yerr=2 * clean["sim_se/acc"][:, 0],
            color="k",
            fmt="s",
            ms=3,
            capsize=2,
        )
        ax.plot(
            clean_th.axes["n"],
            clean_th["theory/ridge_accuracy"],
            color="k",
            lw=1.2,
            label="clean labels",
        )
        ax.axhline(float(clean["theory/bayes_accuracy"][0]), color="k", ls=":", lw=0.8)
        fx = r.meta["sweep"]["fixed"]
        if gen == "linear":
            g = float(r["theory/generator_accuracy"][0, 0])
            ax.axhline(g, color="grey", ls="--", label=f"generator ({g:.3f})")
            ax.set_title(f"(b) linear generator at {fx['theta_gen']:.3g} rad", fontsize=10)
        else:
            ax.set_title(
                f"(a) i.i.d. label flips, p = {fx['p']:g} (label accuracy {1 - fx['p']:g})",
                fontsize=10,
            )
        ax.set_xscale("log")
        ax.set_xlabel("synthesized samples n (pruned ones included)")
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(
        f"Accuracy vs synthesized data (d = {fx['d']:g}, snr = {fx['snr']:g}): lines exact "
        "finite-n/d theory, points simulation (mean +- 2 SE), dotted n -> inf",
        fontsize=10,
    )
    return _save(fig, out_dir, "gmm_datasize"), {
        "best n per verifier (theory)": best,
        "max |sim - theory| / SE": gaps,
    }


def rounds(results_dir: str, out_dir: str):
    _style()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, constrained_layout=True)
    summary, gaps = {}, {}
    for ax, mode in zip(axes, ("replace", "accumulate")):
        r = _load(results_dir, f"gmm_rounds_{mode}")
        names = r.meta["cases"]
        colors = sns.color_palette("deep", len(names))
        for i, name in enumerate(names):
            m, se = r["sim_mean/acc"][i], r["sim_se/acc"][i]
            rr = np.arange(1, len(m) + 1)
            ax.errorbar(rr, m, yerr=2 * se, fmt="o", ms=3.5, capsize=2, color=colors[i], label=name)
            finite = r["theory/ridge_accuracy"][i]
            if np.all(np.isfinite(finite)):  # replace: exact at this n/d
                ax.plot(rr, finite, color=colors[i], lw=1.4)
                gaps[f"{mode}/{name}"] = round(
                    float(np.max(np.abs(m - finite) / np.maximum(se, 1e-12))), 2
                )
                lim = r.data.get("theory/long_run_accuracy")
                if lim is not None and np.isfinite(lim[i]):
                    ax.plot([len(m) + 0.6], [lim[i]], marker="<", color=colors[i], ms=6)
            ax.plot(rr, r["theory/infinite_data_accuracy"][i], color=colors[i], lw=1.0, ls=":")
            summary[f"{mode}/{name}"] = [round(float(v), 4) for v in (m[0], m[-1])]
        # the theory's generator accuracy, the same in both panels (the simulated one differs
        # between the two runs' seeds)
        gen0 = r.data.get("theory/generator_accuracy", r["sim_mean/gen_acc"][..., 0])
        gen0 = float(np.ravel(gen0)[0])
        ax.axhline(gen0, color="grey", ls="--", label=f"round-0 generator ({gen0:.3f}, theory)")
        fx = r.meta["sweep"]["fixed"]
        detail = (
            "lines: exact finite-n/d theory; <: long-run limit"
            if mode == "replace"
            else "finite-n/d theory not derived (rows are reused)"
        )
        ax.set_title(
            f"{mode}: train on {'this round' if mode == 'replace' else 'all rounds so far'}\n"
            f"{detail}; dotted: n -> inf",
            fontsize=9,
        )
        ax.set_xlabel("round")
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"Iterated retraining (d = {fx['d']:g}, n = {fx['n']:g} per round, ridge generator on "
        f"{fx['n_real']:g} real samples): each round's model generates the next round's data",
        fontsize=10,
    )
    return _save(fig, out_dir, "gmm_rounds"), {
        "first/last round acc": summary,
        "max |sim - theory| / SE (replace)": gaps,
    }


def linear_phase(results_dir: str, out_dir: str):
    _style()
    r = _load(results_dir, "gmm_linear_phase")
    s = _load(results_dir, "gmm_linear_phase_sim")
    tv, tau = r.axes["theta_ver"], r.axes["tau"]
    acc = r["theory/infinite_data_accuracy"]
    gen = float(r["theory/generator_accuracy"][0, 0])
    bayes = float(r["theory/bayes_accuracy"][0, 0])
    pstar, p = r["theory/breakdown_point"], r["theory/p"]
    # what the phi-psi theory would predict from the measured keep rates alone
    phipsi = np.where(p < pstar, bayes, np.where(p > pstar, 1 - bayes, 0.5))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    ax = axes[0]
    im = ax.pcolormesh(tv, tau, acc.T, cmap="viridis", shading="auto", rasterized=True)
    fig.colorbar(im, ax=ax, label="exact infinite-data accuracy")
    if acc.min() < gen < acc.max():
        ax.contour(tv, tau, acc.T, levels=[gen], colors="w", linewidths=2)
    ax.plot([], [], color="w", lw=2, label=f"= generator ({gen:.3f})")
    tt, uu = np.meshgrid(s.axes["theta_ver"], s.axes["tau"], indexing="ij")
    ax.scatter(
        tt,
        uu,
        c=s["sim_mean/acc"][..., 0],
        cmap="viridis",
        vmin=acc.min(),
        vmax=acc.max(),
        edgecolors="r",
        linewidths=1.2,
        s=60,
        label=f"simulation (n = {s.meta['sweep']['fixed']['n']:g})",
    )
    ax.set_title("exact limit (colour) and simulation (dots, same scale)", fontsize=10)
    ax = axes[1]
    gap = acc - phipsi
    lim = float(np.nanmax(np.abs(gap)))
    im2 = ax.pcolormesh(
        tv, tau, gap.T, cmap="RdBu", vmin=-lim, vmax=lim, shading="auto", rasterized=True
    )
    fig.colorbar(im2, ax=ax, label="exact minus phi-psi prediction")
    if np.nanmin(pstar - p) < 0 < np.nanmax(pstar - p):
        ax.contour(
            tv, tau, (pstar - p).T, levels=[0.0], colors="k", linewidths=1.5, linestyles="--"
        )
    ax.plot([], [], color="k", ls="--", label="p = p* (measured keep rates)")
    ax.set_title(
        f"phi-psi theory predicts Bayes ({bayes:.3f}) wherever p < p*; selection on x breaks it",
        fontsize=10,
    )
    for ax in axes:
        ax.axvline(r.meta["sweep"]["fixed"]["theta_gen"], color="grey", ls=":", lw=1)
        ax.set_xlabel("verifier angle theta_ver (rad); dotted: generator angle")
        ax.set_ylabel("margin threshold tau")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Linear verifier (keep iff y~ w_ver.x >= tau) on a linear generator at pi/3")
    gaps = np.abs(s["sim_mean/acc"][..., 0] - s["theory/infinite_data_accuracy"])
    return _save(fig, out_dir, "gmm_linear_phase"), {
        "max |sim - inf. theory| at spot checks": float(np.max(gaps)),
        "max |exact - phi-psi| where p < p*": float(
            np.nanmax(np.where(p < pstar, np.abs(gap), np.nan))
        ),
    }


def best_size(results_dir: str, out_dir: str):
    _style()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    headline = {}
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    maps = (
        ("synthetic", "tau", "margin threshold tau", "(a) synthesized only"),
        ("real", "n_real", "real samples n_real / d", "(b) real data mixed in"),
    )
    for ax, (name, yname, ylabel, title) in zip(axes[:2], maps):
        r = _load(results_dir, f"gmm_best_size_{name}")
        fx = r.meta["sweep"]["fixed"]
        d = fx["d"]
        acc = r["theory/ridge_accuracy"]  # (theta_ver, y, n)
        limit = r["theory/infinite_data_accuracy"][..., 0]
        nd = r.axes["n"] / d
        best = np.max(acc, axis=-1)
        n_star = nd[np.argmax(acc, axis=-1)]
        # more data hurts where the best finite size beats the limit (and the grid's end)
        finite = (best > np.maximum(limit, acc[..., -1]) + 1e-4) & (n_star < nd[-1])
        shown = np.where(finite, np.log10(n_star), np.nan)
        yv = r.axes[yname] / (d if yname == "n_real" else 1.0)
        im = ax.pcolormesh(
            r.axes["theta_ver"],
            yv,
            shown.T,
            cmap=cmap,
            vmin=np.log10(nd[0]),
            vmax=np.log10(nd[-1]),
            shading="auto",
            rasterized=True,
        )
        loss = np.where(finite, best - limit, 0.0)
        if np.nanmax(loss) > 0.01:
            cs = ax.contour(
                r.axes["theta_ver"], yv, loss.T, levels=[0.01, 0.03], colors="w", linewidths=1
            )
            ax.clabel(cs, fmt=lambda v: f"loss {v:g}", fontsize=7)
        ax.axvline(math.pi / 12, color="r", lw=1.2, ls="--", label="pi/12 (Feng et al. 2024)")
        if yname == "n_real":
            ax.set_yscale("log")
        ax.set_xlabel("verifier angle theta_ver (rad)")
        ax.set_ylabel(ylabel)
        gen = (
            f"flips p = {fx['p']:g}" if "p" in fx else f"linear generator at {fx['theta_gen']:.3g}"
        )
        extra = f", tau = {fx['tau']:g}" if "tau" in fx else ""
        ax.set_title(
            f"{title}: {gen}, snr = {fx['snr']:g}, lam = {fx['lam']:g}{extra}\n"
            "colour: best n*/d; grey: accuracy rises with n to the limit",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper right")
        i12 = int(np.argmin(np.abs(r.axes["theta_ver"] - math.pi / 12)))
        headline[f"{name}: share of map with a finite best size"] = round(float(finite.mean()), 3)
        headline[f"{name}: pi/12 column, finite n*/d"] = [
            round(float(v), 3) for v in np.unique(n_star[i12][finite[i12]])
        ][:6]
    fig.colorbar(im, ax=axes[:2], label="log10 of the best data size n*/d")
    ax = axes[2]
    colors = sns.color_palette("deep", 4)
    for i in range(2):
        sim = _load(results_dir, f"gmm_best_size_case{i}")
        th = _load(results_dir, f"gmm_best_size_case{i}_theory")
        label = sim.meta["sweep"]["name"]
        d = sim.meta["sweep"]["fixed"]["d"]
        m, se = sim["sim_mean/acc"][:, 0], sim["sim_se/acc"][:, 0]
        curve = th["theory/ridge_accuracy"]
        k = int(np.argmax(curve))
        ax.plot(th.axes["n"] / d, curve, color=colors[i], lw=1.6, label=label)
        ax.errorbar(sim.axes["n"] / d, m, yerr=2 * se, fmt="o", ms=3.5, capsize=2, color=colors[i])
        ax.axhline(float(th["theory/infinite_data_accuracy"][-1]), color=colors[i], ls=":", lw=1)
        ax.plot([th.axes["n"][k] / d], [curve[k]], marker="*", ms=12, color=colors[i])
        j = int(np.argmax(m))
        headline[f"case {i}: theory n*/d, peak, limit"] = [
            round(float(th.axes["n"][k] / d), 3),
            round(float(curve[k]), 4),
            round(float(th["theory/infinite_data_accuracy"][-1]), 4),
        ]
        headline[f"case {i}: simulated peak minus largest n, in SE"] = round(
            float((m[j] - m[-1]) / math.hypot(se[j], se[-1])), 1
        )
        headline[f"case {i}: max |sim - theory| / SE"] = round(
            float(np.max(np.abs(m - sim["theory/ridge_accuracy"]) / np.maximum(se, 1e-12))), 2
        )
    ax.set_xscale("log")
    ax.set_xlabel("synthesized samples n / d")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"(c) more data hurts: exact theory (lines, * best size), simulation (mean +- 2 SE, "
        f"d = {d:g}); dotted: n -> inf",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower center")
    fig.suptitle("Where does more synthesized data hurt? The data size n* that maximises accuracy")
    return _save(fig, out_dir, "gmm_best_size"), headline


FIGURES = {
    "phase": phase,
    "transition": transition,
    "datasize": datasize,
    "rounds": rounds,
    "linear_phase": linear_phase,
    "best_size": best_size,
}


def draw(name: str, results_dir: str, out_dir: str):
    """Draw one figure by experiment name."""
    check_choice("figure", name, FIGURES)
    return FIGURES[name](results_dir, out_dir)


def figure_main(name: str, argv: list[str] | None = None):
    """Command-line body shared by the ``figures/gmm_<name>.py`` scripts."""
    import argparse
    import json

    parser = argparse.ArgumentParser(
        description=f"Draw the GMM figure {name!r} from existing results."
    )
    parser.add_argument("--results", default="results/gmm")
    parser.add_argument("--out", default="figures/out")
    args = parser.parse_args(argv)
    paths, headline = draw(name, args.results, args.out)
    print(*paths, json.dumps(headline), sep="\n")
    return paths
