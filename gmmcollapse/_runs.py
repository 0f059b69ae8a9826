"""Run-directory helpers shared by the model experiments (eigen, summarize): presets with
overrides, atomic cached JSON / candidate files, per-model held-out scores and their paired
comparison, and JSON without NaN."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gmmcollapse import store
from gmmcollapse._validate import check_choice
from gmmcollapse.models import Generated, generate

__all__ = [
    "cached_candidates",
    "cached_json",
    "decode_pools",
    "finite",
    "format_bytes",
    "paired_delta",
    "preset",
    "safe_tag",
    "save_eval",
    "selected_pairs",
    "write_json",
]


def preset(scales: Mapping[str, Any], scale: str, overrides: dict, what: str):
    """``scales[scale]`` with fields replaced; an unknown scale or field is a ``ValueError``.
    A key ``"a.b"`` replaces field ``b`` of the embedded config dataclass in field ``a``."""
    check_choice("scale", scale, scales)
    base = scales[scale]
    fields = {f.name for f in dataclasses.fields(base)} - {"scale"}
    nested: dict[str, dict] = {}
    flat = {}
    for key, value in overrides.items():
        outer, dot, inner = key.partition(".")
        if dot and outer in fields and dataclasses.is_dataclass(getattr(base, outer)):
            if inner not in {f.name for f in dataclasses.fields(getattr(base, outer))}:
                raise ValueError(f"unknown {what} config field {key!r}")
            nested.setdefault(outer, {})[inner] = value
        else:
            flat[key] = value
    bad = sorted(set(flat) - fields)
    if bad:
        raise ValueError(f"unknown {what} config field(s) {bad}; allowed: {sorted(fields)}")
    for outer, values in nested.items():
        flat[outer] = dataclasses.replace(flat.get(outer, getattr(base, outer)), **values)
    return dataclasses.replace(base, **flat)


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
    """The JSON in ``path``, or ``compute()`` written there first (and returned as stored)."""
    if os.path.exists(path):
        return store.read_json(path)
    val = compute()
    store.write_json(path, val)
    return finite(val)


def cached_candidates(path: str, compute: Callable[[], dict]) -> dict[str, Generated]:
    """Candidate pools ``{name: Generated}`` from the ``.npz`` in ``path``, or ``compute()``
    saved there first."""
    if os.path.exists(path):
        z = store.load_npz(path)
        pools = sorted({k.split("/")[0] for k in z})
        return {p: Generated(*(z[f"{p}/{f}"] for f in Generated._fields)) for p in pools}
    pools = compute()
    flat = {f"{p}/{f}": np.asarray(getattr(g, f)) for p, g in pools.items() for f in g._fields}
    store.save_npz(path, **flat)
    return pools


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
