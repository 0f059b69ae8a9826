"""The generic round: synthesize -> score -> select -> retrain -> evaluate.

A domain (the eigenvalue transformer, the summarizer) plugs in its own functions through the
small :class:`Domain` protocol; the round itself, the strategies and the measured keep rates are
shared, and every selection goes through the kernel :mod:`gmmcollapse.feedback`.

Vocabulary
----------
*inputs*: n problems (a pytree with a leading axis n). *pool*: the generator's candidates for
them, named (e.g. ``"greedy"`` with k = 1, ``"beam"`` with k = beam width), a pytree whose
leaves have leading axes (n, k). *scores*: per pool, a dict of (n, k) arrays, higher = better
(e.g. ``"oracle"``, ``"self"``, a verifier), plus the boolean ``"correct"`` table that rates
are measured against. A :class:`Strategy` names a pool, a score and a kernel rule.

The GMM simulation (:mod:`gmmcollapse.gmm`) calls the kernel directly inside its jitted
simulation; this module is for domains whose generator and learner are trained models.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from gmmcollapse import feedback
from gmmcollapse import store as _store
from gmmcollapse._validate import check_choice, check_int, check_range

__all__ = [
    "RULES",
    "Domain",
    "Strategy",
    "StrategyResult",
    "concat",
    "run_round",
    "run_rounds",
    "select",
    "selection_key",
    "subset",
]

#: the selection rules a :class:`Strategy` can use
RULES = ("all", "prune", "best_of_k", "top_fraction", "random_fraction", "noisy_oracle")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A named way to choose training examples from a pool of candidates.

    Attributes:
        name: the key in results (e.g. ``"oracle_best_of_k"``).
        rule: one of :data:`RULES`:
            ``all`` keeps every candidate (no verifier);
            ``prune`` keeps candidates with ``score >= tau``;
            ``best_of_k`` keeps per input the best candidate by ``score`` among those with
            ``score >= tau`` (``tau = -inf``: always one per input);
            ``top_fraction`` / ``random_fraction`` keep a fraction ``rate`` of the inputs;
            ``noisy_oracle`` keeps correct candidates w.p. ``phi`` and wrong ones w.p. ``psi``.
        pool: which candidate pool the rule reads.
        score: which score table the rule reads (``None`` for ``all`` / ``random_fraction`` /
            ``noisy_oracle``).
        tau, rate, phi, psi: the rule's parameters.
    """

    name: str
    rule: str
    pool: str = "greedy"
    score: str | None = None
    tau: float = -math.inf
    rate: float = 1.0
    phi: float = 1.0
    psi: float = 0.0

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        needs_score = self.rule in ("prune", "best_of_k", "top_fraction")
        if needs_score and self.score is None:
            raise ValueError(f"strategy {self.name!r}: rule {self.rule!r} needs a score")
        check_range("tau", self.tau, allow_inf=True)
        check_range("rate", self.rate, 0.0, 1.0)
        check_range("phi", self.phi, 0.0, 1.0)
        check_range("psi", self.psi, 0.0, 1.0)


def select(
    strategy: Strategy, scores: Mapping[str, Any], key: jax.Array | None = None
) -> feedback.Selection:
    """Apply ``strategy`` to one pool's score tables ((n, k) arrays) with the shared kernel."""
    s = strategy
    if s.score is not None and s.score not in scores:
        raise ValueError(f"strategy {s.name!r} reads score {s.score!r}; have {sorted(scores)}")
    shape = np.shape(scores["correct"])
    if s.rule == "all":
        return feedback.from_mask(np.ones(shape, bool))
    if s.rule == "prune":
        return feedback.prune(scores[s.score], s.tau)
    if s.rule == "best_of_k":
        sc = scores[s.score]
        return feedback.best_of_k(sc, eligible=np.asarray(sc) >= s.tau)
    if s.rule == "top_fraction":
        return feedback.top_fraction(scores[s.score], s.rate)
    if key is None:
        raise ValueError(f"strategy {s.name!r} (rule {s.rule!r}) needs a random key")
    if s.rule == "random_fraction":
        return feedback.random_fraction(key, np.zeros(shape), s.rate)
    return feedback.noisy_oracle(key, scores["correct"], s.phi, s.psi)


def selection_key(key: jax.Array, name: str) -> jax.Array:
    """The random key :func:`run_round` selects strategy ``name`` with from the round's
    ``key``: it depends on the name, not on the strategy's position in the list, so a
    selection can be recomputed from a run's score tables alone."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()))


def subset(tree: Any, m: int) -> Any:
    """The first ``m`` inputs of a pytree with a leading input axis."""
    return jax.tree.map(lambda a: a[:m], tree)


class Domain(Protocol):
    """What a domain provides to :func:`run_round`. Models are opaque to the round."""

    def synthesize(self, generator: Any, inputs: Any, pools: set[str]) -> dict[str, Any]:
        """Candidates of ``generator`` on ``inputs`` for each named pool."""

    def scores(self, inputs: Any, pool_name: str, pool: Any) -> dict[str, Any]:
        """Score tables (n, k) for one pool, including the bool table ``"correct"``."""

    def training_set(self, inputs: Any, pool: Any, selection: feedback.Selection) -> Any:
        """The selected (input, candidate) pairs as a training set."""

    def train(self, data: Any, tag: str) -> Any:
        """A fresh model trained on ``data`` (the same budget for every call); ``tag`` names
        the run (e.g. for its checkpoint directory)."""

    def evaluate(self, model: Any, tag: str) -> dict:
        """Metrics of ``model`` on the fixed held-out set (``tag`` as in :meth:`train`)."""


@dataclasses.dataclass
class StrategyResult:
    """One strategy at one number of synthesized inputs."""

    name: str
    n_inputs: int
    rates: dict
    metrics: dict
    model: Any = None
    data: Any = None  # the selected training set (without extra data), when asked for

    def to_json(self) -> dict:
        return {"name": self.name, "n_inputs": self.n_inputs, "rates": self.rates} | {
            "metrics": self.metrics
        }


def _rates_dict(r: feedback.Rates) -> dict:
    return {k: float(np.asarray(v)) for k, v in r._asdict().items()}


def run_round(
    domain: Domain,
    generator: Any,
    inputs: Any,
    strategies: Sequence[Strategy],
    key: jax.Array,
    *,
    sizes: Sequence[int] | None = None,
    store: str | os.PathLike | None = None,
    keep_models: bool = False,
    candidates: dict[str, Any] | None = None,
    scores: dict[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep_data: bool = False,
    prefix: str = "",
    log=None,
) -> list[StrategyResult]:
    """One round for every strategy and every number of inputs in ``sizes``.

    Candidates are generated once on all inputs; a size ``m`` uses the first ``m`` of them
    (nested subsets, so curves over sizes are not confounded by different inputs). For each
    (strategy, size): select with the kernel, measure phi/psi/p* against ``"correct"``, train a
    fresh model on the selection, evaluate it.

    Args:
        sizes: numbers of synthesized inputs (default: all of them).
        store: directory for per-(strategy, size) result files; a finished one is read back
            instead of retrained (so an interrupted round resumes) when it was made by the same
            strategy and its selection has the same measured rates; otherwise it is redone.
        keep_models: return the trained models (e.g. to use them as the next generators);
            forces training even when a result file exists (the domain's checkpoints make a
            finished training cheap to reload).
        candidates: precomputed pools (else ``domain.synthesize``).
        scores: precomputed score tables per pool (else ``domain.scores``), e.g. cached by the
            caller.
        extra: per strategy name, a training set to train on together with the selection
            (real data mixed in, or earlier rounds' selections); see :func:`concat`.
        keep_data: return each selection's training set (``StrategyResult.data``).
        prefix: prepended to every tag ``"<name>@<size>"`` passed to the domain (e.g. the
            round, so models of different rounds do not share checkpoints).
        log: optional ``print``-like callable for one line per finished (strategy, size).
    """
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError(f"strategy names must be unique, got {names}")
    n = jax.tree.leaves(inputs)[0].shape[0]
    for m in sizes or ():
        check_int("sizes", m, 1, n)
    sizes = [n] if sizes is None else sorted({int(m) for m in sizes})
    pools_needed = {s.pool for s in strategies}
    if candidates is None:
        candidates = domain.synthesize(generator, inputs, pools_needed)
    missing = pools_needed - set(candidates)
    if missing:
        raise ValueError(f"pools {sorted(missing)} were not synthesized")
    tables = dict(scores or {})
    tables.update({p: domain.scores(inputs, p, candidates[p]) for p in pools_needed - set(tables)})
    extra = dict(extra or {})
    if store is not None:
        store = os.fspath(store)
        os.makedirs(store, exist_ok=True)
    out = []
    for i, strat in enumerate(strategies):
        for m in sizes:
            tag = f"{prefix}{strat.name}@{m}"
            path = None if store is None else os.path.join(store, f"{strat.name}@{m}.json")
            sub_scores = subset(tables[strat.pool], m)
            sel = select(strat, sub_scores, selection_key(key, strat.name))
            rates = _rates_dict(feedback.measure(sel, sub_scores["correct"]))
            ident = {
                "strategy": _store.jsonable(dataclasses.asdict(strat)),
                "rates": _store.jsonable(rates),
            }

            def selected_set(strat=strat, m=m, sel=sel, n_sel=rates["n_selected"]):
                if n_sel == 0:
                    return None
                return domain.training_set(
                    subset(inputs, m), subset(candidates[strat.pool], m), sel
                )

            if path is not None and os.path.exists(path) and not keep_models:
                saved = _store.read_json(path)
                # reuse only a result of the same strategy on the same selection
                if {k: _store.jsonable(saved.get(k)) for k in ident} == ident:
                    out.append(
                        StrategyResult(
                            strat.name,
                            m,
                            _store.restore_floats(saved["rates"]),  # null -> NaN, as measured
                            saved["metrics"],
                            data=selected_set() if keep_data else None,
                        )
                    )
                    continue
            selected = selected_set()
            if selected is None:
                metrics, model = {"error": "nothing selected"}, None
            else:
                model = domain.train(concat(extra.get(strat.name), selected), tag)
                metrics = domain.evaluate(model, tag)
            res = StrategyResult(
                strat.name,
                m,
                rates,
                metrics,
                model if keep_models else None,
                selected if keep_data else None,
            )
            if path is not None:
                _store.write_json(path, res.to_json() | {"strategy": ident["strategy"]})
            if log is not None:
                log(f"{tag}: p*={rates['p_star']:.3f} kept={int(rates['n_selected'])} {metrics}")
            out.append(res)
    return out


def concat(*sets: Any) -> Any:
    """Training sets (pytrees of arrays with a leading example axis) joined along that axis;
    ``None`` entries are skipped (``concat(None, x)`` is ``x`` itself)."""
    sets = [t for t in sets if t is not None]
    if not sets:
        return None
    if len(sets) == 1:
        return sets[0]
    return jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *sets)


#: how later rounds use earlier rounds' data
DATA_MODES = ("replace", "accumulate")


def run_rounds(
    domain: Domain,
    generator: Any,
    inputs: Any,
    strategies: Sequence[Strategy],
    key: jax.Array,
    *,
    rounds: int = 1,
    data: str = "replace",
    real: Any = None,
    store: str | os.PathLike | None = None,
    candidates: dict[str, Any] | None = None,
    scores: dict[str, Any] | None = None,
    sizes: Mapping[str, int] | None = None,
    log=None,
) -> list[dict[str, StrategyResult]]:
    """Iterated retraining: R rounds of :func:`run_round`, for any domain.

    Round 0 synthesizes with ``generator`` for every strategy (its candidates and scores are
    computed once and may be passed in); in round ``r >= 1`` each strategy's own model from
    round ``r - 1`` is its generator (a strategy that selected nothing stops). Every round
    trains a fresh model on:

    * ``data="replace"``: that round's selection;
    * ``data="accumulate"``: the strategy's selections of all rounds so far;

    plus ``real`` (a training set of real examples, e.g. human pairs) when given.

    Args:
        inputs: the round's problems: a pytree, the same every round, or a callable
            ``inputs(r)`` giving round ``r``'s (e.g. fresh matrices per round).
        key: round 0 selects with ``key``, round ``r`` with ``fold_in(key, r)``.
        store: run directory; round 0's results go to ``store/strategies``, round ``r``'s to
            ``store/round<r+1>/<strategy>`` (an interrupted run resumes).
        candidates, scores: round 0's precomputed pools and score tables.
        sizes: per strategy name, the number ``m`` of inputs it selects from in every round:
            the first ``m`` (default: all of them). E.g. a ``top_fraction`` strategy at rate
            ``r`` with ``m = ceil(N / r)`` keeps exactly ``N`` examples (the kernel counts
            ``floor(r m)`` in the caller's precision: float64 gives exactly ``N``; float32 can
            give ``N - 1`` for some ``r``), so strategies at different rates train on equally
            many. Later rounds synthesize on those ``m``
            only. Results are stored per (strategy, m), so one store holds runs of one
            strategy at several sizes.
        log: ``print``-like, one line per trained model.

    Returns:
        One ``{strategy name: StrategyResult}`` per round (models are not kept).
    """
    check_int("rounds", rounds, 1)
    check_choice("data", data, DATA_MODES)
    sizes = dict(sizes or {})
    unknown = sorted(set(sizes) - {s.name for s in strategies})
    if unknown:
        raise ValueError(f"sizes names strategies that are not run: {unknown}")
    draw = inputs if callable(inputs) else (lambda r: inputs)
    accumulate = data == "accumulate"
    store = None if store is None else os.fspath(store)
    log_r = log
    generators = {s.name: generator for s in strategies}
    kept: dict[str, Any] = {s.name: real for s in strategies}  # what each next round adds to
    per_round: list[dict[str, StrategyResult]] = []
    for r in range(rounds):
        last = r + 1 == rounds
        common = {"keep_models": not last, "keep_data": accumulate and not last}
        if r == 0:
            batch = draw(0)
            if len({sizes.get(s.name) for s in strategies}) > 1:  # synthesize, score once
                pools = {s.pool for s in strategies}
                candidates = dict(candidates or {})
                missing = pools - set(candidates)
                if missing:
                    candidates |= domain.synthesize(generator, batch, missing)
                scores = dict(scores or {})
                scores |= {p: domain.scores(batch, p, candidates[p]) for p in pools - set(scores)}
            results = {}
            groups: dict[int | None, list[Strategy]] = {}  # one call per size, in order
            for s in strategies:
                groups.setdefault(sizes.get(s.name), []).append(s)
            for m, group in groups.items():
                res = run_round(
                    domain,
                    generator,
                    batch,
                    group,
                    key,
                    sizes=None if m is None else [m],
                    store=None if store is None else os.path.join(store, "strategies"),
                    candidates=candidates,
                    scores=scores,
                    extra=kept if real is not None else None,
                    log=log,
                    **common,
                )
                results.update({x.name: x for x in res})
            results = {s.name: results[s.name] for s in strategies}
        else:
            results = {}
            batch = draw(r)
            if log is not None:
                log_r = lambda m, r=r: log(f"round {r + 1} {m}")
            for s in strategies:
                if generators[s.name] is None:
                    continue
                m = sizes.get(s.name)
                res = run_round(
                    domain,
                    generators[s.name],
                    batch if m is None else subset(batch, m),
                    [s],
                    jax.random.fold_in(key, r),
                    store=None if store is None else os.path.join(store, f"round{r + 1}", s.name),
                    extra={s.name: kept[s.name]} if kept[s.name] is not None else None,
                    prefix=f"round{r + 1}/",
                    log=log_r,
                    **common,
                )
                results[s.name] = res[0]
        for name, x in results.items():
            generators[name] = x.model
            if accumulate:
                kept[name] = concat(kept[name], x.data)
            x.model = x.data = None
        per_round.append(results)
    return per_round
