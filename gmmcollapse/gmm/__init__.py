"""Finite-n, finite-d simulation of the Gaussian-mixture model of verified synthetic data."""

from gmmcollapse.gmm.learners import logistic, ridge_dual, ridge_from_stats, sufficient_stats
from gmmcollapse.gmm.predict import predict
from gmmcollapse.gmm.simulate import SimResult, over_seeds, simulate, summarize
from gmmcollapse.gmm.spec import GMMParams, SimSpec, make_params, spec_dict, validate_params
from gmmcollapse.gmm.sweep import Sweep, load_results, run_sweep

__all__ = [
    "GMMParams",
    "SimResult",
    "SimSpec",
    "Sweep",
    "load_results",
    "logistic",
    "make_params",
    "over_seeds",
    "predict",
    "ridge_dual",
    "ridge_from_stats",
    "run_sweep",
    "simulate",
    "spec_dict",
    "sufficient_stats",
    "summarize",
    "validate_params",
]
