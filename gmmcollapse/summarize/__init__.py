"""Experiment 2 (news summarization, Feng et al., arXiv 2406.07515): news articles, their
one-sentence summaries, and the synthesize -> select -> retrain experiment on them.

* :mod:`~gmmcollapse.summarize.corpus`: the built-in, deterministic news corpus (grammar in its
  docstring), streamed at any size; :func:`split`.
* :mod:`~gmmcollapse.summarize.loaders`: real corpora (XL-Sum, XSum, CNN/DailyMail) from JSON
  lines, CSV or parquet files, or from Hugging Face ``datasets``.
* :mod:`~gmmcollapse.summarize.tokenizer`: a byte-level BPE tokenizer trained on the training
  pairs, with ``PAD``/``BOS``/``EOS`` at ids 0, 1, 2.
* :mod:`~gmmcollapse.summarize.rouge`: ROUGE-1/2/L F-measures (``rouge-score``).
* :mod:`~gmmcollapse.summarize.experiment`: the experiment (generator, verifier, selectors by
  ROUGE, self and verifier scores at several rates, retraining, p* and its rank correlation
  with ROUGE-1); imported on its own (it loads JAX and the models).
"""

from gmmcollapse.summarize.corpus import (
    CorpusConfig,
    iter_corpus,
    make_corpus,
    number_to_words,
    split,
    write_jsonl,
)
from gmmcollapse.summarize.loaders import FORMATS, HF_DATASETS, load_hf, load_pairs
from gmmcollapse.summarize.rouge import ROUGE_TYPES, mean_rouge, rouge_scores
from gmmcollapse.summarize.tokenizer import SubwordTokenizer, train_tokenizer

__all__ = [
    "FORMATS",
    "HF_DATASETS",
    "ROUGE_TYPES",
    "CorpusConfig",
    "SubwordTokenizer",
    "iter_corpus",
    "load_hf",
    "load_pairs",
    "make_corpus",
    "mean_rouge",
    "number_to_words",
    "rouge_scores",
    "split",
    "train_tokenizer",
    "write_jsonl",
]
