"""Property tests for the number encodings of gmmcollapse.eigen.encodings (Feng et al., arXiv 2406.07515, eigenvalue experiment)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmmcollapse.eigen.encodings import ENCODINGS

NAMES = list(ENCODINGS)
N = 16  # numbers per hypothesis example: one fixed shape, so each jitted function compiles once

_jitted = {
    name: (jax.jit(e.encode), jax.jit(e.decode), jax.jit(e.round_sig))
    for name, e in ENCODINGS.items()
}


def _ids(enc, tokens):
    """Token strings (space separated) -> ids; unknown strings may be given as ints."""
    index = {s: i for i, s in enumerate(enc.vocab)}
    return jnp.array([t if isinstance(t, int) else index[t] for t in tokens], dtype=jnp.int32)


def _ulp_bound(x):
    """Half a unit in the 3rd significant digit of x, with slack for float rounding."""
    ax = np.abs(x)
    return 0.5 * 10.0 ** (np.floor(np.log10(ax)) - 2) * (1 + 1e-12)


def _representable(name):
    """Floats sign * mant * 10**k spread over the encoding's whole non-clipped range."""
    enc = ENCODINGS[name]
    lo, hi = enc.emin + 2, enc.emax + 2  # |x| from 10**(emin+2) = min_value to ~10**(emax+3)

    def build(sign, mant, k):
        x = sign * mant * 10.0**k
        return x if enc.min_value <= abs(x) <= 999.4 * 10.0**enc.emax else sign * enc.min_value

    return st.builds(
        build,
        st.sampled_from([-1.0, 1.0]),
        st.floats(1.0, 10.0, exclude_max=True),
        st.integers(lo, hi),
    )


# Exact decimal ties in decimal (1.005, 2.675 are not binary ties) and in binary (1005.0, 0.1255).
TIES = [1.005, 2.675, 0.1255, 1005.0, 1015.0, 1235.0, 1245.0, 99950.0, 0.9995, 999.5, 123.45]


@pytest.mark.parametrize("name", NAMES)
def test_vocab_sizes(name):
    expected = {"P10": 2 + 10 + 201, "P1000": 2 + 1000 + 201, "B1999": 1999 + 201}
    expected["FP15"] = 2 * 900 * 16 + 1
    enc = ENCODINGS[name]
    assert enc.size == len(enc.vocab) == expected[name]
    assert len(set(enc.vocab)) == enc.size  # token strings are unique
    assert enc.tokens_per_number == {"P10": 5, "P1000": 3, "B1999": 2, "FP15": 1}[name]


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_roundtrip_and_error_bound(name, data):
    xs = data.draw(
        st.lists(_representable(name) | st.sampled_from([0.0, *TIES]), min_size=N, max_size=N)
    )
    encode, decode, round_sig = _jitted[name]
    x = jnp.array(xs)
    ids = encode(x)
    values, valid = decode(ids)
    r = round_sig(x)
    assert ids.dtype == jnp.int32 and ids.shape == (N * ENCODINGS[name].tokens_per_number,)
    assert bool(valid.all())
    np.testing.assert_array_equal(np.asarray(values), np.asarray(r))  # exact
    xn, rn = np.asarray(x), np.asarray(r)
    nz = xn != 0
    assert np.all(np.abs(rn[nz] - xn[nz]) <= _ulp_bound(xn[nz]))
    assert np.all(rn[~nz] == 0)
    np.testing.assert_array_equal(np.asarray(round_sig(r)), rn)  # idempotent
    np.testing.assert_array_equal(np.asarray(encode(r)), np.asarray(ids))


@given(n=st.integers(1, 10**10))
def test_rounding_matches_python_format_on_integers(n):
    # For integers up to 10 digits x / 10**k is exact enough that rounding (ties to even) must
    # agree with Python's correctly rounded formatting.
    for name in ("P10", "B1999"):
        assert float(ENCODINGS[name].round_sig(float(n))) == float(f"{float(n):.2e}")


@given(sign=st.sampled_from("+-"), m=st.integers(100, 999), e=st.integers(-22, 22))
def test_decoded_value_is_nearest_double_to_the_decimal(sign, m, e):
    x = float(f"{sign}{m}e{e}")
    enc = ENCODINGS["P1000"]
    ids = enc.encode(jnp.array([x]))
    assert enc.to_strings(ids) == f"{sign} {m} E{e}"
    assert float(enc.decode(ids)[0][0]) == x
    assert float(enc.round_sig(x)) == x


def test_known_encodings():
    x = jnp.array([3.14159, -0.0271828, 0.0, 1.005, 999.6])
    assert ENCODINGS["P10"].to_strings(ENCODINGS["P10"].encode(x)) == (
        "+ 3 1 4 E-2 - 2 7 2 E-4 + 0 0 0 E0 + 1 0 0 E-2 + 1 0 0 E1"
    )
    assert ENCODINGS["P1000"].to_strings(ENCODINGS["P1000"].encode(x)) == (
        "+ 314 E-2 - 272 E-4 + 0 E0 + 100 E-2 + 100 E1"
    )
    assert ENCODINGS["B1999"].to_strings(ENCODINGS["B1999"].encode(x)) == (
        "314 E-2 -272 E-4 0 E0 100 E-2 100 E1"
    )
    assert ENCODINGS["FP15"].to_strings(ENCODINGS["FP15"].encode(x)) == (
        "+314E-2 -272E-4 0 +100E-2 +100E1"
    )


def _slot_ranges(name):
    """Per-slot id ranges [lo, hi) of well-typed groups (mantissa not necessarily normalised)."""
    return {
        "P10": [(0, 2), (2, 12), (2, 12), (2, 12), (12, 213)],
        "P1000": [(0, 2), (2, 1002), (1002, 1203)],
        "B1999": [(0, 1999), (1999, 2200)],
        "FP15": [(0, 28801)],
    }[name]


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_random_tokens_never_raise_and_valid_iff_canonical(name, data):
    enc = ENCODINGS[name]
    encode, decode, round_sig = _jitted[name]
    t = enc.tokens_per_number
    # Half fully random ids (also outside the vocabulary), half well-typed slots.
    anything = st.integers(-3, enc.size + 3)
    groups = []
    for _ in range(N):
        if data.draw(st.booleans()):
            groups += data.draw(st.lists(anything, min_size=t, max_size=t))
        else:
            groups += [data.draw(st.integers(lo, hi - 1)) for lo, hi in _slot_ranges(name)]
    ids = jnp.array(groups, dtype=jnp.int32)
    values, valid = decode(ids)  # must not raise
    assert values.shape == valid.shape == (N,) and values.dtype == jnp.float64
    v, ok = np.asarray(values), np.asarray(valid)
    assert np.all(np.isnan(v[~ok])) and not np.any(np.isnan(v[ok]))
    np.testing.assert_array_equal(np.asarray(round_sig(values))[ok], v[ok])
    # valid <=> the group is exactly what the encoder writes for the decoded value
    re = np.asarray(encode(jnp.where(valid, values, 0.0))).reshape(N, t)
    same = np.all(re == np.asarray(ids).reshape(N, t), axis=1)
    np.testing.assert_array_equal(same, ok)


MALFORMED = {
    "P10": [
        ["3", "+", "1", "4", "E-2"],  # digit where the sign must be
        ["+", "3", "1", "4", "5"],  # digit where the exponent must be
        ["+", "E1", "1", "4", "E-2"],  # exponent where a digit must be
        ["+", "0", "4", "2", "E1"],  # mantissa not normalised
        ["-", "0", "0", "0", "E0"],  # non-canonical zero
        ["+", "0", "0", "0", "E3"],  # non-canonical zero
        ["+", "3", "1", "4", 213],  # id outside the vocabulary
        [-1, "3", "1", "4", "E0"],
    ],
    "P1000": [
        ["+", "42", "E1"],
        ["E1", "314", "E-2"],
        ["+", "+", "E0"],
        ["+", "314", "+"],
        ["+", "0", "E-1"],
        ["+", "314", 1203],
    ],
    "B1999": [["E1", "E1"], ["314", "314"], ["42", "E0"], ["0", "E5"], ["-7", "E0"], [2200, "E0"]],
    "FP15": [[-1], [28801], [10**6]],
}


@pytest.mark.parametrize("name", NAMES)
def test_malformed_examples_are_invalid_also_in_mixed_jitted_batch(name):
    enc = ENCODINGS[name]
    good = enc.encode(jnp.array([1.5, -2.25e-3]))
    rows = [jnp.concatenate([good, _ids(enc, bad)]) for bad in MALFORMED[name]]
    batch = jnp.stack(rows)  # (rows, 3 numbers): two valid numbers then one malformed
    values, valid = jax.jit(enc.decode)(batch)
    assert valid.shape == (len(rows), 3)
    np.testing.assert_array_equal(np.asarray(valid[:, :2]), True)
    np.testing.assert_array_equal(
        np.asarray(values[:, :2]), np.array([[1.5, -2.25e-3]] * len(rows))
    )
    assert not bool(valid[:, 2].any()) and bool(jnp.isnan(values[:, 2]).all())


@pytest.mark.parametrize("name", NAMES)
def test_batch_shapes_jit_and_vmap(name, key):
    enc = ENCODINGS[name]
    t = enc.tokens_per_number
    x = jax.random.uniform(key, (2, 3, 5), minval=-10, maxval=10)
    ids = enc.encode(x)
    assert ids.shape == (2, 3, 5 * t) and ids.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(jax.jit(enc.encode)(x)), np.asarray(ids))
    np.testing.assert_array_equal(np.asarray(jax.vmap(enc.encode)(x)), np.asarray(ids))
    values, valid = enc.decode(ids)
    jv, jok = jax.jit(enc.decode)(ids)
    assert values.shape == valid.shape == (2, 3, 5)
    np.testing.assert_array_equal(np.asarray(jv), np.asarray(values))
    np.testing.assert_array_equal(np.asarray(jok), np.asarray(valid))
    np.testing.assert_array_equal(np.asarray(values), np.asarray(enc.round_sig(x)))
    assert isinstance(enc.to_strings(ids), list) and len(enc.to_strings(ids)[0]) == 3
    with pytest.raises(ValueError):
        enc.decode(ids[..., :-1] if t > 1 else jnp.zeros(()))


@pytest.mark.parametrize("name", NAMES)
def test_clipping(name):
    enc = ENCODINGS[name]
    top, bottom = enc.max_value, enc.min_value
    assert math.isclose(top, 999 * 10.0**enc.emax) and math.isclose(bottom, 10.0 ** (enc.emin + 2))
    x = jnp.array(
        [
            top * 10,  # overflow -> largest magnitude, sign kept
            -jnp.inf,
            top * 1.0004,  # rounds to 1.00e(emax+3), beyond the range -> clipped
            bottom,  # smallest normalised value, exact
            bottom * 0.9996,  # rounds up to the smallest value
            bottom * 0.9994,  # rounds below it -> flush to zero
            -bottom * 1e-3,
            1e-300,
            jnp.nan,  # encodes as zero
        ]
    )
    expected = [top, -top, top, bottom, bottom, 0.0, 0.0, 0.0, 0.0]
    values, valid = enc.decode(enc.encode(x))
    assert bool(valid.all())
    np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(enc.round_sig(x)), np.asarray(values))


def test_fp15_range():
    enc = ENCODINGS["FP15"]
    values, _ = enc.decode(enc.encode(jnp.array([1e-7, 9e-8, 1e9, -5e8])))
    np.testing.assert_allclose(np.asarray(values), [1e-7, 0.0, 9.99e8, -5e8], rtol=1e-15)


def test_float64_whatever_the_callers_x64_setting():
    """encode / decode / round_sig compute and return float64 even where the caller runs with
    x64 off (without the float64 context they return float32 values there)."""
    x = np.array([[0.12349999, 1.0005e3, -2.675, 7.77e-5, 123456.7]])
    for enc in ENCODINGS.values():
        ids64, r64 = np.asarray(enc.encode(x)), np.asarray(enc.round_sig(x))
        with jax.enable_x64(False):
            ids32, r32 = np.asarray(enc.encode(x)), np.asarray(enc.round_sig(x))
            v32, _ = enc.decode(ids32)
            assert not jax.config.jax_enable_x64
        v64, _ = enc.decode(ids64)
        assert r32.dtype == v32.dtype == np.float64, enc.name
        np.testing.assert_array_equal(ids32, ids64)
        np.testing.assert_array_equal(r32, r64)
        np.testing.assert_array_equal(np.asarray(v32), np.asarray(v64))
