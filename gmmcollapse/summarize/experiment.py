"""Experiment 2 end to end (Feng et al., arXiv 2406.07515, news summarization experiment): summaries synthesized by a seq2seq model, selected by
ROUGE against the reference, by the model itself or by a verifier model, then retrained on.

1. Split the pairs into a fixed held-out test set and a training pool; the pool into the
   generator's pairs (``gen_fraction``, 12.5% as in the paper), the verifier's pairs
   (``verifier_fraction``, disjoint) and the synthesis articles (the rest). One BPE tokenizer,
   trained on the pool, serves every model and is saved in the run directory.
   With ``init="pretrained"`` (the quick and paper scales' default), a base model is pretrained
   on the pool's articles without their summaries (gap-sentence generation,
   :mod:`gmmcollapse.summarize.pretrain`; never the test articles) and every model below is
   fine-tuned from it, as the paper fine-tunes every summarizer from one pretrained language
   model. ``init="scratch"``: every model starts from a fresh initialisation.
2. Train the generator, the verifier (same architecture, its own pairs) and the reference
   model on 100% of the pool's human summaries, all with the same recipe.
3. The generator summarizes the synthesis articles: greedy (pool ``"greedy"``, k = 1) and beam
   search (pool ``"beam"``, k = ``beam``).
4. Score every candidate: ``oracle`` (ROUGE-1 F against the human reference), ``self`` (the
   generator's length-normalised log-probability), ``verifier`` (the verifier's teacher-forced,
   length-normalised log p(summary | article)). A candidate is *correct* when its ROUGE-1 is
   at least ``correct_rouge1``; phi, psi and p* of every selection are measured against that.
5. Selectors (:data:`SELECTORS`), each at every rate in ``rates`` through
   :func:`gmmcollapse.pipeline.run_round` and the shared kernel: ``random`` (a random fraction
   of the greedy summaries), ``oracle`` / ``self`` / ``verifier`` (the top fraction of the
   greedy summaries by that score) and ``<name>_best_of_k`` (per article the best beam by that
   score, then the top fraction of articles by it). Rates are fractions of the synthesis
   articles. A fresh model is trained on each selection with the same recipe and evaluated by
   ROUGE-1/2/L (``rouge-score``) on the held-out set.
6. ``results.json`` (format in :func:`run`) with the Spearman rank correlation between p* and
   the final ROUGE-1 over all (selector, rate) pairs; figures in
   :mod:`gmmcollapse.plots.summarize`.

Every stage writes to the run directory (tokenizer, models, candidates, scores, one file per
retrained model), so an interrupted run started again with the same ``out`` resumes, and a
directory holding another configuration is refused.

Data: the built-in corpus (:mod:`gmmcollapse.summarize.corpus`) by default; ``data`` = a
local JSONL / CSV / parquet file (XL-Sum, XSum or CNN/DailyMail fields,
:func:`~gmmcollapse.summarize.load_pairs`) or ``"hf:<name>"`` for Hugging Face ``datasets``
(:func:`~gmmcollapse.summarize.load_hf`; needs the package and a network).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import jax
import numpy as np

from gmmcollapse import store
from gmmcollapse._runs import (
    StageTimes,
    cached_pools,
    claim_run,
    decode_pools,
    describe_model,
    finite,
    flat_json,
    preset,
    recipe,
    save_eval,
    saved_model,
    selected_pairs,
    self_scores,
    strategy_row,
    train_model,
)
from gmmcollapse._validate import check_choice, check_int, check_range
from gmmcollapse.models import (
    Generated,
    TrainConfig,
    Transformer,
    TransformerConfig,
    generate,
    score,
)
from gmmcollapse.pipeline import DATA_MODES, Strategy, run_rounds
from gmmcollapse.summarize import coverage
from gmmcollapse.summarize.corpus import make_corpus
from gmmcollapse.summarize.loaders import (
    FORMATS,
    datasets_available,
    detect_filetype,
    load_hf,
    load_pairs,
    require_datasets,
)
from gmmcollapse.summarize.pretrain import gap_sentence_data
from gmmcollapse.summarize.rouge import ROUGE_TYPES, rouge_scores
from gmmcollapse.summarize.tokenizer import SubwordTokenizer, train_tokenizer
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "ALIASES",
    "GPU_FLOPS",
    "INITS",
    "PRETRAIN_FIELDS",
    "SCALES",
    "SELECTORS",
    "SummarizeConfig",
    "SummarizeDomain",
    "check_data_source",
    "load_data",
    "make_config",
    "rate_key",
    "run",
    "spearman",
    "strategies",
]

#: selector names; each runs at every rate of the config
SELECTORS = (
    "random",
    "oracle",
    "self",
    "verifier",
    "oracle_best_of_k",
    "self_best_of_k",
    "verifier_best_of_k",
)


#: how every model starts: fine-tuned from the run's pretrained base, or from a fresh model
INITS = ("pretrained", "scratch")
#: the config fields of the pretraining stage (in the run's config only with init=pretrained)
PRETRAIN_FIELDS = ("pretrain_steps", "pretrain_gaps")
#: sustained FLOP/s of one GPU assumed by the dry run's time estimates: 1e14, about a fifth of
#: an H100's dense TF32 peak (float32 matmuls run as TF32 on it), which small-batch
#: transformer training reaches without tuning
GPU_FLOPS = 1e14


def rate_key(rate: float) -> str:
    """``0.125 -> "0.125"``: how rates are written in ``results.json``."""
    return f"{rate:g}"


#: the config's old flat field names and the embedded fields they now name; ``make_config``
#: (and ``--set``) accept both spellings, and run directories and ``results.json`` keep the
#: old ones
ALIASES: dict[str, str] = {
    "vocab_size": "model.vocab_size",
    "src_len": "model.max_src_len",
    "tgt_len": "model.max_tgt_len",
    "enc_layers": "model.enc_layers",
    "dec_layers": "model.dec_layers",
    "width": "model.width",
    "heads": "model.heads",
    "ff": "model.ff",
    "dropout": "model.dropout",
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "warmup": "train.warmup",
}


@dataclasses.dataclass(frozen=True)
class SummarizeConfig:
    """Everything that defines a run. Override fields with :func:`make_config`.

    Attributes:
        scale: name of the preset this config started from.
        notes: why the preset's values were chosen.
        data: ``None`` for the built-in corpus, a file path, or ``"hf:<name>"`` (e.g.
            ``"hf:xlsum"``) for Hugging Face ``datasets``.
        format: field names of ``data``: ``auto``, ``xlsum``, ``xsum`` or ``cnndm``.
        n_pairs: size of the training pool (built-in corpus; for ``data``, at most this many
            pairs are read besides the test set, 0 = all).
        n_test: held-out pairs every model is evaluated on.
        gen_fraction, verifier_fraction: the generator's / the verifier's share of the pool;
            the rest are the synthesis articles.
        model: the transformer of every model: ``vocab_size`` is the BPE vocabulary (special
            ids included; the models take the trained tokenizer's size), ``max_src_len`` /
            ``max_tgt_len`` the article / summary tokens (articles are truncated, summaries
            get EOS).
        train: the recipe of every model (the same budget for all). Per model the warm-up is
            at most half the steps, a checkpoint is written every quarter of the steps (at
            least every 250; ``train.ckpt_every`` sets another), and the seed is set from
            ``seed``.
        beam: beam width (candidates per article for the best-of-k selectors).
        rates: selection rates, fractions of the synthesis articles.
        correct_rouge1: a generated summary is *correct* when its ROUGE-1 F against the
            reference is at least this (for phi, psi and p*).
        selectors: which of :data:`SELECTORS` to run.
        decode_batch: articles per decoding call.
        seed: seeds the corpus, the split, the models and the random selector.
        rounds: synthesize -> select -> retrain rounds; in round r >= 2 each selector's model
            from the round before summarizes the same synthesis articles again.
        round_data: what later rounds train on: ``"replace"`` (that round's selection) or
            ``"accumulate"`` (the selector's selections of every round so far).
        init: ``"pretrained"``: every model (generator, verifier, 100%-human reference,
            every retrained model of every round) is fine-tuned with the ``train`` recipe
            from one base model, pretrained in the run on the training pool's articles
            without their summaries; ``"scratch"``: every model starts from a fresh
            initialisation (the experiment as it was before pretraining existed).
        pretrain_steps: optimizer steps of the base's pretraining (``train``'s batch size,
            learning rate and warm-up; seed ``seed + 3``).
        pretrain_gaps: gap-sentence examples per article: its most salient sentences, each
            removed in an example of its own (:func:`~gmmcollapse.summarize.pretrain.
            gap_sentence_data`).
        kept: ``0``, or a number ``N`` of pairs every selection also keeps, at every rate:
            at rate ``r`` each selector chooses among the first ``ceil(N / r)`` synthesis
            articles (nested subsets), so the rates differ in selectivity and not in the
            amount of data. These selections are run besides the usual ones (rate x all
            synthesis articles) and reported under ``fixed_kept`` in ``results.json``; a
            rate where ``ceil(N / r)`` is all the articles reuses the usual selection. It
            adds results without changing any other, so a finished run directory gains them
            when rerun with ``kept`` set. Needs ``ceil(N / min(rates))`` synthesis articles.

    The old flat names (``steps``, ``width``, ``src_len``, ...) are in :data:`ALIASES`.
    """

    scale: str = "quick"
    notes: str = ""
    data: str | None = None
    format: str = "auto"
    n_pairs: int = 32_000
    n_test: int = 2000
    gen_fraction: float = 0.125
    verifier_fraction: float = 0.125
    model: TransformerConfig = dataclasses.field(
        default_factory=lambda: TransformerConfig(2000, 96, 20, width=96, heads=4, ff=384)
    )
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(steps=500, batch_size=64, lr=2e-3, warmup=100)
    )
    beam: int = 4
    rates: tuple[float, ...] = (0.125, 0.25, 0.5)
    correct_rouge1: float = 0.95
    selectors: tuple[str, ...] = SELECTORS
    decode_batch: int = 256
    seed: int = 0
    rounds: int = 1
    round_data: str = "replace"
    init: str = "pretrained"
    pretrain_steps: int = 8000
    pretrain_gaps: int = 2
    kept: int = 0

    def __post_init__(self):
        if self.format not in ("auto", *FORMATS):
            raise ValueError(
                f"format must be one of auto, {', '.join(FORMATS)}, got {self.format!r}"
            )
        if self.data is not None and (not isinstance(self.data, str) or not self.data):
            raise ValueError(f"data must be a file path, 'hf:<name>' or None, got {self.data!r}")
        if self.data and not self.data.startswith("hf:"):
            if not os.path.isfile(self.data):
                raise FileNotFoundError(f"data: no such file: {self.data}")
            detect_filetype(self.data)  # a file of no known type is refused here
        check_int("n_pairs", self.n_pairs, 0 if self.data is not None else 8)
        check_int("n_test", self.n_test, 2)  # paired standard errors need two
        check_range("gen_fraction", self.gen_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range("verifier_fraction", self.verifier_fraction, 0.0, 1.0, lo_open=True)
        if self.gen_fraction + self.verifier_fraction >= 1:
            raise ValueError(
                "gen_fraction + verifier_fraction must be below 1 (the rest are the synthesis "
                f"articles), got {self.gen_fraction:g} + {self.verifier_fraction:g}"
            )
        check_int("model.max_tgt_len", self.model.max_tgt_len, 2)
        for name in ("beam", "decode_batch", "rounds"):
            check_int(name, getattr(self, name), 1)
        check_choice("round_data", self.round_data, DATA_MODES)
        check_choice("init", self.init, INITS)
        check_int("pretrain_steps", self.pretrain_steps, 1)
        check_int("pretrain_gaps", self.pretrain_gaps, 1)
        check_int("kept", self.kept, 0)
        check_range("correct_rouge1", self.correct_rouge1, 0.0, 1.0)
        if not self.rates:
            raise ValueError("rates must not be empty")
        for r in self.rates:
            check_range("rates", r, 0.0, 1.0, lo_open=True)
        if len({rate_key(r) for r in self.rates}) != len(self.rates):
            raise ValueError(f"rates must be distinct, got {list(self.rates)}")
        bad = [s for s in self.selectors if s not in SELECTORS]
        if bad or not self.selectors or len(set(self.selectors)) != len(self.selectors):
            raise ValueError(
                f"selectors must be distinct names among {', '.join(SELECTORS)}, "
                f"got {list(self.selectors)}"
            )

    def model_config(self, vocab_size: int) -> TransformerConfig:
        """The transformer of every model, with the trained tokenizer's ``vocab_size``."""
        return dataclasses.replace(self.model, vocab_size=vocab_size)

    def train_config(self, seed: int) -> TrainConfig:
        """The recipe of one model seeded with ``seed``."""
        return recipe(self.train, steps=self.train.steps, seed=seed, ckpt_floor=250)

    def pretrain_config(self) -> TrainConfig:
        """The recipe of the base's pretraining: ``train`` with ``pretrain_steps`` steps and
        the seed ``seed + 3`` (warm-up and checkpoints derived as for every model)."""
        return recipe(self.train, steps=self.pretrain_steps, seed=self.seed + 3, ckpt_floor=250)

    def to_json(self) -> dict:
        """The config in the flat spelling of :data:`ALIASES` (``results.json``); the
        pretraining fields only with ``init="pretrained"``, ``kept`` only when set."""
        drop = () if self.init == "pretrained" else PRETRAIN_FIELDS
        return flat_json(self, ALIASES, drop=drop if self.kept else (*drop, "kept"))

    def run_json(self) -> dict:
        """What a run directory is claimed for (its ``config.json``): :meth:`to_json` without
        ``notes`` (prose) and ``kept`` (its selections are stored apart from the others), and,
        with ``init="scratch"``, without ``init``: a scratch run's directory is the one it was
        before pretraining existed, so older ones resume."""
        drop = ("notes",) if self.init == "pretrained" else ("notes", "init", *PRETRAIN_FIELDS)
        return flat_json(self, ALIASES, drop=(*drop, "kept"))  # ``kept`` only adds results


SCALES: dict[str, SummarizeConfig] = {
    "smoke": SummarizeConfig(
        scale="smoke",
        notes=(
            "Mechanics only (tests): a tiny model trained briefly on the built-in corpus and a "
            "loose correctness threshold, so every selector and code path runs. From scratch "
            "by default (the numbers of earlier versions); --set init=pretrained adds a "
            "300-step pretraining."
        ),
        n_pairs=1600,
        n_test=64,
        model=TransformerConfig(600, 64, 16, enc_layers=1, width=48, heads=2, ff=96),
        train=TrainConfig(steps=150, batch_size=32, lr=5e-3, warmup=10),
        beam=2,
        correct_rouge1=0.5,
        decode_batch=128,
        init="scratch",
        pretrain_steps=300,
    ),
    "quick": SummarizeConfig(
        scale="quick",
        notes=(
            "2-core CPU, about 35 minutes (22 with init=scratch): one base pretrained for 8000 "
            "steps of 64 (about 11 min) by gap-sentence generation on the 32k pool articles "
            "without their summaries (the 2 most salient sentences of each, 64k examples, 8 "
            "epochs): the budget left by the fine-tuning, at the same 12.5 steps/s. Then 24 "
            "models (generator, verifier, human reference "
            "and 7 selectors x 3 rates) of 2+1 layers at width 96, each fine-tuned from the "
            "base for 500 steps of 64 (about 40 s each), the from-scratch recipe, so the two "
            "inits differ only in the start. Built-in corpus, 32k pairs: the generator and the verifier get "
            "4k each (12.5%), 24k articles are summarized (greedy and beam 4). Measured before "
            "choosing: 500 steps on 4k pairs give ROUGE-1 0.816, on 32k pairs 0.838, so the "
            "generator is data-limited and selected synthetic data has room to help. Articles are cut at 96 tokens "
            "(90% fit; the key facts come early). A summary is correct when its ROUGE-1 is at "
            "least 0.95: the references have 8 to 11 words, so one wrong word (mostly the "
            "count) already drops it to 0.91 or less."
        ),
    ),
    "paper": SummarizeConfig(
        scale="paper",
        notes=(
            "Feng et al., arXiv 2406.07515, news summarization experiment on one GPU: XL-Sum English (about 307k training pairs; from local "
            "files with --data PATH, or hf:xlsum with a network), generator on 12.5%, a 6+6 "
            "layer width-512 transformer instead of Llama-2-7B, articles cut at 512 tokens, "
            "beam 8; one base pretrained for 100k steps of 64 on the pool's articles (gap "
            "sentences; 2x one model's steps, about 1.6 h), then about 7e3 PFLOP of "
            "fine-tuning for the 24 models. Correct = ROUGE-1 at "
            "least 0.45, a choice, not the paper's (abstractive references are never matched "
            "word for word); set correct_rouge1 near the generator's median ROUGE-1 once known."
        ),
        data="hf:xlsum",
        format="xlsum",
        n_pairs=0,
        n_test=5000,
        model=TransformerConfig(
            16_000, 512, 64, enc_layers=6, dec_layers=6, width=512, heads=8, ff=2048, dropout=0.1
        ),
        train=TrainConfig(steps=50_000, batch_size=64, lr=5e-4, warmup=2000),
        pretrain_steps=100_000,
        beam=8,
        correct_rouge1=0.45,
        decode_batch=64,
    ),
}


def make_config(scale: str = "quick", **overrides: Any) -> SummarizeConfig:
    """The preset ``scale`` with fields replaced; unknown fields are an error. Keys
    ``"train.steps"`` reach into the embedded configs; the old flat names of :data:`ALIASES`
    (``steps=300``) are accepted too."""
    return preset(SCALES, scale, overrides, "summarize", ALIASES)


def config_from_json(flat: Mapping[str, Any]) -> SummarizeConfig:
    """The config a ``results.json``'s ``"config"`` (:meth:`SummarizeConfig.to_json`) was
    made from: the preset of its ``scale`` with every other field set (``notes`` from the
    preset). Results from before ``init`` existed were from scratch."""
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in flat.items() if k != "notes"}
    d.setdefault("init", "scratch")
    return make_config(d.pop("scale"), **d)


def strategies(cfg: SummarizeConfig) -> list[Strategy]:
    """One :class:`~gmmcollapse.pipeline.Strategy` per (selector, rate), named
    ``<selector>~<rate>`` in the order of ``cfg.selectors`` and ``cfg.rates``."""
    out = []
    for sel in cfg.selectors:
        for r in cfg.rates:
            name = f"{sel}~{rate_key(r)}"
            if sel == "random":
                out.append(Strategy(name, "random_fraction", "greedy", rate=r))
            elif sel.endswith("_best_of_k"):
                out.append(
                    Strategy(name, "top_fraction", "beam", sel[: -len("_best_of_k")], rate=r)
                )
            else:
                out.append(Strategy(name, "top_fraction", "greedy", sel, rate=r))
    return out


def spearman(x, y) -> dict:
    """Spearman rank correlation of the finite pairs: ``{"rho", "pvalue", "n"}`` (rho None when
    fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return {"rho": None, "pvalue": None, "n": n}
    res = spearmanr(x[ok], y[ok])
    return {"rho": float(res.statistic), "pvalue": float(res.pvalue), "n": n}


# ----------------------------------------------------------------------------- data


def check_data_source(cfg: SummarizeConfig) -> None:
    """Refuse, before anything is computed, data that cannot be read here: ``hf:<name>``
    without the optional ``datasets`` package raises
    :class:`~gmmcollapse.summarize.loaders.MissingPackageError` (a ``ValueError``) saying what
    to install and what to pass instead."""
    if cfg.data is not None and cfg.data.startswith("hf:"):
        default = cfg.scale in SCALES and cfg.data == SCALES[cfg.scale].data
        require_datasets(
            f"data {cfg.data!r}" + (f" (the {cfg.scale} scale's default)" if default else "")
        )


def load_data(cfg: SummarizeConfig, *, with_facts: bool = False) -> tuple[list[dict], list[dict]]:
    """``(pool, test)``: the training pool and the held-out pairs of ``cfg`` (deterministic);
    ``with_facts``: built-in corpus pairs carry the ``facts`` the grammar drew (the same
    pairs otherwise; a data file has none)."""
    if cfg.data is None:
        pairs = make_corpus(cfg.n_pairs + cfg.n_test, cfg.seed, with_facts=with_facts)
        return pairs[: cfg.n_pairs], pairs[cfg.n_pairs :]
    limit = cfg.n_pairs + cfg.n_test if cfg.n_pairs else None
    if cfg.data.startswith("hf:"):
        pairs = load_hf(cfg.data[3:], format=cfg.format, limit=limit)
    else:
        pairs = load_pairs(cfg.data, cfg.format, limit=limit)
    need = cfg.n_test + 8
    if len(pairs) < need:
        raise ValueError(
            f"data {cfg.data!r} has {len(pairs)} pairs; n_test={cfg.n_test} needs at least {need}"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(pairs))
    test = [pairs[i] for i in order[: cfg.n_test]]
    pool = [pairs[i] for i in order[cfg.n_test :]]
    return pool, test


def _split_sizes(cfg: SummarizeConfig, n_pool: int) -> tuple[int, int, int]:
    """(generator, verifier, synthesis) pairs of a training pool of ``n_pool``."""
    n_gen = max(1, math.floor(cfg.gen_fraction * n_pool))
    n_ver = max(1, math.floor(cfg.verifier_fraction * n_pool))
    return n_gen, n_ver, n_pool - n_gen - n_ver


def _split_pool(cfg: SummarizeConfig, pool: list[dict]) -> dict[str, list[dict]]:
    order = np.random.default_rng(cfg.seed + 1).permutation(len(pool))
    n_gen, n_ver, _ = _split_sizes(cfg, len(pool))
    if n_gen + n_ver >= len(pool):
        raise ValueError(f"a training pool of {len(pool)} pairs is too small to split")
    parts = np.split(order, [n_gen, n_gen + n_ver])
    return dict(zip(("gen", "verifier", "syn"), ([pool[i] for i in p] for p in parts)))


# ----------------------------------------------------------------------------- domain


class SummarizeDomain:
    """The summarization domain: satisfies :class:`gmmcollapse.pipeline.Domain`.

    Inputs are ``{"src": (n, src_len) ids, "row": (n,) indices into the references}``. The
    verifier model (or None when no selector reads it) and the pretrained ``base`` every model
    is fine-tuned from (None: from scratch) are fixed at construction; nothing is changed
    afterwards. ``on_progress()`` is called whenever work is kept (a training
    checkpoint, a model's evaluation), e.g. :meth:`gmmcollapse._runs.StageTimes.commit`.
    """

    def __init__(
        self,
        cfg: SummarizeConfig,
        tok: SubwordTokenizer,
        test: list[dict],
        references: list[str],
        out: str,
        progress: bool = True,
        verifier: Transformer | None = None,
        on_progress: Callable[..., Any] | None = None,
        base: Transformer | None = None,
    ):
        self.cfg, self.tok, self.out, self.progress = cfg, tok, out, progress
        self.base = base
        self.on_progress = on_progress or (lambda *a: None)
        self.model_cfg = cfg.model_config(tok.vocab_size)
        self.references = references
        self.test_refs = [p["summary"] for p in test]
        self.test_src = encode_src(cfg, tok, [p["text"] for p in test])
        self.verifier = verifier

    def texts(self, gen: Generated) -> list[str]:
        """The candidates' texts, flattened in (input, candidate) order."""
        tokens = np.asarray(gen.tokens)
        return self.tok.decode(tokens.reshape(-1, tokens.shape[-1]))

    # -- the Domain protocol ------------------------------------------------------------
    def synthesize(self, generator, inputs: dict, pools: set[str]) -> dict[str, Generated]:
        cfg = self.cfg
        return decode_pools(
            generator, inputs["src"], pools, beam=cfg.beam, batch_size=cfg.decode_batch,
            progress=self.progress,
        )  # fmt: skip

    def scores(self, inputs: dict, pool_name: str, gen: Generated) -> dict[str, np.ndarray]:
        """``oracle`` (ROUGE-1), ``self``, ``verifier`` (when the domain has one) and
        ``correct`` tables (n, k)."""
        n, k = np.shape(gen.logprob)
        refs = [self.references[i] for i in np.asarray(inputs["row"]) for _ in range(k)]
        oracle = rouge_scores(self.texts(gen), refs, types=("rouge1",))["rouge1"].reshape(n, k)
        tables = {
            "oracle": oracle,
            "self": self_scores(gen),
            "correct": oracle >= self.cfg.correct_rouge1,
        }
        if self.verifier is not None:
            tokens = np.asarray(gen.tokens)
            lp, ln = score(
                self.verifier,
                np.repeat(np.asarray(inputs["src"]), k, axis=0),
                tokens.reshape(n * k, -1),
                batch_size=self.cfg.decode_batch,
                progress=self.progress,
                desc=f"verifier {pool_name}",
            )
            tables["verifier"] = (lp / np.maximum(ln, 1)).reshape(n, k)
        return tables

    def training_set(self, inputs: dict, gen: Generated, selection) -> tuple:
        return selected_pairs(inputs["src"], gen, selection, self.cfg.model.max_tgt_len)

    def train(self, data: tuple, tag: str) -> Transformer:
        """A model trained with the run's recipe (retrained models share the seed
        ``seed + 1``), fine-tuned from the base when the domain has one."""
        tc = self.cfg.train_config(self.cfg.seed + 1)
        return train_model(self.model_cfg, tc, data, self.out, tag, self.progress,
                           self.on_progress, init=self.base)  # fmt: skip

    def evaluate(self, model: Transformer, tag: str = "model") -> dict:
        """Mean ROUGE-1/2/L F of greedy summaries of the held-out articles, and the fraction
        correct; per-article ROUGE-1 is kept in ``eval/<tag>.npy`` for paired comparisons."""
        g = generate(
            model, self.test_src, 1, batch_size=self.cfg.decode_batch, progress=self.progress,
            desc=f"eval {tag}",
        )  # fmt: skip
        r = rouge_scores(self.texts(g), self.test_refs)
        save_eval(self.out, tag, r["rouge1"])
        self.on_progress()
        out = {k: float(r[k].mean()) for k in ROUGE_TYPES}
        out["correct"] = float(np.mean(r["rouge1"] >= self.cfg.correct_rouge1))
        return out


def encode_src(cfg: SummarizeConfig, tok: SubwordTokenizer, texts: list[str]) -> np.ndarray:
    return tok.encode_source(texts, cfg.model.max_src_len)


def encode_pairs(cfg: SummarizeConfig, tok: SubwordTokenizer, pairs: list[dict]) -> tuple:
    return (
        encode_src(cfg, tok, [p["text"] for p in pairs]),
        tok.encode_target([p["summary"] for p in pairs], cfg.model.max_tgt_len),
    )


def _model(dom: SummarizeDomain, rundir: store.RunDir, name: str, pairs: list[dict], seed: int):
    """Train (or load) the named reference model on human pairs and evaluate it (cached)."""
    cfg, out = dom.cfg, rundir.path
    model = saved_model(
        rundir.file(name),
        lambda: train_model(dom.model_cfg, cfg.train_config(seed),
                            encode_pairs(cfg, dom.tok, pairs), out, name, dom.progress,
                            dom.on_progress, init=dom.base),
        lambda path: dom.tok.save(os.path.join(path, "tokenizer")),  # a model carries its tokenizer
    )  # fmt: skip
    return model, rundir.stage(f"eval/{name}.json", lambda: dom.evaluate(model, name))


def _pretrained_base(
    dom: SummarizeDomain, rundir: store.RunDir, articles: list[str]
) -> tuple[Transformer, dict]:
    """The run's pretrained base (stage ``pretrained/``, checkpointed under
    ``ckpt/pretrain``) and its data's sizes (stage ``pretrain_data.json``): gap-sentence
    generation on ``articles`` (the training pool's, without their summaries)."""
    cfg = dom.cfg

    def build():
        return gap_sentence_data(dom.tok, articles, max_src_len=cfg.model.max_src_len,
                                 max_tgt_len=cfg.model.max_tgt_len, gaps=cfg.pretrain_gaps)  # fmt: skip

    data = None
    if not rundir.has("pretrain_data.json"):
        data = build()
    sizes = rundir.stage(
        "pretrain_data.json", lambda: {"articles": len(articles), "examples": len(data.src)}
    )

    def make():
        d = data if data is not None else build()
        return train_model(dom.model_cfg, cfg.pretrain_config(), (d.src, d.tgt), rundir.path,
                           "pretrain", dom.progress, dom.on_progress)  # fmt: skip

    base = saved_model(
        rundir.file("pretrained"), make, lambda path: dom.tok.save(os.path.join(path, "tokenizer"))
    )
    return base, sizes


@in_float64  # float64 arrays as the experiment was written for, whatever the caller set
def run(cfg: SummarizeConfig, out: str, *, progress: bool = True, log=print) -> dict:
    """Run the experiment into directory ``out``; returns (and writes) ``results.json``.

    ``results.json``::

        {"config": {...}, "init": "pretrained" | "scratch",
         "pretrain": {"steps", "gaps", "articles", "examples"} (null from scratch),
         "pretrained_base": {"rouge1", "rouge2", "rougeL", "correct"} (null from scratch),
         "generator": {"rouge1", "rouge2", "rougeL", "correct"},
         "human_full": {...}, "verifier_model": {...} (null when no selector uses it),
         "candidates": {"greedy": {"rouge1", "correct"}, "beam": {..., "oracle_best_rouge1"}},
         "selectors": {NAME: {RATE: {"phi", "psi", "p_star", "p", "n_selected",
                                      "rouge1", "rouge2", "rougeL", "correct",
                                      "vs_generator": {"delta", "se"}}}},
         "spearman_pstar_rouge1": rho, "spearman": {"rho", "pvalue", "n"},
         "spearman_within_rate": {RATE: {"rho", "pvalue", "n"}},
         "coverage": {"feature", "bins", "pool_share", "test_n", "generator_correct",
                      "selectors": {NAME: {RATE: {"n_selected", "kept_share", "delta",
                                                  "se"}}}},
         "fixed_kept": null | {"kept", "articles": {RATE: ceil(kept / rate)}, "selectors",
                               "spearman_pstar_rouge1", "spearman", "spearman_within_rate",
                               "coverage"},
         "sizes": {"pool", "gen", "verifier", "syn", "test"}, "timing": {stage: seconds}}

    ``fixed_kept`` (with ``cfg.kept``): the same selectors, each keeping ``kept`` pairs at
    every rate (see :class:`SummarizeConfig`). ``coverage``: per bin of an article feature
    (the key count for the built-in corpus, the reference length otherwise), the share of
    each selection's kept articles and its model's held-out ROUGE-1 change in points
    (:mod:`gmmcollapse.summarize.coverage`). ``pretrained_base`` is the base itself
    summarizing the held-out articles, before any fine-tuning (it was only taught to write a
    sentence missing from an article).
    ROUGE values are mean F-measures (fractions) on the held-out pairs; RATE keys are strings
    such as ``"0.125"``; ``correct`` is the fraction with ROUGE-1 >= ``correct_rouge1``;
    ``vs_generator`` is the paired ROUGE-1 difference to the generator and its standard error.
    ``spearman`` ranks all (selector, rate) pairs; ``spearman_within_rate`` ranks the selectors
    at each rate, where they keep the same number of articles. Timings are the seconds spent
    in each stage over every invocation of a resumed run (``timing.json`` in ``out``;
    :class:`gmmcollapse._runs.StageTimes`).
    """
    check_data_source(cfg)  # before the run directory is claimed or anything computed
    if cfg.kept and cfg.data is None:  # the built-in corpus's split is known before it is made
        fixed_kept_sizes(cfg, _split_sizes(cfg, cfg.n_pairs)[2])
    out = os.path.abspath(out)
    rundir = claim_run(out, cfg.run_json())
    log = log or (lambda *a, **k: None)
    times = StageTimes(rundir.file("timing.json"))
    with times.stage("data"):
        pool, test = load_data(cfg, with_facts=True)  # facts: for the coverage at the end
        parts = _split_pool(cfg, pool)
        tok_dir = rundir.file("tokenizer")
        if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            tok = SubwordTokenizer.load(tok_dir)
        else:
            tok = train_tokenizer(pool, vocab_size=cfg.model.vocab_size)
            tok.save(tok_dir)
        syn = parts["syn"]
        refs = [p["summary"] for p in syn]
        # for the human-pair models
        dom = SummarizeDomain(cfg, tok, test, refs, out, progress, on_progress=times.commit)
    sizes = {"pool": len(pool), "test": len(test)} | {k: len(v) for k, v in parts.items()}
    log(f"data: {sizes}, vocabulary {tok.vocab_size}")
    fixed = fixed_kept_sizes(cfg, len(syn)) if cfg.kept else None  # refused before training

    base = base_eval = pretrain = None
    if cfg.init == "pretrained":
        with times.stage("pretrain"):  # the pool's articles only: no summary, no test article
            base, pretrain = _pretrained_base(dom, rundir, [p["text"] for p in pool])
            base_eval = rundir.stage(
                "eval/pretrained.json", lambda: dom.evaluate(base, "pretrained")
            )
        pretrain = {"steps": cfg.pretrain_steps, "gaps": cfg.pretrain_gaps, **pretrain}
        log(f"pretrained base: {pretrain}; as a summarizer before fine-tuning: {base_eval}")
        dom = SummarizeDomain(cfg, tok, test, refs, out, progress, on_progress=times.commit,
                              base=base)  # fmt: skip

    strats = strategies(cfg)
    ver_eval = None
    with times.stage("reference_models"):
        generator, gen_eval = _model(dom, rundir, "generator", parts["gen"], cfg.seed)
        log(f"generator: {gen_eval}")
        if any(s.score == "verifier" for s in strats):  # trained only when a selector reads it
            verifier, ver_eval = _model(dom, rundir, "verifier", parts["verifier"], cfg.seed + 2)
            log(f"verifier model: {ver_eval}")
            dom = SummarizeDomain(cfg, tok, test, refs, out, progress, verifier=verifier,
                                  on_progress=times.commit, base=base)  # fmt: skip
        _, human_eval = _model(dom, rundir, "human_full", pool, cfg.seed + 1)
        log(f"human_full: {human_eval}")

    inputs = {"src": encode_src(cfg, tok, [p["text"] for p in syn]), "row": np.arange(len(syn))}
    with times.stage("synthesize"):
        if not rundir.has("candidates.npz"):  # scores of earlier candidates (if any) are stale
            for p in ("greedy", "beam"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(rundir.file(f"scores_{p}.npz"))
        pools = cached_pools(
            rundir, lambda: dom.synthesize(generator, inputs, {s.pool for s in strats})
        )
        tables = {  # round 0's score tables: they depend only on the run's fixed candidates
            name: rundir.stage(f"scores_{name}.npz", partial(dom.scores, inputs, name, gen))
            for name, gen in pools.items()
        }
    cand = {}
    for p, t in tables.items():
        cand[p] = {"rouge1": float(t["oracle"].mean()), "correct": float(t["correct"].mean())}
        if p == "beam":
            cand[p]["oracle_best_rouge1"] = float(t["oracle"].max(axis=1).mean())
    log(f"candidates: {cand}")

    rounds = partial(run_rounds, dom, generator, inputs, strats, jax.random.key(cfg.seed),
                     rounds=cfg.rounds, data=cfg.round_data, store=out, candidates=pools,
                     scores=tables, log=log)  # fmt: skip
    with times.stage("retrain"):
        per_round = rounds()
    table = _selector_table(cfg, out, strats, per_round)
    fixed_kept = None
    if fixed is not None:
        with times.stage("retrain_fixed_kept"):
            per_round_fixed = rounds(sizes={s.name: fixed[rate_key(s.rate)] for s in strats})
        fixed_kept = {"kept": cfg.kept, "articles": fixed}
        fixed_kept |= _selector_table(cfg, out, strats, per_round_fixed)
    # which articles each selection kept, and where its model gains or loses (round 0)
    feature = coverage.default_feature(cfg)
    for t in (table, fixed_kept):
        if t is not None:
            t["coverage"] = coverage.measure(cfg, out, t, syn, test, feature)
    results = {
        "config": cfg.to_json(),
        "init": cfg.init,
        "pretrain": pretrain,
        "pretrained_base": base_eval,
        "generator": gen_eval,
        "human_full": human_eval,
        "verifier_model": ver_eval,
        "candidates": cand,
        **table,
        "fixed_kept": fixed_kept,
        "sizes": sizes,
        "timing": times.as_dict(),
    }
    store.write_json(rundir.file("results.json"), results)
    return finite(results)


def fixed_kept_sizes(cfg: SummarizeConfig, n_syn: int | None) -> dict[str, int]:
    """Per rate key, how many synthesis articles (the first ``ceil(kept / rate)``) a selector
    chooses among so that it keeps exactly ``cfg.kept`` pairs; a ``ValueError`` naming
    ``kept`` when ``n_syn`` articles are too few for the smallest rate (``None``: not
    known yet, unchecked)."""
    need = {rate_key(r): math.ceil(cfg.kept / r - 1e-9) for r in cfg.rates}
    if n_syn is not None and max(need.values()) > n_syn:
        top = math.floor(n_syn * min(cfg.rates) + 1e-9)
        raise ValueError(
            f"kept must be in [0, {top}] for {n_syn} synthesis articles at rate "
            f"{min(cfg.rates):g} (it selects among kept / rate of them), got {cfg.kept}"
        )
    return need


def _selector_table(cfg: SummarizeConfig, out: str, strats, per_round) -> dict:
    """``results.json``'s ``selectors``, ``spearman_pstar_rouge1``, ``spearman`` and
    ``spearman_within_rate`` of one :func:`~gmmcollapse.pipeline.run_rounds` result."""
    selectors: dict[str, dict] = {}
    metrics = (*ROUGE_TYPES, "correct")
    for s in strats:  # in round r > 1, the ROUGE-1 of the selector's model in each round
        sel, rate = s.name.split("~")
        selectors.setdefault(sel, {})[rate] = strategy_row(
            out, s.name, per_round, metrics, "rouge1" if cfg.rounds > 1 else None
        )
    flat = [v for d in selectors.values() for v in d.values()]
    rho = spearman([_num(v["p_star"]) for v in flat], [_num(v["rouge1"]) for v in flat])
    # at one rate every selector keeps the same number of articles, so only the quality of
    # the selection differs; across rates the amount of data also changes (unless ``kept``)
    within = {}
    for rate in (rate_key(r) for r in cfg.rates):
        pts = [d[rate] for d in selectors.values() if rate in d]
        within[rate] = spearman([_num(v["p_star"]) for v in pts], [_num(v["rouge1"]) for v in pts])
    return {"selectors": selectors, "spearman_pstar_rouge1": rho["rho"], "spearman": rho,
            "spearman_within_rate": within}  # fmt: skip


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _gpu_time(flops: float) -> str:
    """``flops`` of training as time on one GPU at :data:`GPU_FLOPS`: ``"about 3.2 h"``."""
    sec = flops / GPU_FLOPS
    if sec < 60:
        return "under a minute"
    return f"about {sec / 3600:.1f} h" if sec >= 3600 else f"about {sec / 60:.0f} min"


def describe(cfg: SummarizeConfig) -> str:
    """The dry-run plan: data, model, the pretraining, the models trained, their FLOPs and
    time on one GPU (at :data:`GPU_FLOPS`)."""
    mc, tc = cfg.model, cfg.train
    fl = mc.flops_per_example()
    strats = strategies(cfg)
    uses_verifier = any(s.score == "verifier" for s in strats)
    n_models = 2 + uses_verifier + len(strats) * cfg.rounds
    data = "the built-in corpus" if cfg.data is None else cfg.data
    lines = [
        f"summarize {cfg.scale}: {data}, {cfg.n_pairs or 'all'} training pairs, {cfg.n_test} test",
        (
            f"  model: {describe_model(mc)}, vocabulary {mc.vocab_size}, articles cut at "
            f"{mc.max_src_len} tokens: "
            f"{mc.param_count() / 1e6:.2f}M parameters"
        ),
        (
            f"  generator on {cfg.gen_fraction:.1%} of the pool, verifier on "
            f"{cfg.verifier_fraction:.1%}; greedy + beam {cfg.beam} on the rest; "
            f"{len(cfg.selectors)} selectors x rates {', '.join(f'{r:g}' for r in cfg.rates)}; "
            f"{cfg.rounds} round(s) ({cfg.round_data})"
        ),
    ]
    gpu = f"one GPU at {GPU_FLOPS / 1e12:g} TFLOP/s"
    if cfg.init == "pretrained":
        pre = tc.batch_size * cfg.pretrain_steps * fl["train"]
        lines.append(
            f"  pretraining: one base, gap-sentence generation on the pool's articles without "
            f"summaries (their {cfg.pretrain_gaps} most salient sentence(s), one per example), "
            f"{cfg.pretrain_steps} steps x {tc.batch_size}: {pre / 1e15:.3g} PFLOP, "
            f"{_gpu_time(pre)} on {gpu}"
        )
    if cfg.kept:  # a data file's synthesis articles are known once it is read
        n_syn = None if cfg.data is not None else _split_sizes(cfg, cfg.n_pairs)[2]
        need = fixed_kept_sizes(cfg, n_syn)
        extra = [k for k, m in need.items() if n_syn is None or m < n_syn]
        n_models += len(cfg.selectors) * len(extra) * cfg.rounds
        lines.append(
            f"  fixed kept: every selector also keeps exactly {cfg.kept} pairs at each rate, "
            "choosing among the first "
            + ", ".join(f"{m} articles at {k}" for k, m in need.items())
            + f": {len(cfg.selectors) * len(extra) * cfg.rounds} more models"
        )
    how = "fine-tuned from the base" if cfg.init == "pretrained" else "from scratch"
    total = tc.batch_size * tc.steps * n_models * fl["train"]
    lines.append(
        f"  {n_models} models x {tc.steps} steps x {tc.batch_size}, each {how}: "
        f"{total / 1e15:.3g} PFLOP of training in all, {_gpu_time(total)} on {gpu}"
    )
    if cfg.data is not None and cfg.data.startswith("hf:") and not datasets_available():
        lines.append(
            f"  data: {cfg.data} needs the optional package datasets, which is not installed "
            f"(pip install datasets); or pass a local file: --data FILE"
        )
    if cfg.notes:
        lines.append(f"  notes: {cfg.notes}")
    return "\n".join(lines)


def report(res: dict) -> str:
    """The printed summary of a finished run's ``results.json``."""
    n = res["config"]["n_test"]
    init = res.get("init") or res["config"].get("init", "scratch")
    pre = res.get("pretrain")
    how = (
        f"every model fine-tuned from one base pretrained for {pre['steps']} steps on "
        f"{pre['examples']} gap sentences of {pre['articles']} articles"
        if init == "pretrained" and pre
        else "every model trained from scratch"
    )
    lines = [f"init {init}: {how}", f"ROUGE-1 / 2 / L on {n} held-out articles"]
    for k in ("pretrained_base", "generator", "human_full", "verifier_model"):
        m = res.get(k)
        if m is not None:
            lines.append(f"  {k:<22}{m['rouge1']:8.4f}{m['rouge2']:8.4f}{m['rougeL']:8.4f}")
    lines += _report_table(res)
    fixed = res.get("fixed_kept")
    if fixed:
        lines.append(
            f"every selection keeping {fixed['kept']} pairs (at each rate among the first "
            + ", ".join(f"{m} articles at {k}" for k, m in fixed["articles"].items())
            + ")"
        )
        lines += _report_table(fixed)
    return "\n".join(lines)


def _report_table(res: dict) -> list[str]:
    lines = [f"  {'selector':<22}{'rate':>6}{'p*':>7}{'kept':>8}{'ROUGE-1':>9}{'vs gen':>16}"]
    for name, per_rate in res["selectors"].items():
        for rate, v in per_rate.items():
            ps, r1, d = v.get("p_star"), v.get("rouge1"), v.get("vs_generator")
            vs = "" if d is None else f"{d['delta']:+.4f} +- {d['se'] or math.nan:.4f}"
            lines.append(
                f"  {name:<22}{rate:>6}{'-' if ps is None else f'{ps:.3f}':>7}"
                f"{v['n_selected']:>8}{'-' if r1 is None else f'{r1:.4f}':>9}{vs:>18}"
            )
    rho = res.get("spearman") or {}
    lines.append(
        f"  Spearman(p*, ROUGE-1) = {rho.get('rho')} (p = {rho.get('pvalue')}, n = {rho.get('n')})"
    )
    for rate, w in (res.get("spearman_within_rate") or {}).items():
        lines.append(
            f"    at rate {rate}: {w.get('rho')} (p = {w.get('pvalue')}, n = {w.get('n')})"
        )
    return lines
