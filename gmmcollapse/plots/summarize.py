"""The summarization-experiment figures, drawn from a run's ``results.json`` only.

* ``rates``: final ROUGE-1 of the model retrained on each selector's choice against the
  selection rate, one line per selector, with the generator and the model trained on 100% of
  the human summaries as horizontal lines. Error bars are 2 paired standard errors of the
  difference to the generator (same held-out articles).
* ``pstar``: final ROUGE-1 against the selection's measured p*, every (selector, rate) a point,
  with the Spearman rank correlation in the title; a run with ``kept`` set gets a second
  panel, the selections that all keep that many pairs.

Both say in their title how the models started (:func:`init_label`: fine-tuned from the run's
pretrained base, or from scratch).

Each function takes the run directory and an output directory, writes
``summarize_<name>.png`` and ``.pdf`` and returns (paths, headline numbers).

:func:`coverage` draws which articles each selection keeps and where its model gains or
loses (:mod:`gmmcollapse.summarize.coverage`; ``python figures/summarize_coverage.py RUN``).

:func:`inits` compares runs (e.g. the pretrained and the from-scratch run of one scale): per
run, each selector's ROUGE-1 difference to that run's generator at every rate, with 2 paired
standard errors, and the 100%-human model's; written to ``summarize_inits.png`` / ``.pdf``
(``python figures/summarize_inits.py RUN_DIR ...``).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from gmmcollapse._validate import check_choice
from gmmcollapse.plots.eigen import load_run as _load_run
from gmmcollapse.plots.gmm import _save, _style

__all__ = ["FIGURES", "coverage", "draw", "init_label", "inits", "load_run"]

_MARKERS = {"random": "o", "oracle": "s", "self": "D", "verifier": "^"}


def load_run(run_dir: str) -> dict:
    """The ``results.json`` of a summarize run directory."""
    return _load_run(run_dir, "summarize")


def init_label(r: dict) -> str:
    """How a run's models started, from its ``results.json``: ``"fine-tuned from a base
    pretrained for 8000 steps"`` or ``"from scratch"`` (runs from before ``init`` existed
    were from scratch)."""
    init = r.get("init") or r.get("config", {}).get("init", "scratch")
    if init != "pretrained":
        return "from scratch"
    steps = (r.get("pretrain") or {}).get("steps", r.get("config", {}).get("pretrain_steps"))
    return f"fine-tuned from a base pretrained for {steps} steps"


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
        f"generator on {s['gen']} pairs)\nevery model: {c['steps']} steps, {init_label(r)}",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2, loc="best")
    return _save(fig, out_dir, "summarize_rates"), head


def pstar(run_dir: str, out_dir: str):
    _style()
    r = load_run(run_dir)
    fixed = r.get("fixed_kept")
    tables = [(r, "each rate x all synthesis articles")]
    if fixed:
        tables.append((fixed, f"every selection keeps {fixed['kept']} pairs"))
    fig, axes = plt.subplots(1, len(tables), figsize=(7.5 * len(tables), 4.8), sharey=True,
                             constrained_layout=True, squeeze=False)  # fmt: skip
    head = {}
    for k, (ax, (table, what)) in enumerate(zip(axes[0], tables, strict=True)):
        rho, within = _pstar_panel(ax, r, table)
        ax.set_title(f"{what}\nSpearman rho over all {rho}; within each rate {within}",
                     fontsize=9)  # fmt: skip
        key = "" if k == 0 else "fixed_kept_"
        head[f"{key}spearman_pstar_rouge1"] = table.get("spearman_pstar_rouge1")
        head[f"{key}within_rate"] = {
            q: v["rho"] for q, v in (table.get("spearman_within_rate") or {}).items()
        }
    axes[0][0].set_ylabel("ROUGE-1 on held-out articles")
    fig.suptitle(
        f"Final ROUGE-1 vs p* (correct: ROUGE-1 >= {r['config']['correct_rouge1']:g}; "
        f"models {init_label(r)})",
        fontsize=10,
    )
    return _save(fig, out_dir, "summarize_pstar"), head


def _pstar_panel(ax, r: dict, table: dict) -> tuple[str, str]:
    """One (selector, rate) point per selection of ``table`` (``results.json`` or its
    ``fixed_kept``) at (p*, ROUGE-1), with ``r``'s reference lines; returns the Spearman texts
    (over all, within each rate)."""
    _refs(ax, r)
    for i, (name, per_rate) in enumerate(table["selectors"].items()):
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
    rho = table.get("spearman") or {}
    rho_txt = "n/a" if rho.get("rho") is None else f"{rho['rho']:.2f} (p = {rho['pvalue']:.2g})"
    within = {k: v["rho"] for k, v in (table.get("spearman_within_rate") or {}).items()}
    within_txt = ", ".join(
        f"{100 * float(k):g}%: {'n/a' if v is None else f'{v:.2f}'}" for k, v in within.items()
    )
    ax.set_xlabel("measured breakdown point p* = phi / (phi + psi)")
    ax.legend(fontsize=7, ncol=2, loc="best")
    return f"{rho.get('n', 0)} selections {rho_txt}", within_txt


FIGURES = {"rates": rates, "pstar": pstar}


def inits(run_dirs, out_dir: str, name: str = "summarize_inits"):
    """One panel per run (e.g. ``init=pretrained`` and ``init=scratch`` of one scale): each
    selector's ROUGE-1 minus that run's generator, in points, against the rate, with 2
    paired standard errors, and the 100%-human model's difference as a dotted line. Titles
    name each run's init and its generator's ROUGE-1. Writes ``<name>.png`` / ``.pdf``;
    returns (paths, ``{run_dir: {"init", "generator", "human_full", selector: {rate:
    delta}}}``)."""
    _style()
    runs = [(d, load_run(d)) for d in run_dirs]
    if not runs:
        raise ValueError("run_dirs must name at least one run directory")
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 4.9), sharey=True,
                             constrained_layout=True, squeeze=False)  # fmt: skip
    head = {}
    for ax, (d, r) in zip(axes[0], runs, strict=True):
        gen, hum = r["generator"]["rouge1"], r["human_full"]["rouge1"]
        ax.axhline(0.0, color="k", ls="--", lw=1.2, label="generator")
        ax.axhline(100 * (hum - gen), color="0.45", ls=":", lw=1.2,
                   label="100% human summaries")  # fmt: skip
        h = {"init": r.get("init") or r["config"].get("init", "scratch"), "generator": gen,
             "human_full": hum}  # fmt: skip
        n_sel = len(r["selectors"])
        for i, (sel, per_rate) in enumerate(r["selectors"].items()):
            pts = sorted((float(k), v.get("vs_generator") or {}) for k, v in per_rate.items())
            dodge = 2 ** (0.03 * (i - (n_sel - 1) / 2))
            ax.errorbar([100 * x * dodge for x, _ in pts],
                        [100 * _num(v.get("delta")) for _, v in pts],
                        yerr=[200 * (v.get("se") or 0.0) for _, v in pts], capsize=2, ms=4,
                        lw=1.1, label=sel, **_style_of(sel, i))  # fmt: skip
            h[sel] = {f"{x:g}": v.get("delta") for x, v in pts}
        all_rates = sorted({float(k) for v in r["selectors"].values() for k in v})
        ax.set_xscale("log", base=2)
        ax.set_xticks([100 * x for x in all_rates], [f"{100 * x:g}%" for x in all_rates])
        ax.minorticks_off()
        ax.set_xlabel("selection rate")
        ax.set_title(f"{r['config']['scale']}, seed {r['config']['seed']}: {init_label(r)}\n"
                     f"generator ROUGE-1 {gen:.3f}, 100% human {hum:.3f}",
                     fontsize=9)  # fmt: skip
        head[str(d)] = h
    axes[0][0].set_ylabel("ROUGE-1 minus the generator's (points, 2 paired SE)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=5, loc="outside lower center")
    return _save(fig, out_dir, name), head


def coverage(run_dir: str, out_dir: str, feature: str | None = None, rate: str | None = None,
             *, fixed_kept: bool = False, name: str = "summarize_coverage"):  # fmt: skip
    """Two panels at one selection ``rate`` (default: the run's smallest), from the run's
    coverage (:mod:`gmmcollapse.summarize.coverage`): the share of each selector's kept
    articles in each bin of ``feature`` beside the synthesis pool's, and each retrained
    model's ROUGE-1 minus the generator's on the held-out articles of each bin (2 paired
    SE). Drawn from ``results.json``'s ``coverage`` (or ``fixed_kept.coverage``) when it has
    ``feature`` (default: the one it has); otherwise recomputed from the run directory.
    Writes ``<name>.png`` / ``.pdf``; returns (paths, the coverage dict)."""
    from gmmcollapse.summarize.coverage import coverage as measure

    r = load_run(run_dir)
    stored = ((r.get("fixed_kept") or {}) if fixed_kept else r).get("coverage")
    if stored is not None and feature in (None, stored["feature"]):
        cov = stored
    else:  # another feature, or a run from before coverage was stored
        cov = measure(run_dir, feature, fixed_kept=fixed_kept)
    feature = cov["feature"]
    _style()
    rates_ = sorted({k for v in cov["selectors"].values() for k in v}, key=float)
    if not rates_:
        raise ValueError(f"run_dir: {run_dir} has no selections")
    rate = rates_[0] if rate is None else str(rate)
    check_choice("rate", rate, rates_)
    sels = [n for n, v in cov["selectors"].items() if rate in v]
    bins, nb = cov["bins"], len(cov["bins"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    width = 0.8 / (len(sels) + 1)
    xs = range(nb)
    a.bar([x - 0.4 + width / 2 for x in xs], [_num(x) for x in cov["pool_share"]], width,
          color="0.6",
          label="synthesis pool")  # fmt: skip
    for i, n in enumerate(sels):
        st = _style_of(n, i)
        v = cov["selectors"][n][rate]
        a.bar([x - 0.4 + width * (i + 1.5) for x in xs], [_num(x) for x in v["kept_share"]],
              width,
              color=st["color"], alpha=0.55 if n.endswith("_best_of_k") else 1.0,
              hatch="//" if n.endswith("_best_of_k") else None, label=n)  # fmt: skip
        b.errorbar([x + 0.06 * (i - len(sels) / 2) for x in xs], [_num(x) for x in v["delta"]],
                   yerr=[2 * _num(e) for e in v["se"]], capsize=2, ms=5, lw=1.1, label=n,
                   **st)  # fmt: skip
    for ax in (a, b):
        ax.set_xticks(list(xs), bins)
        ax.set_xlabel(f"article bin by {feature.replace('_', ' ')}")
    a.set_ylabel("share of the kept articles")
    b.axhline(0.0, color="k", ls="--", lw=1.2)
    b.set_ylabel("ROUGE-1 minus the generator's (points, 2 paired SE)")
    a.legend(fontsize=7, ncol=2)
    what = " (every selection keeping the same number)" if fixed_kept else ""
    a.set_title(f"Which articles each selection keeps, rate {100 * float(rate):g}%{what}",
                fontsize=9)  # fmt: skip
    b.set_title(
        "Held-out ROUGE-1 change per bin ("
        + ", ".join(f"{x}: {n} articles" for x, n in zip(bins, cov["test_n"], strict=True))
        + ")",
        fontsize=9,
    )
    return _save(fig, out_dir, name), cov


def _coverage_figure(run_dir: str, out_dir: str):
    """``coverage`` at the smallest rate, by the feature the run stored (the key count for the
    built-in corpus, the reference length for a data file); headline: the kept shares at
    that rate."""
    paths, cov = coverage(run_dir, out_dir)
    rate = min((k for v in cov["selectors"].values() for k in v), key=float)
    kept = {n: v[rate]["kept_share"] for n, v in cov["selectors"].items() if rate in v}
    return paths, {"feature": cov["feature"], "rate": rate, "bins": cov["bins"],
                   "pool_share": cov["pool_share"], "kept_share": kept}  # fmt: skip


FIGURES["coverage"] = _coverage_figure


def draw(name: str, run_dir: str, out_dir: str):
    """Draw one figure by name (``rates``, ``pstar``, ``coverage``)."""
    check_choice("figure", name, FIGURES)
    return FIGURES[name](run_dir, out_dir)
