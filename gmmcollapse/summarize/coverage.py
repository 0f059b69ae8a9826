"""Which articles a selection keeps, and where the model retrained on it gains or loses.

p* = phi / (phi + psi) measures how *correct* the kept summaries are. It does not see *which*
articles they are of. A selector that keeps only the summaries its generator is sure of can
keep almost only correct ones (p* near 1) and still teach the retrained model nothing about
the articles it left out. This module measures that from a finished run directory, without
training anything:

* per (selector, rate), the share of the kept articles in each bin of an article feature,
  against the synthesis pool's share;
* per bin of the held-out articles, the retrained model's ROUGE-1 minus the generator's in
  points, with its paired standard error. The bins' deltas, weighted by their article counts,
  average to the run's ``vs_generator`` delta (x 100).

A run computes it at its end (:func:`measure`, stored in ``results.json`` as ``coverage``,
and as ``fixed_kept.coverage``); :func:`coverage` recomputes it from a run directory, for any
feature.

Features (:data:`FEATURES`):

* ``count``: the key event's count, 1-9 / 10-99 / 100 and more (built-in corpus only: the
  count is what the generator most often gets wrong, and a larger count is more tokens to
  copy or convert);
* ``summary_words``: the length of the reference summary in words, in three bins at the
  synthesis pool's terciles (any corpus).

The selections are recomputed from the run's score tables with the run's keys
(:func:`gmmcollapse.pipeline.selection_key`), in float64 as the run made them, and their
measured phi, psi and number kept are checked against what the run recorded, so a run
directory that does not match its results is refused (a different selection with the same
three numbers would pass; the run keeps no masks).

``python figures/summarize_coverage.py RUN_DIR`` prints the table and draws the figure
(:func:`gmmcollapse.plots.summarize.coverage`).
"""

from __future__ import annotations

import json
import os
import warnings

import jax
import numpy as np

from gmmcollapse import feedback
from gmmcollapse._runs import safe_tag
from gmmcollapse._validate import check_choice
from gmmcollapse.pipeline import select, selection_key, subset
from gmmcollapse.theory.basic import in_float64

__all__ = ["FEATURES", "coverage", "default_feature", "measure", "report", "run_pairs"]

#: article features :func:`coverage` bins by
FEATURES = ("count", "summary_words")


def _load(run_dir: str):
    from gmmcollapse.summarize import experiment as E  # JAX models: imported when used

    path = os.path.join(run_dir, "results.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"run_dir: no results.json in {run_dir} (run it first)")
    with open(path) as f:
        res = json.load(f)
    return E, E.config_from_json(res["config"]), res


def _features(feature: str, pairs: list[dict], syn_words: np.ndarray) -> tuple[np.ndarray, list]:
    """Per pair, its bin index under ``feature``, and the bins' labels."""
    if feature == "count":
        counts = np.array([p["facts"]["count"] for p in pairs])
        return np.digitize(counts, [10, 100]), ["1-9", "10-99", "100+"]
    words = np.array([len(p["summary"].split()) for p in pairs])
    cuts = np.quantile(syn_words, [1 / 3, 2 / 3])  # the synthesis pool's terciles
    lo, hi = int(np.floor(cuts[0])), int(np.floor(cuts[1]))
    if hi <= lo:  # ties: two bins, or one
        hi = lo + 1
    mid = f"{hi}" if hi == lo + 1 else f"{lo + 1}-{hi}"
    labels = [f"<= {lo} words", f"{mid} words", f"> {hi} words"]
    return np.digitize(words, [lo + 0.5, hi + 0.5]), labels


def _means(x: np.ndarray, bins: np.ndarray, nb: int, normalize: bool = False) -> list[float]:
    """Per bin, the mean of ``x`` (``normalize``: the bin's share of all); NaN where empty."""
    if normalize:
        return [float(np.mean(bins == i)) if bins.size else float("nan") for i in range(nb)]
    return [float(x[bins == i].mean()) if np.any(bins == i) else float("nan") for i in range(nb)]


def default_feature(cfg) -> str:
    """``count`` for the built-in corpus, ``summary_words`` for a data file."""
    return "count" if cfg.data is None else "summary_words"


def run_pairs(cfg) -> tuple[list[dict], list[dict]]:
    """``(synthesis, held-out)`` pairs of the run ``cfg`` describes, in the run's order; for
    the built-in corpus with the ``facts`` the grammar drew."""
    from gmmcollapse.summarize import experiment as E

    pool, test = E.load_data(cfg, with_facts=True)
    return E._split_pool(cfg, pool)["syn"], test


def _check_feature(feature: str, cfg) -> None:
    check_choice("feature", feature, FEATURES)
    if feature == "count" and cfg.data is not None:
        raise ValueError(
            f"feature 'count' needs the built-in corpus; this run read {cfg.data!r}: use "
            "feature='summary_words'"
        )


@in_float64  # as the run selected: random selections draw float64 numbers there
def measure(cfg, run_dir: str, table: dict, syn: list[dict], test: list[dict],
            feature: str) -> dict:  # fmt: skip
    """:func:`coverage` of the selections in ``table`` (``results.json`` or its
    ``fixed_kept``: ``selectors`` and, for ``fixed_kept``, ``articles``) of the run ``cfg``
    in ``run_dir``, given its synthesis and held-out pairs (``facts`` needed for ``count``)."""
    from gmmcollapse.summarize import experiment as E

    _check_feature(feature, cfg)
    syn_words = np.array([len(p["summary"].split()) for p in syn])
    b_syn, labels = _features(feature, syn, syn_words)
    b_test, _ = _features(feature, test, syn_words)
    nb = len(labels)
    share = lambda b: _means(np.ones(b.size), b, nb, normalize=True)
    gen = np.load(os.path.join(run_dir, "eval", "generator.npy")).astype(np.float64)
    tables = {p: dict(np.load(os.path.join(run_dir, f"scores_{p}.npz"))) for p in ("greedy", "beam")
              if os.path.exists(os.path.join(run_dir, f"scores_{p}.npz"))}  # fmt: skip
    key = jax.random.key(cfg.seed)
    articles = table.get("articles")
    out: dict[str, dict] = {}
    for s in E.strategies(cfg):
        sel_name, rate = s.name.split("~")
        row = (table["selectors"].get(sel_name) or {}).get(rate)
        if row is None:
            continue
        m = articles[rate] if articles else len(syn)
        sub = subset(tables[s.pool], m)
        sel = select(s, sub, selection_key(key, s.name))
        kept = np.asarray(sel.mask).any(axis=1)
        with warnings.catch_warnings():  # undefined rates were recorded as such (null)
            warnings.simplefilter("ignore", RuntimeWarning)
            rates = feedback.measure(sel, sub["correct"])
        got = {k: float(np.asarray(getattr(rates, k))) for k in ("phi", "psi", "n_selected")}
        want = {k: float("nan") if row[k] is None else float(row[k]) for k in got}
        if not all(np.isclose(got[k], want[k], rtol=1e-12, equal_nan=True) for k in got):
            raise ValueError(
                f"{s.name}: the recomputed selection measures {got}, the run recorded {want}: "
                f"{run_dir} does not match its results"
            )
        delta, se = [float("nan")] * nb, [float("nan")] * nb
        path = os.path.join(run_dir, "eval", f"{safe_tag(f'{s.name}@{m}')}.npy")
        if row.get("vs_generator") is not None:  # no model when nothing was selected
            d = 100 * (np.load(path).astype(np.float64) - gen)
            for i in range(nb):
                x = d[b_test == i]
                delta[i] = float(x.mean()) if x.size else float("nan")
                se[i] = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
        out.setdefault(sel_name, {})[rate] = {
            "n_selected": int(kept.sum()),
            "kept_share": share(b_syn[:m][kept]),
            "delta": delta,
            "se": se,
        }
    correct = (gen >= cfg.correct_rouge1).astype(np.float64)
    return {
        "feature": feature,
        "bins": labels,
        "pool_share": share(b_syn),
        "test_n": [int(np.sum(b_test == i)) for i in range(nb)],
        "generator_correct": _means(correct, b_test, nb),
        "selectors": out,
    }


def coverage(run_dir: str, feature: str | None = None, *, fixed_kept: bool = False) -> dict:
    """The coverage of every round-0 selection of the summarize run in ``run_dir``,
    recomputed from its files (``results.json`` also holds it, as ``coverage``, for the
    feature of :func:`default_feature`).

    Args:
        run_dir: a finished ``gmmcollapse summarize`` run directory.
        feature: one of :data:`FEATURES` (``count`` needs the built-in corpus); default
            :func:`default_feature`.
        fixed_kept: the selections of ``results.json``'s ``fixed_kept`` (a run with ``kept``)
            instead of the usual ones.

    Returns:
        ``{"feature", "bins": [label], "pool_share": [share], "test_n": [articles],
        "generator_correct": [fraction], "selectors": {NAME: {RATE: {"n_selected",
        "kept_share": [share], "delta": [points], "se": [points]}}}}``: per bin, the share of
        the synthesis pool and of each selection's kept articles, the held-out articles,
        the generator's share of correct summaries, and each retrained model's ROUGE-1
        minus the generator's in points with its paired standard error (NaN for a selection
        that kept nothing, or an empty bin).

    Raises:
        ValueError: a ``feature`` not in :data:`FEATURES`, ``count`` with a data file,
            ``fixed_kept`` for a run without it, or a recomputed selection that does not
            keep what the run recorded.
    """
    if feature is not None:
        check_choice("feature", feature, FEATURES)  # before anything is read
    _, cfg, res = _load(run_dir)
    table = res.get("fixed_kept") if fixed_kept else res
    if not table:
        raise ValueError(f"fixed_kept: the run in {run_dir} has no fixed_kept results")
    feature = feature or default_feature(cfg)
    _check_feature(feature, cfg)  # before the data is read
    return measure(cfg, run_dir, table, *run_pairs(cfg), feature)


def report(cov: dict) -> str:
    """:func:`coverage`'s result as a text table."""
    labels = cov["bins"]
    w = max(10, *(len(x) for x in labels))
    lines = [
        f"coverage by {cov['feature']}: bins " + ", ".join(labels),
        f"  {'pool share':<28}" + "".join(f"{x:>{w}.2f}" for x in cov["pool_share"]),
        f"  {'held-out articles':<28}" + "".join(f"{x:>{w}d}" for x in cov["test_n"]),
        f"  {'generator correct':<28}" + "".join(f"{x:>{w}.2f}" for x in cov["generator_correct"]),
        f"  {'selector @ rate':<28}kept share per bin | ROUGE-1 vs generator per bin (points)",
    ]
    for name, per_rate in cov["selectors"].items():
        for rate, v in per_rate.items():
            lines.append(
                f"  {name + ' @ ' + rate:<28}"
                + "".join(f"{x:>{w}.2f}" for x in v["kept_share"])
                + " |"
                + "".join(f"{d:+8.2f} ± {e:.2f}" for d, e in zip(v["delta"], v["se"], strict=True))
            )
    return "\n".join(lines)
