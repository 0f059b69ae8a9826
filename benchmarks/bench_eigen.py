"""Eigen-experiment transformer benchmarks: training and beam-search throughput, model FLOPs
utilisation (MFU) and a profile of the training step.

Everything is measured in one run, interleaved: every round times each workload once (in a
rotated order) and the machine's float32 matmul peak twice, every ratio (MFU, a variant against
its baseline, a component against the whole step) is taken within a round, and the median over
rounds is reported. The machine is a shared 2-core CPU where another heavy process may run: the
ratios are the result, absolute rates are not (they move by 2x with the load), and even MFU
moves with the kind of load (a concurrent process slows the two-thread peak matmul and the
training step by different amounts).

Models, trained with the library's real step (``gmmcollapse.models.train._run_steps`` driven
as :func:`gmmcollapse.models.train.train` drives it: host-side gather of the batches of one
call, one jitted ``lax.scan`` over its steps, losses copied back) on real tokenized data
(:func:`gmmcollapse.eigen.sample_matrices` + :class:`gmmcollapse.eigen.tokens.MatrixTokenizer`):

* ``quick``: ``make_config("quick").model_config()`` at its batch size (128);
* ``reference``: 5x5 matrices, P1000 in and out, 2 encoder / 1 decoder layers, width 128,
  4 heads, feed-forward 512, learned positions, tied embeddings, batch 64, float32.

Reported: training examples/s and (source + target) tokens/s at 16 steps per jitted call;
beam search (beam 8, decode length = the tokenizer's ``tgt_len``, batch 128) input
sequences/s; achieved training FLOP/s from ``TransformerConfig.flops_per_example(src_len,
tgt_len)["train"]`` and MFU against the round's best 2048/3072-square ``jnp`` float32 matmul
(NumPy's 2048 matmul rate for scale). Goal (issue): MFU >= 40% for training at the reference.

Profile of the reference step (default run; ``--no-profile`` skips it):

* components: forward + backward of each piece (self-attention and its softmax core,
  feed-forward, layer norms, output projection + loss, optimizer update) built from the
  library's modules at the reference shapes, each run in its own scanned loop, as a share of
  the whole step measured in the same round;
* ablations: forward only, forward + backward without the optimizer, dropout on, untied
  embeddings, batch 128, 1 step per call (with 4 and 16 steps per call this gives the fixed
  cost of a jitted call), and the proposed change: 4 micro-batches of 16 per step (the library's
  ``TrainConfig.micro_batch`` when it has it, else a replica of ``_run_steps``), run next to
  the reference in every round together with a repeat of the reference (the noise floor);
* ``--extra``: more variants (bfloat16, integer-label cross-entropy, fused q/k/v projection,
  batch 16, 8 micro-batches, 2 heads, ...); ``--trace``: an XLA trace (``jax.profiler``) of the
  step by phase and kind of op.

``--quick`` (< 40 s, for tests): 2 rounds, 2 steps per call, beam batch 64, no profile.
XLA flags: run the script under ``XLA_FLAGS=...`` and compare the MFU lines.

Usage: python benchmarks/bench_eigen.py [--quick] [--no-profile] [--extra] [--trace]
           [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import glob
import gzip
import json
import math
import os
import re
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gmmcollapse.eigen import sample_matrices
from gmmcollapse.eigen.experiment import make_config
from gmmcollapse.eigen.tokens import MatrixTokenizer
from gmmcollapse.models import (
    N_SPECIAL,
    PAD,
    TrainConfig,
    TransformerConfig,
    beam_search,
    bind,
    loss_fn,
)
from gmmcollapse.models import transformer as tfm
from gmmcollapse.models.train import _batch_indices, _run_steps, init_params

BEAM = 8
REF_BATCH = 64
REF_TOKENIZER = ("P1000", 5)


def reference_config(**overrides) -> TransformerConfig:
    """The fixed reference model (see the module docstring); fields can be overridden."""
    tok = MatrixTokenizer(*REF_TOKENIZER)
    fields = {
        "vocab_size": tok.vocab_size,
        "max_src_len": tok.src_len,
        "max_tgt_len": tok.tgt_len,
        "enc_layers": 2,
        "dec_layers": 1,
        "width": 128,
        "heads": 4,
        "ff": 512,
        "positions": "learned",
        "tie_embeddings": True,
        "dtype": "float32",
    }
    fields.update(overrides)
    return TransformerConfig(**fields)


def eigen_tokens(tok: MatrixTokenizer, n: int, seed: int = 0, scale: float = 10.0):
    """``n`` real (source, target) id pairs as NumPy int32 arrays."""
    batch = sample_matrices(jax.random.key(seed), n, tok.k, scale)
    return np.asarray(tok.encode_src(batch.matrices)), np.asarray(tok.encode_tgt(batch.eigenvalues))


# -- candidate source changes (measured here, proposed as a diff) -------------------------------
def int_label_loss(model, src, tgt, *, dropout_key=None, label_smoothing: float = 0.0):
    """:func:`gmmcollapse.models.loss_fn` with integer labels: no (b, t, vocab) one-hot."""
    if label_smoothing:
        return loss_fn(model, src, tgt, dropout_key=dropout_key, label_smoothing=label_smoothing)
    logits = model(src, tgt, dropout_key=dropout_key)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
    w = (tgt != PAD).astype(ce.dtype)
    n = jnp.maximum(jnp.sum(w), 1.0)
    return jnp.sum(ce * w) / n, n


_QKV: dict[int, tuple] = {}


def _project_kv_fused(self, x):
    """Self-attention: one x @ [Wq | Wkv] matmul; q is kept for the ``attend`` that follows."""
    w = jnp.concatenate([self.q.kernel[...], self.kv.kernel[...]], axis=1)
    b = jnp.concatenate([self.q.bias[...], self.kv.bias[...]])
    qkv = (x @ w.astype(x.dtype) + b.astype(x.dtype)).astype(x.dtype)
    d = self.cfg.width
    _QKV[id(self)] = (x, qkv[..., :d])
    return self._split(qkv[..., d : 2 * d]), self._split(qkv[..., 2 * d :])


def _attend_fused(self, x, k, v, mask, key=None):
    held = _QKV.pop(id(self), None)
    if held is not None and held[0] is x:
        q = self._split(held[1])
    else:
        q = self._split(self.q(x))
    dh = q.shape[-1]
    logits = jnp.einsum("bqhd,bshd->bhqs", q, k).astype(jnp.float32) / math.sqrt(dh)
    logits = jnp.where(mask[:, None], logits, tfm._NEG)
    w = jax.nn.softmax(logits, axis=-1).astype(x.dtype)
    w = tfm._dropout(w, self.cfg.dropout, key)
    o = jnp.einsum("bhqs,bshd->bqhd", w, v)
    return self.out(o.reshape(*o.shape[:-2], -1))


_ORIG_PROJECT_KV = tfm._Attention.project_kv


@contextlib.contextmanager
def fused_qkv():
    """Trace the model with self-attention q/k/v from one matmul (cross-attention unchanged)."""
    old_kv, old_attend, old_cross = (
        tfm._Attention.project_kv,
        tfm._Attention.attend,
        tfm.Transformer.cross_kv,
    )

    def cross_kv(model, memory):  # cross-attention k/v: the original two-matrix projection
        return [_ORIG_PROJECT_KV(layer.cross_attn, memory) for layer in model.decoder]

    tfm._Attention.project_kv = _project_kv_fused
    tfm._Attention.attend = _attend_fused
    tfm.Transformer.cross_kv = cross_kv
    try:
        yield
    finally:
        tfm._Attention.project_kv = old_kv
        tfm._Attention.attend = old_attend
        tfm.Transformer.cross_kv = old_cross
        _QKV.clear()


# -- workloads ---------------------------------------------------------------------------------
def _replica_steps(mode: str, lossf=loss_fn, micro: int = 1):
    """A jitted copy of ``_run_steps`` with a pluggable loss. ``mode``: ``train`` (the same
    step), ``grad`` (forward + backward, a plain SGD update instead of clip + Adam) or
    ``forward`` (loss only). ``micro > 1`` splits every batch into that many micro-batches
    whose token-weighted gradients are summed in a ``lax.scan`` before the one optimizer
    update: the same step up to summation order, on smaller activations."""

    @functools.partial(jax.jit, static_argnums=(0, 1, 2))
    def run(graphdef, tc, dropout, params, opt_state, src, tgt, steps, key):
        opt = tc.optimizer()

        def one_step(carry, xs):
            params, opt_state = carry
            s_b, t_b, s = xs

            def lf(p, sm, tm, i):
                k = jax.random.fold_in(jax.random.fold_in(key, s), i) if dropout else None
                loss, n = lossf(bind(graphdef, p), sm, tm, dropout_key=k)
                # the token sum of the cross-entropy, and the unclamped token count
                return loss * n, jnp.sum(tm != PAD).astype(jnp.float32)

            if mode == "forward":
                return (params, opt_state), lf(params, s_b, t_b, 0)[0]
            if micro == 1:
                (ln, n), grads = jax.value_and_grad(lf, has_aux=True)(params, s_b, t_b, 0)
            else:

                def acc(c, mb):
                    (ln, n), g = jax.value_and_grad(lf, has_aux=True)(params, *mb)
                    return jax.tree.map(jnp.add, c, (ln, n, g)), None

                z = jnp.zeros((), jnp.float32)
                zero = (z, z, jax.tree.map(jnp.zeros_like, params))
                mbs = (
                    s_b.reshape(micro, -1, s_b.shape[-1]),
                    t_b.reshape(micro, -1, t_b.shape[-1]),
                    jnp.arange(micro),
                )
                (ln, n, grads), _ = jax.lax.scan(acc, zero, mbs)
            n = jnp.maximum(n, 1.0)
            loss, grads = ln / n, jax.tree.map(lambda g: g / n, grads)
            if mode == "grad":
                return (jax.tree.map(lambda a, g: a - 1e-6 * g, params, grads), opt_state), loss
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), (src, tgt, steps))
        return params, opt_state, losses

    return run


class Train:
    """Training the way ``train`` runs it: per call, gather ``steps_per_call`` batches on the
    host, run them in one jitted ``lax.scan`` and copy the losses back."""

    kind = "train"

    def __init__(
        self,
        name,
        cfg: TransformerConfig,
        tc: TrainConfig,
        data,
        steps_per_call: int,
        calls: int = 1,
        step_fn=None,
        trace_ctx=contextlib.nullcontext,
    ):
        self.name, self.cfg, self.k, self.calls = name, cfg, steps_per_call, calls
        # the static part of the recipe, as ``train`` passes it
        self.tc = dataclasses.replace(tc, seed=0, eval_every=0, ckpt_every=0)
        self.src, self.tgt = data
        self.step_fn = _run_steps if step_fn is None else step_fn
        self.trace_ctx = trace_ctx
        self.graphdef, self.params = init_params(cfg, 0)
        self.opt_state = self.tc.optimizer().init(self.params)
        self.key = jax.random.key(0)
        self.step = 0
        b = tc.batch_size
        s, t = self.src.shape[1], self.tgt.shape[1]
        self.src_len, self.tgt_len = s, t
        n_ex = calls * steps_per_call * b
        self.units = {
            "examples": n_ex,
            "tokens": n_ex * (s + t),
            "flops": n_ex * cfg.flops_per_example(s, t)["train"],
        }
        self.samples: list[float] = []
        self.base = None  # the workload it is compared with (None: the reference)
        self.micro = 1  # micro-batches per step

    def _call(self):
        k, b = self.k, self.tc.batch_size
        idx = _batch_indices(self.step, k, b, self.src.shape[0], 0)
        steps = jnp.arange(self.step, self.step + k, dtype=jnp.int32)
        with self.trace_ctx():
            self.params, self.opt_state, ls = self.step_fn(
                self.graphdef,
                self.tc,
                self.cfg.dropout > 0,
                self.params,
                self.opt_state,
                self.src[idx],
                self.tgt[idx],
                steps,
                self.key,
            )
        self.step += k
        return np.asarray(ls)

    def prepare(self):
        t0 = time.perf_counter()
        self._call()  # compile
        self.compile_s = time.perf_counter() - t0
        self._call()

    def run(self) -> float:
        t0 = time.perf_counter()
        for _ in range(self.calls):
            self._call()
        return time.perf_counter() - t0


class Beam:
    """``beam_search`` (beam 8, max_len = tgt_len) on a fixed batch of real sources."""

    kind = "beam"

    def __init__(self, name, cfg: TransformerConfig, src, calls: int = 1):
        self.name, self.cfg, self.src, self.calls = name, cfg, jnp.asarray(src), calls
        graphdef, params = init_params(cfg, 0)
        self.model = bind(graphdef, params)
        self.units = {"sequences": calls * src.shape[0]}
        self.samples: list[float] = []

    def _call(self):
        g = beam_search(self.model, self.src, BEAM)
        g.tokens.block_until_ready()

    def prepare(self):
        t0 = time.perf_counter()
        self._call()
        self.compile_s = time.perf_counter() - t0
        self._call()

    def run(self) -> float:
        t0 = time.perf_counter()
        for _ in range(self.calls):
            self._call()
        return time.perf_counter() - t0


class Peak:
    """The machine's float32 matmul rate (GFLOP/s): the best of single jitted n x n ``jnp``
    matmuls ``a @ b`` over ``sizes`` (a size may repeat), timed with ``block_until_ready``.
    NumPy's rate (one 2048 matmul, best of 2) is recorded for scale."""

    def __init__(self, sizes):
        rng = np.random.default_rng(0)
        self.sizes = sizes
        self.mats = {n: rng.standard_normal((2, n, n), dtype=np.float32) for n in set(sizes)}
        self.jmats = {n: (jnp.asarray(a[0]), jnp.asarray(a[1])) for n, a in self.mats.items()}
        self.f = jax.jit(lambda a, b: a @ b)
        for ab in self.jmats.values():
            self.f(*ab).block_until_ready()
        self.jax: list[float] = []
        self.numpy: list[float] = []

    def jax_rate(self) -> float:
        best = 0.0
        for n in self.sizes:
            t0 = time.perf_counter()
            self.f(*self.jmats[n]).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        return best

    def numpy_rate(self, n=2048, repeats=2) -> float:
        if n not in self.mats:
            self.mats[n] = np.random.default_rng(1).standard_normal((2, n, n), dtype=np.float32)
        a, b = self.mats[n]
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9


class Component:
    """Forward + backward (gradients of parameters and float inputs) of one piece of the
    model, built from the library's own modules at the reference shapes; ``count`` is how many
    times a training step runs it, ``flops`` its training FLOPs (3 x forward matmul FLOPs).

    ``reps`` applications run in one jitted ``lax.scan`` (parameters and inputs take a tiny
    gradient step each time, so nothing is hoisted out of the loop), as in the training step:
    separate calls would pay for fresh output buffers (page faults) that the scanned step reuses.
    """

    kind = "component"

    def __init__(self, name, count: int, flops: float, module, fn, inputs, reps: int):
        self.name, self.count, self.flops, self.reps = name, count, flops, reps
        graphdef, state = nnx.split(module)
        self.args = (state, *inputs)
        out = jax.eval_shape(lambda st, *xs: fn(nnx.merge(graphdef, st), *xs), *self.args)
        cot = jax.random.normal(jax.random.key(1), out.shape, out.dtype)

        def scalar(st, *xs):
            return jnp.vdot(fn(nnx.merge(graphdef, st), *xs), cot)

        grad = jax.grad(scalar, argnums=tuple(range(len(self.args))))

        def body(args, _):
            g = grad(*args)
            return jax.tree.map(lambda a, b: a - 1e-9 * b.astype(a.dtype), args, g), None

        self.f = jax.jit(lambda args: jax.lax.scan(body, args, None, length=reps)[0])
        self.units = {"calls": reps}
        self.samples: list[float] = []

    def prepare(self):
        t0 = time.perf_counter()
        jax.block_until_ready(self.f(self.args))
        self.compile_s = time.perf_counter() - t0

    def run(self) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(self.f(self.args))
        return time.perf_counter() - t0


class OptimizerUpdate(Component):
    """The optimizer update (clipping + Adam + apply) of a model, alone."""

    def __init__(self, name, cfg: TransformerConfig, tc: TrainConfig, reps: int):
        self.name, self.count, self.flops, self.reps = name, 1, 0.0, reps
        _, params = init_params(cfg, 0)
        opt = tc.optimizer()
        grads = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params)
        self.args = (params, opt.init(params), grads)

        def body(args, _):
            params, state, grads = args
            u, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, u), state, grads), None

        self.f = jax.jit(lambda args: jax.lax.scan(body, args, None, length=reps)[0])
        self.units = {"calls": reps}
        self.samples: list[float] = []


def components(cfg: TransformerConfig, batch: int, reps: int) -> list:
    """The pieces of one reference training step (see :class:`Component`)."""
    b, s, t, d, f, v = batch, cfg.max_src_len, cfg.max_tgt_len, cfg.width, cfg.ff, cfg.vocab_size
    h = cfg.heads
    rngs = nnx.Rngs(0)
    key = iter(jax.random.split(jax.random.key(0), 8))
    xs = jax.random.normal(next(key), (b, s, d), jnp.float32)
    xt = jax.random.normal(next(key), (b, t, d), jnp.float32)
    src_mask = jnp.ones((b, 1, s), bool)
    causal = jnp.tril(jnp.ones((t, t), bool))[None]
    attn = tfm._Attention(cfg, rngs=rngs)

    def heads(n):
        return jax.random.normal(next(key), (b, n, h, d // h), jnp.float32)

    def core(m, q, k, vv, mask):  # _Attention.attend after its q projection, before out
        logits = jnp.einsum("bqhd,bshd->bhqs", q, k) / math.sqrt(q.shape[-1])
        w = jax.nn.softmax(jnp.where(mask[:, None], logits, tfm._NEG), axis=-1)
        return jnp.einsum("bhqs,bshd->bqhd", w, vv)

    tgt = jnp.asarray(np.random.default_rng(0).integers(N_SPECIAL, v, (b, t)), jnp.int32)

    def out_loss(m, hh):  # tied output projection + the loss of loss_fn
        logits = m.attend(hh).astype(jnp.float32)
        onehot = jax.nn.one_hot(tgt, v, dtype=logits.dtype)
        return jnp.mean(optax.softmax_cross_entropy(logits, onehot))

    qs, ks, vs, qt, kt, vt = heads(s), heads(s), heads(s), heads(t), heads(t), heads(t)
    enc, dec = cfg.enc_layers, cfg.dec_layers
    n_norm_s = 2 * enc + (cfg.norm == "pre")
    n_norm_t = 3 * dec + (cfg.norm == "pre")
    c = functools.partial(Component, reps=reps)
    return [
        c(
            "encoder self-attention (all)",
            enc,
            3 * b * (8 * s * d * d + 4 * s * s * d),
            attn,
            lambda m, x: m.attend(x, *m.project_kv(x), src_mask),
            (xs,),
        ),
        c(
            "  of which the core (q.k, softmax, w.v)",
            enc,
            3 * b * 4 * s * s * d,
            nnx.Dict(),
            lambda m, q, k, vv: core(m, q, k, vv, src_mask),
            (qs, ks, vs),
        ),
        c(
            "encoder feed-forward",
            enc,
            3 * b * 4 * s * d * f,
            tfm._FeedForward(cfg, rngs=rngs),
            lambda m, x: m(x),
            (xs,),
        ),
        c(
            "decoder self-attention (all)",
            dec,
            3 * b * (8 * t * d * d + 4 * t * t * d),
            attn,
            lambda m, x: m.attend(x, *m.project_kv(x), causal),
            (xt,),
        ),
        c(
            "  of which the core",
            dec,
            3 * b * 4 * t * t * d,
            nnx.Dict(),
            lambda m, q, k, vv: core(m, q, k, vv, causal),
            (qt, kt, vt),
        ),
        c(
            "decoder cross-attention (all)",
            dec,
            3 * b * (4 * t * d * d + 4 * s * d * d + 4 * t * s * d),
            attn,
            lambda m, x, mem: m.attend(x, *m.project_kv(mem), src_mask),
            (xt, xs),
        ),
        c(
            "  of which the core",
            dec,
            3 * b * 4 * t * s * d,
            nnx.Dict(),
            lambda m, q, k, vv: core(m, q, k, vv, src_mask),
            (qt, ks, vs),
        ),
        c(
            "decoder feed-forward",
            dec,
            3 * b * 4 * t * d * f,
            tfm._FeedForward(cfg, rngs=rngs),
            lambda m, x: m(x),
            (xt,),
        ),
        c(
            f"layer norms + residual, source length (x{n_norm_s})",
            n_norm_s,
            0,
            nnx.LayerNorm(d, rngs=rngs),
            lambda m, x: x + m(x),
            (xs,),
        ),
        c(
            f"layer norms + residual, target length (x{n_norm_t})",
            n_norm_t,
            0,
            nnx.LayerNorm(d, rngs=rngs),
            lambda m, x: x + m(x),
            (xt,),
        ),
        c(
            "tied output projection + cross-entropy",
            1,
            3 * b * 2 * t * d * v,
            nnx.Embed(v, d, rngs=rngs),
            out_loss,
            (xt,),
        ),
    ]


def measure(works, peak: Peak, rounds: int, log=print):
    """Interleaved rounds: jnp peak, first half of the works, jnp peak, second half, NumPy.

    The round's peak is the better of its two jnp measurements (each the best of the sizes).
    """
    n = len(works)
    for r in range(rounds):
        order = works[r % n :] + works[: r % n]
        half = (n + 1) // 2
        p1 = peak.jax_rate()
        for w in order[:half]:
            w.samples.append(w.run())
        p2 = peak.jax_rate()
        for w in order[half:]:
            w.samples.append(w.run())
        peak.jax.append(max(p1, p2))
        peak.numpy.append(peak.numpy_rate())
        log(f"  round {r + 1}/{rounds}: jnp peak {peak.jax[-1]:.0f} GFLOP/s")


def _med(xs):
    return float(statistics.median(xs)) if xs else float("nan")


def summarize(w, peak: Peak) -> dict:
    rates = {u: [v / t for t in w.samples] for u, v in w.units.items()}
    out = {
        "name": w.name,
        "kind": w.kind,
        "compile_s": w.compile_s,
        **{f"{u}_per_s": _med(r) for u, r in rates.items()},
    }
    if "flops" in rates:
        out["gflops"] = _med(rates["flops"]) / 1e9
        out["mfu"] = _med([f / (p * 1e9) for f, p in zip(rates["flops"], peak.jax, strict=True)])
        out["mfu_min"] = min(f / (p * 1e9) for f, p in zip(rates["flops"], peak.jax, strict=True))
        out["mfu_max"] = max(f / (p * 1e9) for f, p in zip(rates["flops"], peak.jax, strict=True))
    return out


def ratio(w, base) -> float:
    """Median over rounds of (examples or sequences per second of w) / (base's)."""
    u = "examples" if "examples" in w.units else "sequences"
    return _med(
        [
            (w.units[u] / a) / (base.units[u] / b)
            for a, b in zip(w.samples, base.samples, strict=True)
        ]
    )


# -- XLA trace of the compiled step ------------------------------------------------------------
_INSTR = re.compile(r"^\s+(?:ROOT )?%(\S+) = (\S+?)(?:\{[^}]*\})? (\S+?)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY )?%(\S+) .*\{$")


def _parse_hlo(text: str):
    inst, comps, comp = {}, collections.defaultdict(list), None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m:
            comp = m.group(1)
            continue
        m = _INSTR.match(line)
        if m:
            name, shape, op, rest = m.groups()
            inst[name] = {"shape": shape, "op": op, "rest": rest, "line": line}
            comps[comp].append(name)
    return inst, comps


def _dims(shape: str) -> list[int]:
    m = re.match(r"\w+\[([\d,]*)\]", shape)
    return [int(x) for x in m.group(1).split(",") if x] if m else []


def _dot_flops(inst, i) -> int:
    ops = re.findall(r"%([\w.\-]+)", i["rest"].split(")")[0])
    cd = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", i["line"])
    if not ops or ops[0] not in inst or not cd:
        return 0
    lhs = _dims(inst[ops[0]]["shape"])
    k = math.prod(lhs[int(c)] for c in cd.group(1).split(",") if c)
    return 2 * math.prod(_dims(i["shape"])) * k


def _flops(inst, comps, name) -> int:
    i = inst[name]
    if i["op"] == "dot":
        return _dot_flops(inst, i)
    if i["op"] == "fusion":
        c = re.search(r"calls=%([\w.\-]+)", i["line"])
        if c:
            return sum(
                _dot_flops(inst, inst[n]) for n in comps[c.group(1)] if inst[n]["op"] == "dot"
            )
    return 0


def _classify(inst, comps, name, cfg: TransformerConfig, batch: int, s: int, t: int):
    i = inst[name]
    m = re.search(r'op_name="([^"]*)"', i["line"])
    op_name = m.group(1) if m else ""
    phase = (
        "backward" if "transpose(" in op_name else "forward" if "jvp(" in op_name else "optimizer"
    )
    fl = _flops(inst, comps, name)
    dims = _dims(i["shape"])
    if fl:
        kind = "matmul"
    elif "tanh" in name or "tanh" in op_name:
        kind = "gelu (tanh)"
    elif "exp" in name:
        kind = "exp (softmax)"
    elif any(x in name for x in ("copy", "transpose", "concatenate")):
        kind = "copy/transpose"
    elif "reduce" in name or i["op"] == "reduce":
        kind = "reduction"
    else:
        kind = "elementwise"
    if cfg.vocab_size in dims:
        part = "output + loss"
    elif s in dims or batch * s in dims:
        part = "encoder / cross k,v"
    elif t in dims or batch * t in dims:
        part = "decoder"
    else:
        part = "weights / optimizer"
    return phase, kind, part, fl


def op_profile(w: Train, calls: int = 2) -> dict:
    """Trace ``calls`` calls of a training workload and attribute the XLA thunk time."""
    args = (
        w.graphdef,
        w.tc,
        w.cfg.dropout > 0,
        w.params,
        w.opt_state,
        *(a[_batch_indices(0, w.k, w.tc.batch_size, a.shape[0], 0)] for a in (w.src, w.tgt)),
        jnp.arange(w.k, dtype=jnp.int32),
        w.key,
    )
    inst, comps = _parse_hlo(w.step_fn.lower(*args).compile().as_text())
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d, create_perfetto_trace=True)
        t0 = time.perf_counter()
        for _ in range(calls):
            w._call()
        wall = time.perf_counter() - t0
        jax.profiler.stop_trace()
        files = sorted(glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True))
        with gzip.open(files[-1]) as f:
            events = json.load(f)["traceEvents"]
    steps = calls * w.k
    b, s, t = w.tc.batch_size // w.micro, w.src_len, w.tgt_len
    by = collections.defaultdict(lambda: [0.0, 0.0, 0])  # (phase, kind) -> [us, flops, n]
    by_part = collections.Counter()
    n_thunks = 0
    for e in events:
        if e.get("ph") != "X" or e["name"] not in inst:
            continue
        phase, kind, part, fl = _classify(inst, comps, e["name"], w.cfg, b, s, t)
        r = by[(phase, kind)]
        r[0] += e["dur"]
        r[1] += fl
        r[2] += 1
        by_part[part] += e["dur"]
        n_thunks += 1
    total = sum(r[0] for r in by.values())
    rows = [
        {
            "phase": p,
            "kind": k,
            "ms_per_step": r[0] / 1e3 / steps,
            "fraction": r[0] / total,
            "gflops": r[1] / r[0] / 1e3 if r[1] else None,
        }
        for (p, k), r in sorted(by.items(), key=lambda x: -x[1][0])
    ]
    return {
        "wall_ms_per_step_traced": 1e3 * wall / steps,
        "thunk_ms_per_step": total / 1e3 / steps,
        "thunks_per_step": n_thunks / steps,
        "rows": rows,
        "parts": {k: v / total for k, v in by_part.most_common()},
    }


# -- main ----------------------------------------------------------------------------------
def _table(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())


def _has_micro_batch() -> bool:
    return "micro_batch" in {f.name for f in dataclasses.fields(TrainConfig)}


def micro_batch_work(name, cfg, tc, data, k, micro: int, base) -> Train:
    """Batch ``tc.batch_size`` as ``micro`` micro-batches: the library's own option when it
    has one (``TrainConfig.micro_batch``, the proposed change), else the replica step."""
    if _has_micro_batch():
        tc = dataclasses.replace(tc, micro_batch=tc.batch_size // micro)
        w = Train(name, cfg, tc, data, k)
    else:
        w = Train(name, cfg, tc, data, k, step_fn=_replica_steps("train", micro=micro))
    w.base, w.micro = base, micro
    return w


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sanity pass (< 40 s): no profile")
    ap.add_argument("--no-profile", action="store_true", help="skip the profile and ablations")
    ap.add_argument(
        "--extra",
        action="store_true",
        help="more variants: bfloat16, integer-label cross-entropy, fused q/k/v, a replica of "
        "_run_steps (control), batch 16, 4 and 8 micro-batches, quick config micro-batches, "
        "2 heads of 64",
    )
    ap.add_argument(
        "--trace", action="store_true", help="also an XLA trace of the step (jax.profiler)"
    )
    ap.add_argument("--rounds", type=int, default=None, help="interleaved measurement rounds")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = ap.parse_args(argv)
    quick = args.quick
    profile = not (quick or args.no_profile)
    rounds = args.rounds or (2 if quick else 5)
    log = functools.partial(print, flush=True)
    t_start = time.perf_counter()
    log(
        f"jax {jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} device(s), "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )

    qcfg = make_config("quick")
    q_model, q_tok = qcfg.model_config(), qcfg.tokenizer
    q_tc = qcfg.train_config(qcfg.gen_steps, 0)
    r_model = reference_config()
    r_tok = MatrixTokenizer(*REF_TOKENIZER)
    r_tc = TrainConfig(steps=10_000, batch_size=REF_BATCH, lr=qcfg.lr, warmup=qcfg.warmup)
    q_data = eigen_tokens(q_tok, 8192, seed=1, scale=qcfg.entry_scale)
    r_data = eigen_tokens(r_tok, 8192, seed=2)
    # optimizer steps per jitted call, one call per timed sample: the main measurements use 16
    # (train's default is 50; every call costs about half a step, see the per-call fit), the
    # ablations 4 against a 4-step baseline, to keep the run short
    k_main, k_abl = (2, 2) if quick else (16, 4)
    decode_batch = 64 if quick else 128

    tq = Train("train quick", q_model, q_tc, q_data, k_main)
    ref = Train("train reference", r_model, r_tc, r_data, k_main)
    works = [
        tq,
        ref,
        Beam("beam-8 quick", q_model, q_data[0][:decode_batch], calls=1 if quick else 2),
        Beam("beam-8 reference", r_model, r_data[0][:decode_batch]),
    ]
    ablations, parts = [], []
    if profile:
        rep = functools.partial(Train, data=r_data, steps_per_call=k_abl)
        base = rep(f"reference, {k_abl} steps per call", r_model, r_tc)
        base.base = ref
        # the reference again (no new compilation): the noise floor of the ratios
        repeat = Train("train reference, repeated", r_model, r_tc, r_data, k_main)
        repeat.base = ref
        ablations = [
            base,
            rep("forward only", r_model, r_tc, step_fn=_replica_steps("forward")),
            rep("fwd+bwd, no optimizer", r_model, r_tc, step_fn=_replica_steps("grad")),
            rep("dropout 0.1", reference_config(dropout=0.1), r_tc),
            rep("untied embeddings", reference_config(tie_embeddings=False), r_tc),
            rep("batch 128", r_model, dataclasses.replace(r_tc, batch_size=128), steps_per_call=2),
            rep("1 step per call", r_model, r_tc, steps_per_call=1, calls=k_abl),
            micro_batch_work(
                f"4 micro-batches of 16, {k_main} steps per call",
                r_model,
                r_tc,
                r_data,
                k_main,
                4,
                ref,
            ),
            repeat,
        ]
        if args.extra:
            ablations += [
                rep("bfloat16 compute", reference_config(dtype="bfloat16"), r_tc),
                rep(
                    "integer-label cross-entropy",
                    r_model,
                    r_tc,
                    step_fn=_replica_steps("train", int_label_loss),
                ),
                rep(
                    "fused self-attention q/k/v",
                    r_model,
                    r_tc,
                    step_fn=_replica_steps("train"),
                    trace_ctx=fused_qkv,
                ),
                rep("replica of _run_steps", r_model, r_tc, step_fn=_replica_steps("train")),
                rep(
                    "batch 16", r_model, dataclasses.replace(r_tc, batch_size=16), steps_per_call=16
                ),
                micro_batch_work("4 micro-batches of 16", r_model, r_tc, r_data, k_abl, 4, base),
                micro_batch_work("8 micro-batches of 8", r_model, r_tc, r_data, k_abl, 8, base),
                micro_batch_work(
                    f"quick: 2 micro-batches of 64, {k_main} steps per call",
                    q_model,
                    q_tc,
                    q_data,
                    k_main,
                    2,
                    tq,
                ),
                rep("2 heads of 64 (model change)", reference_config(heads=2), r_tc),
            ]
        for w in ablations:
            w.base = w.base or base
        parts = components(r_model, REF_BATCH, reps=8)
        parts.append(OptimizerUpdate("optimizer update (clip + Adam)", r_model, r_tc, reps=8))
    peak = Peak((2048, 2048, 2048) if quick else (2048, 2048, 2048, 3072))
    for w in works + ablations + parts:
        w.prepare()
        if w.kind != "component":
            log(f"  compiled {w.name}: {w.compile_s:.1f} s")
    if parts:
        log(f"  compiled {len(parts)} model components")
    profs = {}
    if profile and args.trace:
        for w in [ref] + [w for w in ablations if w.micro > 1 and w.base is ref][:1]:
            profs[w.name] = op_profile(w)
        log("  traced " + ", ".join(profs))
    log(f"measuring {rounds} interleaved rounds")
    # the micro-batched candidate and the repeat run right after the reference in every round
    # (the rotation keeps neighbours together), the rest in between
    near = [w for w in ablations if w.base is ref and w.k == ref.k]
    order = [tq, ref, *near] + [w for w in works + ablations if w not in (tq, ref, *near)]
    measure(order + parts, peak, rounds, log)

    res = {"workloads": {w.name: summarize(w, peak) for w in works + ablations}}
    sm = res["workloads"]
    rows = [("workload", "throughput", "tokens/s | GFLOP/s", "MFU median (min-max)")]
    for w in works:
        s = sm[w.name]
        if w.kind == "train":
            rows.append(
                (
                    f"{w.name} (b={w.tc.batch_size}, src {w.src_len}, tgt {w.tgt_len})",
                    f"{s['examples_per_s']:.0f} examples/s",
                    f"{s['tokens_per_s']:.0f} tok/s | {s['gflops']:.1f} GFLOP/s",
                    f"{100 * s['mfu']:.0f}% ({100 * s['mfu_min']:.0f}-{100 * s['mfu_max']:.0f}%)",
                )
            )
        else:
            rows.append(
                (
                    f"{w.name} (b={w.src.shape[0]}, len {w.cfg.max_tgt_len})",
                    f"{s['sequences_per_s']:.0f} seq/s",
                    f"{BEAM * s['sequences_per_s'] * w.cfg.max_tgt_len:.0f} beam-tokens/s",
                    "",
                )
            )
    rows.append(
        (
            f"fp32 matmul peak (jnp {'/'.join(map(str, sorted(set(peak.sizes))))}, per round)",
            f"{_med(peak.jax):.0f} GFLOP/s median",
            f"range {min(peak.jax):.0f}-{max(peak.jax):.0f}",
            f"NumPy 2048: {_med(peak.numpy):.0f} GFLOP/s",
        )
    )
    print()
    _table(rows)
    mfu_ref = sm[ref.name]["mfu"]
    verdict = "met" if mfu_ref >= 0.4 else "NOT met"
    print(
        f"goal MFU >= 40% for training at the reference config: {100 * mfu_ref:.0f}% at {k_main} "
        f"steps per call, {verdict}"
    )

    if profile:
        # bottom-up: each component's share of the reference step measured in the same round
        step = [t / (ref.calls * ref.k) for t in ref.samples]
        crow = [("component of the reference step (fwd+bwd)", "x", "ms/step", "share", "GFLOP/s")]
        res["components"] = {}
        total = [0.0] * len(step)
        for c in parts:
            per = [t / c.reps for t in c.samples]
            share = _med([c.count * p / st for p, st in zip(per, step, strict=True)])
            gf = c.flops / _med(per) / 1e9 if c.flops else None
            sub = c.name.startswith("  ")
            if not sub:
                total = [a + c.count * p for a, p in zip(total, per, strict=True)]
            res["components"][c.name.strip()] = {"ms": 1e3 * _med(per), "share": share}
            crow.append(
                (
                    c.name,
                    str(c.count),
                    f"{1e3 * c.count * _med(per):.2f}",
                    f"{100 * share:.0f}%",
                    f"{gf:.0f}" if gf else "",
                )
            )
        rest = _med([1 - a / st for a, st in zip(total, step, strict=True)])
        crow.append(
            (
                "not attributed (embeddings, masks, fusion boundaries)",
                "",
                "",
                f"{100 * rest:.0f}%",
                "",
            )
        )
        crow.append(
            ("whole step", "", f"{1e3 * _med(step):.2f}", "100%", f"{sm[ref.name]['gflops']:.0f}")
        )
        print()
        _table(crow)
        print("\nablations, each against its baseline in the same rounds:")
        arow = [("variant", "examples/s", "ratio", "against", "MFU")]
        for w in [ref, *ablations]:
            s = sm[w.name]
            b = w.base or ref
            s["ratio"] = ratio(w, b)
            mfu = f"{100 * s['mfu']:.0f}%" + (" (3x fwd FLOPs)" if w.name == "forward only" else "")
            against = "" if w is ref else b.name
            arow.append((w.name, f"{s['examples_per_s']:.0f}", f"{s['ratio']:.2f}x", against, mfu))
        _table(arow)
        # time per step t(K) = per_step + per_call / K from K = 1, k_abl, k_main steps per call
        ks = np.array([1.0, k_abl, k_main])
        ts = np.array(
            [
                ref.tc.batch_size / sm[n]["examples_per_s"]
                for n in ("1 step per call", base.name, ref.name)
            ]
        )
        per_step, per_call = np.linalg.lstsq(np.stack([np.ones(3), 1 / ks], 1), ts, rcond=None)[0]
        flops = ref.units["flops"] / (ref.calls * ref.k)
        mfu50 = flops / (per_step + per_call / 50) / (_med(peak.jax) * 1e9)
        res["per_call"] = {"per_step_s": per_step, "per_call_s": per_call, "mfu_at_50": mfu50}
        print(
            f"per-call cost from K = 1, {k_abl}, {k_main} steps per call: {1e3 * per_step:.1f} ms per "
            f"step + {1e3 * per_call:.0f} ms per call; at train's default 50 steps per call the "
            f"reference MFU would be {100 * mfu50:.0f}%"
        )
        f_fwd = 1 / sm["forward only"]["ratio"]
        f_grad = 1 / sm["fwd+bwd, no optimizer"]["ratio"]
        res["split"] = {"forward": f_fwd, "backward": f_grad - f_fwd, "optimizer": 1 - f_grad}
        print(
            "reference step time split from the ablations: "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in res["split"].items())
        )
    for name, prof in profs.items():
        print(
            f"\nXLA trace of '{name}': {prof['thunks_per_step']:.0f} thunks/step, thunk time "
            f"{prof['thunk_ms_per_step']:.1f} of {prof['wall_ms_per_step_traced']:.1f} ms/step wall "
            "while tracing (Eigen weight-gradient dots run asynchronously: their time shows up "
            "in the thunks that overlap them)"
        )
        prow = [("phase", "kind", "ms/step", "share", "GFLOP/s")]
        for r in prof["rows"]:
            if r["fraction"] >= 0.005:
                prow.append(
                    (
                        r["phase"],
                        r["kind"],
                        f"{r['ms_per_step']:.2f}",
                        f"{100 * r['fraction']:.1f}%",
                        f"{r['gflops']:.0f}" if r["gflops"] else "",
                    )
                )
        _table(prow)
        print("by part: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in prof["parts"].items()))
    res["profile"] = profs

    res["peak_gflops"] = {"jax": peak.jax, "numpy": peak.numpy}
    res["rounds"] = rounds
    res["load_average"] = os.getloadavg()[0]
    res["seconds"] = time.perf_counter() - t_start
    print(f"total {res['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=float)
    return res


if __name__ == "__main__":
    main()
