"""Run-directory helpers shared by the model experiments (eigen, summarize): presets with
overrides, atomic cached JSON / candidate files, per-model held-out scores and their paired
comparison, and JSON without NaN."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gmmcollapse.models import Generated, generate

__all__ = [
    "ModelDomain",
    "cached_candidates",
    "cached_json",
    "finite",
    "paired_delta",
    "preset",
    "safe_tag",
    "write_json",
]


def preset(scales: Mapping[str, Any], scale: str, overrides: dict, what: str):
    """``scales[scale]`` with fields replaced; an unknown scale or field is a ``ValueError``."""
    if scale not in scales:
        raise ValueError(f"scale must be one of {', '.join(scales)}, got {scale!r}")
    fields = {f.name for f in dataclasses.fields(scales[scale])} - {"scale"}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown {what} config field(s) {bad}; allowed: {sorted(fields)}")
    return dataclasses.replace(scales[scale], **overrides)


def safe_tag(tag: str) -> str:
    """A model tag such as ``"round2/oracle~0.25@30000"`` as a file name."""
    return tag.replace("@", "_n").replace("/", "_").replace("~", "_r")


def finite(obj: Any) -> Any:
    """JSON has no NaN: non-finite floats (e.g. psi with no wrong candidate) become None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` (NaN -> null) to ``path`` atomically (a finished file is always whole)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(finite(obj), f, indent=1)
    os.replace(tmp, path)


def cached_json(path: str, compute: Callable[[], Any]) -> Any:
    """The JSON in ``path``, or ``compute()`` written there first."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    val = compute()
    write_json(path, val)
    return val


def cached_candidates(path: str, compute: Callable[[], dict]) -> dict[str, Generated]:
    """Candidate pools ``{name: Generated}`` from the ``.npz`` in ``path``, or ``compute()``
    saved there first."""
    if os.path.exists(path):
        z = np.load(path)
        pools = sorted({k.split("/")[0] for k in z.files})
        return {p: Generated(*(z[f"{p}/{f}"] for f in Generated._fields)) for p in pools}
    pools = compute()
    flat = {f"{p}/{f}": np.asarray(getattr(g, f)) for p, g in pools.items() for f in g._fields}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path)
    return pools


def paired_delta(eval_dir: str, tag: str, base: str = "generator") -> dict | None:
    """Mean of model ``tag``'s per-example held-out scores (``eval_dir/<tag>.npy``) minus
    ``base``'s on the same examples, with its paired standard error; None if either is
    missing."""
    paths = [os.path.join(eval_dir, f"{safe_tag(t)}.npy") for t in (tag, base)]
    if not all(os.path.exists(p) for p in paths):
        return None
    a, b = (np.load(p).astype(np.float64) for p in paths)
    d = a - b
    return {"delta": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size))}


class ModelDomain:
    """What the transformer domains of :func:`gmmcollapse.pipeline.run_round` share: decoding
    with the run's batch size, the ``greedy`` / ``beam`` candidate pools, selected (input,
    candidate) pairs as a training set, and per-example held-out scores in ``out/eval`` for
    paired comparisons. Subclasses set ``cfg`` (with ``decode_batch`` and ``beam``), ``out``
    and ``progress``."""

    cfg: Any
    out: str
    progress: bool

    def decode(self, model, src, beam: int, desc: str) -> Generated:
        return generate(
            model, src, beam, batch_size=self.cfg.decode_batch, progress=self.progress, desc=desc
        )

    def decode_pools(self, generator, src, pools: set[str]) -> dict[str, Generated]:
        """Pool ``greedy`` (k = 1) and / or ``beam`` (k = ``cfg.beam``) of ``generator``."""
        out = {}
        if "greedy" in pools:
            out["greedy"] = self.decode(generator, src, 1, "greedy")
        if "beam" in pools:
            out["beam"] = self.decode(generator, src, self.cfg.beam, f"beam {self.cfg.beam}")
        return out

    @staticmethod
    def selected_pairs(src, gen: Generated, selection, tgt_len: int) -> tuple:
        """``(src, tgt)`` id arrays of the selected (input, candidate) pairs."""
        i, j = np.nonzero(np.asarray(selection.mask))
        return np.asarray(src)[i], np.asarray(gen.tokens)[i, j, :tgt_len]

    def save_eval(self, tag: str, per_example) -> None:
        """Keep model ``tag``'s per-example held-out scores for :meth:`paired_delta`."""
        os.makedirs(os.path.join(self.out, "eval"), exist_ok=True)
        np.save(os.path.join(self.out, "eval", f"{safe_tag(tag)}.npy"), per_example)

    def paired_delta(self, tag: str, base: str = "generator") -> dict | None:
        """Held-out score of model ``tag`` minus ``base`` on the same examples, with its
        paired standard error (:func:`paired_delta`)."""
        return paired_delta(os.path.join(self.out, "eval"), tag, base)
