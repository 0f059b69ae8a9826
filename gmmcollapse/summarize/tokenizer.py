"""A byte-level BPE subword tokenizer (Hugging Face ``tokenizers``) for articles and summaries.

Ids follow :mod:`gmmcollapse.models.transformer`: 0 ``PAD``, 1 ``BOS``, 2 ``EOS``, then the BPE
pieces shifted by :data:`~gmmcollapse.models.transformer.N_SPECIAL`. The BPE model itself has no
special tokens, so no text (not even a literal ``"<eos>"``) can encode to a special id.

* Text is NFKC-normalised and every run of whitespace becomes one space; the byte-level alphabet
  covers every string, so nothing is ever unknown and ``decode(encode(s))`` gives back the
  normalised ``s`` (when nothing was truncated).
* :meth:`SubwordTokenizer.encode` returns ``int32 (n, max_len)``, right-padded with ``PAD``. A
  longer text is truncated to its first ``max_len`` tokens; with ``eos=True`` (the summary side,
  :meth:`~SubwordTokenizer.encode_target`) to its first ``max_len - 1`` tokens and ``EOS``, so
  every target row ends in ``EOS``. :meth:`~SubwordTokenizer.count_tokens` measures lengths to
  choose ``max_len`` or to count truncated rows.
* :meth:`SubwordTokenizer.decode` reads each row up to its first ``EOS`` and ignores ``PAD`` and
  ``BOS``.
* Training (:meth:`SubwordTokenizer.train`, :func:`train_tokenizer`) is deterministic: the same
  texts give the same merges and ids, in any process.
* :meth:`~SubwordTokenizer.save` writes ``tokenizer.json`` (the BPE model) and
  ``tokenizer_meta.json`` into a directory, e.g. next to a model checkpoint;
  :meth:`~SubwordTokenizer.load` reads them back. :attr:`~SubwordTokenizer.fingerprint` (a hash
  of the model) identifies a tokenizer in a training fingerprint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from gmmcollapse._validate import check_int, check_strings
from gmmcollapse.models.transformer import BOS, EOS, N_SPECIAL, PAD
from gmmcollapse.store import digest, read_json, write_json, write_text

__all__ = ["SubwordTokenizer", "train_tokenizer"]

_META = "tokenizer_meta.json"
_MODEL = "tokenizer.json"
_KIND = "bytelevel-bpe"
#: smallest vocabulary: the specials and the 256 byte symbols
MIN_VOCAB = N_SPECIAL + 256


def _hf():
    try:
        import tokenizers
    except ImportError as e:  # a core dependency, but say what is missing
        raise ImportError(
            "the summarization tokenizer needs tokenizers (pip install tokenizers)"
        ) from e
    return tokenizers


def _new_model():
    tk = _hf()
    tok = tk.Tokenizer(tk.models.BPE())
    tok.normalizer = tk.normalizers.Sequence(
        [
            tk.normalizers.NFKC(),
            tk.normalizers.Replace(tk.Regex(r"\s+"), " "),
            tk.normalizers.Strip(),
        ]
    )
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = tk.decoders.ByteLevel()
    return tok


class SubwordTokenizer:
    """Byte-level BPE with ids shifted past ``PAD``, ``BOS``, ``EOS`` (see the module docstring).

    Make one with :meth:`train` or :meth:`load`; the constructor wraps a trained
    ``tokenizers.Tokenizer``.
    """

    def __init__(self, model):
        self._tok = model
        self._n_pieces = model.get_vocab_size()

    # ------------------------------------------------------------------ construction
    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2
    ) -> SubwordTokenizer:
        """Train on ``texts`` (any iterable of strings, e.g. a generator over a large corpus).

        ``vocab_size`` counts the special ids; the result can be smaller when the texts have
        fewer pieces worth merging (see :attr:`vocab_size`).
        """
        check_int("vocab_size", vocab_size, MIN_VOCAB)
        check_int("min_frequency", min_frequency, 1)
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of strings, not one string")
        tk = _hf()
        tok = _new_model()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=int(vocab_size) - N_SPECIAL,
            min_frequency=int(min_frequency),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        seen = 0

        def checked():
            nonlocal seen
            for t in texts:
                if not isinstance(t, str):
                    raise TypeError(f"texts must hold strings, got {type(t).__name__}")
                seen += 1
                yield t

        tok.train_from_iterator(checked(), trainer)
        if seen == 0:
            raise ValueError("texts must not be empty: nothing to train the tokenizer on")
        return cls(tok)

    @classmethod
    def from_str(cls, s: str) -> SubwordTokenizer:
        """Inverse of :meth:`to_str`."""
        return cls(_hf().Tokenizer.from_str(s))

    def to_str(self) -> str:
        """The BPE model as a JSON string (what :meth:`save` writes to ``tokenizer.json``)."""
        return self._tok.to_str()

    def save(self, directory: str | os.PathLike) -> str:
        """Write ``tokenizer.json`` and ``tokenizer_meta.json`` into ``directory`` (created)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        meta = {
            "kind": _KIND,
            "n_special": N_SPECIAL,
            "vocab_size": self.vocab_size,
            "fingerprint": self.fingerprint,
        }
        write_text(os.path.join(directory, _MODEL), self.to_str())
        write_json(os.path.join(directory, _META), meta)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SubwordTokenizer:
        """Read a tokenizer written by :meth:`save`; refuses files that do not fit this code."""
        directory = os.fspath(directory)
        paths = [os.path.join(directory, n) for n in (_MODEL, _META)]
        for p in paths:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"no saved tokenizer in {directory} (missing {p})")
        meta = read_json(paths[1])
        if meta.get("kind") != _KIND or meta.get("n_special") != N_SPECIAL:
            raise ValueError(
                f"{paths[1]}: a tokenizer of kind {meta.get('kind')!r} with "
                f"{meta.get('n_special')} special ids; this code needs {_KIND!r} with {N_SPECIAL}"
            )
        with open(paths[0], encoding="utf-8") as f:
            tok = cls.from_str(f.read())
        if meta.get("fingerprint") != tok.fingerprint:
            raise ValueError(f"{paths[0]} does not match the fingerprint in {paths[1]}")
        return tok

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of ids, special ones included (for ``TransformerConfig.vocab_size``)."""
        return self._n_pieces + N_SPECIAL

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex, 16 digits) of the BPE model: equal for equal tokenizers."""
        return digest(self.to_str(), length=16)

    def __eq__(self, other) -> bool:
        return isinstance(other, SubwordTokenizer) and self.to_str() == other.to_str()

    __hash__ = None  # mutable wrapper: compare, do not hash

    def __repr__(self) -> str:
        return f"SubwordTokenizer(vocab_size={self.vocab_size}, fingerprint={self.fingerprint!r})"

    # ------------------------------------------------------------------ encoding
    def _pieces(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def count_tokens(self, texts: Sequence[str]) -> np.ndarray:
        """Number of tokens of each text, without ``EOS``: int64 ``(n,)``."""
        texts = check_strings("texts", texts)
        return np.array([len(p) for p in self._pieces(texts)], dtype=np.int64)

    def encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's ids (pieces shifted past the special ids), whole: no truncation, no
        ``EOS``, no padding (e.g. to assemble sequences from parts)."""
        texts = check_strings("texts", texts)
        return [[i + N_SPECIAL for i in ids] for ids in self._pieces(texts)]

    def encode(self, texts: Sequence[str], max_len: int, *, eos: bool = False) -> np.ndarray:
        """``int32 (n, max_len)`` ids, right-padded with ``PAD``; truncation as documented above.

        ``eos=True`` appends ``EOS`` (the summary side; see :meth:`encode_target`).
        """
        texts = check_strings("texts", texts)
        check_int("max_len", max_len, 2 if eos else 1)
        max_len = int(max_len)
        keep = max_len - 1 if eos else max_len
        out = np.full((len(texts), max_len), PAD, dtype=np.int32)
        for i, ids in enumerate(self._pieces(texts)):
            ids = ids[:keep]
            out[i, : len(ids)] = ids
            out[i, : len(ids)] += N_SPECIAL
            if eos:
                out[i, len(ids)] = EOS
        return out

    def encode_source(self, texts: Sequence[str], max_len: int) -> np.ndarray:
        """Articles: :meth:`encode` without ``EOS`` (truncated to the first ``max_len`` tokens)."""
        return self.encode(texts, max_len)

    def encode_target(self, texts: Sequence[str], max_len: int) -> np.ndarray:
        """Summaries: at most ``max_len - 1`` tokens, then ``EOS``, then ``PAD``."""
        return self.encode(texts, max_len, eos=True)

    def decode(self, ids) -> list[str]:
        """Texts of ``ids`` ``(n, L)`` (or one row ``(L,)`` -> a list of one text).

        Each row is read up to its first ``EOS``; ``PAD`` and ``BOS`` are ignored. Ids outside
        ``[0, vocab_size)`` are an error.
        """
        arr = np.asarray(ids)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ValueError(f"ids must have shape (n, length) or (length,), got {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"ids must be in [0, {self.vocab_size - 1}], got {int(arr[bad].flat[0])}"
            )
        rows = []
        for row in arr:
            stop = np.flatnonzero(row == EOS)
            row = row[: stop[0]] if stop.size else row
            row = row[(row != PAD) & (row != BOS)]
            rows.append((row - N_SPECIAL).tolist())
        return [s.strip() for s in self._tok.decode_batch(rows, skip_special_tokens=False)]


def train_tokenizer(
    pairs: Iterable[dict], vocab_size: int = 4000, min_frequency: int = 2
) -> SubwordTokenizer:
    """Train on the articles and summaries of ``pairs`` (dicts with ``text`` and ``summary``)."""

    def texts():
        for p in pairs:
            yield p["text"]
            yield p["summary"]

    return SubwordTokenizer.train(texts(), vocab_size=vocab_size, min_frequency=min_frequency)
