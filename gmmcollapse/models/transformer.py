"""A Flax NNX encoder-decoder transformer (Vaswani et al. 2017), one copy for every domain.

Token ids share one vocabulary between source and target; ids 0, 1, 2 are reserved for
``PAD``, ``BOS`` and ``EOS`` (:data:`PAD`, :data:`BOS`, :data:`EOS`) and domains put their own
tokens after them. Source and target sequences are right-padded with ``PAD``. The decoder input
is ``BOS`` followed by the target shifted right (:func:`shift_right`).

Configuration (:class:`TransformerConfig`): layers, width, heads, feed-forward width, dropout,
pre- or post-norm, learned or sinusoidal positions, tied or separate output embedding, compute
dtype (float32, or bfloat16 on accelerators; parameters stay float32).

Two ways to run the decoder share the same layers: :meth:`Transformer.decode` on a whole
target (teacher forcing, training) and :meth:`Transformer.decode_step` on one token with a
key/value cache (generation, see :mod:`gmmcollapse.models.decode`).

Dropout takes an explicit key (``dropout_key``) instead of module state, so a training step is
a pure function of (parameters, batch, key) and can be jitted, vmapped and resumed bit-exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from gmmcollapse._validate import check_choice, check_int, check_range

__all__ = [
    "BOS",
    "EOS",
    "N_SPECIAL",
    "PAD",
    "Cache",
    "Transformer",
    "TransformerConfig",
    "shift_right",
]

PAD, BOS, EOS = 0, 1, 2
#: number of reserved ids; domain tokens start here
N_SPECIAL = 3

_NEG = -1e30  # additive mask value; finite so fully masked rows give uniform, not NaN, weights


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shape of the model. Every field is validated on construction.

    Attributes:
        vocab_size: shared source/target vocabulary, special tokens included.
        max_src_len, max_tgt_len: longest source / target sequence (target includes EOS).
        enc_layers, dec_layers: number of encoder / decoder layers.
        width: model width d_model; heads must divide it.
        heads: attention heads.
        ff: feed-forward hidden width.
        dropout: dropout rate on attention weights, residual branches and embeddings.
        norm: ``"pre"`` (LayerNorm before each sub-layer, plus a final one) or ``"post"``.
        positions: ``"learned"`` or ``"sinusoidal"`` position embeddings.
        tie_embeddings: output projection is the transposed token embedding.
        dtype: compute dtype, ``"float32"`` or ``"bfloat16"`` (parameters are float32).
    """

    vocab_size: int
    max_src_len: int
    max_tgt_len: int
    enc_layers: int = 2
    dec_layers: int = 1
    width: int = 128
    heads: int = 4
    ff: int = 512
    dropout: float = 0.0
    norm: Literal["pre", "post"] = "pre"
    positions: Literal["learned", "sinusoidal"] = "learned"
    tie_embeddings: bool = True
    dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self):
        check_int("vocab_size", self.vocab_size, N_SPECIAL + 1)
        check_int("max_src_len", self.max_src_len, 1)
        check_int("max_tgt_len", self.max_tgt_len, 1)
        check_int("enc_layers", self.enc_layers, 0)
        check_int("dec_layers", self.dec_layers, 1)
        check_int("width", self.width, 1)
        check_int("heads", self.heads, 1)
        check_int("ff", self.ff, 1)
        check_range("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        if self.width % self.heads:
            raise ValueError(f"heads must divide width, got width={self.width}, heads={self.heads}")
        for name, allowed in (
            ("norm", ("pre", "post")),
            ("positions", ("learned", "sinusoidal")),
            ("dtype", ("float32", "bfloat16")),
        ):
            check_choice(name, getattr(self, name), allowed)

    @property
    def compute_dtype(self):
        return jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32

    def param_count(self) -> int:
        """Number of trainable parameters (matches the built model)."""
        d, f, v = self.width, self.ff, self.vocab_size
        ln = 2 * d
        attn = 4 * d * d + 4 * d
        ffn = 2 * d * f + d + f
        enc = self.enc_layers * (attn + ffn + 2 * ln)
        dec = self.dec_layers * (2 * attn + ffn + 3 * ln)
        final = 2 * ln if self.norm == "pre" else 0
        pos = (self.max_src_len + self.max_tgt_len) * d if self.positions == "learned" else 0
        out = 0 if self.tie_embeddings else d * v + v
        return v * d + pos + enc + dec + final + out

    def flops_per_example(self, src_len: int | None = None, tgt_len: int | None = None) -> dict:
        """Matmul FLOPs of one forward pass on one (source, target) pair (2 per multiply-add).

        Counts the dense layers, attention scores and weighted sums and the output projection;
        ignores softmax, norms and other elementwise work. Training costs ``3 x forward``.
        """
        s = self.max_src_len if src_len is None else src_len
        t = self.max_tgt_len if tgt_len is None else tgt_len
        d, f, v = self.width, self.ff, self.vocab_size
        enc = self.enc_layers * (s * (8 * d * d + 4 * d * f) + 4 * s * s * d)
        dec = self.dec_layers * (
            t * (8 * d * d + 4 * d * f)  # self-attention projections + feed-forward
            + 4 * t * t * d  # self-attention scores + weighted sum
            + 4 * t * d * d
            + 4 * s * d * d  # cross-attention q/out on t, k/v on s
            + 4 * t * s * d
        )
        out = 2 * t * d * v
        fwd = enc + dec + out
        return {"forward": fwd, "train": 3 * fwd}


def shift_right(tgt: Array) -> Array:
    """Decoder input for teacher forcing: ``BOS`` followed by ``tgt[..., :-1]``."""
    bos = jnp.full(tgt.shape[:-1] + (1,), BOS, tgt.dtype)
    return jnp.concatenate([bos, tgt[..., :-1]], axis=-1)


def _sinusoid(length: int, d: int) -> Array:
    pos = jnp.arange(length, dtype=jnp.float32)[:, None]
    i = jnp.arange(0, d, 2, dtype=jnp.float32)[None, :]
    ang = pos / jnp.power(10000.0, i / d)
    out = jnp.zeros((length, d), jnp.float32)
    out = out.at[:, 0::2].set(jnp.sin(ang))
    return out.at[:, 1::2].set(jnp.cos(ang[:, : d // 2]))


def _dropout(x: Array, rate: float, key: Array | None) -> Array:
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


class _Keys:
    """Hands out a fresh dropout key per call (``None`` in, ``None`` out)."""

    def __init__(self, key: Array | None):
        self.key, self.i = key, 0

    def __call__(self) -> Array | None:
        if self.key is None:
            return None
        self.i += 1
        return jax.random.fold_in(self.key, self.i)


class Cache(NamedTuple):
    """Decoder self-attention keys/values, one (batch, max_tgt_len, heads, head_dim) per layer."""

    k: tuple[Array, ...]
    v: tuple[Array, ...]


class _Attention(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        d = cfg.width
        self.cfg = cfg
        self.heads = cfg.heads
        self.q = nnx.Linear(d, d, rngs=rngs, dtype=cfg.compute_dtype)
        self.kv = nnx.Linear(d, 2 * d, rngs=rngs, dtype=cfg.compute_dtype)
        self.out = nnx.Linear(d, d, rngs=rngs, dtype=cfg.compute_dtype)

    def _split(self, x: Array) -> Array:
        return x.reshape(*x.shape[:-1], self.heads, x.shape[-1] // self.heads)

    def project_kv(self, x: Array) -> tuple[Array, Array]:
        k, v = jnp.split(self.kv(x), 2, axis=-1)
        return self._split(k), self._split(v)

    def attend(self, x: Array, k: Array, v: Array, mask: Array, key=None) -> Array:
        """Queries from ``x`` (b, q, d) attend to k/v (b, s, h, dh) where ``mask`` (b|1, q, s)."""
        q = self._split(self.q(x))
        dh = q.shape[-1]
        logits = jnp.einsum("bqhd,bshd->bhqs", q, k).astype(jnp.float32) / math.sqrt(dh)
        logits = jnp.where(mask[:, None], logits, _NEG)
        w = jax.nn.softmax(logits, axis=-1).astype(x.dtype)
        w = _dropout(w, self.cfg.dropout, key)
        o = jnp.einsum("bhqs,bshd->bqhd", w, v)
        return self.out(o.reshape(*o.shape[:-2], -1))


class _FeedForward(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.up = nnx.Linear(cfg.width, cfg.ff, rngs=rngs, dtype=cfg.compute_dtype)
        self.down = nnx.Linear(cfg.ff, cfg.width, rngs=rngs, dtype=cfg.compute_dtype)

    def __call__(self, x: Array) -> Array:
        return self.down(jax.nn.gelu(self.up(x)))


class _Block(nnx.Module):
    """Encoder layer (self-attention, feed-forward) or decoder layer (+ cross-attention)."""

    def __init__(self, cfg: TransformerConfig, cross: bool, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.self_attn = _Attention(cfg, rngs=rngs)
        self.cross_attn = _Attention(cfg, rngs=rngs) if cross else None
        self.ff = _FeedForward(cfg, rngs=rngs)
        n = 3 if cross else 2
        self.norms = nnx.List(
            [nnx.LayerNorm(cfg.width, rngs=rngs, dtype=cfg.compute_dtype) for _ in range(n)]
        )

    def _sub(self, i: int, x: Array, f, keys: _Keys) -> Array:
        norm = self.norms[i]
        if self.cfg.norm == "pre":
            return x + _dropout(f(norm(x)), self.cfg.dropout, keys())
        return norm(x + _dropout(f(x), self.cfg.dropout, keys()))

    def __call__(self, x, self_kv, self_mask, cross_kv, cross_mask, keys: _Keys) -> Array:
        """One layer. ``self_kv``: a function giving (k, v) from the normalised input."""
        x = self._sub(
            0, x, lambda h: self.self_attn.attend(h, *self_kv(h), self_mask, keys()), keys
        )
        if self.cross_attn is not None:
            x = self._sub(
                1, x, lambda h: self.cross_attn.attend(h, *cross_kv, cross_mask, keys()), keys
            )
        return self._sub(len(self.norms) - 1, x, self.ff, keys)


class Transformer(nnx.Module):
    """Encoder-decoder transformer; see the module docstring for conventions."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d, dt = cfg.width, cfg.compute_dtype
        init = nnx.initializers.normal(d**-0.5)
        self.embed = nnx.Embed(cfg.vocab_size, d, rngs=rngs, dtype=dt, embedding_init=init)
        if cfg.positions == "learned":
            pinit = nnx.initializers.normal(0.02)
            self.src_pos = nnx.Param(pinit(rngs.params(), (cfg.max_src_len, d), jnp.float32))
            self.tgt_pos = nnx.Param(pinit(rngs.params(), (cfg.max_tgt_len, d), jnp.float32))
        self.encoder = nnx.List([_Block(cfg, False, rngs=rngs) for _ in range(cfg.enc_layers)])
        self.decoder = nnx.List([_Block(cfg, True, rngs=rngs) for _ in range(cfg.dec_layers)])
        if cfg.norm == "pre":
            self.enc_norm = nnx.LayerNorm(d, rngs=rngs, dtype=dt)
            self.dec_norm = nnx.LayerNorm(d, rngs=rngs, dtype=dt)
        if not cfg.tie_embeddings:
            self.head = nnx.Linear(d, cfg.vocab_size, rngs=rngs, dtype=dt)

    # -- pieces ---------------------------------------------------------------------------
    def _positions(self, which: str, start, length: int) -> Array:
        cfg = self.cfg
        if cfg.positions == "learned":
            table = (self.src_pos if which == "src" else self.tgt_pos)[...]
        else:
            n = cfg.max_src_len if which == "src" else cfg.max_tgt_len
            table = _sinusoid(n, cfg.width)
        return jax.lax.dynamic_slice_in_dim(table, start, length, axis=0)

    def _embed(self, ids: Array, which: str, start=0) -> Array:
        x = self.embed(ids) * math.sqrt(self.cfg.width)
        pos = self._positions(which, start, ids.shape[-1])
        return (x + pos[None].astype(x.dtype)).astype(self.cfg.compute_dtype)

    def _logits(self, h: Array) -> Array:
        if self.cfg.norm == "pre":
            h = self.dec_norm(h)
        if self.cfg.tie_embeddings:
            out = self.embed.attend(h)
        else:
            out = self.head(h)
        return out.astype(jnp.float32)

    # -- public ---------------------------------------------------------------------------
    def encode(self, src: Array, *, dropout_key: Array | None = None) -> Array:
        """Source ids (b, s) -> memory (b, s, width)."""
        keys = _Keys(dropout_key)
        x = _dropout(self._embed(src, "src"), self.cfg.dropout, keys())
        mask = (src != PAD)[:, None, :]
        for layer in self.encoder:
            x = layer(x, layer.self_attn.project_kv, mask, None, None, keys)
        if self.cfg.norm == "pre":
            x = self.enc_norm(x)
        return x

    def cross_kv(self, memory: Array) -> list[tuple[Array, Array]]:
        """Per decoder layer, the cross-attention keys/values of ``memory`` (computed once)."""
        return [layer.cross_attn.project_kv(memory) for layer in self.decoder]

    def decode(
        self, tgt_in: Array, memory: Array, src: Array, *, dropout_key: Array | None = None
    ) -> Array:
        """Teacher forcing: decoder input (b, t) -> logits (b, t, vocab) in float32."""
        keys = _Keys(dropout_key)
        t = tgt_in.shape[-1]
        x = _dropout(self._embed(tgt_in, "tgt"), self.cfg.dropout, keys())
        causal = jnp.tril(jnp.ones((t, t), bool))[None]
        cross_mask = (src != PAD)[:, None, :]
        for layer, ckv in zip(self.decoder, self.cross_kv(memory), strict=True):
            x = layer(x, layer.self_attn.project_kv, causal, ckv, cross_mask, keys)
        return self._logits(x)

    def __call__(self, src: Array, tgt: Array, *, dropout_key: Array | None = None) -> Array:
        """Logits (b, t, vocab) for predicting ``tgt`` (b, t) given ``src`` (b, s)."""
        k1 = k2 = None
        if dropout_key is not None:
            k1, k2 = jax.random.split(dropout_key)
        memory = self.encode(src, dropout_key=k1)
        return self.decode(shift_right(tgt), memory, src, dropout_key=k2)

    def init_cache(self, batch: int) -> Cache:
        """An empty decoder cache for ``batch`` sequences."""
        cfg = self.cfg
        shape = (batch, cfg.max_tgt_len, cfg.heads, cfg.width // cfg.heads)
        z = tuple(jnp.zeros(shape, cfg.compute_dtype) for _ in range(cfg.dec_layers))
        return Cache(z, z)

    def decode_step(
        self, token: Array, t: Array, cache: Cache, cross: list, src: Array
    ) -> tuple[Array, Cache]:
        """One generation step: token (b,) at position ``t`` -> logits (b, vocab), new cache.

        ``cross`` is :meth:`cross_kv` of the memory; ``src`` gives its padding mask.
        """
        x = self._embed(token[:, None], "tgt", t)
        self_mask = (jnp.arange(self.cfg.max_tgt_len) <= t)[None, None, :]
        cross_mask = (src != PAD)[:, None, :]
        ks, vs = list(cache.k), list(cache.v)
        keys = _Keys(None)
        for i, (layer, ckv) in enumerate(zip(self.decoder, cross, strict=True)):

            def self_kv(h, i=i, layer=layer):
                k, v = layer.self_attn.project_kv(h)
                ks[i] = jax.lax.dynamic_update_slice_in_dim(ks[i], k.astype(ks[i].dtype), t, 1)
                vs[i] = jax.lax.dynamic_update_slice_in_dim(vs[i], v.astype(vs[i].dtype), t, 1)
                return ks[i], vs[i]

            x = layer(x, self_kv, self_mask, ckv, cross_mask, keys)
        return self._logits(x)[:, 0], Cache(tuple(ks), tuple(vs))
