"""ROUGE-1, ROUGE-2 and ROUGE-L F-measures per example, with the ``rouge-score`` package.

The scorer is Google's reference implementation (``rouge_score.rouge_scorer``), as in the XL-Sum
and XSum papers: lower-cased, split on non-alphanumeric characters, Porter-stemmed
(``use_stemmer=True``, the default). ROUGE-L is the sentence-level longest common subsequence.
Scores are fractions in [0, 1]. Its default tokenizer keeps only ASCII letters and digits, so it
suits English corpora (XL-Sum English, XSum, CNN/DailyMail, the built-in corpus).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from gmmcollapse._validate import check_strings

__all__ = ["ROUGE_TYPES", "mean_rouge", "rouge_scores"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=8)
def _scorer(use_stemmer: bool, types: tuple[str, ...] = ROUGE_TYPES):
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise ImportError("ROUGE needs the package rouge-score (pip install rouge-score)") from e
    return rouge_scorer.RougeScorer(list(types), use_stemmer=use_stemmer)


def rouge_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    use_stemmer: bool = True,
    types: Sequence[str] = ROUGE_TYPES,
) -> dict[str, np.ndarray]:
    """``{"rouge1", "rouge2", "rougeL"}`` -> float64 F-measures, one per (prediction, reference).

    ``types`` restricts the result to some of :data:`ROUGE_TYPES` (ROUGE-1 alone is about 3x
    faster than all three). Raises ``ValueError`` when the two lists differ in length or a type
    is unknown. Empty lists give empty arrays.
    """
    types = tuple(check_strings("types", types))
    bad = [t for t in types if t not in ROUGE_TYPES]
    if bad or not types:
        raise ValueError(f"types must be a non-empty subset of {ROUGE_TYPES}, got {list(types)}")
    preds = check_strings("predictions", predictions)
    refs = check_strings("references", references)
    if len(preds) != len(refs):
        raise ValueError(
            f"predictions and references must have the same length, got {len(preds)} "
            f"and {len(refs)}"
        )
    scorer = _scorer(bool(use_stemmer), types)
    out = {k: np.empty(len(preds), dtype=np.float64) for k in types}
    for i, (p, r) in enumerate(zip(preds, refs, strict=True)):
        s = scorer.score(r, p)  # score(target, prediction)
        for k in types:
            out[k][i] = s[k].fmeasure
    return out


def mean_rouge(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> dict[str, float]:
    """Mean F-measures over the examples: ``{"rouge1": ..., "rouge2": ..., "rougeL": ...}``.

    Raises ``ValueError`` for different lengths or no examples.
    """
    scores = rouge_scores(predictions, references, use_stemmer=use_stemmer)
    if len(scores["rouge1"]) == 0:
        raise ValueError("predictions must not be empty: no examples to average")
    return {k: float(v.mean()) for k, v in scores.items()}
