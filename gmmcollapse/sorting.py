"""A third domain in one module: a transformer that sorts digit sequences.

The worked example of docs/guide.md ("A new domain is one module"): the same encoder-decoder
transformer as the eigenvalue and summarization experiments, an exact verifier (a candidate is
correct iff it is the sorted input), and the shared pipeline for selection and rounds.

1. Train a generator on ``n_real`` (sequence, sorted sequence) pairs.
2. Decode ``n_syn`` fresh sequences: greedy (pool ``"greedy"``) and beam search (``"beam"``).
3. Score every candidate: ``oracle`` (1 if it is the sorted input, else 0: the exact
   verifier), ``self`` (length-normalised log-probability), ``multiset`` (minus the number of
   digits whose count differs from the input's: a verifier that needs no answer key but
   cannot see order).
4. :func:`gmmcollapse.pipeline.run_rounds`: select with each strategy, retrain a fresh model,
   evaluate on held-out sequences; ``rounds`` > 1 lets each strategy's model generate its
   next round (``round_data`` replace / accumulate).

Everything an experiment exposes is here: :class:`SortConfig` with :data:`SCALES` (it embeds
:class:`~gmmcollapse.models.TransformerConfig` and :class:`~gmmcollapse.models.TrainConfig`),
:func:`describe`, :func:`run`, :func:`report`, and the figures (:data:`FIGURES`,
:func:`draw`, :func:`load_run`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from gmmcollapse._runs import (
    OPERATIONAL,
    cached_json,
    decode_pools,
    paired_delta,
    preset,
    safe_tag,
    save_eval,
    selected_pairs,
    write_json,
)
from gmmcollapse._validate import check_choice, check_int
from gmmcollapse.models import (
    EOS,
    N_SPECIAL,
    Generated,
    TrainConfig,
    Transformer,
    TransformerConfig,
    generate,
    load_model,
    save_model,
    train,
)
from gmmcollapse.pipeline import DATA_MODES, Strategy, run_rounds
from gmmcollapse.store import claim_directory
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "FIGURES",
    "SCALES",
    "SortConfig",
    "SortDomain",
    "describe",
    "draw",
    "load_run",
    "make_config",
    "report",
    "run",
    "strategies",
]

DIGITS = 10


@dataclasses.dataclass(frozen=True)
class SortConfig:
    """One sorting run. ``model`` and ``train`` are the shared model and recipe configs
    (override with ``--set model.width=64`` or ``make_config(..., **{"model.width": 64})``);
    ``model``'s vocabulary and lengths are set from ``length``."""

    scale: str = "quick"
    notes: str = ""
    length: int = 8
    n_real: int = 2000
    n_syn: int = 1000
    n_test: int = 500
    beam: int = 4
    gen_steps: int = 400
    rounds: int = 1
    round_data: str = "replace"
    decode_batch: int = 256
    seed: int = 0
    model: TransformerConfig = dataclasses.field(
        default_factory=lambda: TransformerConfig(
            N_SPECIAL + DIGITS, 8, 9, width=64, heads=4, ff=128
        )
    )
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(steps=200, batch_size=64, lr=3e-3, warmup=20)
    )

    def __post_init__(self):
        check_int("length", self.length, 2)
        for name in ("n_real", "n_syn", "n_test", "beam", "gen_steps", "rounds", "decode_batch"):
            check_int(name, getattr(self, name), 1)
        check_choice("round_data", self.round_data, DATA_MODES)
        # the model's vocabulary and lengths follow from the task, whatever the preset said
        object.__setattr__(
            self,
            "model",
            dataclasses.replace(
                self.model,
                vocab_size=N_SPECIAL + DIGITS,
                max_src_len=self.length,
                max_tgt_len=self.length + 1,
            ),
        )

    def to_json(self) -> dict:
        """The config as JSON (``config.json``, ``results.json``), without the fields that
        change no result (``train.ckpt_seconds``: a run resumes under another value)."""
        out = dataclasses.asdict(self)
        for name in OPERATIONAL:
            outer, _, inner = name.partition(".")
            out.get(outer, {}).pop(inner, None)
        return out


SCALES: dict[str, SortConfig] = {
    "smoke": SortConfig(
        scale="smoke",
        notes="Mechanics only (tests): a tiny model, a few steps; every code path runs.",
        length=4,
        n_real=256,
        n_syn=64,
        n_test=64,
        beam=2,
        gen_steps=60,
        rounds=2,
        decode_batch=64,
        model=TransformerConfig(N_SPECIAL + DIGITS, 4, 5, 1, 1, width=32, heads=2, ff=64),
        train=TrainConfig(steps=30, batch_size=32, lr=3e-3, warmup=5),
    ),
    "quick": SortConfig(
        scale="quick",
        notes=(
            "2-core CPU, a few minutes: a generator trained briefly on little data (so that "
            "a fair share of its answers are wrong and verification has something to do), "
            "two rounds."
        ),
        length=10,
        n_real=1000,
        gen_steps=150,
        n_syn=2000,
        rounds=2,
        train=TrainConfig(steps=300, batch_size=64, lr=3e-3, warmup=20),
    ),
    "paper": SortConfig(
        scale="paper",
        notes="One GPU: longer sequences, more data and steps.",
        length=12,
        n_real=20_000,
        n_syn=20_000,
        n_test=2000,
        gen_steps=4000,
        rounds=3,
        model=TransformerConfig(N_SPECIAL + DIGITS, 12, 13, width=128, heads=4, ff=512),
        train=TrainConfig(steps=2000, batch_size=128, lr=1e-3, warmup=200),
    ),
}


def make_config(scale: str = "quick", **overrides: Any) -> SortConfig:
    """The preset ``scale`` with fields replaced (``"model.width"``-style keys reach into the
    embedded configs)."""
    return preset(SCALES, scale, overrides, "sort")


def strategies(cfg: SortConfig) -> list[Strategy]:
    return [
        Strategy("none", "all", pool="greedy"),
        Strategy("oracle_prune", "prune", pool="greedy", score="oracle", tau=1.0),
        Strategy("oracle_best_of_k", "best_of_k", pool="beam", score="oracle", tau=1.0),
        Strategy("self_best_of_k", "best_of_k", pool="beam", score="self"),
        Strategy("multiset_prune", "prune", pool="greedy", score="multiset", tau=0.0),
    ]


# ----------------------------------------------------------------------------- data


def sample(key: jax.Array, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random digit sequences as source ids and their sorted versions (+ EOS) as
    target ids."""
    digits = np.asarray(jax.random.randint(key, (n, length), 0, DIGITS))
    return digits + N_SPECIAL, _target(np.sort(digits, axis=1))


def _target(digits: np.ndarray) -> np.ndarray:
    eos = np.full(digits.shape[:-1] + (1,), EOS, np.int32)
    return np.concatenate([digits + N_SPECIAL, eos], axis=-1).astype(np.int32)


def _counts(digit_ids: np.ndarray) -> np.ndarray:
    """Per sequence, the count of each digit (ids outside the digits are ignored)."""
    d = np.asarray(digit_ids) - N_SPECIAL
    return np.stack([(d == v).sum(-1) for v in range(DIGITS)], -1)


class SortDomain:
    """The sorting domain: satisfies :class:`gmmcollapse.pipeline.Domain`. Inputs are source
    id arrays (n, length); models are transformers. Immutable after construction."""

    def __init__(self, cfg: SortConfig, test_src: np.ndarray, out: str, progress: bool = True):
        self.cfg, self.out, self.progress = cfg, out, progress
        self.test_src = test_src
        self.test_tgt = _target(np.sort(test_src - N_SPECIAL, axis=1))

    def synthesize(self, generator, inputs: np.ndarray, pools: set[str]) -> dict[str, Generated]:
        cfg = self.cfg
        return decode_pools(
            generator, inputs, pools, beam=cfg.beam, batch_size=cfg.decode_batch,
            progress=self.progress,
        )  # fmt: skip

    def scores(self, inputs: np.ndarray, pool_name: str, gen: Generated) -> dict:
        tokens = np.asarray(gen.tokens)[..., : self.cfg.length + 1]
        want = _target(np.sort(np.asarray(inputs) - N_SPECIAL, axis=1))[:, None, :]
        exact = np.all(tokens == want, axis=-1)
        body = tokens[..., : self.cfg.length]
        miss = np.abs(_counts(body) - _counts(np.asarray(inputs))[:, None, :]).sum(-1)
        return {
            "oracle": exact.astype(np.float64),
            "self": np.asarray(gen.logprob) / np.maximum(np.asarray(gen.length), 1),
            "multiset": -miss.astype(np.float64),
            "correct": exact,
        }

    def training_set(self, inputs: np.ndarray, gen: Generated, selection) -> tuple:
        return selected_pairs(inputs, gen, selection, self.cfg.length + 1)

    def train(self, data: tuple, tag: str, steps: int | None = None) -> Transformer:
        tc = self.cfg.train if steps is None else dataclasses.replace(self.cfg.train, steps=steps)
        tc = dataclasses.replace(tc, seed=self.cfg.seed + 1)
        res = train(self.cfg.model, tc, *data, ckpt_dir=os.path.join(self.out, "ckpt", safe_tag(tag)),
                    progress=self.progress, desc=f"train {tag}")  # fmt: skip
        return res.model

    def evaluate(self, model: Transformer, tag: str = "model") -> dict:
        """Exact-match accuracy of greedy outputs on the held-out sequences."""
        g = generate(model, self.test_src, 1, batch_size=self.cfg.decode_batch,
                     progress=self.progress, desc=f"eval {tag}")  # fmt: skip
        tokens = np.asarray(g.tokens)[:, 0, : self.cfg.length + 1]
        correct = np.all(tokens == self.test_tgt, axis=-1)
        save_eval(self.out, tag, correct)
        return {"acc": float(correct.mean())}


# ----------------------------------------------------------------------------- the run


@in_float64  # float64 arrays as the experiment was written for, whatever the caller set
def run(cfg: SortConfig, out: str, *, progress: bool = True, log=print) -> dict:
    """Run into directory ``out`` (resumable); returns and writes ``results.json``::

    {"config": {...}, "generator": {"acc"},
     "strategies": {NAME: {"phi", "psi", "p_star", "p", "n_selected", "acc",
                           "vs_generator": {"delta", "se"}, "rounds": [acc per round]}}}
    """
    out = os.path.abspath(out)
    claim_directory(out, "config.json", cfg.to_json(), "out directory",
                    "choose another --out or delete it")  # fmt: skip
    log = log or (lambda *a, **k: None)
    k_real, k_syn, k_test, k_sel = jax.random.split(jax.random.key(cfg.seed), 4)
    test_src, _ = sample(k_test, cfg.n_test, cfg.length)
    dom = SortDomain(cfg, test_src, out, progress)
    gen_dir = os.path.join(out, "generator")
    if os.path.exists(os.path.join(gen_dir, "config.json")):
        generator = load_model(gen_dir)
    else:
        generator = dom.train(sample(k_real, cfg.n_real, cfg.length), "generator", cfg.gen_steps)
        save_model(generator, gen_dir)
    gen_eval = cached_json(os.path.join(out, "generator_eval.json"),
                           lambda: dom.evaluate(generator, "generator"))  # fmt: skip
    log(f"generator: {gen_eval}")
    strats = strategies(cfg)
    per_round = run_rounds(
        dom,
        generator,
        lambda r: sample(jax.random.fold_in(k_syn, r), cfg.n_syn, cfg.length)[0],
        strats,
        k_sel,
        rounds=cfg.rounds,
        data=cfg.round_data,
        store=out,
        log=log,
    )
    table = {}
    for s in strats:
        x = per_round[0][s.name]
        table[s.name] = {k: x.rates[k] for k in ("phi", "psi", "p_star", "p")} | {
            "n_selected": int(x.rates["n_selected"]),
            "acc": x.metrics.get("acc"),
            "vs_generator": paired_delta(out, f"{s.name}@{cfg.n_syn}"),
            "rounds": [rr[s.name].metrics.get("acc") for rr in per_round if s.name in rr],
        }
    results = {"config": cfg.to_json(), "generator": gen_eval, "strategies": table}
    write_json(os.path.join(out, "results.json"), results)
    return results


def describe(cfg: SortConfig) -> str:
    m, t = cfg.model, cfg.train
    n_models = 1 + len(strategies(cfg)) * cfg.rounds
    return "\n".join(
        [
            (
                f"sort {cfg.scale}: sequences of {cfg.length} digits; {cfg.n_real} real pairs, "
                f"{cfg.n_syn} synthesized inputs per round x beam {cfg.beam}"
            ),
            (
                f"  model: {m.enc_layers}+{m.dec_layers} layers, width {m.width}, {m.heads} heads, "
                f"{m.param_count() / 1e6:.2f}M parameters"
            ),
            (
                f"  {n_models} models ({cfg.gen_steps} generator steps, {t.steps} per retrained "
                f"model, batch {t.batch_size}); {cfg.rounds} round(s) ({cfg.round_data})"
            ),
        ]
        + ([f"  notes: {cfg.notes}"] if cfg.notes else [])
    )


def report(res: dict) -> str:
    lines = [f"exact-match accuracy: generator {res['generator']['acc']:.1%}"]
    lines.append(f"  {'strategy':<20}{'p*':>7}{'kept':>7}  accuracy per round")
    for name, s in res["strategies"].items():
        ps = s.get("p_star")
        accs = " ".join("-" if a is None else f"{a:.1%}" for a in s["rounds"])
        lines.append(
            f"  {name:<20}{'-' if ps is None else f'{ps:.3f}':>7}{s['n_selected']:>7}  {accs}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures


def load_run(run_dir: str) -> dict:
    from gmmcollapse.plots.eigen import load_run as _load

    return _load(run_dir, "sort")


def _rounds_figure(run_dir: str, out_dir: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gmmcollapse.plots.gmm import _save, _style

    res = load_run(run_dir)
    _style()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in res["strategies"].items():
        accs = [np.nan if a is None else a for a in s["rounds"]]
        ax.plot(
            range(1, len(accs) + 1), accs, marker="o", label=f"{name} (p* {s['p_star'] or 0:.2f})"
        )
    ax.axhline(res["generator"]["acc"], color="grey", ls="--", label="generator")
    ax.set_xticks(range(1, res["config"]["rounds"] + 1))
    ax.set_xlabel("round")
    ax.set_ylabel("exact-match accuracy (held out)")
    ax.set_title("Sorting: retrained on each strategy's selection, round by round")
    ax.legend(fontsize=8)
    paths = _save(fig, out_dir, "sort_rounds")
    return paths, {k: v["rounds"] for k, v in res["strategies"].items()}


FIGURES = {"rounds": _rounds_figure}


def draw(name: str, run_dir: str, out_dir: str):
    check_choice("figure", name, FIGURES)
    return FIGURES[name](run_dir, out_dir)
