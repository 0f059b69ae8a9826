"""Finite-n, finite-d simulation of the Gaussian-mixture model of verified synthetic data."""

from gmmcollapse.gmm.learners import logistic, ridge_dual, ridge_from_stats, sufficient_stats
from gmmcollapse.gmm.predict import predict
from gmmcollapse.gmm.simulate import SimResult, over_grid, over_seeds, simulate, summarize
from gmmcollapse.gmm.spec import GMMParams, SimSpec, make_params, spec_dict, validate_params

__all__ = [
    "GMMParams",
    "SimResult",
    "SimSpec",
    "logistic",
    "make_params",
    "over_grid",
    "over_seeds",
    "predict",
    "ridge_dual",
    "ridge_from_stats",
    "simulate",
    "spec_dict",
    "sufficient_stats",
    "summarize",
    "validate_params",
]
