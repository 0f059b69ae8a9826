"""The one registry of experiments, read by the CLI and by ``reproduce``.

``gmm``: the Gaussian-mixture figure sweeps (:mod:`gmmcollapse.experiments.gmm`). The model
experiments share one face: a module with ``SCALES`` (smoke / quick / paper presets of a frozen
config dataclass), ``make_config(scale, **overrides)``, ``describe(cfg) -> str`` (the dry-run
plan), ``run(cfg, out, progress=..., log=...) -> results`` and ``report(results) -> str``; and
figures: ``FIGURES``, ``draw(name, run_dir, out)`` and ``load_run(run_dir)``, in the same
module or a plots module. A new domain is one such module and one entry here (see
:mod:`gmmcollapse.sorting` and docs/guide.md).

What the command line does with them lives here too: :func:`parse_overrides` reads ``--set
KEY=VALUE`` pairs against a config class, :func:`data_overrides` adds ``--data`` /
``--format``, :func:`run_model_experiment` plans, runs, draws and reports one experiment, and
:func:`reproduce` runs every experiment (the GMM ones included) and draws every figure.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from gmmcollapse._validate import check_choice

__all__ = [
    "MODEL_EXPERIMENTS",
    "ModelExperiment",
    "check_run_dir",
    "data_overrides",
    "figure_names",
    "load",
    "parse_overrides",
    "reproduce",
    "run_model_experiment",
]


@dataclasses.dataclass(frozen=True)
class ModelExperiment:
    """A registry entry: where the experiment lives and how the CLI presents it (nothing is
    imported until the experiment is used)."""

    module: str
    plots: str
    help: str
    description: str
    example: str
    config: str
    data_flags: bool = False  # --data / --format for a corpus file


MODEL_EXPERIMENTS: dict[str, ModelExperiment] = {
    "eigen": ModelExperiment(
        "gmmcollapse.eigen.experiment",
        "gmmcollapse.plots.eigen",
        help="experiment 1: a transformer computing eigenvalues, synthesize -> verify -> retrain",
        description="Train a generator transformer on real (matrix, eigenvalues) pairs, "
        "synthesize answers for fresh matrices (greedy and beam search), select them with "
        "each verifier, retrain a fresh model per selection and evaluate.",
        example="--set n_syn=20000 --set sizes=5000,10000",
        config="gmmcollapse.eigen.experiment.EigenConfig",
    ),
    "summarize": ModelExperiment(
        "gmmcollapse.summarize.experiment",
        "gmmcollapse.plots.summarize",
        help="experiment 2: a seq2seq summarizer, selection by ROUGE, self and a verifier",
        description="Train a generator summarizer on 12.5% of the pairs, summarize the other "
        "articles (greedy and beam search), select at several rates by random, oracle "
        "(ROUGE-1), self (log-probability) and verifier-model scores, retrain a fresh model "
        "per selection and evaluate ROUGE-1/2/L on held-out pairs.",
        example="--set steps=300 --set rates=0.25,0.5 --set rounds=2",
        config="gmmcollapse.summarize.experiment.SummarizeConfig",
        data_flags=True,
    ),
    "sort": ModelExperiment(
        "gmmcollapse.sorting",
        "gmmcollapse.sorting",
        help="a small third domain: a transformer sorting digits, with an exact verifier",
        description="Train a generator transformer to sort digit sequences, synthesize sorted "
        "versions of fresh sequences, select with an exact verifier, the model's own "
        "confidence or a multiset check, and retrain over rounds (docs/guide.md).",
        example="--set rounds=3 --set model.width=64",
        config="gmmcollapse.sorting.SortConfig",
    ),
}


def load(name: str, plots_only: bool = False) -> tuple[ModuleType | None, ModuleType]:
    """``(experiment module, figures module)`` of a model experiment; with ``plots_only`` the
    experiment module (JAX, models, data) is not imported and ``None`` stands for it."""
    check_choice("experiment", name, MODEL_EXPERIMENTS)
    e = MODEL_EXPERIMENTS[name]
    return (None if plots_only else importlib.import_module(e.module)), importlib.import_module(
        e.plots
    )


# ---------------------------------------------------------------------------- --set overrides


def _type_name(tp) -> str:
    """``tuple[int, ...]`` -> "tuple[int, ...]", ``int`` -> "int", ``str | None`` -> "str | None"."""
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _convert(text: str, kind: str):
    """``text`` as the first of bool / int / float / str named in the type ``kind``."""
    if kind.startswith("bool"):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError
        return text.lower() in ("1", "true", "yes")
    if kind.startswith("int"):
        v = float(text)
        if v != int(v):
            raise ValueError
        return int(v)
    if kind.startswith("float"):
        return float(text)
    return text


def parse_overrides(
    items: Iterable[str], config_cls: type, aliases: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``KEY=VALUE`` texts (``--set``) as config overrides, each converted to its field's type.

    Keys are the fields of the dataclass ``config_cls`` (``scale`` excepted) and, for a field
    that embeds a config dataclass, ``field.sub`` for its fields; ``-`` reads as ``_``.
    ``aliases`` maps other accepted keys (e.g. the old flat ``"width"``) to such a key (e.g.
    ``"model.width"``); the result is keyed by the resolved keys, and a field given twice (in
    either spelling) is an error. Tuples are comma-separated,
    ``none`` (or nothing) is ``None`` for an optional field; a bool is 1/0, true/false or
    yes/no. An unknown key or an unreadable value is a one-line ``ValueError``.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Config:
        ...     scale: str = "quick"
        ...     rounds: int = 1
        ...     rates: tuple[float, ...] = (0.5,)
        >>> parse_overrides(["r=3", "rates=0.25,0.5"], Config, {"r": "rounds"})
        {'rounds': 3, 'rates': (0.25, 0.5)}
    """
    hints = typing.get_type_hints(config_cls)
    fields = {}
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):  # an embedded config: its fields as "name.field"
            sub_hints = typing.get_type_hints(tp)
            fields |= {f"{f.name}.{g.name}": _type_name(sub_hints[g.name])
                       for g in dataclasses.fields(tp)}  # fmt: skip
        else:
            fields[f.name] = _type_name(tp)
    aliases = dict(aliases or {})
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        target = aliases.get(key, key)
        if not sep or target not in fields or target == "scale":
            allowed = ", ".join(sorted(set(fields) - {"scale"}))
            raise ValueError(f"--set expects KEY=VALUE with KEY one of {allowed}; got {item!r}")
        if target in spelled:
            raise ValueError(
                f"--set gives {target} twice (as {spelled[target]!r} and {key!r}); give it once"
            )
        spelled[target] = key
        kind = fields[target]
        try:
            if kind.startswith("tuple"):
                parts = [t.strip() for t in text.split(",") if t.strip()]
                out[target] = tuple(_convert(t, kind.partition("[")[2]) for t in parts)
            elif "None" in kind and text.lower() in ("", "none"):
                out[target] = None
            else:
                out[target] = _convert(text, kind)
        except (ValueError, OverflowError):
            raise ValueError(f"--set {key}: cannot read {text!r} as {kind}") from None
    return out


def data_overrides(
    overrides: Mapping[str, Any], data: str | None = None, format: str | None = None
) -> dict[str, Any]:
    """``overrides`` with the ``--data`` / ``--format`` flags of a corpus experiment: a
    ``data`` file brings ``format="auto"`` unless a format is given (a preset's format is for
    its own data), and a local path becomes absolute (a resumed run must find it). A flag and
    a ``--set`` override of the same field (``--data`` with ``--set data=...``) is a
    ``ValueError``: one of them would be silently dropped."""
    for flag, value in (("data", data), ("format", format)):
        if value is not None and flag in overrides:
            raise ValueError(f"--{flag} and --set {flag}= both give {flag}; give it once")
    out = dict(overrides)
    if data is not None:
        out["data"] = data
        out.setdefault("format", "auto")
    if format is not None:
        out["format"] = format
    path = out.get("data")
    if path and not path.startswith("hf:"):
        out["data"] = os.path.abspath(path)
    return out


# ------------------------------------------------------------------------------ run, reproduce


def check_run_dir(name: str, path: str | os.PathLike | None) -> None:
    """``ValueError`` (naming the flag ``--name``) unless ``path`` is a directory or can
    become one: an existing file there, or a file where one of its parent folders should
    be, is refused before anything runs or is created. ``None`` (a default) passes."""
    if path is None:
        return
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(
            f"--{name} {path} is an existing file; it must be a directory (or not exist yet)"
        )
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the nearest existing folder (the root always exists)
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--{name} {path}: {parent} is a file, not a directory")


def run_model_experiment(
    name: str,
    cfg: Any = None,
    *,
    scale: str = "quick",
    out: str | None = None,
    figures: str | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    log: Callable[[str], Any] = print,
) -> None:
    """Plan (``describe``), run and report the model experiment ``name`` with the config
    ``cfg``, and draw its figures; ``cfg=None`` redraws from ``out/results.json`` only.

    ``out`` defaults to ``results/<name>/<scale>``, ``figures`` to ``out/figures``; with
    ``dry_run`` only the plan is logged. Every line goes to ``log``.
    """
    out = out or os.path.join("results", name, scale if cfg is None else cfg.scale)
    check_run_dir("out", out)  # before anything runs or is created
    check_run_dir("figures", figures)
    exp, plots = load(name, plots_only=cfg is None)
    t0 = time.time()
    if cfg is None:  # only reads OUT/results.json: no config, no data needed
        res = plots.load_run(out)
    else:
        log(exp.describe(cfg))
        if dry_run:
            return
        res = exp.run(cfg, out, progress=not quiet, log=None if quiet else log)
    figs = figures or os.path.join(out, "figures")
    for figure in plots.FIGURES:
        paths, _ = plots.draw(figure, out, figs)
        log(f"figure {paths[0]}")
    log(exp.report(res) if exp is not None else load(name)[0].report(res))
    log(f"done in {time.time() - t0:.1f} s; results in {os.path.join(out, 'results.json')}")


def figure_names() -> dict[str, list[str]]:
    """Every figure by domain: ``{"gmm": [...], "eigen": [...], ...}`` (the GMM experiments'
    names, the model experiments' ``FIGURES``), in ``reproduce``'s order."""
    from gmmcollapse.experiments.gmm import EXPERIMENTS

    names = {"gmm": list(EXPERIMENTS)}
    for command in MODEL_EXPERIMENTS:
        names[command] = list(load(command, plots_only=True)[1].FIGURES)
    return names


def reproduce(
    *,
    only: str | None = None,
    scale: str = "quick",
    figure: Sequence[str] | None = None,
    results: str = "results",
    out: str = "figures/out",
    figures_only: bool = False,
    quiet: bool = False,
    log: Callable[[str], Any] = print,
) -> None:
    """Run the experiments of every domain (or ``only`` one) at ``scale`` and draw their
    figures into ``out``: one line per figure, with its headline numbers, to ``log``.

    ``figure`` restricts it to these figures (a GMM name such as ``phase``, or
    ``<domain>_<figure>`` such as ``eigen_pstar``). Results go to ``results/gmm/*.npz`` and
    ``results/<domain>/<scale>/``; with ``figures_only`` nothing runs, the figures are redrawn
    from them. ``results`` or ``out`` naming an existing file is a ``ValueError`` before
    anything runs (:func:`check_run_dir`).
    """
    from gmmcollapse.experiments.gmm import run_experiment
    from gmmcollapse.plots.gmm import draw

    check_run_dir("results", results)  # before anything runs or is created
    check_run_dir("out", out)
    domains = figure_names()
    if only not in (None, *domains):
        raise ValueError(f"only must be one of {', '.join(domains)}, got {only!r}")
    names = [(d, n) for d in ([only] if only else domains) for n in domains[d]]

    def label(d, n):
        return n if d == "gmm" else f"{d}_{n}"

    if figure:
        full = {label(d, n): (d, n) for d, n in names}
        unknown = set(figure) - set(full)
        if unknown:
            raise ValueError(
                f"figure must be among {', '.join(full)}, got {', '.join(sorted(unknown))}"
            )
        names = [full[f] for f in full if f in figure]
    t_all = time.time()
    done: set[str] = set()
    for domain, name in names:
        t0 = time.time()
        if domain == "gmm":
            gmm_dir = os.path.join(results, "gmm")
            if not figures_only:
                run_experiment(name, scale, gmm_dir, progress=not quiet)
            paths, headline = draw(name, gmm_dir, out)
        else:
            exp, plots = load(domain, plots_only=figures_only)
            run_dir = os.path.join(results, domain, scale)
            if not figures_only and domain not in done:
                exp.run(exp.make_config(scale), run_dir, progress=not quiet, log=None)
                done.add(domain)
            paths, headline = plots.draw(name, run_dir, out)
        extra = f"  {json.dumps(headline)}" if headline else ""
        log(f"[{time.time() - t0:6.1f} s] {label(domain, name):<19} -> {paths[0]}{extra}")
    log(f"done in {time.time() - t_all:.1f} s; figures in {os.path.abspath(out)}")
