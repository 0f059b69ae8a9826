"""The summarization-experiment figures, drawn from a run's ``results.json`` only.

* ``rates``: final ROUGE-1 of the model retrained on each selector's choice against the
  selection rate, one line per selector, with the generator and the model trained on 100% of
  the human summaries as horizontal lines. Error bars are 2 paired standard errors of the
  difference to the generator (same held-out articles).
* ``pstar``: final ROUGE-1 against the selection's measured p*, every (selector, rate) a point,
  with the Spearman rank correlation in the title.

Each function takes the run directory and an output directory, writes
``summarize_<name>.png`` and ``.pdf`` and returns (paths, headline numbers).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from gmmcollapse._validate import check_choice
from gmmcollapse.plots.eigen import load_run as _load_run
from gmmcollapse.plots.gmm import _save, _style

__all__ = ["FIGURES", "draw", "load_run"]

_MARKERS = {"random": "o", "oracle": "s", "self": "D", "verifier": "^"}


def load_run(run_dir: str) -> dict:
    """The ``results.json`` of a summarize run directory."""
    return _load_run(run_dir, "summarize")


def _style_of(name: str, i: int) -> dict:
    base = name.removesuffix("_best_of_k")
    return {
        "marker": _MARKERS.get(base, "o"),
        "ls": "--" if name.endswith("_best_of_k") else "-",
        "color": f"C{list(_MARKERS).index(base) if base in _MARKERS else i}",
    }


def _refs(ax, r: dict) -> None:
    gen, hum = r["generator"]["rouge1"], r["human_full"]["rouge1"]
    ax.axhline(gen, color="k", ls="--", lw=1.2, label=f"generator ({gen:.3f})")
    ax.axhline(hum, color="0.45", ls=":", lw=1.2, label=f"100% human summaries ({hum:.3f})")


def _num(v) -> float:
    return math.nan if v is None else float(v)


def rates(run_dir: str, out_dir: str):
    _style()
    r = load_run(run_dir)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    _refs(ax, r)
    head = {"generator": r["generator"]["rouge1"], "human_full": r["human_full"]["rouge1"]}
    n_sel = len(r["selectors"])
    for i, (name, per_rate) in enumerate(r["selectors"].items()):
        pts = sorted((float(k), v) for k, v in per_rate.items())
        dodge = 2 ** (0.03 * (i - (n_sel - 1) / 2))  # side by side, so error bars do not overlap
        xs = [100 * x * dodge for x, _ in pts]
        ys = [_num(v.get("rouge1")) for _, v in pts]
        err = [2 * ((v.get("vs_generator") or {}).get("se") or 0.0) for _, v in pts]
        ax.errorbar(xs, ys, yerr=err, capsize=2, ms=5, lw=1.2, label=name, **_style_of(name, i))
        head[name] = {k: v.get("rouge1") for k, v in per_rate.items()}
    ax.set_xscale("log", base=2)
    all_rates = sorted({float(k) for d in r["selectors"].values() for k in d})
    ax.set_xticks([100 * x for x in all_rates], [f"{100 * x:g}%" for x in all_rates])
    ax.minorticks_off()
    ax.set_xlabel("selection rate (share of the synthesized summaries kept)")
    ax.set_ylabel("ROUGE-1 on held-out articles")
    c, s = r["config"], r["sizes"]
    ax.set_title(
        f"Retrained on selected synthetic summaries ({s['syn']} articles, "
        f"generator on {s['gen']} pairs, {c['steps']} steps each)",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2, loc="best")
    return _save(fig, out_dir, "summarize_rates"), head


def pstar(run_dir: str, out_dir: str):
    _style()
    r = load_run(run_dir)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    _refs(ax, r)
    for i, (name, per_rate) in enumerate(r["selectors"].items()):
        st = _style_of(name, i)
        pts = sorted(
            (_num(v.get("p_star")), _num(v.get("rouge1")), float(k)) for k, v in per_rate.items()
        )
        ax.plot(
            [p for p, _, _ in pts],
            [y for _, y, _ in pts],
            ls="none",
            marker=st["marker"],
            color=st["color"],
            mfc="none" if name.endswith("_best_of_k") else st["color"],
            ms=7,
            label=name,
        )
        for p, y, rate in pts:
            ax.annotate(f"{100 * rate:g}%", (p, y), xytext=(4, 2), textcoords="offset points",
                        fontsize=6, color=st["color"])  # fmt: skip
    rho = r.get("spearman") or {}
    rho_txt = "n/a" if rho.get("rho") is None else f"{rho['rho']:.2f} (p = {rho['pvalue']:.2g})"
    within = {k: v["rho"] for k, v in (r.get("spearman_within_rate") or {}).items()}
    within_txt = ", ".join(
        f"{100 * float(k):g}%: {'n/a' if v is None else f'{v:.2f}'}" for k, v in within.items()
    )
    ax.set_xlabel("measured breakdown point p* = phi / (phi + psi)")
    ax.set_ylabel("ROUGE-1 on held-out articles")
    ax.set_title(
        f"Final ROUGE-1 vs p* (correct: ROUGE-1 >= {r['config']['correct_rouge1']:g})\n"
        f"Spearman rho over all {rho.get('n', 0)} selections {rho_txt}; "
        f"within each rate {within_txt}",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=2, loc="best")
    head = {"spearman_pstar_rouge1": r.get("spearman_pstar_rouge1"), "within_rate": within}
    return _save(fig, out_dir, "summarize_pstar"), head


FIGURES = {"rates": rates, "pstar": pstar}


def draw(name: str, run_dir: str, out_dir: str):
    """Draw one figure by name (``rates``, ``pstar``)."""
    check_choice("figure", name, FIGURES)
    return FIGURES[name](run_dir, out_dir)
