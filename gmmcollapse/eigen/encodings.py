"""Number encodings of Charton, *Linear Algebra with Transformers* (2022), 3 significant digits.

Every real number is written as ``sign * m * 10**e`` with an integer mantissa ``m`` in 100..999
(normalised) and an integer exponent ``e``; zero is ``m = 0, e = 0`` with a ``+`` sign. The four
encodings differ only in how ``(sign, m, e)`` is cut into tokens (Charton 2022, as used by
Feng et al., arXiv 2406.07515):

========  ======================================================  ===============  ==============
name      tokens of one number                                    tokens/number    vocabulary
========  ======================================================  ===============  ==============
P10       ``+|-``, three digits ``0``..``9``, ``E-100``..``E100``   5              2 + 10 + 201
P1000     ``+|-``, one mantissa ``0``..``999``, exponent           3              2 + 1000 + 201
B1999     one signed mantissa ``-999``..``999``, exponent          2              1999 + 201
FP15      one token ``+-m E(e-9)``, m in 100..999, e in 0..15      1              2*900*16 + 1
========  ======================================================  ===============  ==============

FP15: the paper states ``m * 10**(e-9)`` with ``m`` in 100..999 and ``e`` in 0..15; eigenvalues
can be negative, so here the mantissa is *signed* (``±m``), and one extra token ``0`` stands for
zero. Its exponent (``e - 9``) therefore runs over -9..6, magnitudes over 1e-7..9.99e8.

Conventions (all encodings)
---------------------------
* Rounding: the mantissa is ``x / 10**e`` rounded to the nearest integer, ties to even (the
  behaviour of Python's ``f"{x:.2e}"`` on exactly representable ties, e.g. 1005.0 -> 1.00e3).
  ``1.005`` is not a tie in binary (it is 1.00499999...) and rounds to 1.00.
* Decoded values are ``m * 10**e`` for ``e >= 0`` and ``m / 10**-e`` for ``e < 0``, with correctly
  rounded powers of ten; for ``|e| <= 22`` this is the double nearest to the decimal ``m e e``.
* Clipping: magnitudes above the largest representable value ``999 * 10**emax`` (including
  ``±inf``) clip to it, keeping the sign. Magnitudes that round to less than the smallest
  normalised value ``100 * 10**emin`` flush to zero (P10/P1000/B1999: below ~1e-98; FP15: below
  ~1e-7). NaN encodes as zero (the encoders never emit an invalid group).
* Validity: a token group decodes as valid iff it is exactly what the encoder emits for its value:
  every token in its slot's range, mantissa normalised (100..999) unless it is the canonical zero
  ``+ 0 E0`` (so ``- 0 0 0 E0``, ``+ 0 0 0 E3`` or ``+ 0 4 2 E1`` are invalid), ids inside the
  vocabulary. Invalid numbers decode to NaN with ``valid = False``; decoding never raises on token
  values, also under ``jit`` and for batches that mix valid and invalid rows.

Token ids are positions in ``vocab`` (0..size-1); there are no special tokens, callers that add
PAD/BOS/EOS/separators offset these ids themselves.

Example::

    >>> import jax.numpy as jnp
    >>> from gmmcollapse.eigen.encodings import ENCODINGS
    >>> enc = ENCODINGS["P10"]
    >>> ids = enc.encode(jnp.array([3.14159, -0.0271828]))
    >>> enc.to_strings(ids)
    '+ 3 1 4 E-2 - 2 7 2 E-4'
    >>> values, valid = enc.decode(ids)   # values == [3.14, -0.0272], valid == [True, True]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gmmcollapse.theory.basic import in_float64

__all__ = ["B1999", "ENCODINGS", "FP15", "P10", "P1000", "NumberEncoding"]

# Correctly rounded powers of ten 10**k, k in -_KMAX.._KMAX (parsed by Python, so each entry is
# the double nearest to the decimal; exact for 0 <= k <= 22). Built with numpy so it is a constant.
_KMAX = 300
_POW10 = np.array([float(f"1e{k}") for k in range(-_KMAX, _KMAX + 1)], dtype=np.float64)


def _pow10(k: jax.Array) -> jax.Array:
    """10.0**|k| from the table (k int array); indices are clamped so lookups never fail."""
    return jnp.asarray(_POW10)[jnp.clip(jnp.abs(k), 0, _KMAX) + _KMAX]


def _value(neg: jax.Array, m: jax.Array, e: jax.Array) -> jax.Array:
    """sign * m * 10**e in float64.

    Negative exponents divide by the exact-ish 10**-e instead of multiplying by the inexact
    10**e: m / 10**k is correctly rounded for k <= 22, so 123 E-2 gives exactly float("1.23").
    """
    mf = m.astype(jnp.float64)
    p = _pow10(e)
    mag = jnp.where(e >= 0, mf * p, mf / p)
    return jnp.where(neg, -mag, mag)


def _scale(a: jax.Array, k: jax.Array) -> jax.Array:
    """a / 10**k with one rounding for |k| <= 22 (multiply by 10**-k when k < 0)."""
    p = _pow10(k)
    return jnp.where(k < 0, a * p, a / p)


def _quantize(x: jax.Array, emin: int, emax: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Split float x into (neg bool, m int32, e int32): 3 significant digits, clipped.

    Nonzero results have 100 <= m <= 999 and emin <= e <= emax; zero (also NaN and flushed
    underflow) is (False, 0, 0). See the module docstring for rounding and clipping.
    """
    x = jnp.asarray(x, dtype=jnp.float64)
    a = jnp.abs(x)
    is_zero = (a == 0) | jnp.isnan(x)
    max_mag = 999.0 * float(_POW10[emax + _KMAX])
    # Clamp into a range where all exponent arithmetic below stays in the table; the lower
    # bound 10**(emin+1) is < 100 * 10**emin, so anything clamped up still flushes to zero.
    a_c = jnp.clip(jnp.where(is_zero, 1.0, a), float(_POW10[emin + 1 + _KMAX]), max_mag)
    k = (jnp.floor(jnp.log10(a_c)) - 2).astype(jnp.int32)
    q = _scale(a_c, k)
    # log10 may be off by one ulp near powers of ten: fix k so that 100 <= q < 1000.
    low = q < 100.0
    k = jnp.where(low, k - 1, k)
    high = q >= 1000.0
    k = jnp.where(high, k + 1, k)
    q = jnp.where(low | high, _scale(a_c, k), q)
    m = jnp.round(q).astype(jnp.int32)  # ties to even
    carry = m >= 1000  # 999.5.. rounds up to the next decade
    m = jnp.where(carry, 100, m)
    k = jnp.where(carry, k + 1, k)
    over = k > emax
    m = jnp.where(over, 999, m)
    k = jnp.where(over, emax, k)
    zero = is_zero | (k < emin)
    m = jnp.where(zero, 0, m)
    k = jnp.where(zero, 0, k)
    neg = (x < 0) & ~zero
    return neg, m, k


# --- per-encoding token layouts -------------------------------------------------------------
# Each layout maps (neg, m, e) of shape (...,) to ids (..., t) and back; ids -> (neg, m, e, ok)
# where ok only checks that every token sits in its slot's range.

_EXP = 100  # exponent tokens E-100..E100 of P10, P1000, B1999
_N_EXP = 2 * _EXP + 1


def _exp_vocab() -> list[str]:
    return [f"E{e}" for e in range(-_EXP, _EXP + 1)]


def _in(t: jax.Array, lo: int, n: int) -> jax.Array:
    return (t >= lo) & (t < lo + n)


def _p10_enc(neg, m, e):
    d1, d2, d3 = m // 100, (m // 10) % 10, m % 10
    exp_id = 12 + e + _EXP
    return jnp.stack([neg.astype(jnp.int32), 2 + d1, 2 + d2, 2 + d3, exp_id], axis=-1)


def _p10_dec(g):
    s, t1, t2, t3, te = (g[..., i] for i in range(5))
    ok = _in(s, 0, 2) & _in(t1, 2, 10) & _in(t2, 2, 10) & _in(t3, 2, 10) & _in(te, 12, _N_EXP)
    m = (t1 - 2) * 100 + (t2 - 2) * 10 + (t3 - 2)
    return s == 1, m, te - 12 - _EXP, ok


def _p1000_enc(neg, m, e):
    return jnp.stack([neg.astype(jnp.int32), 2 + m, 1002 + e + _EXP], axis=-1)


def _p1000_dec(g):
    s, tm, te = g[..., 0], g[..., 1], g[..., 2]
    ok = _in(s, 0, 2) & _in(tm, 2, 1000) & _in(te, 1002, _N_EXP)
    return s == 1, tm - 2, te - 1002 - _EXP, ok


def _b1999_enc(neg, m, e):
    sm = jnp.where(neg, -m, m)
    return jnp.stack([sm + 999, 1999 + e + _EXP], axis=-1)


def _b1999_dec(g):
    tm, te = g[..., 0], g[..., 1]
    ok = _in(tm, 0, 1999) & _in(te, 1999, _N_EXP)
    sm = tm - 999
    return sm < 0, jnp.abs(sm), te - 1999 - _EXP, ok


_FP_EMIN, _FP_NE = -9, 16  # FP15 exponents e - 9 for e in 0..15


def _fp15_enc(neg, m, e):
    code = 1 + ((neg.astype(jnp.int32) * _FP_NE + (e - _FP_EMIN)) * 900 + (m - 100))
    return jnp.where(m == 0, 0, code)[..., None]


def _fp15_dec(g):
    t = g[..., 0]
    ok = _in(t, 0, 1 + 2 * 900 * _FP_NE)
    r = jnp.maximum(t - 1, 0)
    se = r // 900
    is_zero = t == 0
    m = jnp.where(is_zero, 0, r % 900 + 100)
    e = jnp.where(is_zero, 0, se % _FP_NE + _FP_EMIN)
    return (se // _FP_NE == 1) & ~is_zero, m, e, ok


def _fp15_vocab() -> list[str]:
    return ["0"] + [
        f"{s}{m}E{e}"
        for s in "+-"
        for e in range(_FP_EMIN, _FP_EMIN + _FP_NE)
        for m in range(100, 1000)
    ]


@dataclasses.dataclass(frozen=True, eq=False)
class NumberEncoding:
    """One number encoding: ``tokens_per_number`` ids per float, ids = positions in ``vocab``.

    Fields: ``name``; ``tokens_per_number``; ``vocab`` (token strings, no special tokens);
    ``emin``/``emax``, the exponent range of ``m * 10**e`` (m in 100..999); the layout functions
    (private). Use ``encode``, ``decode``, ``round_sig``, ``to_strings``.
    """

    name: str
    tokens_per_number: int
    vocab: tuple[str, ...]
    emin: int
    emax: int
    _enc: Callable = dataclasses.field(repr=False)
    _dec: Callable = dataclasses.field(repr=False)

    @property
    def size(self) -> int:
        """Vocabulary size; ids are 0..size-1."""
        return len(self.vocab)

    @property
    def max_value(self) -> float:
        """Largest representable magnitude 999 * 10**emax."""
        return 999.0 * float(_POW10[self.emax + _KMAX])

    @property
    def min_value(self) -> float:
        """Smallest nonzero representable magnitude 100 * 10**emin."""
        return 100.0 / float(_POW10[-self.emin + _KMAX])

    @in_float64
    def round_sig(self, x: ArrayLike) -> jax.Array:
        """The value ``decode(encode(x))`` gives: x to 3 significant digits, clipped (float64)."""
        return _value(*_quantize(x, self.emin, self.emax))

    @in_float64
    def encode(self, x: ArrayLike) -> jax.Array:
        """Floats (..., m) -> int32 ids (..., m * tokens_per_number)."""
        x = jnp.asarray(x, dtype=jnp.float64)
        if x.ndim == 0:
            raise ValueError("encode expects at least one axis (..., m); got a scalar")
        ids = self._enc(*_quantize(x, self.emin, self.emax)).astype(jnp.int32)
        return ids.reshape(*x.shape[:-1], x.shape[-1] * self.tokens_per_number)

    @in_float64
    def decode(self, ids: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """Ids (..., m * tokens_per_number) -> (values float64 (..., m), valid bool (..., m)).

        Malformed groups (see module docstring) give ``valid = False`` and value NaN. Raises
        only for a static shape error (last axis not a multiple of ``tokens_per_number``).
        """
        ids = jnp.asarray(ids)
        t = self.tokens_per_number
        if ids.ndim == 0 or ids.shape[-1] % t:
            raise ValueError(f"{self.name}: last axis {ids.shape} not a multiple of {t}")
        g = ids.astype(jnp.int32).reshape(*ids.shape[:-1], ids.shape[-1] // t, t)
        neg, m, e, ok = self._dec(g)
        canonical_zero = (m == 0) & (e == 0) & ~neg
        in_range = (e >= self.emin) & (e <= self.emax)
        valid = ok & in_range & (((m >= 100) & (m <= 999)) | canonical_zero)
        values = jnp.where(valid, _value(neg, m, e), jnp.nan)
        return values, valid

    def to_strings(self, ids: ArrayLike):
        """Debug view: space-joined token strings for a 1-D id array, nested lists above that.

        Ids outside the vocabulary show as ``<id>``.
        """
        a = np.asarray(ids)
        if a.ndim == 0:
            i = int(a)
            return self.vocab[i] if 0 <= i < self.size else f"<{i}>"
        if a.ndim == 1:
            return " ".join(self.to_strings(i) for i in a)
        return [self.to_strings(row) for row in a]


P10 = NumberEncoding(
    name="P10",
    tokens_per_number=5,
    vocab=tuple(["+", "-"] + [str(d) for d in range(10)] + _exp_vocab()),
    emin=-_EXP,
    emax=_EXP,
    _enc=_p10_enc,
    _dec=_p10_dec,
)
P1000 = NumberEncoding(
    name="P1000",
    tokens_per_number=3,
    vocab=tuple(["+", "-"] + [str(d) for d in range(1000)] + _exp_vocab()),
    emin=-_EXP,
    emax=_EXP,
    _enc=_p1000_enc,
    _dec=_p1000_dec,
)
B1999 = NumberEncoding(
    name="B1999",
    tokens_per_number=2,
    vocab=tuple([str(d) for d in range(-999, 1000)] + _exp_vocab()),
    emin=-_EXP,
    emax=_EXP,
    _enc=_b1999_enc,
    _dec=_b1999_dec,
)
FP15 = NumberEncoding(
    name="FP15",
    tokens_per_number=1,
    vocab=tuple(_fp15_vocab()),
    emin=_FP_EMIN,
    emax=_FP_EMIN + _FP_NE - 1,
    _enc=_fp15_enc,
    _dec=_fp15_dec,
)

ENCODINGS: dict[str, NumberEncoding] = {e.name: e for e in (P10, P1000, B1999, FP15)}
