"""Experiment 1 (Feng et al., arXiv 2406.07515): transformers that compute eigenvalues of
symmetric matrices.

* :mod:`~gmmcollapse.eigen.data`: on-the-fly symmetric matrices, sorted eigenvalues, the
  relative-L1 accuracy at Charton's tolerances.
* :mod:`~gmmcollapse.eigen.encodings`: the number encodings P10, P1000, B1999, FP15.
* :mod:`~gmmcollapse.eigen.tokens`: :class:`MatrixTokenizer`, matrices and eigenvalues as
  token sequences for :mod:`gmmcollapse.models`.
* :mod:`~gmmcollapse.eigen.verifiers`: the oracle and the trace/Frobenius invariant check as
  scores for the shared kernel.
* :mod:`~gmmcollapse.eigen.experiment`: the synthesize -> verify -> retrain pipeline at the
  smoke / quick / paper scales (``gmmcollapse eigen``); see docs/eigen.md.
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
from gmmcollapse.eigen.tokens import MatrixTokenizer
from gmmcollapse.eigen.verifiers import invariant_scores, invariant_violations, oracle_scores

__all__ = [
    "ENCODINGS",
    "TOLERANCES",
    "EigenBatch",
    "MatrixTokenizer",
    "NumberEncoding",
    "accuracy",
    "eigenvalues",
    "invariant_scores",
    "invariant_violations",
    "oracle_scores",
    "relative_l1_error",
    "sample_matrices",
]
