"""The one registry of experiments, read by the CLI and by ``reproduce``.

``gmm``: the Gaussian-mixture figure sweeps (:mod:`gmmcollapse.experiments.gmm`). The model
experiments share one face: a module with ``SCALES`` (smoke / quick / paper presets of a frozen
config dataclass), ``make_config(scale, **overrides)``, ``describe(cfg) -> str`` (the dry-run
plan), ``run(cfg, out, progress=..., log=...) -> results`` and ``report(results) -> str``; and
figures: ``FIGURES``, ``draw(name, run_dir, out)`` and ``load_run(run_dir)``, in the same
module or a plots module. A new domain is one such module and one entry here (see
:mod:`gmmcollapse.sorting` and docs/guide.md).
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from gmmcollapse._validate import check_choice

__all__ = ["MODEL_EXPERIMENTS", "ModelExperiment", "load"]


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
