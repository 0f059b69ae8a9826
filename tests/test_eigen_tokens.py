"""MatrixTokenizer (gmmcollapse.eigen.tokens): layout, round trips in every number encoding,
strict decoding of malformed targets (never raising, also under jit), vocabulary."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.eigen.encodings import ENCODINGS
from gmmcollapse.eigen.tokens import MatrixTokenizer
from gmmcollapse.models.transformer import BOS, EOS, N_SPECIAL, PAD, TransformerConfig

NAMES = list(ENCODINGS)
KS = [2, 3, 5]
B = 8  # rows per batch: one shape per (encoding, k), so each jitted function compiles once


@functools.partial(jax.jit, static_argnums=0)
def _decode(tok, ids):
    return tok.decode_tgt(ids)


@functools.partial(jax.jit, static_argnums=0)
def _encode_tgt(tok, x):
    return tok.encode_tgt(x)


@functools.partial(jax.jit, static_argnums=0)
def _bundle(tok, mats, x):
    """Everything the layout and round-trip checks need, in one compilation per tokenizer."""
    src, tgt = tok.encode_src(mats), tok.encode_tgt(x)
    body = tok.enc.decode(src[:, 2:] - tok.offset)
    want_body = tok.enc.round_sig(mats.reshape(mats.shape[0], -1))
    return src, tgt, body, want_body, tok.decode_tgt(tgt), tok.enc.round_sig(x)


def _matrices(k, seed=0):
    """(B, k, k) random symmetric matrices (NumPy: cheaper than compiling sample_matrices)."""
    a = np.random.default_rng(seed).uniform(-10, 10, (B, k, k))
    return np.triu(a) + np.swapaxes(np.triu(a, 1), -1, -2)


def _values(k, seed=0):
    """(B, k) eigenvalues: real ones, plus rows of zeros, ties, tiny / huge / non-finite values
    (every encoding clips or flushes them the same way in encode and round_sig)."""
    ev = np.flip(np.linalg.eigvalsh(_matrices(k, seed)), axis=-1).copy()
    special = [0.0, -0.0, 1.005, 999.5, -2.675, 1e-5, 3e7, -1e9, 1e-120, np.inf, -np.inf, np.nan]
    ev[1] = 0.0
    ev[2:] = np.resize(special, (B - 2, k)) * np.where(np.arange(k) % 2, 1.0, -1.0)
    ev[-1, 0] = 123.0  # a plain exactly representable value
    return ev


@pytest.fixture(scope="module", params=[(n, k) for n in NAMES for k in KS], ids=str)
def tok(request):
    name, k = request.param
    return MatrixTokenizer(name, k=k)


def test_layout_and_round_trip(tok):
    enc, k = tok.enc, tok.k
    mats, x = _matrices(k, 1), _values(k)
    src, tgt, (body, body_ok), want_body, (values, valid), want = _bundle(tok, mats, x)
    # source: "V<k> V<k>" then the k*k entries row by row in the number encoding
    assert src.shape == (B, tok.src_len) == (B, 2 + k * k * enc.tokens_per_number)
    assert src.dtype == jnp.int32
    np.testing.assert_array_equal(src[:, :2], tok.dim_token(k))
    assert bool(body_ok.all())
    np.testing.assert_array_equal(body, want_body)
    # target: "V<k>", the k numbers, EOS
    assert tgt.shape == (B, tok.tgt_len) == (B, 2 + k * enc.tokens_per_number)
    assert tgt.dtype == jnp.int32
    np.testing.assert_array_equal(tgt[:, 0], tok.dim_token(k))
    np.testing.assert_array_equal(tgt[:, -1], EOS)
    # no special or dimension token inside the numbers; every id fits the vocabulary
    for ids in (src[:, 2:], tgt[:, 1:-1]):
        assert bool(jnp.all(ids >= tok.offset)) and bool(jnp.all(ids < tok.vocab_size))
    # decode_tgt(encode_tgt(x)) is the encoding's rounding of x, exactly (NaN -> 0, clipping)
    assert valid.shape == (B,) and values.shape == (B, k) and bool(valid.all())
    np.testing.assert_array_equal(values, want)
    # a transformer sized from the tokenizer accepts these sequences
    TransformerConfig(tok.vocab_size, tok.src_len, tok.tgt_len)


def _corruptions(tok, row):
    """Named single-position corruptions of one valid target row (each must be invalid)."""
    n = tok.k * tok.enc.tokens_per_number
    other_k = tok.k + 1 if tok.k < tok.max_dim else tok.k - 1
    cases = {
        "wrong dim token": (0, tok.dim_token(other_k)),
        "number token instead of dim": (0, tok.offset),
        "PAD instead of dim": (0, PAD),
        "missing EOS (PAD)": (1 + n, PAD),
        "missing EOS (number)": (1 + n, tok.offset + 1),
        "EOS inside the numbers": (n, EOS),
        "EOS right after the dim token": (1, EOS),
        "PAD inside the numbers": (1, PAD),
        "BOS inside the numbers": (n, BOS),
        "dim token inside the numbers": (1, tok.dim_token(tok.k)),
        "out of vocabulary": (1, tok.vocab_size),
        "far out of vocabulary": (n, tok.vocab_size + 1000),
        "negative id": (1, -1),
    }
    out = {}
    for name, (pos, val) in cases.items():
        r = row.copy()
        r[pos] = val
        out[name] = r
    # a number group in range token by token but not canonical (per encoding)
    t = tok.enc.tokens_per_number
    r = row.copy()
    r[1 : 1 + t] = np.asarray(tok.enc.encode(np.zeros(1))) + tok.offset  # the canonical zero
    if tok.encoding == "P10":
        r[1] = tok.offset + 1  # "- 0 0 0 E0"
    elif tok.encoding == "P1000":
        r[2] = tok.offset + 2 + 42  # "+ 42 E0": mantissa below 100
    elif tok.encoding == "B1999":
        r[2] += 3  # "0 E3"
    else:  # FP15: every id of its vocabulary is canonical; take the first id past it
        r[1] = tok.offset + tok.enc.size
    out["non-canonical number"] = r
    return out


def test_malformed_targets_are_invalid(tok):
    """Every corruption of row 0 in its own batch copy; rows after it stay valid. Three PADs
    follow each row: tokens after the EOS position never make a row valid."""
    ids = np.asarray(_bundle(tok, _matrices(tok.k), _values(tok.k, seed=3))[1])
    cases = _corruptions(tok, ids[0])
    good = np.concatenate([ids, np.full((B, 3), PAD, ids.dtype)], axis=1)
    batch = np.repeat(good[None], len(cases), axis=0)  # (cases, B, L + 3)
    for c, row in enumerate(cases.values()):
        batch[c, 0, : tok.tgt_len] = row
    fns = [_decode] + ([lambda tok, ids: tok.decode_tgt(ids)] if tok.k == 3 else [])
    for fn in fns:  # jitted, and eagerly for one k per encoding
        values, valid = fn(tok, jnp.asarray(batch))
        values, valid = np.asarray(values), np.asarray(valid)
        for c, name in enumerate(cases):
            assert not valid[c, 0], name
            assert np.all(np.isnan(values[c, 0])), name
        assert valid[:, 1:].all()
        np.testing.assert_array_equal(values[:, 1:], values[:1, 1:].repeat(len(cases), 0))
        assert np.all(np.isfinite(values[:, 1:]))


def test_tokens_after_eos_are_ignored(tok):
    ids = np.asarray(_bundle(tok, _matrices(tok.k), _values(tok.k, seed=2))[1])
    junk = [PAD, BOS, EOS, tok.dim_token(1), tok.offset + 1, tok.vocab_size + 7, -3]
    tails = np.repeat(np.array(junk, ids.dtype)[:, None, None], B, axis=1)  # (7, B, 1)
    batch = np.concatenate(
        [np.repeat(ids[None], len(junk), 0), np.repeat(tails, 3, axis=2)], axis=2
    )
    values, valid = _decode(tok, jnp.asarray(batch))
    assert bool(valid.all())
    want = _bundle(tok, _matrices(tok.k), _values(tok.k, seed=2))[-1]  # round_sig
    np.testing.assert_array_equal(values, np.broadcast_to(want, values.shape))


@pytest.mark.parametrize("L", [0, 5])
def test_decode_tgt_short_rows(L):
    """Rows shorter than tgt_len (e.g. truncated generations) are invalid, not an error."""
    tok = MatrixTokenizer("P1000", k=2)
    ids = np.asarray(_bundle(tok, _matrices(2), _values(2))[1])[:, :L]
    assert L < tok.tgt_len
    values, valid = _decode(tok, ids)
    assert values.shape == (B, 2) and not bool(valid.any())
    assert bool(jnp.all(jnp.isnan(values)))


@pytest.mark.parametrize("name", NAMES)
def test_valid_iff_canonical_under_random_corruption(name):
    """Strict decoding: a (corrupted) target is valid exactly when it is what ``encode_tgt``
    emits for its decoded values; invalid rows are all-NaN. One or two random positions of
    each row get a random id (special, dimension, number or out-of-vocabulary)."""
    tok = MatrixTokenizer(name, k=3)
    rng = np.random.default_rng(0)
    n_rows = 256
    x = jnp.asarray(rng.normal(size=(n_rows, 3)) * 10.0 ** rng.integers(-3, 4, (n_rows, 1)))
    ids = np.array(_encode_tgt(tok, x))
    pools = [
        np.array([PAD, BOS, EOS]),
        np.arange(N_SPECIAL, tok.offset),
        np.arange(tok.offset, tok.vocab_size),
        np.array([tok.vocab_size, tok.vocab_size + 1, -1, 10**6]),
    ]
    for i in range(n_rows):
        for _ in range(1 + (i % 2)):
            pool = pools[rng.choice(4, p=[0.15, 0.1, 0.6, 0.15])]
            ids[i, rng.integers(tok.tgt_len)] = rng.choice(pool)
    values, valid = _decode(tok, jnp.asarray(ids))
    values, valid = np.asarray(values), np.asarray(valid)
    assert 0 < valid.sum() < n_rows  # both kinds occur
    canon = np.asarray(_encode_tgt(tok, np.where(valid[:, None], values, 0.0)))
    np.testing.assert_array_equal(valid, (canon == ids).all(axis=1))
    assert np.all(np.isnan(values[~valid])) and np.all(np.isfinite(values[valid]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("max_dim", [5, 10])
def test_vocab(name, max_dim):
    tok = MatrixTokenizer(name, k=min(5, max_dim), max_dim=max_dim)
    vocab = tok.vocab()
    assert len(vocab) == tok.vocab_size == N_SPECIAL + max_dim + ENCODINGS[name].size
    assert len(set(vocab)) == len(vocab)
    assert vocab[PAD] == "<pad>" and vocab[BOS] == "<bos>" and vocab[EOS] == "<eos>"
    for k in range(1, max_dim + 1):
        assert vocab[tok.dim_token(k)] == f"V{k}"
    assert tok.offset == N_SPECIAL + max_dim
    assert tuple(vocab[tok.offset :]) == ENCODINGS[name].vocab


def test_strings_of_an_encoded_target():
    tok = MatrixTokenizer("P10", k=2)
    mats, x = _matrices(2), _values(2)
    mats[0], x[0] = [[1.0, 2.0], [2.0, -5.0]], [3.14159, -0.0271828]
    src, ids = _bundle(tok, mats, x)[:2]
    vocab = tok.vocab()
    assert " ".join(vocab[i] for i in np.asarray(ids[0])) == "V2 + 3 1 4 E-2 - 2 7 2 E-4 <eos>"
    assert " ".join(vocab[i] for i in np.asarray(src[0])) == (
        "V2 V2 + 1 0 0 E-2 + 2 0 0 E-2 + 2 0 0 E-2 - 5 0 0 E-2"
    )


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"encoding": "P7"}, "encoding"),
        ({"k": 0}, "k"),
        ({"k": 11}, "k"),
        ({"k": 3, "max_dim": 2}, "k"),
        ({"max_dim": 0}, "max_dim"),
    ],
)
def test_tokenizer_validation(kw, name):
    with pytest.raises(ValueError, match=name):
        MatrixTokenizer(**kw)
