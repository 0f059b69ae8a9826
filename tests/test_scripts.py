"""Every sims/ and figures/ script runs in smoke mode and produces what it promises."""

import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from gmmcollapse.experiments.gmm import EXPERIMENTS
from gmmcollapse.gmm.sweep import load_results

ROOT = Path(__file__).resolve().parents[1]


def _run_script(path: Path, argv: list[str]) -> None:
    old = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = old


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


#: the default suite runs these experiments' scripts; the others (each 20-35 s of compiling on
#: a 2-core CPU) run with ``-m slow``, and their theory is tested on its own elsewhere
FAST = ("phase", "linear_phase")


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in EXPERIMENTS]
)
def test_sim_then_figure_script(name, smoke_results, tmp_path):
    _run_script(
        ROOT / "sims" / f"gmm_{name}.py",
        ["--scale", "smoke", "--results", str(smoke_results), "--quiet"],
    )
    files = sorted(p.name for p in smoke_results.glob(f"gmm_{name}*.npz"))
    assert files, f"sims/gmm_{name}.py wrote no results"
    for f in files:
        res = load_results(smoke_results / f)
        assert res.meta and res.data
        for key, arr in res.data.items():
            if key in ("sim_mean/acc", "theory/infinite_data_accuracy", "theory/ridge_accuracy"):
                finite = arr[np.isfinite(arr)]
                assert np.all((finite >= 0) & (finite <= 1)), key
        # every file carries numbers: a simulation, or a theory that applies to its structure
        # (accumulate has no finite-n/d theory: its ridge_accuracy is NaN by design)
        shown = [
            res.data[k]
            for k in (
                "sim_mean/acc",
                "theory/ridge_accuracy",
                "theory/infinite_data_accuracy",
                "theory/finite_breakdown_point",
            )
            if k in res.data
        ]
        assert any(np.isfinite(a).any() for a in shown), f
    _run_script(
        ROOT / "figures" / f"gmm_{name}.py",
        ["--results", str(smoke_results), "--out", str(tmp_path)],
    )
    for ext in ("png", "pdf"):
        out = tmp_path / f"gmm_{name}.{ext}"
        assert out.exists() and out.stat().st_size > 5000


def test_every_experiment_has_both_scripts():
    for name in EXPERIMENTS:
        assert (ROOT / "sims" / f"gmm_{name}.py").exists()
        assert (ROOT / "figures" / f"gmm_{name}.py").exists()


def test_figure_without_results_is_a_clear_error(tmp_path):
    from gmmcollapse.plots.gmm import draw

    with pytest.raises(FileNotFoundError, match="run the experiment first"):
        draw("phase", os.fspath(tmp_path), os.fspath(tmp_path))
