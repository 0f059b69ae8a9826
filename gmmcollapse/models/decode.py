"""Jitted, batched generation: greedy decoding and beam search with a key/value cache.

Both take a :class:`~gmmcollapse.models.transformer.Transformer` and source ids (b, s) and
return target ids right-padded with ``PAD`` after ``EOS`` (the ``EOS`` included), together with
the model's log-probability of each returned sequence (the sum over its tokens up to and
including ``EOS``) and its length. A sequence that reaches ``max_len`` without ``EOS`` is
returned as is; domains treat it as invalid.

:func:`generate` runs either over a large source array in fixed-size chunks (one compilation,
last chunk padded), with a progress bar. :func:`score` is the teacher-forced counterpart: the
log-probability a model gives to given targets (e.g. a verifier model scoring another model's
outputs), with the same conventions, so ``score(model, src, greedy(model, src).tokens[:, 0])``
equals the greedy ``logprob``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from gmmcollapse._validate import check_int
from gmmcollapse.models.transformer import BOS, EOS, PAD, Cache, Transformer

__all__ = ["Generated", "beam_search", "generate", "greedy", "score"]


class Generated(NamedTuple):
    """Decoded candidates: ``tokens`` (b, k, L) int32, ``logprob`` (b, k), ``length`` (b, k).

    Candidates are sorted by ``logprob`` (highest first); ``length`` counts tokens up to and
    including ``EOS`` (``L`` when there is none). Greedy decoding has ``k = 1``.
    """

    tokens: Array
    logprob: Array
    length: Array


def _lengths(tokens: Array) -> Array:
    is_eos = tokens == EOS
    first = jnp.argmax(is_eos, axis=-1)
    return jnp.where(jnp.any(is_eos, axis=-1), first + 1, tokens.shape[-1]).astype(jnp.int32)


def _step_logprobs(model: Transformer, last, t, cache, cross, src):
    logits, cache = model.decode_step(last, t, cache, cross, src)
    lsm = jax.nn.log_softmax(logits, axis=-1)
    # the decoder never emits PAD or BOS
    lsm = lsm.at[:, PAD].set(-jnp.inf).at[:, BOS].set(-jnp.inf)
    return lsm, cache


@functools.partial(jax.jit, static_argnames=("graphdef", "max_len"))
def _greedy(graphdef, state, src: Array, max_len: int) -> Generated:
    model = nnx.merge(graphdef, state)
    b = src.shape[0]
    memory = model.encode(src)
    cross = model.cross_kv(memory)

    def body(t, carry):
        tokens, logp, done, last, cache = carry
        lsm, cache = _step_logprobs(model, last, t, cache, cross, src)
        tok = jnp.argmax(lsm, axis=-1).astype(jnp.int32)
        lp = jnp.take_along_axis(lsm, tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(done, PAD, tok)
        logp = logp + jnp.where(done, 0.0, lp)
        tokens = tokens.at[:, t].set(tok)
        return tokens, logp, done | (tok == EOS), tok, cache

    init = (
        jnp.full((b, max_len), PAD, jnp.int32),
        jnp.zeros((b,), jnp.float32),
        jnp.zeros((b,), bool),
        jnp.full((b,), BOS, jnp.int32),
        model.init_cache(b),
    )
    tokens, logp, _, _, _ = jax.lax.fori_loop(0, max_len, body, init)
    return Generated(tokens[:, None], logp[:, None], _lengths(tokens)[:, None])


def _gather_beams(x: Array, idx: Array, b: int, k: int) -> Array:
    # x (b*k, ...) -> rows picked by idx (b, k) within each input's group of k
    xs = x.reshape(b, k, *x.shape[1:])
    idx = idx.reshape(b, k, *([1] * (xs.ndim - 2)))
    return jnp.take_along_axis(xs, idx, axis=1).reshape(x.shape)


@functools.partial(jax.jit, static_argnames=("graphdef", "beam", "max_len"))
def _beam(graphdef, state, src: Array, beam: int, max_len: int) -> Generated:
    model = nnx.merge(graphdef, state)
    b, k = src.shape[0], beam
    src_k = jnp.repeat(src, k, axis=0)
    memory = model.encode(src)
    cross = [
        (jnp.repeat(kk, k, axis=0), jnp.repeat(vv, k, axis=0)) for kk, vv in model.cross_kv(memory)
    ]
    vocab = model.cfg.vocab_size
    pad_only = jnp.where(jnp.arange(vocab) == PAD, 0.0, -jnp.inf)

    def body(t, carry):
        tokens, logp, done, last, cache = carry
        lsm, cache = _step_logprobs(model, last.reshape(-1), t, cache, cross, src_k)
        lsm = lsm.reshape(b, k, vocab)
        # a finished beam continues with PAD at no cost, so it keeps its score and its slot
        lsm = jnp.where(done[..., None], pad_only, lsm)
        cand = (logp[..., None] + lsm).reshape(b, k * vocab)
        top, flat = jax.lax.top_k(cand, k)
        src_beam = (flat // vocab).astype(jnp.int32)
        tok = (flat % vocab).astype(jnp.int32)
        tokens = jnp.take_along_axis(tokens, src_beam[..., None], axis=1)
        tokens = tokens.at[:, :, t].set(tok)
        done = jnp.take_along_axis(done, src_beam, axis=1) | (tok == EOS)
        cache = Cache(
            tuple(_gather_beams(c, src_beam, b, k) for c in cache.k),
            tuple(_gather_beams(c, src_beam, b, k) for c in cache.v),
        )
        return tokens, top, done, tok, cache

    # only beam 0 is alive at the start, so the first step does not pick k copies of one token
    logp0 = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)
    init = (
        jnp.full((b, k, max_len), PAD, jnp.int32),
        jnp.broadcast_to(logp0, (b, k)).astype(jnp.float32),
        jnp.zeros((b, k), bool),
        jnp.full((b, k), BOS, jnp.int32),
        model.init_cache(b * k),
    )
    tokens, logp, _, _, _ = jax.lax.fori_loop(0, max_len, body, init)
    return Generated(tokens, logp, _lengths(tokens))


def _max_len(model: Transformer, max_len: int | None) -> int:
    cap = model.cfg.max_tgt_len
    if max_len is None:
        return cap
    check_int("max_len", max_len, 1, cap)
    return max_len


def greedy(model: Transformer, src: Array, max_len: int | None = None) -> Generated:
    """Greedy decoding of ``src`` (b, s): the arg-max token at every step. k = 1."""
    graphdef, state = nnx.split(model)
    return _greedy(graphdef, state, jnp.asarray(src, jnp.int32), _max_len(model, max_len))


def beam_search(model: Transformer, src: Array, beam: int, max_len: int | None = None) -> Generated:
    """Beam search of width ``beam``; returns all ``beam`` candidates, best first.

    Scores are plain sums of token log-probabilities (no length penalty; divide ``logprob`` by
    ``length`` for a length-normalised score). Beams that end early keep their score.
    """
    check_int("beam", beam, 1, model.cfg.vocab_size - 2)
    graphdef, state = nnx.split(model)
    return _beam(graphdef, state, jnp.asarray(src, jnp.int32), beam, _max_len(model, max_len))


def generate(
    model: Transformer,
    src,
    beam: int = 1,
    *,
    batch_size: int = 256,
    max_len: int | None = None,
    progress: bool = True,
    desc: str = "decode",
) -> Generated:
    """Greedy (``beam=1``) or beam decoding of a large source array, in chunks of ``batch_size``.

    Returns NumPy arrays (n, k, L), (n, k), (n, k). Every chunk has the same shape (the last
    is padded), so there is one compilation.
    """
    from tqdm.auto import tqdm

    check_int("beam", beam, 1)
    check_int("batch_size", batch_size, 1)
    src = np.asarray(src, np.int32)
    n = src.shape[0]
    if n == 0:
        length = _max_len(model, max_len)
        return Generated(
            np.zeros((0, beam, length), np.int32),
            np.zeros((0, beam), np.float32),
            np.zeros((0, beam), np.int32),
        )
    bs = min(batch_size, n)
    outs = []
    for start in tqdm(range(0, n, bs), desc=desc, disable=not progress, unit="batch"):
        chunk = src[start : start + bs]
        m = chunk.shape[0]
        if m < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], bs - m, axis=0)])
        g = greedy(model, chunk, max_len) if beam == 1 else beam_search(model, chunk, beam, max_len)
        outs.append(jax.tree.map(lambda a, m=m: np.asarray(a)[:m], g))
    return Generated(*(np.concatenate(parts) for parts in zip(*outs, strict=True)))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _score(graphdef, state, src: Array, tgt: Array) -> tuple[Array, Array]:
    model = nnx.merge(graphdef, state)
    # the full softmax, as in the decoders (which forbid PAD and BOS without renormalising)
    lsm = jax.nn.log_softmax(model(src, tgt).astype(jnp.float32), axis=-1)
    tok = jnp.take_along_axis(lsm, tgt[..., None], axis=-1)[..., 0]
    w = tgt != PAD
    return jnp.sum(jnp.where(w, tok, 0.0), axis=-1), jnp.sum(w, axis=-1).astype(jnp.int32)


def score(
    model: Transformer,
    src,
    tgt,
    *,
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "score",
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced log p(tgt | src) of ``model``: ``(logprob, length)``, NumPy, shape (n,).

    ``tgt`` (n, t) holds target ids right-padded with ``PAD`` (as :func:`generate` returns
    them, ``EOS`` included); ``logprob`` sums the log-probabilities of the non-``PAD`` tokens
    and ``length`` counts them (divide for a length-normalised score). Runs in chunks of
    ``batch_size`` with one compilation, like :func:`generate`.
    """
    from tqdm.auto import tqdm

    check_int("batch_size", batch_size, 1)
    src = np.asarray(src, np.int32)
    tgt = np.asarray(tgt, np.int32)
    if src.ndim != 2 or tgt.ndim != 2 or src.shape[0] != tgt.shape[0]:
        raise ValueError(
            f"src and tgt must be (n, len) arrays with the same n, got {src.shape} and {tgt.shape}"
        )
    if src.shape[1] > model.cfg.max_src_len or tgt.shape[1] > model.cfg.max_tgt_len:
        raise ValueError(
            f"sequences longer than the model allows: src {src.shape[1]} > max_src_len "
            f"{model.cfg.max_src_len} or tgt {tgt.shape[1]} > max_tgt_len {model.cfg.max_tgt_len}"
        )
    n = src.shape[0]
    if n == 0:
        return np.zeros((0,), np.float32), np.zeros((0,), np.int32)
    graphdef, state = nnx.split(model)
    bs = min(batch_size, n)
    lps, lens = [], []
    for start in tqdm(range(0, n, bs), desc=desc, disable=not progress, unit="batch"):
        s, t = src[start : start + bs], tgt[start : start + bs]
        m = s.shape[0]
        if m < bs:
            s = np.concatenate([s, np.repeat(s[-1:], bs - m, axis=0)])
            t = np.concatenate([t, np.repeat(t[-1:], bs - m, axis=0)])
        lp, ln = _score(graphdef, state, jnp.asarray(s), jnp.asarray(t))
        lps.append(np.asarray(lp)[:m])
        lens.append(np.asarray(ln)[:m])
    return np.concatenate(lps), np.concatenate(lens)
