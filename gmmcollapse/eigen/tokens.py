"""Matrices and eigenvalue vectors as token sequences for the transformer.

Vocabulary (one, shared by source and target)::

    0 PAD, 1 BOS, 2 EOS | V1 .. V<max_dim> (dimension tokens) | the number encoding's tokens

Source: the dimension prefix ``V<k> V<k>`` then the k*k entries row by row (Charton's layout).
Target: ``V<k>``, the k eigenvalues (decreasing), ``EOS``. The decoder input is ``BOS`` + the
target shifted (see :func:`gmmcollapse.models.shift_right`).

Decoding a generated target is strict: it is valid only if it starts with the right dimension
token, has ``EOS`` exactly after the k numbers, and every number decodes validly; otherwise the
row is invalid and its values are NaN (never an exception, also under ``jit``).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax import Array

from gmmcollapse._validate import check_choice, check_int
from gmmcollapse.eigen.encodings import ENCODINGS, NumberEncoding
from gmmcollapse.models.transformer import EOS, N_SPECIAL, PAD

__all__ = ["MatrixTokenizer"]


@dataclasses.dataclass(frozen=True)
class MatrixTokenizer:
    """Tokenizer for ``k x k`` matrices and their eigenvalues in one number encoding."""

    encoding: str = "P1000"
    k: int = 5
    max_dim: int = 10

    def __post_init__(self):
        check_choice("encoding", self.encoding, sorted(ENCODINGS))
        check_int("max_dim", self.max_dim, 1)
        check_int("k", self.k, 1, self.max_dim)

    @property
    def enc(self) -> NumberEncoding:
        return ENCODINGS[self.encoding]

    @property
    def offset(self) -> int:
        """Id of the encoding's token 0."""
        return N_SPECIAL + self.max_dim

    @property
    def vocab_size(self) -> int:
        return self.offset + self.enc.size

    @property
    def src_len(self) -> int:
        return 2 + self.k * self.k * self.enc.tokens_per_number

    @property
    def tgt_len(self) -> int:
        return 1 + self.k * self.enc.tokens_per_number + 1

    def dim_token(self, k: int) -> int:
        return N_SPECIAL + k - 1

    def vocab(self) -> list[str]:
        specials = ["<pad>", "<bos>", "<eos>"]
        return specials + [f"V{i}" for i in range(1, self.max_dim + 1)] + list(self.enc.vocab)

    def encode_src(self, matrices: Array) -> Array:
        """(b, k, k) -> int32 (b, src_len)."""
        if matrices.ndim != 3 or matrices.shape[1:] != (self.k, self.k):
            raise ValueError(
                f"matrices must have shape (batch, {self.k}, {self.k}), got {matrices.shape}"
            )
        b = matrices.shape[0]
        nums = self.enc.encode(matrices.reshape(b, -1)) + self.offset
        dims = jnp.full((b, 2), self.dim_token(self.k), jnp.int32)
        return jnp.concatenate([dims, nums.astype(jnp.int32)], axis=1)

    def encode_tgt(self, eigenvalues: Array) -> Array:
        """(b, k) -> int32 (b, tgt_len): ``V<k>``, numbers, ``EOS``."""
        if eigenvalues.ndim != 2 or eigenvalues.shape[1] != self.k:
            raise ValueError(
                f"eigenvalues must have shape (batch, {self.k}), got {eigenvalues.shape}"
            )
        b = eigenvalues.shape[0]
        nums = self.enc.encode(eigenvalues) + self.offset
        head = jnp.full((b, 1), self.dim_token(self.k), jnp.int32)
        tail = jnp.full((b, 1), EOS, jnp.int32)
        return jnp.concatenate([head, nums.astype(jnp.int32), tail], axis=1)

    def decode_tgt(self, ids: Array) -> tuple[Array, Array]:
        """Generated targets (..., L) with L >= tgt_len -> (values (..., k), valid (...,)).

        Positions after ``EOS`` are ignored. Invalid rows have NaN values.
        """
        ids = jnp.asarray(ids, jnp.int32)
        n = self.k * self.enc.tokens_per_number
        if ids.shape[-1] < self.tgt_len:
            pad = jnp.full((*ids.shape[:-1], self.tgt_len - ids.shape[-1]), PAD, jnp.int32)
            ids = jnp.concatenate([ids, pad], axis=-1)
        body = ids[..., 1 : 1 + n] - self.offset
        in_vocab = jnp.all((body >= 0) & (body < self.enc.size), axis=-1)
        values, ok = self.enc.decode(jnp.clip(body, 0, self.enc.size - 1))
        valid = (
            (ids[..., 0] == self.dim_token(self.k))
            & (ids[..., 1 + n] == EOS)
            & in_vocab
            & jnp.all(ok, axis=-1)
        )
        return jnp.where(valid[..., None], values, jnp.nan), valid
