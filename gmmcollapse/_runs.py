"""Helpers shared by the model experiments (eigen, summarize, sort): presets with overrides and
old flat field names, the persisted config, the run directory and its cached stages (candidate
pools, trained models), the per-model training recipe, per-model held-out scores and their
paired comparison, the results rows of the strategies, the time spent in each stage summed
over the invocations of a resumed run (:class:`StageTimes`), and JSON without NaN."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from gmmcollapse import store
from gmmcollapse._validate import check_choice
from gmmcollapse.models import (
    Generated,
    TrainConfig,
    Transformer,
    TransformerConfig,
    generate,
    load_model,
    save_model,
    train,
)

__all__ = [
    "OPERATIONAL",
    "StageTimes",
    "cached_json",
    "cached_pools",
    "claim_run",
    "decode_pools",
    "describe_model",
    "finite",
    "flat_json",
    "format_bytes",
    "paired_delta",
    "preset",
    "recipe",
    "resolve_aliases",
    "safe_tag",
    "save_eval",
    "saved_model",
    "selected_pairs",
    "self_scores",
    "strategy_row",
    "train_model",
    "write_json",
]


#: embedded config fields that change how a run proceeds but none of its results (how often
#: training checkpoints by time): left out of the config a run directory is claimed for and of
#: ``results.json``, so a run resumes under another value and its results compare equal
OPERATIONAL: tuple[str, ...] = ("train.ckpt_seconds",)


def resolve_aliases(overrides: Mapping[str, Any], aliases: Mapping[str, str]) -> dict:
    """``overrides`` with old flat field names replaced by their dotted names (``aliases``,
    e.g. ``{"width": "model.width"}``); an alias and the name it stands for both given (or
    two aliases of one name) is a ``ValueError``."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}  # dotted name -> the key that set it
    for key, value in overrides.items():
        name = aliases.get(key, key)
        if name in given:
            raise ValueError(f"{given[name]!r} and {key!r} set the same field {name!r}: give one")
        given[name] = key
        out[name] = value
    return out


def preset(
    scales: Mapping[str, Any],
    scale: str,
    overrides: dict,
    what: str,
    aliases: Mapping[str, str] | None = None,
):
    """``scales[scale]`` with fields replaced; an unknown scale or field is a ``ValueError``.
    A key ``"a.b"`` replaces field ``b`` of the embedded config dataclass in field ``a``;
    ``aliases`` maps old flat names to such keys (:func:`resolve_aliases`)."""
    check_choice("scale", scale, scales)
    base = scales[scale]
    aliases = aliases or {}
    fields = {f.name for f in dataclasses.fields(base)} - {"scale"}
    nested: dict[str, dict] = {}
    flat = {}
    for key, value in resolve_aliases(overrides, aliases).items():
        outer, dot, inner = key.partition(".")
        if dot and outer in fields and dataclasses.is_dataclass(getattr(base, outer)):
            if inner not in {f.name for f in dataclasses.fields(getattr(base, outer))}:
                raise ValueError(f"unknown {what} config field {key!r}")
            nested.setdefault(outer, {})[inner] = value
        else:
            flat[key] = value
    bad = sorted(set(flat) - fields)
    if bad:
        allowed = sorted(fields | set(aliases))
        raise ValueError(f"unknown {what} config field(s) {bad}; allowed: {allowed}")
    for outer, values in nested.items():
        flat[outer] = dataclasses.replace(flat.get(outer, getattr(base, outer)), **values)
    return dataclasses.replace(base, **flat)


def flat_json(cfg, aliases: Mapping[str, str], drop: tuple[str, ...] = ()) -> dict:
    """``cfg`` as JSON in its flat spelling, the shape run directories and results files have
    always had: an embedded config's fields under their old names (``aliases``, in that
    order, where the embedded field stands), and any other of its fields only where it
    differs from the default recipe of ``cfg``'s class, as ``"model.positions"``. Fields in
    ``drop`` are left out."""
    dotted = {name: old for old, name in aliases.items()}
    plain = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    plain = {k: v for k, v in plain.items() if not dataclasses.is_dataclass(v)}
    reference = dataclasses.replace(type(cfg)(), **plain)  # derived fields follow cfg's
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in drop:
            continue
        if not dataclasses.is_dataclass(value):
            out[f.name] = value
            continue
        for name, old in dotted.items():
            if name.partition(".")[0] == f.name:
                out[old] = getattr(value, name.partition(".")[2])
        ref = getattr(reference, f.name)
        for g in dataclasses.fields(value):
            name = f"{f.name}.{g.name}"
            if name in OPERATIONAL:
                continue
            if name not in dotted and getattr(value, g.name) != getattr(ref, g.name):
                out[name] = getattr(value, g.name)
    return store.jsonable(out)


def claim_run(out: str, config: dict) -> store.RunDir:
    """The run directory ``out`` claimed for ``config`` (stamp ``config.json``): a directory
    holding another configuration is refused with a one-line error."""
    return store.RunDir(out, config, stamp="config.json", what="out directory",
                        hint="choose another --out or delete it")  # fmt: skip


def recipe(train_cfg: TrainConfig, *, steps: int, seed: int, ckpt_floor: int) -> TrainConfig:
    """The training recipe of one model: ``train_cfg`` with that model's ``steps`` and
    ``seed``, warm-up at most half the steps, and a checkpoint every quarter of the steps (at
    least every ``ckpt_floor``) unless ``train_cfg.ckpt_every`` sets one."""
    return dataclasses.replace(
        train_cfg,
        steps=steps,
        seed=seed,
        warmup=min(train_cfg.warmup, steps // 2),
        ckpt_every=train_cfg.ckpt_every or max(steps // 4, ckpt_floor),
    )


def train_model(
    model_cfg: TransformerConfig, train_cfg: TrainConfig, data: tuple, out: str, tag: str,
    progress: bool, on_checkpoint: Callable[[int], Any] | None = None, init: Any = None,
) -> Transformer:  # fmt: skip
    """A fresh transformer trained on ``data`` = ``(src, tgt)``, checkpointed (and resumed)
    under ``out/ckpt/<tag>``; ``on_checkpoint(step)`` after each checkpoint (e.g.
    :meth:`StageTimes.commit`). ``init``: start from these parameters (a pretrained model)
    instead of a fresh model (:func:`gmmcollapse.models.train`)."""
    res = train(model_cfg, train_cfg, *data, ckpt_dir=os.path.join(out, "ckpt", safe_tag(tag)),
                progress=progress, desc=f"train {tag}",
                on_checkpoint=on_checkpoint, init=init)  # fmt: skip
    return res.model


class StageTimes:
    """Seconds spent in each stage of a run, summed over the invocations of a resumed run,
    kept in ``path`` (``timing.json`` of the run directory).

    ``with times.stage("retrain"): ...`` times a stage. Time is added to the file whenever the
    work done is kept: when the stage ends and at each :meth:`commit` (a training checkpoint, a
    finished model), so work lost to an interruption (and done again later) is not counted
    twice. A stage finished by an earlier invocation keeps its time: one that only reads its
    stored results back adds nothing. :meth:`as_dict` gives ``{stage: seconds}`` of the
    finished stages (``results.json``'s ``"timing"``).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "timing.json")
    >>> with StageTimes(path).stage("train"):
    ...     pass
    >>> times = StageTimes(path)  # a later invocation
    >>> with times.stage("train"):  # finished before: its time stays
    ...     pass
    >>> list(times.as_dict())
    ['train']
    """

    def __init__(self, path: str):
        self.path = path
        try:
            data = store.read_json(path)
            done, partial = dict(data["done"]), dict(data["partial"])
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable
            done, partial = {}, {}
        self.done: dict[str, float] = {k: float(v) for k, v in done.items()}
        self.partial: dict[str, float] = {k: float(v) for k, v in partial.items()}
        self._stage: str | None = None
        self._since = 0.0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body as stage ``name`` (unless an earlier invocation finished it)."""
        if name in self.done or self._stage is not None:  # finished before, or nested
            yield
            return
        self._stage, self._since = name, time.perf_counter()
        try:
            yield
            self.commit()
            self.done[name] = self.partial.pop(name, 0.0)
            self._save()
        finally:
            self._stage = None

    def commit(self, *_: Any) -> None:
        """Add the time since the last commit to the stage in progress (the work done so far
        is kept). Takes and ignores arguments, to serve as a callback."""
        if self._stage is None:
            return
        now = time.perf_counter()
        self.partial[self._stage] = self.partial.get(self._stage, 0.0) + now - self._since
        self._since = now
        self._save()

    def _save(self) -> None:
        store.write_json(self.path, {"done": self.done, "partial": self.partial})

    def as_dict(self) -> dict[str, float]:
        """``{stage: seconds}`` of the finished stages, in the order they first finished."""
        return dict(self.done)


def saved_model(
    path: str, make: Callable[[], Transformer], before_save: Callable[[str], None] | None = None
) -> Transformer:
    """The model saved in directory ``path``, or ``make()`` saved there first (``before_save``
    writes what goes with it, e.g. a tokenizer; ``config.json``, written last, marks the
    directory complete)."""
    if os.path.exists(os.path.join(path, "config.json")):
        return load_model(path)
    model = make()
    if before_save is not None:
        before_save(path)
    save_model(model, path)
    return model


def safe_tag(tag: str) -> str:
    """A model tag such as ``"round2/oracle~0.25@30000"`` as a file name."""
    return tag.replace("@", "_n").replace("/", "_").replace("~", "_r")


def finite(obj: Any) -> Any:
    """``obj`` under the store's JSON policy (:func:`gmmcollapse.store.jsonable`): NaN ->
    None, infinities -> ``"inf"`` / ``"-inf"``; what a results file read back compares equal
    to."""
    return store.jsonable(obj)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically (:func:`gmmcollapse.store.write_json`)."""
    store.write_json(path, obj)


def cached_json(path: str, compute: Callable[[], Any]) -> Any:
    """The JSON in ``path``, or ``compute()`` written there first (and returned as stored):
    :func:`gmmcollapse.store.cached`."""
    return store.cached(path, compute)


def cached_pools(run: store.RunDir, compute: Callable[[], dict]) -> dict[str, Generated]:
    """Candidate pools ``{name: Generated}``: the stage ``candidates.npz`` of ``run`` (arrays
    ``<pool>/<field>``), or ``compute()`` stored there first."""
    flat = run.stage(
        "candidates.npz",
        lambda: {f"{p}/{f}": getattr(g, f) for p, g in compute().items() for f in g._fields},
    )
    names = dict.fromkeys(k.split("/")[0] for k in flat)
    return {p: Generated(*(flat[f"{p}/{f}"] for f in Generated._fields)) for p in names}


def paired_delta(out: str, tag: str, base: str = "generator") -> dict | None:
    """Mean of model ``tag``'s per-example held-out scores (``out/eval/<tag>.npy``) minus
    ``base``'s on the same examples, with its paired standard error; None if either is
    missing."""
    paths = [os.path.join(out, "eval", f"{safe_tag(t)}.npy") for t in (tag, base)]
    if not all(os.path.exists(p) for p in paths):
        return None
    a, b = (np.load(p).astype(np.float64) for p in paths)
    d = a - b
    return {"delta": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size))}


def decode_pools(
    model, src, pools: set[str], *, beam: int, batch_size: int, progress: bool
) -> dict[str, Generated]:
    """Pool ``greedy`` (k = 1) and / or ``beam`` (k = ``beam``) of ``model`` on ``src``."""
    out = {}
    if "greedy" in pools:
        out["greedy"] = generate(model, src, 1, batch_size=batch_size, progress=progress,
                                 desc="greedy")  # fmt: skip
    if "beam" in pools:
        out["beam"] = generate(model, src, beam, batch_size=batch_size, progress=progress,
                               desc=f"beam {beam}")  # fmt: skip
    return out


def selected_pairs(src, gen: Generated, selection, tgt_len: int) -> tuple:
    """``(src, tgt)`` id arrays of the selected (input, candidate) pairs."""
    i, j = np.nonzero(np.asarray(selection.mask))
    return np.asarray(src)[i], np.asarray(gen.tokens)[i, j, :tgt_len]


def save_eval(out: str, tag: str, per_example) -> None:
    """Keep model ``tag``'s per-example held-out scores in ``out/eval`` for
    :func:`paired_delta`."""
    os.makedirs(os.path.join(out, "eval"), exist_ok=True)
    np.save(os.path.join(out, "eval", f"{safe_tag(tag)}.npy"), per_example)


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def self_scores(gen: Generated) -> np.ndarray:
    """The model's own score of each candidate: its length-normalised log-probability."""
    return np.asarray(gen.logprob) / np.maximum(np.asarray(gen.length), 1)


def strategy_row(
    out: str, name: str, per_round: list[dict], metrics: tuple[str, ...], round_metric: str | None
) -> dict:
    """A strategy's entry of ``results.json``: round 0's rates (phi, psi, p*, p, n_selected),
    its ``metrics``, the paired difference to the generator, and ``round_metric`` of every
    round (``"rounds"``, unless ``round_metric`` is None)."""
    x = per_round[0][name]
    row = {k: x.rates[k] for k in ("phi", "psi", "p_star", "p")}
    row["n_selected"] = int(x.rates["n_selected"])
    row |= {k: x.metrics.get(k) for k in metrics}
    row["vs_generator"] = paired_delta(out, f"{name}@{x.n_inputs}")
    if round_metric is not None:
        row["rounds"] = [rr[name].metrics.get(round_metric) for rr in per_round if name in rr]
    return row


def describe_model(mc: TransformerConfig) -> str:
    """``"2+1 layers, width 128, 4 heads, ff 512"``: a transformer's shape for a plan."""
    return f"{mc.enc_layers}+{mc.dec_layers} layers, width {mc.width}, {mc.heads} heads, ff {mc.ff}"
