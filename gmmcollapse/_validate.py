"""Input checks shared by the theory, the simulation and the CLI.

Every public function checks its concrete inputs *before* any compute and raises
``ValueError`` with a one-line message that names the parameter and the allowed range,
e.g. ``p must be in [0, 1], got 1.5``. The CLI prints that line and exits with code 2.

Traced inputs (inside ``jax.jit``, ``vmap`` or ``grad``) cannot be inspected without
forcing a host sync, so they are passed through unchecked: out-of-range traced values
give NaN or meaningless numbers, never an exception. Validate at the boundary (the
sweep driver does, on the whole grid, before compiling).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np

__all__ = [
    "check_choice",
    "check_int",
    "check_not_both_zero",
    "check_range",
    "check_strings",
    "is_concrete",
]


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values we can read now (not a JAX tracer)."""
    return not isinstance(x, jax.core.Tracer)


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return f"{v:g}"


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_s = "-inf" if lo == -math.inf else _fmt(lo)
    hi_s = "inf" if hi == math.inf else _fmt(hi)
    return f"{left}{lo_s}, {hi_s}{right}"


def check_range(
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_inf: bool = False,
) -> None:
    """Raise ``ValueError`` unless every element of ``value`` lies in the interval.

    NaN is always rejected; infinities only when ``allow_inf`` (and the interval admits them).
    Tracers pass unchecked (see the module docstring).
    """
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        return
    interval = _interval(lo, hi, lo_open, hi_open)
    bad = np.isnan(arr)
    if not allow_inf:
        bad |= np.isinf(arr)
    finite = np.where(np.isnan(arr), 0.0, arr)
    bad |= (finite < lo) | (finite > hi)
    if lo_open:
        bad |= finite == lo
    if hi_open:
        bad |= finite == hi
    if bad.any():
        example = arr[bad].flat[0]
        where = "" if arr.ndim == 0 else f" (entry {int(np.flatnonzero(bad.ravel())[0])})"
        raise ValueError(
            f"{name} must be a number in {interval}, got {_fmt(float(example))}{where}"
        )


def check_int(name: str, value: Any, lo: int = 1, hi: float = math.inf) -> None:
    """Like :func:`check_range` but also requires whole numbers (sizes, counts)."""
    check_range(name, value, lo, hi)
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if arr.size and (np.round(arr) != arr).any():
        example = arr[np.round(arr) != arr].flat[0]
        raise ValueError(f"{name} must be a whole number >= {lo}, got {_fmt(float(example))}")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed`` (a sequence, set or dict keys).

    The message lists the choices in the order given, e.g.
    ``data must be one of replace, accumulate, got 'keep'``.

    Example:
        >>> check_choice("data", "replace", ("replace", "accumulate"))
        >>> check_choice("data", "keep", ("replace", "accumulate"))
        Traceback (most recent call last):
        ...
        ValueError: data must be one of replace, accumulate, got 'keep'
    """
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def check_not_both_zero(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Reject points where ``a`` and ``b`` are both zero (e.g. phi = psi = 0: nothing kept)."""
    if a is None or b is None or not (is_concrete(a) and is_concrete(b)):
        return
    aa, bb = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    if ((aa == 0) & (bb == 0)).any():
        raise ValueError(
            f"{name_a} and {name_b} must not both be 0 (the verifier would keep nothing)"
        )


def check_strings(name: str, texts: Any) -> list[str]:
    """``texts`` as a list of strings; ``TypeError`` for one bare string or a non-string entry."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of strings, not one string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name} must hold strings, got {type(t).__name__} (entry {i})")
    return texts
