"""The encoder-decoder transformer, its decoding and its training loop (gmmcollapse.models).

Tiny models only (width 16, vocab <= 8, lengths <= 5): parameter counts, KV-cache decoding
against teacher forcing, beam search against brute-force enumeration and a reference beam
search, chunked generation, training (loss decreases, bit-exact resume, fingerprint errors),
save/load, config validation, dropout and bfloat16.

Compilation dominates the run time, so most tests share one model configuration (``MAIN``) and
batch shape, and forward passes go through one jitted helper.
"""

import contextlib
import dataclasses
import functools
import importlib
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.models import (
    BOS,
    EOS,
    N_SPECIAL,
    PAD,
    TrainConfig,
    Transformer,
    TransformerConfig,
    beam_search,
    bind,
    generate,
    greedy,
    init_params,
    load_model,
    loss_fn,
    save_model,
    score,
    shift_right,
    train,
)

# ``gmmcollapse.models.train`` is shadowed by the function of that name in the package
train_mod = importlib.import_module("gmmcollapse.models.train")

MAIN = {
    "vocab_size": 6,
    "max_src_len": 4,
    "max_tgt_len": 3,
    "enc_layers": 1,
    "dec_layers": 2,
    "width": 16,
    "heads": 2,
    "ff": 32,
}
#: a second configuration that flips every switch
OTHER = MAIN | {
    "norm": "post",
    "positions": "sinusoidal",
    "tie_embeddings": False,
    "enc_layers": 0,
    "dec_layers": 1,
    "max_tgt_len": 5,
}
SRC = jnp.array([[3, 4, 5, 0], [5, 0, 0, 0], [4, 4, 3, 5]], jnp.int32)
TGT = jnp.array([[3, 4, 2], [5, 2, 0], [2, 0, 0]], jnp.int32)


def _model(seed=0, **kw):
    return Transformer(TransformerConfig(**(MAIN | kw)), rngs=nnx.Rngs(seed))


@functools.partial(jax.jit, static_argnums=0)
def _fwd_jit(graphdef, state, src, tgt, key):
    return nnx.merge(graphdef, state)(src, tgt, dropout_key=key)


def fwd(model, src, tgt, key=None):
    """``model(src, tgt, dropout_key=key)``, jitted (one compilation per config and shape)."""
    graphdef, state = nnx.split(model)
    return _fwd_jit(graphdef, state, src, tgt, key)


@functools.partial(jax.jit, static_argnums=0)
def _loss_jit(graphdef, state, src, tgt):
    return loss_fn(nnx.merge(graphdef, state), src, tgt)


def loss(model, src, tgt):
    """``loss_fn`` in eval mode, jitted: (mean token cross-entropy, number of tokens)."""
    graphdef, state = nnx.split(model)
    return _loss_jit(graphdef, state, jnp.asarray(src), jnp.asarray(tgt))


def _n_params(model):
    return sum(int(np.size(x)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _params_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def _pure(model):
    return nnx.to_pure_dict(nnx.split(model)[1])


def _length(seq):
    eos = np.flatnonzero(np.asarray(seq) == EOS)
    return int(eos[0] + 1) if eos.size else len(seq)


def _teacher_logprob(model, src, tokens):
    """Teacher-forced log-probs of ``tokens`` (b, L): (sums up to the first EOS, log-softmax)."""
    lsm = np.asarray(jax.nn.log_softmax(fwd(model, src, jnp.asarray(tokens))), np.float64)
    t = np.asarray(tokens)
    out = np.array(
        [sum(lsm[i, j, t[i, j]] for j in range(_length(t[i]))) for i in range(t.shape[0])]
    )
    return out, lsm


# ------------------------------------------------------------------------------ param count


@pytest.mark.parametrize(
    "norm,positions,tie",
    list(itertools.product(["pre", "post"], ["learned", "sinusoidal"], [True, False])),
)
def test_param_count_matches_model(norm, positions, tie):
    for layers in ({}, {"enc_layers": 0, "dec_layers": 1}, {"enc_layers": 2}):
        cfg = TransformerConfig(
            **(MAIN | layers), norm=norm, positions=positions, tie_embeddings=tie
        )
        model = Transformer(cfg, rngs=nnx.Rngs(0))
        assert _n_params(model) == cfg.param_count()
        # the whole state handed to the optimizer / checkpoints is exactly the parameters
        _, params = init_params(cfg)
        assert sum(int(np.size(x)) for x in jax.tree.leaves(params)) == cfg.param_count()


def test_param_count_differences():
    """Hand-computed deltas between variants (independent of param_count's own formula)."""
    base = TransformerConfig(**MAIN)
    d, v, f = MAIN["width"], MAIN["vocab_size"], MAIN["ff"]
    assert dataclasses.replace(base, tie_embeddings=False).param_count() - base.param_count() == (
        d * v + v
    )
    sin = dataclasses.replace(base, positions="sinusoidal")
    assert base.param_count() - sin.param_count() == (MAIN["max_src_len"] + MAIN["max_tgt_len"]) * d
    post = dataclasses.replace(base, norm="post")
    assert base.param_count() - post.param_count() == 2 * 2 * d  # final enc_norm + dec_norm
    # one more encoder layer: self-attention (q, kv, out with biases), feed-forward, 2 norms
    more = dataclasses.replace(base, enc_layers=2)
    layer = (d * d + d) + (d * 2 * d + 2 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
    assert more.param_count() - base.param_count() == layer


# ------------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"width": 16, "heads": 3}, "heads"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"norm": "x"}, "norm"),
        ({"positions": "rope"}, "positions"),
        ({"dtype": "float16"}, "dtype"),
        ({"vocab_size": 3}, "vocab_size"),
        ({"max_tgt_len": 0}, "max_tgt_len"),
        ({"dec_layers": 0}, "dec_layers"),
        ({"width": 2.5}, "width"),
    ],
)
def test_config_validation(kw, name):
    with pytest.raises(ValueError, match=name):
        TransformerConfig(**(MAIN | kw))


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"steps": 0}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"b2": 1.0}, "b2"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"steps_per_call": 0}, "steps_per_call"),
        ({"clip": -1.0}, "clip"),
        ({"micro_batch": -1}, "micro_batch"),
        ({"batch_size": 64, "micro_batch": 24}, "micro_batch"),
    ],
)
def test_train_config_validation(kw, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kw)


def test_schedule_warmup_and_end():
    s = TrainConfig(steps=100, lr=1e-3, warmup=10, end_lr_ratio=0.1).schedule()
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(5e-4)
    assert float(s(10)) == pytest.approx(1e-3)
    assert float(s(100)) == pytest.approx(1e-4)
    assert 1e-4 < float(s(50)) < 1e-3


# ------------------------------------------------------------------ teacher forcing basics


def test_shift_right():
    out = shift_right(TGT)
    np.testing.assert_array_equal(out, [[BOS, 3, 4], [BOS, 5, 2], [BOS, 2, 0]])
    assert out.dtype == TGT.dtype


def test_causal_and_padding_masks():
    model = _model(1)
    logits = fwd(model, SRC, TGT)
    assert logits.shape == (3, 3, MAIN["vocab_size"]) and logits.dtype == jnp.float32
    # changing a target token does not change the logits at or before its position...
    tgt2 = TGT.at[:, 1].set(4)
    logits2 = fwd(model, SRC, tgt2)
    np.testing.assert_allclose(logits2[:, :2], logits[:, :2], atol=1e-6)
    assert not np.allclose(logits2[:, 2], logits[:, 2], atol=1e-4)  # ...but after it
    # source padding is masked: rows 0 and 1 have PAD at positions 3 and 1..3; replacing those
    # PADs by real tokens changes their logits, while shortening all sources to the real part
    # (row 2 has none) leaves rows 0, 1 unchanged.
    filled = SRC.at[:, 3].set(5)
    changed = fwd(model, filled, TGT)
    assert not np.allclose(changed[0], logits[0], atol=1e-4)
    np.testing.assert_allclose(changed[2], logits[2], atol=1e-6)
    short = fwd(model, SRC[:2, :3], TGT[:2])
    np.testing.assert_allclose(short, logits[:2], atol=1e-5)
    # an all-PAD source gives finite logits (uniform attention, not NaN)
    assert bool(jnp.all(jnp.isfinite(fwd(model, SRC.at[1].set(PAD), TGT))))


@functools.partial(jax.jit, static_argnums=0)
def _loss_pair_jit(graphdef, state, src, tgt):
    """loss_fn without and with label smoothing 0.2, in one compilation."""
    model = nnx.merge(graphdef, state)
    return loss_fn(model, src, tgt), loss_fn(model, src, tgt, label_smoothing=0.2)[0]


def test_loss_fn_matches_manual_cross_entropy():
    model = _model(2)
    (value, n), smooth = _loss_pair_jit(*nnx.split(model), SRC, TGT)
    lsm = np.asarray(jax.nn.log_softmax(fwd(model, SRC, TGT)), np.float64)
    t = np.asarray(TGT)
    cells = [(i, j) for i in range(3) for j in range(3) if t[i, j] != PAD]
    assert float(n) == len(cells) == 6
    assert float(value) == pytest.approx(np.mean([-lsm[i, j, t[i, j]] for i, j in cells]), 1e-5)
    # label smoothing eps: (1 - eps) * CE + eps * mean over the vocabulary of -log p
    eps, v = 0.2, MAIN["vocab_size"]
    want = [(1 - eps) * -lsm[i, j, t[i, j]] - eps * lsm[i, j].sum() / v for i, j in cells]
    assert float(smooth) == pytest.approx(np.mean(want), rel=1e-5)


def test_bind_and_init_params_match_module():
    cfg = TransformerConfig(**MAIN)
    graphdef, params = init_params(cfg, seed=4)
    direct = Transformer(cfg, rngs=nnx.Rngs(4))
    np.testing.assert_array_equal(fwd(bind(graphdef, params), SRC, TGT), fwd(direct, SRC, TGT))
    other = bind(graphdef, init_params(cfg, seed=5)[1])
    assert not np.allclose(fwd(other, SRC, TGT), fwd(direct, SRC, TGT))


# --------------------------------------------------------------------------- KV cache


@functools.partial(jax.jit, static_argnums=0)
def _kv_jit(graphdef, state, src, tgt):
    """Teacher-forced logits and the same logits from a decode_step loop with the cache."""
    model = nnx.merge(graphdef, state)
    memory = model.encode(src)
    tgt_in = shift_right(tgt)
    want = model.decode(tgt_in, memory, src)
    cache, cross = model.init_cache(src.shape[0]), model.cross_kv(memory)
    positions = jnp.arange(tgt.shape[1], dtype=jnp.int32)  # traced, as in greedy's fori_loop
    steps = []
    for t in range(tgt.shape[1]):
        logits, cache = model.decode_step(tgt_in[:, t], positions[t], cache, cross, src)
        steps.append(logits)
    return want, jnp.stack(steps, axis=1)


@pytest.mark.parametrize("kw", [MAIN, OTHER], ids=["pre-learned-tied", "post-sin-untied-noenc"])
def test_decode_step_matches_teacher_forcing(kw):
    model = _model(3, **kw)
    rng = np.random.default_rng(0)
    tgt = rng.integers(N_SPECIAL, model.cfg.vocab_size, (3, model.cfg.max_tgt_len))
    want, got = _kv_jit(*nnx.split(model), SRC, jnp.asarray(tgt, jnp.int32))
    assert got.shape == want.shape == (3, model.cfg.max_tgt_len, model.cfg.vocab_size)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [MAIN, OTHER], ids=["pre-learned-tied", "post-sin-untied-noenc"])
def test_greedy_matches_teacher_forcing(kw):
    model = _model(3, **kw)
    g = greedy(model, SRC)
    L = model.cfg.max_tgt_len
    assert g.tokens.shape == (3, 1, L) and g.logprob.shape == (3, 1) and g.length.shape == (3, 1)
    assert g.tokens.dtype == jnp.int32
    toks = np.asarray(g.tokens[:, 0])
    lp, lsm = _teacher_logprob(model, SRC, toks)
    np.testing.assert_allclose(np.asarray(g.logprob[:, 0]), lp, atol=1e-5, rtol=1e-5)
    for i in range(3):
        n = _length(toks[i])
        assert g.length[i, 0] == n
        assert np.all(toks[i, n:] == PAD)  # only PAD after EOS
        for j in range(n):
            allowed = lsm[i, j].copy()
            allowed[[PAD, BOS]] = -np.inf
            assert toks[i, j] == int(np.argmax(allowed))  # the arg-max given its own prefix


@pytest.mark.parametrize("kw", [MAIN, OTHER], ids=["pre-learned-tied", "post-sin-untied-noenc"])
def test_score_is_the_decoders_logprob(kw):
    """Teacher-forced scoring of decoded candidates gives back their log-probabilities and
    lengths, in chunks of any size (the last one padded)."""
    model = _model(3, **kw)
    g = greedy(model, SRC)
    lp, ln = score(model, SRC, g.tokens[:, 0], progress=False)
    assert lp.shape == ln.shape == (3,) and ln.dtype == np.int32
    np.testing.assert_allclose(lp, np.asarray(g.logprob[:, 0]), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(ln, np.asarray(g.length[:, 0]))
    b = beam_search(model, SRC, 3)
    flat = np.asarray(b.tokens).reshape(9, -1)
    lp, ln = score(model, np.repeat(SRC, 3, axis=0), flat, batch_size=4, progress=False)
    np.testing.assert_allclose(lp, np.asarray(b.logprob).reshape(-1), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(ln, np.asarray(b.length).reshape(-1))
    # a shorter target scores fewer tokens; an empty input gives empty arrays
    short = np.where(np.arange(flat.shape[1]) < 1, flat, PAD)
    assert np.all(score(model, np.repeat(SRC, 3, axis=0), short, progress=False)[1] <= 1)
    assert score(model, SRC[:0], flat[:0], progress=False)[0].shape == (0,)
    with pytest.raises(ValueError, match="same n"):
        score(model, SRC, flat, progress=False)
    with pytest.raises(ValueError, match="max_tgt_len"):
        score(model, SRC, np.ones((3, model.cfg.max_tgt_len + 1), np.int32), progress=False)


def test_decode_validation():
    model = _model(3)
    with pytest.raises(ValueError, match="max_len"):
        greedy(model, SRC, max_len=4)
    with pytest.raises(ValueError, match="beam"):
        beam_search(model, SRC, beam=MAIN["vocab_size"] - 1)  # only vocab - 2 emittable tokens
    with pytest.raises(ValueError, match="beam"):
        generate(model, SRC, beam=0, progress=False)


# ------------------------------------------------------------------------ beam search

EMIT = list(range(EOS, MAIN["vocab_size"]))  # tokens the decoder may emit (EOS included)


def _all_sequences(max_len, L):
    """Every allowed target of at most ``max_len`` tokens, right-padded to ``L``: PAD/BOS are
    never emitted, only PAD follows EOS, sequences without EOS stop at ``max_len``."""
    out = []

    def rec(prefix):
        for tok in EMIT:
            seq = prefix + [tok]
            if tok == EOS or len(seq) == max_len:
                out.append(seq + [PAD] * (L - len(seq)))
            else:
                rec(seq)

    rec([])
    return np.array(out, np.int32)


@pytest.fixture(scope="module")
def beam_setup():
    """A random model, two sources, and the teacher-forced log-probs of every sequence.

    Returns the model, the sources and per source ``cond``: prefix -> next-token log-probs
    (from teacher forcing on all 40 sequences of max_tgt_len 3; the decoder is causal, so the
    distribution after a prefix is the same in every sequence that starts with it).
    """
    model = _model(7)
    src = SRC[:2]
    L = model.cfg.max_tgt_len
    seqs = _all_sequences(L, L)
    assert len(seqs) == 1 + 3 + 9 + 27
    m = len(seqs)
    lp, lsm = _teacher_logprob(model, jnp.repeat(src, m, axis=0), np.tile(seqs, (2, 1)))
    cond = []
    for i in range(2):
        c = {}
        for q, seq in enumerate(seqs):
            for j in range(_length(seq)):
                c[tuple(seq[:j])] = lsm[i * m + q, j]
        cond.append(c)
    return model, src, cond, seqs, [lp[:m], lp[m:]]


def _score(cond, seq, max_len):
    return sum(cond[tuple(seq[:j])][seq[j]] for j in range(min(_length(seq), max_len)))


def _reference_beam(cond, k, L):
    """Textbook beam search on exact conditional log-probs; finished beams keep their score."""
    beams = [((), 0.0, False)]
    for _ in range(L):
        cands = []
        for seq, s, done in beams:
            if done:
                cands.append((seq + (PAD,), s, True))
                continue
            for tok in EMIT:
                cands.append((seq + (tok,), s + cond[seq][tok], tok == EOS))
        cands.sort(key=lambda c: -c[1])
        beams = cands[:k]
    return beams


def _check_candidates(g, i, seqs, scores):
    """Candidates of input i: allowed, distinct, sorted, with the enumerated scores/lengths."""
    toks, lp = np.asarray(g.tokens[i]), np.asarray(g.logprob[i])
    assert np.all(np.diff(lp) <= 0), "candidates sorted by logprob"
    assert len({tuple(t) for t in toks}) == len(toks), "candidates are distinct"
    index = {tuple(s): q for q, s in enumerate(seqs)}
    for c in range(toks.shape[0]):
        assert tuple(toks[c]) in index, f"not an allowed sequence: {toks[c]}"
        np.testing.assert_allclose(lp[c], scores[index[tuple(toks[c])]], atol=1e-5, rtol=1e-5)
        assert int(g.length[i, c]) == _length(toks[c])


def test_enumerated_scores_consistent(beam_setup):
    """Scores summed from the prefix table equal the direct teacher-forced sums."""
    _, _, cond, seqs, scores = beam_setup
    for i in range(2):
        got = [_score(cond[i], s, 3) for s in seqs]
        np.testing.assert_allclose(got, scores[i], atol=1e-9)
        # all probabilities of complete sequences sum to (at most) one
        assert np.exp(scores[i]).sum() <= 1 + 1e-5


@pytest.mark.parametrize("k", [2, 4])
def test_beam_search_against_enumeration(beam_setup, k):
    model, src, cond, seqs, scores = beam_setup
    L = model.cfg.max_tgt_len
    g = beam_search(model, src, k)
    assert g.tokens.shape == (2, k, L) and g.logprob.shape == (2, k) and g.length.shape == (2, k)
    assert g.tokens.dtype == jnp.int32
    for i in range(2):
        _check_candidates(g, i, seqs, scores[i])
        ref = _reference_beam(cond[i], k, L)
        np.testing.assert_array_equal(np.asarray(g.tokens[i]), [r[0] for r in ref])
        np.testing.assert_allclose(np.asarray(g.logprob[i]), [r[1] for r in ref], atol=1e-5)


def test_beam_one_is_greedy(beam_setup):
    model, src, *_ = beam_setup
    b, g = beam_search(model, src, 1), greedy(model, src)
    np.testing.assert_array_equal(b.tokens, g.tokens)
    np.testing.assert_allclose(b.logprob, g.logprob, atol=1e-6)
    np.testing.assert_array_equal(b.length, g.length)


@pytest.mark.parametrize("max_len", [1, 2])
def test_beam_search_exact_top_k(beam_setup, max_len):
    """When every prefix of length max_len - 1 fits in the beam, the beam is the exact top-k.

    max_len 1: beam = number of sequences (beam <= vocab - 2 rules out larger cases), all of
    them come back sorted. max_len 2: the vocab - 2 length-1 prefixes fit in a beam of
    vocab - 2, so it is the exact top-4 of the 13 sequences.
    """
    model, src, cond, *_ = beam_setup
    k = len(EMIT)
    seqs = _all_sequences(max_len, max_len)
    assert len(seqs) == (k if max_len == 1 else 1 + (k - 1) + (k - 1) ** 2)
    g = beam_search(model, src, k, max_len=max_len)
    assert g.tokens.shape == (2, k, max_len)
    for i in range(2):
        lp = np.array([_score(cond[i], s, max_len) for s in seqs])
        order = np.argsort(-lp, kind="stable")[:k]
        assert np.min(-np.diff(lp[np.argsort(-lp)])) > 1e-4  # no near-ties: the order is exact
        _check_candidates(g, i, seqs, lp)
        np.testing.assert_array_equal(np.asarray(g.tokens[i]), seqs[order])
        np.testing.assert_allclose(np.asarray(g.logprob[i]), lp[order], atol=1e-5)


# ------------------------------------------------------------------------- generate


def test_generate_chunks_equal_one_shot():
    model = _model(5)
    rng = np.random.default_rng(1)
    src = rng.integers(N_SPECIAL, MAIN["vocab_size"], (3, 4)).astype(np.int32)
    src[1, 2:] = PAD
    for beam in (1, 2):
        # reference: decode rows 0-1 and 1-2 directly (rows are independent; 2-row programs
        # are compiled by the beam tests already)
        dec = (lambda s: greedy(model, s)) if beam == 1 else (lambda s: beam_search(model, s, 2))
        a, b = dec(src[:2]), dec(src[1:])
        whole = jax.tree.map(lambda x, y: np.concatenate([x, y[1:]]), a, b)
        for bs in (2, 100) if beam == 1 else (2,):  # 2 + 1 (padded), one chunk of all 3
            got = generate(model, src, beam, batch_size=bs, progress=False)
            assert all(isinstance(a, np.ndarray) for a in got)
            assert got.tokens.shape == (3, beam, 3) and got.logprob.shape == (3, beam)
            assert got.length.shape == (3, beam)
            np.testing.assert_array_equal(got.tokens, whole.tokens)
            np.testing.assert_array_equal(got.length, whole.length)
            np.testing.assert_allclose(got.logprob, whole.logprob, atol=1e-5)


def test_generate_no_inputs():
    got = generate(_model(5), np.zeros((0, 4), np.int32), progress=False)
    assert got.tokens.shape == (0, 1, MAIN["max_tgt_len"]) and got.logprob.shape == (0, 1)


# --------------------------------------------------------------- dropout and bfloat16


def test_dropout_keys():
    model = _model(6, dropout=0.3)
    eval1, eval2 = fwd(model, SRC, TGT), fwd(model, SRC, TGT)
    np.testing.assert_array_equal(eval1, eval2)  # no key: deterministic
    # rbg keys: dropout with the default threefry keys compiles ~3x slower on CPU (the training
    # tests use the default keys)
    k1, k2 = jax.random.key(1, impl="rbg"), jax.random.key(2, impl="rbg")
    a, a2, b = (fwd(model, SRC, TGT, k) for k in (k1, k1, k2))
    np.testing.assert_array_equal(a, a2)  # same key: same output
    assert not np.allclose(a, b, atol=1e-3)
    assert not np.allclose(a, eval1, atol=1e-3)
    # without a key the dropout-0.3 model is the dropout-0 model with the same parameters
    np.testing.assert_allclose(fwd(_model(6), SRC, TGT), eval1, atol=1e-6)


def test_bfloat16_runs_and_is_finite():
    model = _model(0, dtype="bfloat16")
    logits = fwd(model, SRC, TGT)
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    # the same initialisation in float32 agrees up to bfloat16 precision
    np.testing.assert_allclose(logits, fwd(_model(0), SRC, TGT), atol=0.1)
    g = greedy(model, SRC)
    assert bool(jnp.all(jnp.isfinite(g.logprob)))
    assert np.all((np.asarray(g.tokens) >= EOS) | (np.asarray(g.tokens) == PAD))


# --------------------------------------------------------------------------- training

COPY_CFG = TransformerConfig(
    vocab_size=8, max_src_len=3, max_tgt_len=4, enc_layers=1, dec_layers=1, width=16, heads=2, ff=32
)
COPY_TC = TrainConfig(
    steps=40, batch_size=16, lr=1e-2, warmup=5, eval_every=20, ckpt_every=20, steps_per_call=20
)


def _copy_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(N_SPECIAL, 8, (n, 3)).astype(np.int32)
    return src, np.concatenate([src, np.full((n, 1), EOS, np.int32)], axis=1)


@contextlib.contextmanager
def _spy_steps():
    """Record the first step of every jitted training call (``_batch_indices`` is called once
    per call with that step)."""
    calls = []
    orig = train_mod._batch_indices

    def spy(step0, *a, **kw):
        calls.append(step0)
        return orig(step0, *a, **kw)

    train_mod._batch_indices = spy
    try:
        yield calls
    finally:
        train_mod._batch_indices = orig


class _Interrupt(Exception):
    pass


def _interrupted_then_resumed(mc, tc, src, tgt, ckpt, at_eval):
    """Train in ``ckpt`` but raise from the ``at_eval``-th evaluation (after the checkpoints
    before it were written), then call ``train`` again. Returns the resumed result and the
    first steps of the jitted calls of both runs."""
    evals = []

    def interrupting(model):
        evals.append(1)
        if len(evals) == at_eval:
            raise _Interrupt
        return {"eval_loss": float(loss(model, src, tgt)[0])}

    with _spy_steps() as first, pytest.raises(_Interrupt):
        train(mc, tc, src, tgt, eval_fn=interrupting, ckpt_dir=ckpt, progress=False)
    with _spy_steps() as second:
        res = train(
            mc,
            tc,
            src,
            tgt,
            ckpt_dir=ckpt,
            progress=False,
            eval_fn=lambda m: {"eval_loss": float(loss(m, src, tgt)[0])},
        )
    return res, first, second


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An uninterrupted run on the copy task (24 examples, batch 16: epochs do not align with
    steps) with a checkpoint and an evaluation every 20 steps, and the same run interrupted at
    step 40 (its end) and resumed in another directory."""
    src, tgt = _copy_data()
    tmp = tmp_path_factory.mktemp("ckpt")
    res = train(
        COPY_CFG,
        COPY_TC,
        src,
        tgt,
        ckpt_dir=tmp / "a",
        progress=False,
        eval_fn=lambda m: {"eval_loss": float(loss(m, src, tgt)[0])},
    )
    step_fn = getattr(train_mod, "_run_steps", None)  # the jitted training call
    cache_size = getattr(step_fn, "_cache_size", lambda: None)
    n_compiled = cache_size()
    resumed = _interrupted_then_resumed(COPY_CFG, COPY_TC, src, tgt, tmp / "b", at_eval=2)
    recompiled = None if n_compiled is None else cache_size() - n_compiled
    return res, src, tgt, tmp / "a", resumed, recompiled


def test_train_loss_decreases(trained):
    res, src, tgt, *_ = trained
    assert [h["step"] for h in res.history] == [20, 40]
    for key in ("loss", "eval_loss"):
        vals = [h[key] for h in res.history]
        assert vals[0] > vals[1], (key, vals)
    initial = float(loss(bind(*init_params(COPY_CFG, COPY_TC.seed)), src, tgt)[0])
    assert initial > math.log(5)  # about uniform over the 5 content tokens + EOS
    assert res.history[-1]["eval_loss"] < 0.6 * initial
    # the returned model is the trained one
    assert float(loss(res.model, src, tgt)[0]) == pytest.approx(res.history[-1]["eval_loss"])
    assert res.history[-1]["lr"] == pytest.approx(COPY_TC.lr * COPY_TC.end_lr_ratio)


def test_train_resume_is_bitwise(trained):
    a, *_, (b, first, second), _ = trained
    assert first == [0, 20]  # interrupted at the step-40 evaluation
    assert second == [20]  # resumed from the step-20 checkpoint, not from scratch
    assert _params_equal(_pure(a.model), _pure(b.model))
    assert [h["step"] for h in b.history] == [20, 40]
    for key in ("loss", "eval_loss"):
        assert [h[key] for h in b.history] == [h[key] for h in a.history]
    # the comparison can fail: training moved the parameters away from the initialisation
    assert not _params_equal(init_params(COPY_CFG, COPY_TC.seed)[1], _pure(b.model))


def test_train_resume_reuses_compilation(trained):
    # None would mean _run_steps lost its jit cache (no longer jitted): a failure, not a skip
    assert trained[-1] == 0


@pytest.mark.slow
def test_train_resume_is_bitwise_with_dropout(tmp_path):
    """Dropout keys depend on the step only (slow: threefry in the scanned step compiles
    slowly on CPU)."""
    mc = dataclasses.replace(COPY_CFG, dropout=0.2)
    tc = dataclasses.replace(COPY_TC, steps=30, eval_every=10, ckpt_every=10, steps_per_call=10)
    src, tgt = _copy_data()
    a = train(mc, tc, src, tgt, ckpt_dir=tmp_path / "a", progress=False)
    b, first, second = _interrupted_then_resumed(mc, tc, src, tgt, tmp_path / "b", at_eval=3)
    assert first == [0, 10, 20] and second == [20]
    assert _params_equal(_pure(a.model), _pure(b.model))
    no_dropout = train(COPY_CFG, tc, src, tgt, progress=False)
    assert not _params_equal(_pure(a.model), _pure(no_dropout.model))


def test_train_finished_checkpoint_and_mismatch(trained):
    a, src, tgt, ckpt, *_ = trained
    evals = []
    with _spy_steps() as steps:
        again = train(
            COPY_CFG,
            COPY_TC,
            src,
            tgt,
            ckpt_dir=ckpt,
            progress=False,
            eval_fn=lambda m: evals.append(1) or {},
        )
        assert steps == [] and evals == []  # no training step, no evaluation
        assert _params_equal(_pure(a.model), _pure(again.model))
        assert [h["loss"] for h in again.history] == [h["loss"] for h in a.history]
        # eval_every is not part of the fingerprint
        tc = dataclasses.replace(COPY_TC, eval_every=30)
        train(COPY_CFG, tc, src, tgt, ckpt_dir=ckpt, progress=False)
        # a checkpoint of another configuration is refused, naming what differs
        cases = [
            (dataclasses.replace(COPY_CFG, ff=16), COPY_TC, src, tgt, "model"),
            (COPY_CFG, dataclasses.replace(COPY_TC, lr=1e-3), src, tgt, "train"),
            (COPY_CFG, dataclasses.replace(COPY_TC, steps=60), src, tgt, "train"),
            (COPY_CFG, COPY_TC, src, tgt[::-1].copy(), "data"),
            (COPY_CFG, COPY_TC, src[:20], tgt[:20], "n_examples"),
        ]
        for mc, tc, s, t, what in cases:
            with pytest.raises(ValueError, match=what):
                train(mc, tc, s, t, ckpt_dir=ckpt, progress=False)
        assert steps == []


@pytest.mark.slow  # compiles two training programs
def test_train_micro_batches_match_whole_batch():
    """Summing token-weighted micro-batch gradients gives the whole-batch loss and gradient up
    to float rounding, also with PAD in the targets (micro-batches with different token
    counts); training with micro-batches follows the same loss curve."""
    src, tgt = _copy_data(16)
    tgt = tgt.copy()
    tgt[::3, 2:] = PAD  # shorter targets in some examples
    graphdef, params = init_params(COPY_CFG, 0)
    tc = dataclasses.replace(COPY_TC, micro_batch=4)
    key = jax.random.key(0)
    l_micro, g_micro = train_mod._micro_grads(graphdef, tc, False, params, src, tgt, 0, key)
    l_whole, g_whole = jax.value_and_grad(lambda p: loss(bind(graphdef, p), src, tgt)[0])(params)
    assert float(l_micro) == pytest.approx(float(l_whole), rel=1e-6)
    for a, b in zip(jax.tree.leaves(g_whole), jax.tree.leaves(g_micro), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    src, tgt = _copy_data()
    tc = dataclasses.replace(COPY_TC, eval_every=0, ckpt_every=0)
    whole = train(COPY_CFG, tc, src, tgt, progress=False)
    micro = train(COPY_CFG, dataclasses.replace(tc, micro_batch=8), src, tgt, progress=False)
    assert micro.history[-1]["loss"] == pytest.approx(whole.history[-1]["loss"], rel=1e-3)


def test_train_input_validation():
    src, tgt = _copy_data(8)
    tc = TrainConfig(steps=1)
    with pytest.raises(ValueError, match="same n"):
        train(COPY_CFG, tc, src, tgt[:7], progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        train(COPY_CFG, tc, src[:0], tgt[:0], progress=False)
    with pytest.raises(ValueError, match="max_tgt_len"):
        train(COPY_CFG, tc, src, np.concatenate([tgt, tgt], 1), progress=False)
    with pytest.raises(ValueError, match="max_src_len"):
        train(COPY_CFG, tc, np.concatenate([src, src], 1), tgt, progress=False)


def test_save_load_trained_model(trained, tmp_path):
    """A model coming out of ``train`` (parameters bound with ``bind``) saves and loads."""
    res, src, tgt, *_ = trained
    save_model(res.model, tmp_path / "trained")
    loaded = load_model(tmp_path / "trained")
    assert loaded.cfg == COPY_CFG
    assert _params_equal(_pure(res.model), _pure(loaded))
    assert float(loss(loaded, src, tgt)[0]) == float(loss(res.model, src, tgt)[0])


# ----------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    model = _model(11, **OTHER)
    tgt = jnp.asarray(greedy(model, SRC).tokens[:, 0])  # (3, 5): shapes shared with other tests
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.cfg == model.cfg
    assert _params_equal(_pure(model), _pure(loaded))
    np.testing.assert_array_equal(fwd(loaded, SRC, tgt), fwd(model, SRC, tgt))
    np.testing.assert_array_equal(greedy(loaded, SRC).logprob, greedy(model, SRC).logprob)
    # the parameters come from the file, not from a fresh seed-0 initialisation
    fresh = bind(*init_params(model.cfg, 0))
    assert not np.allclose(fwd(fresh, SRC, tgt), fwd(model, SRC, tgt))
