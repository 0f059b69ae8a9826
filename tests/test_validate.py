"""The shared input checks (``gmmcollapse._validate``): honest range text, strings refused,
shapes named, and the domains every guarded function declares are consistent."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import gmmcollapse.theory as T
from gmmcollapse._validate import (
    Interval,
    NotANumberError,
    check_broadcast,
    check_int,
    check_range,
)
from gmmcollapse.gmm import SimSpec, make_params, validate_params
from gmmcollapse.gmm.predict import DOMAINS
from gmmcollapse.gmm.spec import PARAM_DEFAULTS

INF = math.inf


@pytest.mark.parametrize(
    "interval, text",
    [
        (Interval(0.0), "[0, inf)"),
        (Interval(0.0, allow_inf=True), "[0, inf]"),
        (Interval(0.0, lo_open=True, allow_inf=True), "(0, inf]"),
        (Interval(), "(-inf, inf)"),
        (Interval(allow_inf=True), "[-inf, inf]"),
        (Interval(0.0, 1.0), "[0, 1]"),
        (Interval(0.0, 1.0, lo_open=True, hi_open=True), "(0, 1)"),
    ],
)
def test_range_text_is_honest_about_infinity(interval, text):
    assert str(interval) == text
    # the text's brackets agree with what is accepted
    for end, closed in ((interval.lo, text[0] == "["), (interval.hi, text[-1] == "]")):
        assert bool(interval.contains(np.float64(end), np)) == closed


def test_snr_inf_is_refused_with_an_honest_range():
    with pytest.raises(ValueError, match=r"^snr must be a number in \[0, inf\), got inf$"):
        check_range("snr", INF, 0.0)
    spec = SimSpec(n_max=100, d=10)
    with pytest.raises(ValueError, match=r"^snr must be a number in \[0, inf\), got inf$"):
        validate_params(make_params(100, INF), spec)
    check_range("tau", -INF, allow_inf=True)  # where inf is allowed it stays allowed
    with pytest.raises(ValueError, match=r"^tau must be a number in \[-inf, inf\], got nan$"):
        check_range("tau", math.nan, allow_inf=True)


def test_strings_are_not_numbers():
    for bad in ("0.3", b"0.3", np.array(["0.3"]), ["0.3", 0.5], np.array([1 + 2j])):
        with pytest.raises(NotANumberError, match="^p must be a (real )?number"):
            check_range("p", bad, 0.0, 1.0)
    assert issubclass(NotANumberError, TypeError) and issubclass(NotANumberError, ValueError)
    with pytest.raises(ValueError, match="^n must be a number, got the string '3'"):
        check_int("n", "3")
    check_range("p", [0.3, 0.5], 0.0, 1.0)  # numbers in a list are fine
    check_int("n", np.array([2, 3]))


def test_check_int_messages_are_unchanged():
    with pytest.raises(ValueError, match=r"^n must be a number in \[1, inf\), got 0$"):
        check_int("n", 0)
    with pytest.raises(ValueError, match=r"^n must be a whole number >= 1, got 2\.5$"):
        check_int("n", 2.5)
    with pytest.raises(ValueError, match=r"^k must be a number in \[1, 10\], got 11 \(entry 1\)$"):
        check_int("k", [3, 11], 1, 10)


def test_broadcast_errors_name_both_arguments():
    check_broadcast({"a": (3,), "b": (), "c": (2, 1)})
    with pytest.raises(ValueError, match=r"^c \(shape \(2,\)\) does not broadcast with a "):
        check_broadcast({"a": (3,), "b": (1,), "c": (2,)})


def _guarded():
    for name in T.__all__:
        fn = getattr(T, name)
        wrapped = inspect.unwrap(fn, stop=lambda f: hasattr(f, "domains"))
        if hasattr(wrapped, "domains"):
            yield name, wrapped


def test_every_theory_function_declares_its_domains():
    guarded = dict(_guarded())
    functions = {n for n in T.__all__ if not inspect.isclass(getattr(T, n)) and n != "checked"}
    assert set(guarded) == functions
    for name, fn in guarded.items():
        params = inspect.signature(fn).parameters
        numeric = {
            k
            for k, p in params.items()
            if k not in ("generator", "data", "bias") and not isinstance(p.default, str)
        }
        assert set(fn.domains) == numeric, name


@pytest.mark.parametrize("name, fn", list(_guarded()))
def test_substitutes_lie_inside_every_domain_and_rule(name, fn):
    """Invalid traced entries are replaced by each domain's ``safe`` value: it must be valid."""
    safe = {k: np.float64(spec.domain.safe) for k, spec in fn.domains.items()}
    for k, spec in fn.domains.items():
        assert bool(spec.domain.contains(safe[k], np)), (name, k)
    for rule in fn.rules:
        assert bool(rule.holds(*(safe[k] for k in rule.names))), (name, rule.names)


def test_predict_domains_cover_every_parameter():
    assert set(DOMAINS) == set(PARAM_DEFAULTS) | {"n", "d", "snr"}
