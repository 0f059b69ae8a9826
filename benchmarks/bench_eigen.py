"""Eigen-experiment transformer benchmark: training and beam-search throughput, and model FLOPs
utilisation (MFU) against the machine's measured matmul peak.

Everything is measured in one run, interleaved: every round times each workload once (in a
rotated order) and the machine's matmul peak twice, every ratio (MFU, a variant against the
reference) is taken within a round, and the median over rounds is reported. On a shared CPU the
ratios are the result; absolute rates move by up to 2x with the load.

Workloads, through the public API only:

* training with :func:`gmmcollapse.models.train_steps` (the steps of
  :func:`gmmcollapse.models.train`, one jitted ``lax.scan`` of ``--steps-per-call`` steps per
  call, batches gathered on the host) on real tokenized data
  (:func:`gmmcollapse.eigen.sample_matrices` + :class:`gmmcollapse.eigen.MatrixTokenizer`);
* beam search (:func:`gmmcollapse.models.beam_search`, beam 8, decode length = the
  tokenizer's ``tgt_len``) on a fixed batch of real sources;

each at two models:

* ``quick``: the eigen experiment's quick preset, at its batch size (128);
* ``reference``: 5x5 matrices, P1000 in and out, 2 encoder / 1 decoder layers, width 128,
  4 heads, feed-forward 512, learned positions, tied embeddings, batch 64.

Training FLOPs are ``TransformerConfig.flops_per_example(src_len, tgt_len)["train"]`` (matmuls
only; XLA's own cost analysis of the step counts 2% more, its elementwise work). MFU is against
the round's best square ``jnp`` matmul in the compute dtype (``--dtype``); NumPy's float32 2048
matmul rate is printed for scale. Goal: MFU >= 40% for training at the reference config.

``--micro-batch N`` adds the reference trained with ``TrainConfig(micro_batch=N)`` and a repeat
of the reference (the noise floor), both run next to it in every round, with their speed
ratios. What the earlier profiler of the training step found is in docs/eigen.md
(Performance); ``--no-profile``, ``--extra`` and ``--trace`` are still accepted and do nothing.

``--smoke`` (old spelling ``--quick``; under a minute): 2 rounds, 2 steps per call, beam batch
64, 2048 data points. XLA flags: run under ``XLA_FLAGS=...`` and compare the MFU lines.

Usage: python benchmarks/bench_eigen.py [--smoke] [--dtype bfloat16] [--micro-batch N]
           [--steps-per-call K] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable

import jax
import numpy as np
from baselines import JaxMatmulPeak, matmul_peak, median

from gmmcollapse.eigen import MatrixTokenizer, sample_matrices
from gmmcollapse.eigen.experiment import make_config
from gmmcollapse.models import (
    TrainConfig,
    TransformerConfig,
    beam_search,
    bind,
    init_params,
    init_state,
    train_steps,
)

BEAM = 8
REF_BATCH = 64
REF_TOKENIZER = ("P1000", 5)
GOAL_MFU = 0.4


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
    return TransformerConfig(**(fields | overrides))


def eigen_tokens(tok: MatrixTokenizer, n: int, seed: int = 0, scale: float = 10.0):
    """``n`` real (source, target) id pairs as NumPy int32 arrays."""
    batch = sample_matrices(jax.random.key(seed), n, tok.k, scale)
    return np.asarray(tok.encode_src(batch.matrices)), np.asarray(tok.encode_tgt(batch.eigenvalues))


@dataclasses.dataclass
class Work:
    """One timed workload: ``calls`` calls of ``call`` (which blocks until its result is
    ready) per sample; ``units`` counts what one sample processes (examples, FLOPs, ...)."""

    name: str
    kind: str
    call: Callable[[], object]
    units: dict
    label: str
    calls: int = 1
    tgt_len: int = 0  # beam search: the decode length
    samples: list = dataclasses.field(default_factory=list)
    compile_s: float = float("nan")

    def prepare(self):
        t = time.perf_counter()
        self.call()
        self.compile_s = time.perf_counter() - t
        self.call()

    def run(self):
        t = time.perf_counter()
        for _ in range(self.calls):
            self.call()
        self.samples.append(time.perf_counter() - t)


def train_work(name, cfg: TransformerConfig, tc: TrainConfig, data, k: int) -> Work:
    """``k`` optimizer steps of ``train`` per call, from a fresh model."""
    src, tgt = data
    state = init_state(cfg, tc)

    def call():
        nonlocal state
        state, _ = train_steps(cfg, tc, state, src, tgt, k)

    s, t, n = src.shape[1], tgt.shape[1], k * tc.batch_size
    units = {
        "examples": n,
        "tokens": n * (s + t),
        "flops": n * cfg.flops_per_example(s, t)["train"],
    }
    return Work(name, "train", call, units, f"{name} (b={tc.batch_size}, src {s}, tgt {t})")


def beam_work(name, cfg: TransformerConfig, src, calls: int = 1) -> Work:
    """``beam_search`` (beam 8, max_len = tgt_len) of a fresh model on ``src``."""
    model, src = bind(*init_params(cfg, 0)), jax.numpy.asarray(src)
    units = {"sequences": calls * src.shape[0]}
    label = f"{name} (b={src.shape[0]}, len {cfg.max_tgt_len})"
    run = lambda: beam_search(model, src, BEAM).tokens.block_until_ready()
    return Work(name, "beam", run, units, label, calls, cfg.max_tgt_len)


def measure(works: list[Work], peak: JaxMatmulPeak, rounds: int, log=print) -> dict:
    """Interleaved rounds: jnp peak, first half of the works, jnp peak, second half, NumPy. The
    round's peak is the better of its two jnp measurements (each the best of the sizes)."""
    rates = {"jax": [], "numpy": []}
    n = len(works)
    for r in range(rounds):
        order = works[r % n :] + works[: r % n]
        half = (n + 1) // 2
        p1 = peak.rate()
        for w in order[:half]:
            w.run()
        p2 = peak.rate()
        for w in order[half:]:
            w.run()
        rates["jax"].append(max(p1, p2))
        rates["numpy"].append(matmul_peak())
        log(f"  round {r + 1}/{rounds}: jnp {peak.dtype} peak {rates['jax'][-1]:.0f} GFLOP/s")
    return rates


def summarize(w: Work, peak_gflops: list[float]) -> dict:
    rates = {u: [v / t for t in w.samples] for u, v in w.units.items()}
    out = {"name": w.name, "kind": w.kind, "compile_s": w.compile_s}
    out |= {f"{u}_per_s": median(r) for u, r in rates.items()}
    if "flops" in rates:
        mfu = [f / (p * 1e9) for f, p in zip(rates["flops"], peak_gflops, strict=True)]
        out |= {"gflops": median(rates["flops"]) / 1e9, "mfu": median(mfu)}
        out |= {"mfu_min": min(mfu), "mfu_max": max(mfu)}
    return out


def ratio(w: Work, base: Work) -> float:
    """Median over rounds of (w's examples/s) / (base's), both measured in the same round."""
    u = next(iter(w.units))
    pairs = zip(w.samples, base.samples, strict=True)
    return median([(w.units[u] / a) / (base.units[u] / b) for a, b in pairs])


def _table(rows):
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(width[i]) for i, c in enumerate(r)).rstrip())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", "--quick", action="store_true", help="short sanity pass")
    ap.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute dtype of the models and of the peak matmul",
    )
    ap.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        metavar="N",
        help="also the reference with TrainConfig(micro_batch=N), and its ratio",
    )
    ap.add_argument(
        "--steps-per-call",
        type=int,
        default=None,
        metavar="K",
        help="optimizer steps per jitted training call (default 16, smoke 2)",
    )
    ap.add_argument("--rounds", type=int, default=None, help="interleaved measurement rounds")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    for old in ("--no-profile", "--extra", "--trace"):  # the profiler moved to docs/eigen.md
        ap.add_argument(old, action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    smoke = args.smoke
    rounds = args.rounds or (2 if smoke else 5)
    k = args.steps_per_call or (2 if smoke else 16)
    n_data, decode_batch = (2048, 64) if smoke else (8192, 128)
    log = lambda *a: print(*a, flush=True)
    t_start = time.perf_counter()
    log(
        f"jax {jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} device(s), "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )

    q = make_config("quick")  # the eigen experiment's quick preset
    q_model = dataclasses.replace(q.model, dtype=args.dtype)
    q_tc = q.train_config(q.gen_steps, 0)
    r_model = reference_config(dtype=args.dtype)
    r_tc = TrainConfig(steps=10_000, batch_size=REF_BATCH, lr=q.train.lr, warmup=q.train.warmup)
    q_data = eigen_tokens(q.tokenizer, n_data, seed=1, scale=q.entry_scale)
    r_data = eigen_tokens(MatrixTokenizer(*REF_TOKENIZER), n_data, seed=2)

    tq = train_work("train quick", q_model, q_tc, q_data, k)
    ref = train_work("train reference", r_model, r_tc, r_data, k)
    near = []  # run right after the reference in every round (the rotation keeps them together)
    if args.micro_batch:
        mtc = dataclasses.replace(r_tc, micro_batch=args.micro_batch)
        n_micro = REF_BATCH // args.micro_batch
        near = [
            train_work(f"{n_micro} micro-batches of {args.micro_batch}", r_model, mtc, r_data, k),
            train_work("train reference, repeated", r_model, r_tc, r_data, k),
        ]
    beams = [
        beam_work("beam-8 quick", q_model, q_data[0][:decode_batch], 1 if smoke else 2),
        beam_work("beam-8 reference", r_model, r_data[0][:decode_batch]),
    ]
    works = [tq, ref, *near, *beams]
    on_cpu = jax.default_backend() == "cpu"
    sizes = (2048, 2048, 2048) if smoke else (2048, 2048, 2048, 3072)
    peak = JaxMatmulPeak(sizes if on_cpu else (4096, 8192, 8192), args.dtype)
    for w in works:
        w.prepare()
        log(f"  compiled {w.name}: {w.compile_s:.1f} s")
    log(f"measuring {rounds} interleaved rounds, {k} steps per training call")
    rates = measure(works, peak, rounds, log)

    res = {"workloads": {w.name: summarize(w, rates["jax"]) for w in works}}
    rows = [("workload", "throughput", "tokens/s | GFLOP/s", "MFU median (min-max)")]
    for w in [tq, ref, *beams]:
        s = res["workloads"][w.name]
        if w.kind == "train":
            mfu = f"{100 * s['mfu']:.0f}% ({100 * s['mfu_min']:.0f}-{100 * s['mfu_max']:.0f}%)"
            perf = f"{s['tokens_per_s']:.0f} tok/s | {s['gflops']:.1f} GFLOP/s"
            rows.append((w.label, f"{s['examples_per_s']:.0f} examples/s", perf, mfu))
        else:
            beam_tokens = f"{BEAM * s['sequences_per_s'] * w.tgt_len:.0f} beam-tokens/s"
            rows.append((w.label, f"{s['sequences_per_s']:.0f} seq/s", beam_tokens, ""))
    jx = rates["jax"]
    rows.append(
        (
            f"{args.dtype} matmul peak (jnp {'/'.join(map(str, sorted(set(peak.sizes))))}, per round)",
            f"{median(jx):.0f} GFLOP/s median",
            f"range {min(jx):.0f}-{max(jx):.0f}",
            f"NumPy fp32 2048: {median(rates['numpy']):.0f} GFLOP/s",
        )
    )
    print()
    _table(rows)
    mfu_ref = res["workloads"][ref.name]["mfu"]
    print(
        f"goal MFU >= {100 * GOAL_MFU:.0f}% for training at the reference config: "
        f"{100 * mfu_ref:.0f}% at {k} steps per call, {'met' if mfu_ref >= GOAL_MFU else 'NOT met'}"
    )
    if near:
        res["ratios"] = {w.name: ratio(w, ref) for w in near}
        print(
            "against the reference in the same rounds (examples/s ratio, median): "
            + ", ".join(f"{name} {r:.2f}x" for name, r in res["ratios"].items())
        )

    res |= {"peak_gflops": rates, "dtype": args.dtype, "steps_per_call": k, "rounds": rounds}
    res["load_average"] = os.getloadavg()[0]
    res["seconds"] = time.perf_counter() - t_start
    print(f"total {res['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=float)
    return res


if __name__ == "__main__":
    main()
