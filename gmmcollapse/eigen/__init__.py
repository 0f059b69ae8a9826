"""Experiment 1 (PAPER.md 1.3): transformers that compute eigenvalues of symmetric matrices.

This package is being built (issue 4). So far: on-the-fly data and the accuracy metric
(:mod:`gmmcollapse.eigen.data`), the verifiers as scores for the shared kernel
(:mod:`gmmcollapse.eigen.verifiers`) and the number encodings (:mod:`gmmcollapse.eigen.encodings`).
"""

from gmmcollapse.eigen.data import (
    TOLERANCES,
    EigenBatch,
    accuracy,
    eigenvalues,
    relative_l1_error,
    sample_matrices,
)
from gmmcollapse.eigen.encodings import ENCODINGS, NumberEncoding

__all__ = [
    "ENCODINGS",
    "TOLERANCES",
    "EigenBatch",
    "NumberEncoding",
    "accuracy",
    "eigenvalues",
    "relative_l1_error",
    "sample_matrices",
]
