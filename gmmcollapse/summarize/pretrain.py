"""Self-supervised pretraining data for the summarizers' shared base: gap-sentence generation.

The objective of PEGASUS (Zhang et al., 2020), one gap per example: in an article, the sentence
that overlaps most with the rest of it (ROUGE-1 F of the sentence against the other sentences,
"Ind-Orig") is removed, a mask token takes its place in the source, and the model learns to
write the removed sentence. It needs articles only, never their summaries, and it is close to
summarization: the most salient sentence of a news article is the one that best sums it up.

* :func:`split_sentences`: an article as sentences (a break after ``.``, ``!`` or ``?``
  followed by white space).
* :func:`saliency`: ROUGE-1 F of each sentence against the rest of its article (unigrams of
  lower-cased letters and digits, no stemming: rouge-score's tokenization, computed here
  because ranking a corpus's sentences with rouge-score would take minutes).
* :func:`gap_sentence_data`: the ``(src, tgt)`` id arrays of a list of articles, for
  :func:`gmmcollapse.models.train`. With ``gaps=g`` each article gives up to g examples, its g
  most salient sentences each removed in its own example.

The mask is the id :data:`MASK` (``BOS``): a source made by
:meth:`~gmmcollapse.summarize.tokenizer.SubwordTokenizer.encode_source` never holds it (BPE
pieces come after the special ids, and ``BOS`` only ever starts the decoder's input), so in a
source it can only mean "a sentence was removed here". The tokenizer needs no extra id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from gmmcollapse._validate import check_int, check_strings
from gmmcollapse.models.transformer import BOS, EOS, PAD
from gmmcollapse.summarize.tokenizer import SubwordTokenizer

__all__ = ["MASK", "GapData", "gap_sentence_data", "saliency", "split_sentences"]

#: the source-side mask of the removed sentence (the ``BOS`` id; see the module docstring)
MASK = BOS

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_WORD = re.compile(r"[a-z0-9]+")


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences: it is cut after ``.``, ``!`` or ``?`` (and any closing quote or
    bracket) followed by white space; each sentence stripped, empty ones dropped.

    >>> split_sentences("Ships sank. Nobody was hurt!  The port reopened on Monday.")
    ['Ships sank.', 'Nobody was hurt!', 'The port reopened on Monday.']
    """
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start : m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _unigrams(sentence: str) -> Counter:
    return Counter(_WORD.findall(sentence.lower()))


def saliency(sentences: Sequence[str]) -> np.ndarray:
    """ROUGE-1 F of each sentence against the others joined (float64 ``(n,)``; 0 where a
    side has no word, and for a single sentence).

    >>> saliency(["The ship sank.", "The ship was old.", "Rain fell."]).round(3).tolist()
    [0.444, 0.444, 0.0]
    """
    counts = [_unigrams(s) for s in sentences]
    total = Counter()
    for c in counts:
        total.update(c)
    out = np.zeros(len(counts))
    n_total = sum(total.values())
    for i, c in enumerate(counts):
        n_s = sum(c.values())
        n_rest = n_total - n_s
        if n_s == 0 or n_rest == 0:
            continue
        overlap = sum(min(k, total[w] - k) for w, k in c.items())
        out[i] = 2.0 * overlap / (n_s + n_rest)
    return out


class GapData(NamedTuple):
    """Gap-sentence examples: ``src`` (n, max_src_len) and ``tgt`` (n, max_tgt_len) ids, and
    for each example the index of its ``article`` and of the removed ``sentence`` in
    :func:`split_sentences` of that article."""

    src: np.ndarray
    tgt: np.ndarray
    article: np.ndarray
    sentence: np.ndarray


def gap_sentence_data(
    tok: SubwordTokenizer,
    articles: Sequence[str],
    *,
    max_src_len: int,
    max_tgt_len: int,
    gaps: int = 1,
) -> GapData:
    """Gap-sentence examples of ``articles`` (see the module docstring).

    Each article of at least two sentences gives up to ``gaps`` examples: its sentences by
    :func:`saliency`, highest first (ties: the earlier sentence), each removed in an example of
    its own, as long as the mask still falls within the first ``max_src_len`` source tokens. The
    source is the article's tokens with the removed sentence's replaced by :data:`MASK`,
    truncated to ``max_src_len``; the target the removed sentence's tokens, at most
    ``max_tgt_len - 1`` of them, then ``EOS`` (as
    :meth:`~gmmcollapse.summarize.tokenizer.SubwordTokenizer.encode_target`). Sentences are
    encoded one by one: byte-level BPE with a leading space gives each sentence the pieces it
    has inside its article. Deterministic; ``ValueError`` when no article gives an example.
    """
    articles = check_strings("articles", articles)
    check_int("max_src_len", max_src_len, 2)
    check_int("max_tgt_len", max_tgt_len, 2)
    check_int("gaps", gaps, 1)
    split = [split_sentences(a) for a in articles]
    flat = [s for sents in split for s in sents]
    ids = tok.encode_ids(flat)
    srcs, tgts, art, sen = [], [], [], []
    pos = 0
    for a, sents in enumerate(split):
        pieces = ids[pos : pos + len(sents)]
        pos += len(sents)
        if len(sents) < 2:
            continue
        starts = np.cumsum([0] + [len(p) for p in pieces])
        order = np.argsort(-saliency(sents), kind="stable")
        taken = 0
        for j in order:
            if taken == gaps:
                break
            if starts[j] >= max_src_len:  # the mask would be cut off
                continue
            before = [t for p in pieces[:j] for t in p]
            after = [t for p in pieces[j + 1 :] for t in p]
            srcs.append(([*before, MASK, *after])[:max_src_len])
            tgts.append([*pieces[j][: max_tgt_len - 1], EOS])
            art.append(a)
            sen.append(int(j))
            taken += 1
    if not srcs:
        raise ValueError("articles give no gap-sentence example: each needs at least two sentences")
    src = np.full((len(srcs), max_src_len), PAD, np.int32)
    tgt = np.full((len(tgts), max_tgt_len), PAD, np.int32)
    for i, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[i, : len(s)] = s
        tgt[i, : len(t)] = t
    return GapData(src, tgt, np.asarray(art, np.int64), np.asarray(sen, np.int64))
