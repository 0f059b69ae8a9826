"""Input checks shared by the theory, the feedback kernel, the simulation and the CLI.

**Concrete inputs** (Python numbers, NumPy arrays, JAX arrays outside a trace) are checked
*before* any compute: a bad value raises ``ValueError`` with a one-line message that names the
parameter and the allowed range, e.g. ``p must be a number in [0, 1], got 1.5``. The CLI
prints that line and exits with code 2. Strings are not numbers (``"0.3"`` is refused), and
arguments that do not broadcast together are named (``p (shape (2,)) does not broadcast with
n (shape (3,))``) instead of failing later inside JAX.

**Traced inputs** (inside ``jax.jit``, ``vmap`` or ``grad``) cannot be inspected without a host
sync. Functions guarded here (:func:`validated`, :func:`guard`) then behave like
``jax.scipy``: every output is NaN where a traced input lies outside its domain (NaN inputs
included), booleans are False there, and the valid entries are bit for bit what an eager call
gives. Invalid traced entries are replaced by an in-domain value before the computation (the
"double where" trick), so they cannot make a solver loop run long or spoil a gradient.

**Errors instead of NaN**: :func:`checked` wraps a function with
:mod:`jax.experimental.checkify`, so a traced out-of-domain input raises ``ValueError``
naming the parameter, e.g. ``checked(f)(jnp.nan)``.

Ranges are :class:`Interval` objects; their text is honest about the end points
(``[0, inf)`` when infinity is refused, ``[-inf, inf]`` when it is allowed).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Arg",
    "Interval",
    "NotANumberError",
    "Rule",
    "check_choice",
    "check_int",
    "check_not_both_zero",
    "check_range",
    "check_strings",
    "checked",
    "guard",
    "is_concrete",
    "nan_outside",
    "validated",
]


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values we can read now (not a JAX tracer)."""
    return not isinstance(x, jax.core.Tracer)


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return f"{v:g}"


class NotANumberError(TypeError, ValueError):
    """A parameter that must be a number got something else (a string, say).

    Both a ``TypeError`` and a ``ValueError``: callers that turn bad input into a one-line
    error (the CLI) catch it like any other bad value.
    """


def _numbers(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 NumPy array; :class:`NotANumberError` naming ``name`` otherwise."""
    if isinstance(value, (str, bytes)):
        raise NotANumberError(f"{name} must be a number, got the string {value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind in "USVc" or (
        arr.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in arr.flat)
    ):
        raise NotANumberError(f"{name} must be a real number, got {value!r}")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise NotANumberError(f"{name} must be a real number, got {value!r}") from None


@dataclass(frozen=True)
class Interval:
    """The allowed values of one parameter: an interval of the extended real line.

    NaN is never inside. ``+-inf`` is inside only with ``allow_inf`` (and when the interval
    reaches it); ``whole`` also requires whole numbers. ``what`` replaces the range text in
    messages (e.g. ``"boolean (or 0/1)"``).
    """

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    allow_inf: bool = False
    whole: bool = False
    what: str | None = None

    def __str__(self) -> str:
        left = "(" if self.lo_open or (self.lo == -math.inf and not self.allow_inf) else "["
        right = ")" if self.hi_open or (self.hi == math.inf and not self.allow_inf) else "]"
        lo_s = "-inf" if self.lo == -math.inf else _fmt(self.lo)
        hi_s = "inf" if self.hi == math.inf else _fmt(self.hi)
        return f"{left}{lo_s}, {hi_s}{right}"

    @staticmethod
    def _floats(x: Any, xp: Any) -> Any:
        x = xp.asarray(x)
        return x if xp.issubdtype(x.dtype, xp.floating) else x.astype(float)

    def in_range(self, x: Any, xp: Any = jnp) -> Any:
        """Elementwise: ``x`` lies in the interval (whole or not). ``xp`` is ``np`` or ``jnp``."""
        x = self._floats(x, xp)
        ok = ~xp.isnan(x)
        if not self.allow_inf:
            ok = ok & xp.isfinite(x)
        ok = ok & ((x > self.lo) if self.lo_open else (x >= self.lo))
        ok = ok & ((x < self.hi) if self.hi_open else (x <= self.hi))
        return ok

    def contains(self, x: Any, xp: Any = jnp) -> Any:
        """Elementwise membership (``xp`` is ``np`` or ``jnp``): the traced domain mask."""
        ok = self.in_range(x, xp)
        if self.whole:
            x = self._floats(x, xp)
            ok = ok & (xp.round(x) == x)
        return ok

    @functools.cached_property
    def safe(self) -> float:
        """A value inside the interval, substituted for invalid traced entries."""
        tries = [1.0, 0.0, self.lo + 1.0, self.hi - 1.0]
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            tries.insert(0, 0.5 * (self.lo + self.hi))
        for v in tries:
            if bool(self.contains(np.float64(v), np)):
                return v
        raise ValueError(f"no representative value in {self}")  # pragma: no cover

    def check(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` unless every element of a concrete ``value`` is inside.

        ``None`` and tracers pass (tracers are masked by :func:`guard` instead).
        """
        if value is None or not is_concrete(value):
            return
        arr = _numbers(name, value)
        if arr.size == 0:
            return
        for bad, what in (
            (~self.in_range(arr, np), self.what or f"a number in {self}"),
            (~self.contains(arr, np), self.what or f"a whole number >= {_fmt(self.lo)}"),
        ):
            if bad.any():
                example = float(arr[bad].flat[0])
                where = "" if arr.ndim == 0 else f" (entry {int(np.flatnonzero(bad.ravel())[0])})"
                raise ValueError(f"{name} must be {what}, got {_fmt(example)}{where}")


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

    NaN is always rejected; infinities only when ``allow_inf`` (and the interval admits them);
    strings are not numbers. Tracers pass unchecked (see the module docstring).

    Example:
        >>> check_range("snr", float("inf"), 0.0)
        Traceback (most recent call last):
        ...
        ValueError: snr must be a number in [0, inf), got inf
    """
    Interval(lo, hi, lo_open, hi_open, allow_inf).check(name, value)


def check_int(name: str, value: Any, lo: int = 1, hi: float = math.inf) -> None:
    """Like :func:`check_range` but also requires whole numbers (sizes, counts)."""
    Interval(lo, hi, whole=True).check(name, value)


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


def check_strings(name: str, texts: Any) -> list[str]:
    """``texts`` as a list of strings; ``TypeError`` for one bare string or a non-string entry."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of strings, not one string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name} must hold strings, got {type(t).__name__} (entry {i})")
    return texts


#: domains shared by many parameters
REAL = Interval()  # (-inf, inf): angles, shifts
EXTENDED = Interval(allow_inf=True)  # [-inf, inf]: margins, CDF limits
NONNEG = Interval(0.0)  # [0, inf)
POSITIVE = Interval(0.0, lo_open=True)  # (0, inf)
POSITIVE_OR_INF = Interval(0.0, lo_open=True, allow_inf=True)  # (0, inf]: sample sizes
NONNEG_OR_INF = Interval(0.0, allow_inf=True)  # [0, inf]
UNIT = Interval(0.0, 1.0)  # [0, 1]: rates, probabilities
OPEN_UNIT = Interval(0.0, 1.0, lo_open=True, hi_open=True)  # (0, 1): confidence levels
COUNT = Interval(0.0, whole=True)  # whole numbers >= 0
FLAG = Interval(0.0, 1.0, whole=True, what="boolean (or 0/1)")


# ---------------------------------------------------------------- joint rules


@dataclass(frozen=True)
class Rule:
    """A condition on several parameters together, e.g. phi and psi not both 0.

    ``holds`` is elementwise and works on NumPy and JAX arrays alike (``&``, ``|``,
    comparisons, arithmetic). ``message`` is the ``ValueError`` text for concrete inputs, or a
    callable ``(*arrays, index) -> str`` given the broadcast NumPy arrays and the first failing
    flat index. The in-domain values of the parameters (:attr:`Interval.safe`) must satisfy it.
    """

    names: tuple[str, ...]
    holds: Callable[..., Any]
    message: str | Callable[..., str]
    summary: str = ""  # the message without values (for traced inputs), if message is callable

    @property
    def text(self) -> str:
        return self.message if isinstance(self.message, str) else self.summary

    def check(self, values: Mapping[str, Any]) -> None:
        vals = [values.get(k) for k in self.names]
        if any(v is None or not is_concrete(v) for v in vals):
            return
        arrays = np.broadcast_arrays(*(_numbers(k, v) for k, v in zip(self.names, vals)))
        ok = np.asarray(self.holds(*arrays))
        if not ok.all():
            msg = self.message
            if callable(msg):
                msg = msg(*arrays, int(np.flatnonzero(~ok.ravel())[0]))
            raise ValueError(msg)


KEEPS_SOMETHING = Rule(
    ("phi", "psi"),
    lambda phi, psi: (phi != 0) | (psi != 0),
    "phi and psi must not both be 0 (the verifier would keep nothing)",
)


def check_not_both_zero(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Reject points where ``a`` and ``b`` are both zero (e.g. phi = psi = 0: nothing kept)."""
    Rule(
        (name_a, name_b),
        lambda x, y: (x != 0) | (y != 0),
        f"{name_a} and {name_b} must not both be 0 (the verifier would keep nothing)",
    ).check({name_a: a, name_b: b})


# ---------------------------------------------------------------- traced inputs


@dataclass(frozen=True)
class Arg:
    """How one parameter of a guarded function is checked.

    Attributes:
        domain: its allowed values.
        core: trailing axes that belong to one point (e.g. 1 for a group axis): the domain
            mask is reduced over them. ``None``: every axis (a pooled sample: one mask entry).
        static: a Python number fixed at trace time (a round count, a tolerance): checked when
            concrete, never broadcast or masked.
    """

    domain: Interval
    core: int | None = 0
    static: bool = False


def _arg(spec: Arg | Interval) -> Arg:
    return spec if isinstance(spec, Arg) else Arg(spec)


# Whether guards emit checkify checks (inside `checked`), and how deep in guarded calls we
# are: only the outermost guarded call checks, so no check lands inside a library jit cache.
# _CHECKING holds the caller's jax_enable_x64 (checkify's error codes follow it) or None.
_CHECKING: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "gmm_checking", default=None
)
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("gmm_guard_depth", default=0)


def _batch_shape(name: str, value: Any, spec: Arg) -> tuple[int, ...]:
    shape = tuple(np.shape(value))
    if spec.core is None:
        return ()
    if len(shape) < spec.core:
        raise ValueError(f"{name} needs at least {spec.core} axes, got shape {shape}")
    return shape[: len(shape) - spec.core]


def check_broadcast(
    shapes: Mapping[str, tuple[int, ...]], full: Mapping[str, tuple[int, ...]] | None = None
) -> None:
    """``ValueError`` naming two arguments whose shapes do not broadcast together.

    ``shapes`` are the arguments' point (batch) shapes; ``full`` their whole shapes where
    those differ (an argument with a trailing axis per point). Shapes broadcast together
    exactly when every pair does, so a failing argument always has an earlier partner.
    """
    full = full or {}

    def show(name, shape):
        whole = tuple(full.get(name, shape))
        return f"{name} (shape {whole}{'' if whole == shape else f', points {shape}'})"

    seen: list[tuple[str, tuple[int, ...]]] = []
    for name, shape in shapes.items():
        for other, other_shape in seen:
            if not _broadcasts(other_shape, shape):
                raise ValueError(
                    f"{show(name, shape)} does not broadcast with {show(other, other_shape)}"
                )
        if shape:
            seen.append((name, shape))


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def _reduce(ok: Any, value: Any, spec: Arg) -> Any:
    if spec.core is None:
        return jnp.all(ok)
    if spec.core:
        return jnp.all(ok, axis=tuple(range(-spec.core, 0)))
    return ok


def _first_bad(value: Any, ok: Any) -> Any:
    # a bad entry to show (NaN if there is one, else the largest); no integer ops, whose
    # width would depend on the x64 setting at lowering time
    bad = jnp.where(ok, -jnp.inf, jnp.asarray(value, float))
    return jnp.max(bad)


def _check(pred: Any, msg: str, *fmt: Any) -> None:
    from jax.experimental import checkify

    # checkify's error codes have the integer width of the caller's x64 setting
    with jax.enable_x64(_CHECKING.get()):
        checkify.check(pred, msg, *fmt)


def guard(
    values: Mapping[str, Any],
    specs: Mapping[str, Arg | Interval],
    rules: Iterable[Rule] = (),
) -> tuple[dict[str, Any], Any]:
    """Check ``values`` against ``specs``; return ``(values, mask)`` for the computation.

    Concrete values: type, broadcast, range and ``rules`` checks, raising ``ValueError``.
    Traced values: each invalid entry is replaced by an in-domain one (the returned dict), and
    ``mask`` (a boolean JAX array of the traced arguments' broadcast batch shape) is False at
    the points where any traced input, or a rule, is violated; pass it to :func:`nan_outside`.
    ``mask`` is ``None`` when nothing is traced, and in a guarded call nested in another
    (whose guard already did the work); then the values come back unchanged. Inside
    :func:`checked` the guard also emits ``checkify`` checks naming the parameter.
    ``None`` values are skipped everywhere.
    """
    specs = {k: _arg(s) for k, s in specs.items()}
    rules = tuple(rules)
    present = {k: v for k, v in values.items() if k in specs and v is not None}
    for k, v in present.items():
        if is_concrete(v):
            _numbers(k, v)
    batched = {
        k: v for k, v in present.items() if not specs[k].static and specs[k].core is not None
    }
    check_broadcast(
        {k: _batch_shape(k, v, specs[k]) for k, v in batched.items()},
        {k: tuple(np.shape(v)) for k, v in batched.items()},
    )
    for k, v in present.items():
        specs[k].domain.check(k, v)
    for rule in rules:
        rule.check(present)
    traced = [k for k, v in present.items() if not is_concrete(v)]
    if not traced or _DEPTH.get() > 0:
        # nothing traced, or a call from inside another guarded function, whose own guard
        # has already made its traced inputs valid
        return dict(values), None
    checking = _CHECKING.get() is not None
    out = dict(values)
    masks = []
    for k in traced:
        spec = specs[k]
        v = present[k]
        ok = spec.domain.contains(v)
        if checking:
            what = spec.domain.what or f"a number in {spec.domain}"
            _check(jnp.all(ok), f"{k} must be {what}, got {{}}", _first_bad(v, ok))
        if spec.static:
            continue
        if jnp.asarray(v).dtype != bool:
            out[k] = jnp.where(ok, v, spec.domain.safe)
        masks.append(_reduce(ok, v, spec))
    for rule in rules:
        if not any(k in traced for k in rule.names) or any(k not in present for k in rule.names):
            continue
        ok = jnp.asarray(rule.holds(*(jnp.asarray(out[k]) for k in rule.names)))
        if checking:
            _check(jnp.all(ok), rule.text.replace("{", "{{").replace("}", "}}"))
        for k in rule.names:
            if k in traced:
                full = jnp.broadcast_to(out[k], np.broadcast_shapes(np.shape(out[k]), ok.shape))
                out[k] = jnp.where(jnp.broadcast_to(ok, full.shape), full, specs[k].domain.safe)
        masks.append(ok)
    if not masks:
        return out, None
    # explicit broadcasting throughout: callers may run with jax_numpy_rank_promotion="raise"
    shape = np.broadcast_shapes(*(m.shape for m in masks))
    mask = functools.reduce(jnp.logical_and, (jnp.broadcast_to(m, shape) for m in masks))
    return out, mask


def _align(mask: Any, shape: tuple[int, ...]) -> Any:
    """``mask`` shaped to apply to an output of ``shape``: the batch axes lead the output
    (extra trailing axes: a direction, a rounds axis); otherwise plain broadcasting; otherwise
    (an output that does not carry the batch) the mask's ``all``."""
    shape = tuple(shape)
    if shape[: mask.ndim] == tuple(mask.shape):
        lead = mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim))
        return jnp.broadcast_to(lead, shape)
    if _broadcasts(mask.shape, shape) and np.broadcast_shapes(mask.shape, shape) == shape:
        return jnp.broadcast_to(mask, shape)
    return jnp.broadcast_to(jnp.all(mask), shape)


def nan_outside(mask: Any, tree: Any) -> Any:
    """Every leaf of ``tree`` with NaN (floats) or False (booleans) where ``mask`` is False.

    Integer leaves (counts) are returned unchanged. ``mask = None`` returns ``tree``.
    """
    if mask is None:
        return tree

    def fill(leaf):
        leaf = jnp.asarray(leaf)
        m = _align(mask, leaf.shape)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            return jnp.where(m, leaf, jnp.nan)
        if leaf.dtype == bool:
            return leaf & m
        return leaf

    return jax.tree.map(fill, tree)


def validated(rules: Iterable[Rule] = (), **specs: Arg | Interval) -> Callable:
    """Decorator: :func:`guard` the named parameters, then :func:`nan_outside` the result.

    Concrete bad inputs raise before the function runs; traced ones give NaN at their points.
    With nothing traced the function is called exactly as given. The specs are kept on the
    wrapper as ``domains`` (and the rules as ``rules``) for documentation and tests.
    """
    rules = tuple(rules)

    def deco(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        unknown = set(specs) - set(sig.parameters)
        if unknown:  # pragma: no cover - a programming error
            raise TypeError(f"{fn.__name__} has no parameter(s) {sorted(unknown)}")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            values, mask = guard({k: bound.arguments[k] for k in specs}, specs, rules)
            token = _DEPTH.set(_DEPTH.get() + 1)
            try:
                if mask is None:
                    return fn(*args, **kwargs)
                bound.arguments.update(values)
                return nan_outside(mask, fn(*bound.args, **bound.kwargs))
            finally:
                _DEPTH.reset(token)

        wrapper.domains = {k: _arg(s) for k, s in specs.items()}  # type: ignore[attr-defined]
        wrapper.rules = rules  # type: ignore[attr-defined]
        return wrapper

    return deco


def checked(fn: Callable, *, jit: bool = True) -> Callable:
    """``fn`` with errors instead of NaN for out-of-domain traced inputs (``checkify``).

    The returned function traces ``fn`` (every argument: close over strings and other static
    values), runs it with :func:`jax.experimental.checkify.checkify` (and ``jax.jit`` unless
    ``jit=False``), and raises ``ValueError`` naming the first parameter out of its domain, e.g.
    ``p must be a number in [0, 1], got 1.5``. Works through ``vmap`` inside ``fn``. Pass a
    plain Python function, not one that is also ``jax.jit``-compiled elsewhere (a jit cache
    shared with unchecked calls would keep the checks). Concrete bad values met while
    tracing raise their usual ``ValueError``.

    Example:
        >>> import jax.numpy as jnp
        >>> from gmmcollapse import theory as T
        >>> f = checked(lambda p: T.keep_fraction(p, 1.0, 0.5))
        >>> float(f(0.5))
        0.75
        >>> f(jnp.nan)
        Traceback (most recent call last):
        ...
        ValueError: p must be a number in [0, 1], got nan
    """
    from jax.experimental import checkify

    def run(*args, **kwargs):
        token = _CHECKING.set(bool(jax.config.jax_enable_x64))
        try:
            return fn(*args, **kwargs)
        finally:
            _CHECKING.reset(token)

    inner = checkify.checkify(run)
    if jit:
        inner = jax.jit(inner)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        err, out = inner(*args, **kwargs)
        msg = err.get()
        if msg is not None:
            raise ValueError(
                re.sub(r" \((`check` failed|check failed at).*$", "", msg.splitlines()[0])
            )
        return out

    return wrapper
