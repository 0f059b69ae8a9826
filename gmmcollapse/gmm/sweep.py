"""Named parameter grids evaluated by theory and simulation, written to self-describing files.

A :class:`Sweep` names its axes (a Cartesian product of values), the parameters held fixed,
the static structure of the simulation and the number of seeds. :func:`run_sweep` evaluates

* the **theory**: any function mapping a dict of parameter arrays (every grid point at once,
  flattened) to a dict of prediction arrays, e.g. :func:`gmmcollapse.gmm.predict`;
* the **simulation**: the mean and standard error over seeds of every
  :class:`~gmmcollapse.gmm.SimResult` field at every grid point, the same seeds at every
  point (common random numbers).

Grid points that need different static shapes (``d``, or the sample capacity ``n_max``) are
grouped; within a group ``n`` is traced and ``n_max`` is rounded up to a power of two, so a
sweep over ``n`` compiles a handful of times, not once per value. Each group runs on the
fastest exact path :func:`gmmcollapse.gmm.paths.plan` finds for it (``meta["groups"]``).

Scale (see ``docs/scale.md``):

* a chunk of points is one compiled call: ``lax.map`` over its points of ``vmap`` over the
  seeds, so one point's program never sees the chunk, and its numbers are bitwise those of a
  direct ``jax.vmap(simulate, (0, None, None))(keys, point, spec)`` whatever the chunk size;
* the chunk's point axis is sharded over the process's devices (``Mesh`` + ``NamedSharding``,
  ``shard_map``), padded to a multiple of the device count; on one device nothing changes;
* with a results path, every finished chunk is written atomically to ``<path>.parts/`` next to
  a fingerprint of everything that determines the numbers; a re-run computes only missing
  chunks, refuses parts of a different configuration, and merges when all are present;
* under ``jax.distributed`` each process computes every ``process_count``-th chunk into the
  shared parts folder and process 0 merges.

Results (:class:`Results`) are a ``.npz`` file with one array per quantity, shaped like the grid
(plus a trailing rounds axis for simulation fields), and a JSON ``__meta__`` entry holding the
sweep definition, the versions and the timing: enough to re-run it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gmmcollapse._validate import check_int
from gmmcollapse.gmm.paths import PATHS, Plan, plan
from gmmcollapse.gmm.spec import (
    PARAM_DEFAULTS,
    GMMParams,
    SimSpec,
    make_params,
    spec_dict,
    validate_params,
)
from gmmcollapse.store import (
    FingerprintMismatch,
    RunDir,
    digest,
    dumps,
    load_npz,
    read_json,
    restore_floats,
    save_npz,
)
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "ChunkStore",
    "Results",
    "Sweep",
    "dry_run",
    "grid_points",
    "load_results",
    "run_bytes",
    "run_flops",
    "run_sweep",
    "save_results",
]

#: GMMParams fields plus the static sizes a sweep may vary
PARAM_NAMES = set(GMMParams._fields) | {"d"}


@dataclass(frozen=True)
class Sweep:
    """Definition of a sweep.

    Attributes:
        name: short identifier (used in file names and metadata).
        axes: ``{parameter: values}``; the grid is their Cartesian product, in this order.
        cases: optional named parameter sets (e.g. verifiers: ``{"oracle": {"phi": 1, "psi":
            0}, ...}``) that vary several parameters together; they form a leading ``case``
            axis whose values are the case indices (names in ``meta["cases"]``).
        fixed: values of the other parameters (``GMMParams`` fields and ``d``). Per-class
            rates are length-2 lists.
        spec: the remaining :class:`~gmmcollapse.gmm.SimSpec` fields (``generator``,
            ``learner``, ``rounds``, ``data``, ``n_real_max``, ``n_test``, ``dtype`` ...).
        seeds: simulated runs per grid point (0 = theory only).
        seed: the base PRNG seed; the same seeds are used at every grid point.
        chunk: grid points per compiled call and per file of a resumable run (0 = automatic
            from ``memory_budget``). Results do not depend on it, bit for bit.
        memory_budget: with ``chunk = 0``, a chunk gets as many points as fit this many bytes
            at ``seeds`` runs' sampled data each (as :func:`dry_run` counts it). A device holds
            one point at a time whatever the chunk, so this sets the work per chunk, hence how
            often a resumable run saves, not the peak memory.
        path: how to simulate: ``"auto"`` (the fastest exact path per static group, see
            :func:`gmmcollapse.gmm.paths.plan`) or one of ``"fast"``, ``"primal"``, ``"dual"``,
            ``"streaming"`` to force it for every group.
    """

    name: str
    axes: Mapping[str, Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    cases: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)
    seeds: int = 0
    seed: int = 0
    chunk: int = 0
    memory_budget: float = 1.0e9
    path: str = "auto"

    def __post_init__(self):
        case_keys = set().union(*[set(c) for c in self.cases.values()]) if self.cases else set()
        unknown = (set(self.axes) | set(self.fixed) | case_keys) - PARAM_NAMES
        if unknown:
            raise ValueError(
                f"unknown sweep parameter(s): {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(PARAM_NAMES))}"
            )
        both = (set(self.axes) & set(self.fixed)) | (case_keys & set(self.axes))
        if both:
            raise ValueError(f"parameter(s) both swept and fixed: {', '.join(sorted(both))}")
        for k, v in self.axes.items():
            if np.size(v) < 1:
                raise ValueError(f"axis {k} must have at least one value")
        if self.seeds < 0:
            raise ValueError(f"seeds must be >= 0, got {self.seeds}")
        if self.chunk < 0:
            raise ValueError(f"chunk must be >= 0, got {self.chunk}")
        if self.path not in ("auto", *PATHS):
            raise ValueError(f"path must be one of auto, {', '.join(PATHS)}, got {self.path!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        lead = (len(self.cases),) if self.cases else ()
        return lead + tuple(len(np.atleast_1d(v)) for v in self.axes.values())

    @property
    def axis_names(self) -> list[str]:
        return (["case"] if self.cases else []) + list(self.axes)

    def points(self) -> dict[str, np.ndarray]:
        """The flattened grid (see :func:`grid_points`), cases first."""
        if not self.cases:
            return grid_points(self.axes, self.fixed)
        parts = []
        for case in self.cases.values():
            fixed = {k: v for k, v in self.fixed.items() if k not in case}
            parts.append(grid_points(self.axes, {**fixed, **case}))
        keys = set().union(*parts)
        for k in keys:  # a parameter set by some cases only takes its default in the others
            for part in parts:
                if k not in part:
                    if k not in PARAM_DEFAULTS:  # n, snr, d have no default
                        raise ValueError(
                            f"{k} is set by some cases only: give it in every case or in fixed"
                        )
                    n = len(next(iter(part.values()))) if part else 1
                    part[k] = np.full((n,), PARAM_DEFAULTS[k], dtype=np.float64)
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}

    def grid_axes(self) -> dict[str, np.ndarray]:
        """The values of every axis (``case``: the case indices), as in :class:`Results`."""
        axes = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in self.axes.items()}
        if self.cases:
            axes = {"case": np.arange(len(self.cases), dtype=np.float64), **axes}
        return axes

    def to_json(self) -> dict:
        d = asdict(self)
        d["axes"] = {k: np.atleast_1d(v).tolist() for k, v in self.axes.items()}
        d["fixed"] = {k: np.asarray(v).tolist() for k, v in self.fixed.items()}
        d["cases"] = {
            c: {k: np.asarray(v).tolist() for k, v in kv.items()} for c, kv in self.cases.items()
        }
        return d


def grid_points(
    axes: Mapping[str, Any], fixed: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Flatten the Cartesian product of ``axes`` into arrays of length G (C order).

    Fixed values are broadcast to a leading G axis (per-class rates keep their trailing 2).
    """
    fixed = dict(fixed or {})
    vals = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in axes.values()]
    if vals:
        combos = np.array(list(itertools.product(*vals)), dtype=np.float64).reshape(-1, len(vals))
    else:
        combos = np.zeros((1, 0))  # no axes: a single point
    g = combos.shape[0]
    out = {k: combos[:, i] for i, k in enumerate(axes)}
    for k, v in fixed.items():
        arr = np.asarray(v, dtype=np.float64)
        out[k] = np.broadcast_to(arr, (g,) + arr.shape).copy()
    return out


@dataclass
class Results:
    """A sweep's output: arrays shaped like the grid, plus metadata.

    ``data`` maps names such as ``"theory/ridge_accuracy"``, ``"sim_mean/acc"`` and
    ``"sim_se/acc"`` to arrays of shape ``grid`` (theory) or ``grid + (rounds,)`` (simulation);
    ``axes`` maps each axis name to its values.
    """

    axes: dict[str, np.ndarray]
    data: dict[str, np.ndarray]
    meta: dict

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def save(self, path: str | os.PathLike) -> None:
        save_results(path, self)


def save_results(path, results: Results) -> None:
    """Write ``results`` to ``path`` atomically (see :func:`gmmcollapse.store.save_npz`).

    ``__meta__`` is JSON under the package's policy (:mod:`gmmcollapse.store`: NaN -> null,
    infinities -> ``"inf"`` / ``"-inf"``).
    """
    arrays = {f"axis/{k}": v for k, v in results.axes.items()}
    arrays.update(results.data)
    arrays["__meta__"] = np.asarray(dumps(results.meta))
    save_npz(path, **arrays)


def load_results(path) -> Results:
    """Read a file written by :func:`save_results`."""
    arrays = load_npz(path)
    meta = json.loads(str(arrays.pop("__meta__")))
    if "sweep" in meta:  # the definition's numbers as floats again (e.g. tau = -inf)
        for k in ("axes", "fixed", "cases"):
            if k in meta["sweep"]:
                meta["sweep"][k] = restore_floats(meta["sweep"][k])
    axes = {k[5:]: v for k, v in arrays.items() if k.startswith("axis/")}
    axes = {k: axes[k] for k in meta.get("axis_order", list(axes))}
    data = {k: v for k, v in arrays.items() if not k.startswith("axis/")}
    return Results(axes=axes, data=data, meta=meta)


def _capacity(n: float) -> int:
    return int(2 ** math.ceil(math.log2(max(n, 1))))


# ------------------------------------------------------------------------ one compiled chunk

#: name of the mesh axis the grid points of a chunk are sharded over
_AXIS = "points"


def _over_points(simulate: Callable, spec: SimSpec, keys, params: GMMParams):
    """``lax.map`` over points of ``vmap`` over seeds: fields shaped ``(points, seeds, rounds)``.

    ``lax.map`` (a loop), not ``vmap``: the per-point program is the same whatever the number
    of points, so a point's numbers do not depend on the chunk size or the device count.
    """
    per_point = jax.vmap(simulate, in_axes=(0, None, None))
    # the keys travel with every point instead of being loop-invariant: otherwise XLA hoists
    # the parameter-free part of the draws out of the loop and fuses it differently, which
    # moved results by 1 ulp against the direct program (float64, CPU)
    size = jax.tree.leaves(params)[0].shape[0]
    tiled = jnp.broadcast_to(keys, (size,) + keys.shape)
    return lax.map(lambda kp: per_point(kp[0], kp[1], spec), (tiled, params))


@partial(jax.jit, static_argnums=(0, 1, 2))
def _chunk_call(simulate: Callable, spec: SimSpec, mesh: Mesh | None, keys, params: GMMParams):
    """One chunk; compiled once per (path, spec, padded chunk size, mesh)."""
    fn = partial(_over_points, simulate, spec)
    if mesh is not None:
        # each device loops over its own block of points; seeds (keys) are replicated. No
        # collectives and no replicated outputs, so the varying-axis check has nothing to
        # prove (and the simulations' scans start from constants it would reject)
        fn = jax.shard_map(
            fn, mesh=mesh, in_specs=(P(), P(_AXIS)), out_specs=P(_AXIS), check_vma=False
        )
    return fn(keys, params)


def _local_mesh() -> Mesh | None:
    """A 1-d mesh over this process's devices (``None`` for one device: nothing to shard).

    Local, not global, devices: under ``jax.distributed`` every process runs its own chunks.
    """
    devices = jax.local_devices()
    return Mesh(np.array(devices), (_AXIS,)) if len(devices) > 1 else None


def _summary(res: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``mean/<field>`` and ``se/<field>`` over the seed axis (1) of ``(points, seeds, rounds)``."""
    out = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # all-NaN slices (e.g. psi when no label was wrong) stay NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        for k, v in res.items():
            out[f"mean/{k}"] = np.nanmean(v, axis=1)
            cnt = np.sum(~np.isnan(v), axis=1)
            out[f"se/{k}"] = np.nanstd(v, axis=1, ddof=1) / np.sqrt(np.maximum(cnt, 1))
    return out


# ------------------------------------------------------------------- static groups and plans


class _Group(NamedTuple):
    """Grid points sharing one static shape, with the path that simulates them."""

    d: int
    n_max: int
    idx: np.ndarray  # positions in the flattened grid
    params: GMMParams  # NumPy leaves with a leading axis len(idx)
    plan: Plan
    chunk: int  # points per chunk (the last chunk is padded to it)

    @property
    def starts(self) -> range:
        return range(0, len(self.idx), self.chunk)

    def size(self, start: int) -> int:
        """Points of the chunk starting at ``start`` (the last one may be short)."""
        return min(self.chunk, len(self.idx) - start)


def run_bytes(path: str, spec: SimSpec) -> int:
    """Bytes of sampled data one run holds at a time (the memory model of ``--dry-run``)."""
    d, item = spec.d, np.dtype(spec.dtype).itemsize
    if path == "fast":
        return (d * d + 2 * d) * item  # the sampled statistics only: O(d^2), no rows
    if path == "projected":
        from gmmcollapse.gmm.projected import BLOCK_ROWS

        # one block of projected rows (y, 3 coordinates, 2 coins, u: about 12 words) and the
        # O(d) Gaussian block; float64 whatever spec.dtype says
        return (12 * min(spec.n_max, BLOCK_ROWS) + 16 * d) * 8
    blocks = min(spec.n_blocks, getattr(spec, "stream_blocks", 1))  # rows live per scan step
    rows = spec.rows_per_block * (blocks if path == "streaming" else spec.n_blocks)
    words = (rows + spec.n_real_max) * d + d * d + d
    if path == "dual":
        words += (rows + spec.n_real_max) ** 2
    if spec.learner == "logistic" and spec.data == "accumulate":
        words += spec.rounds * rows * d
    return words * item


def run_flops(path: str, spec: SimSpec) -> float:
    """Floating-point operations of one run (leading terms of the solves).

    primal / streaming: ``2 n d^2 + d^3/3`` (Gram matrix, Cholesky); dual: ``2 n^2 d + n^3/3``;
    fast: ``2 d^3`` (Wishart draw and solve); projected: ``100 n + 50 d`` (the projected
    rows and their 4 x 4 statistics, the tridiagonal solve); ``n = n_max + n_real_max``; per
    round, times the Newton steps for the logistic learner.
    """
    d, n = float(spec.d), float(spec.n_max + spec.n_real_max)
    if path == "fast":
        flops = 2 * d**3
    elif path == "projected":
        flops = 100 * n + 50 * d
    elif path == "dual":
        flops = 2 * n**2 * d + n**3 / 3
    else:
        flops = 2 * n * d**2 + d**3 / 3
    if spec.learner == "logistic":
        flops *= spec.logistic_steps
    return flops * spec.rounds


def _lead(size: int, a) -> np.ndarray:
    """A NumPy copy of ``a`` with a leading axis of ``size`` (scalars are broadcast)."""
    a = np.asarray(a)
    return np.broadcast_to(a, (size,) + a.shape).copy() if a.ndim == 0 else a


def _groups(sweep: Sweep, pts: dict[str, np.ndarray]) -> list[_Group]:
    """Validate the whole grid, split it into static groups and plan each (nothing compiles)."""
    if "n" not in pts or "snr" not in pts:
        raise ValueError("a simulated sweep needs n and snr (as axes or fixed values)")
    if "d" not in pts:
        raise ValueError("a simulated sweep needs d (as an axis or a fixed value)")
    base = dict(sweep.spec)
    # d, n and n_real pick the static shapes (int(), log2): NaN, inf or fractions fail here
    check_int("d", pts["d"], 1)
    check_int("n", pts["n"], 1)
    check_int("n_real", pts.get("n_real"), 0)
    n_real_max = int(base.pop("n_real_max", int(np.max(pts.get("n_real", [0])))))
    members: dict[tuple[int, int], list[int]] = {}
    for i in range(len(pts["n"])):
        members.setdefault((int(pts["d"][i]), _capacity(pts["n"][i])), []).append(i)
    staged = []
    for (d, n_max), idx in members.items():  # validate every group before planning any
        spec = SimSpec(n_max=n_max, d=d, n_real_max=n_real_max, **base)
        params = make_params(**{k: v[idx] for k, v in pts.items() if k != "d"})
        validate_params(params, spec)
        # defaults come back as scalars: give every leaf the leading axis of the group
        params = jax.tree.map(partial(_lead, len(idx)), params)
        staged.append((d, n_max, np.asarray(idx), params, spec))
    planned = [
        (d, n_max, idx, params, plan(spec, params._asdict(), path=sweep.path))
        for d, n_max, idx, params, spec in staged
    ]
    # the projected path's cost is O(n) with a traced trip count, so one program serves every
    # n: its groups of one d merge into one (capacity: the largest), one compile instead of
    # one per power of two
    merged: dict[int, list] = {}
    rest = []
    for item in planned:
        (merged.setdefault(item[0], []) if item[4].path == "projected" else rest).append(item)
    for d, items in merged.items():
        n_max = max(it[1] for it in items)
        idx = np.concatenate([it[2] for it in items])
        params = jax.tree.map(lambda *a: np.concatenate(a), *[it[3] for it in items])
        spec = dataclasses.replace(items[0][4].spec, n_max=n_max)
        rest.append((d, n_max, idx, params, items[0][4]._replace(spec=spec)))
    out = []
    for d, n_max, idx, params, chosen in rest:
        per_point = sweep.seeds * run_bytes(chosen.path, chosen.spec)
        auto = int(max(1, min(len(idx), sweep.memory_budget // per_point)))
        out.append(_Group(d, n_max, idx, params, chosen, sweep.chunk or auto))
    return out


def _simulate_chunk(group: _Group, start: int, keys, mesh: Mesh | None) -> dict[str, np.ndarray]:
    """Mean and SE over seeds of the chunk of ``group`` starting at ``start``."""
    stop = min(start + group.chunk, len(group.idx))
    n_dev = 1 if mesh is None else mesh.size
    width = -(-group.chunk // n_dev) * n_dev  # the chunk, padded to a multiple of the devices
    sel = np.minimum(np.arange(start, start + width), stop - 1)  # padding repeats a point
    sub = jax.tree.map(lambda a: a[sel], group.params)
    if mesh is not None:
        sub = jax.device_put(sub, NamedSharding(mesh, P(_AXIS)))
        keys = jax.device_put(keys, NamedSharding(mesh, P()))
    res = _chunk_call(group.plan.simulate, group.plan.spec, mesh, keys, sub)
    return _summary({k: np.asarray(v)[: stop - start] for k, v in res._asdict().items()})


# ------------------------------------------------------------------------- resumable store


@functools.cache
def _source_hash() -> str:
    """sha256 of the package's simulation sources: an edited simulator never reuses old chunks.

    ``gmm/`` (this sweep included) and ``feedback.py``; not ``gmm/commands.py``, which only
    parses and prints for the command line.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts: list[bytes] = []
    for sub in ("gmm", "feedback.py"):
        base = os.path.join(root, sub)
        files = (
            [base]
            if base.endswith(".py")
            else sorted(
                os.path.join(base, f)
                for f in os.listdir(base)
                if f.endswith(".py") and f != "commands.py"
            )
        )
        for f in files:
            with open(f, "rb") as fh:
                parts.append(os.path.relpath(f, root).encode() + b"\0" + fh.read())
    return digest(*parts)


def _fingerprint(sweep: Sweep, groups: list[_Group]) -> tuple[str, dict]:
    """The :func:`gmmcollapse.store.fingerprint` of everything that determines the numbers and
    the chunks, and that definition.

    The sweep definition (without its name, which changes no number, and with the resolved
    chunk size of every group in place of ``chunk`` / ``memory_budget``), each group's path and
    spec, the package version and a hash of its simulation sources (so an edited simulator never
    reuses old chunks), the JAX version and the backend. Not the device or process count:
    sharding does not change a bit, so a run may resume on a different machine of the same kind.
    """
    import gmmcollapse

    definition = {
        k: v for k, v in sweep.to_json().items() if k not in ("name", "chunk", "memory_budget")
    }
    doc = {
        "format": 1,
        "sweep": definition,
        "groups": [
            {
                "d": g.d,
                "n_max": g.n_max,
                "points": len(g.idx),
                "chunk": g.chunk,
                "path": g.plan.path,
                "spec": spec_dict(g.plan.spec),
            }
            for g in groups
        ],
        "dtype": sorted({g.plan.spec.dtype for g in groups}),
        "gmmcollapse": gmmcollapse.__version__,
        "source": _source_hash(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }
    return gmmcollapse.store.fingerprint(doc), doc


def _mismatch(parts: str, theirs: str, ours: str) -> ValueError:
    return ValueError(
        f"results at {parts} were made by a different sweep configuration "
        f"(fingerprint {theirs[:16]}, this sweep {ours[:16]}); use a new output path or "
        f"delete {parts}"
    )


#: a chunk: (index of its static group, position of its first point in the group)
Chunk = tuple[int, int]


class ChunkStore:
    """The finished chunks of one sweep, by :data:`Chunk`.

    Without a results path it holds them in memory. With one, every saved chunk is also
    written atomically to ``<path>.parts/chunk_<group>_<start>.npz`` (its arrays and the
    sweep's fingerprint), a :class:`~gmmcollapse.store.RunDir` claimed by the sweep's
    definition (``fingerprint.json``: ``{"fingerprint", "definition"}``), so any process, or a
    re-run after ``kill -9``, finds them there.
    """

    def __init__(self, folder: str | None, fingerprint: str):
        self.folder = folder
        self.fingerprint = fingerprint
        self._memory: dict[Chunk, dict[str, np.ndarray]] = {}

    @classmethod
    def open(cls, path: str | os.PathLike | None, fingerprint: str, definition: dict):
        """The store of a sweep for results ``path`` (``None``: in memory only).

        Creates ``<path>.parts/`` with the stamp, or reopens it; ``ValueError`` (before
        anything is computed) when it holds another configuration's chunks.
        """
        if path is None:
            return cls(None, fingerprint)
        folder = os.fspath(path) + ".parts"
        stamp = os.path.join(folder, "fingerprint.json")
        stray = os.path.isdir(folder) and any(n.startswith("chunk_") for n in os.listdir(folder))
        if stray and not os.path.exists(stamp):
            raise _mismatch(folder, "unknown (no fingerprint.json)", fingerprint)
        try:
            RunDir(folder, {"definition": definition, "fingerprint": fingerprint})
        except FingerprintMismatch:
            theirs = read_json(stamp).get("fingerprint", "unknown")
            raise _mismatch(folder, str(theirs), fingerprint) from None
        return cls(folder, fingerprint)

    def file(self, chunk: Chunk) -> str:
        """The chunk's file in the parts folder."""
        return os.path.join(self.folder, f"chunk_{chunk[0]}_{chunk[1]}.npz")

    def has(self, chunk: Chunk) -> bool:
        """Whether the chunk is finished (saved here, or by any process in the parts folder)."""
        return chunk in self._memory or (
            self.folder is not None and os.path.exists(self.file(chunk))
        )

    def save(self, chunk: Chunk, stats: dict[str, np.ndarray]) -> None:
        """Keep a computed chunk (and write its file atomically)."""
        if self.folder is not None:
            save_npz(self.file(chunk), **stats, __fingerprint__=np.asarray(self.fingerprint))
        self._memory[chunk] = stats

    def load(self, chunk: Chunk) -> dict[str, np.ndarray]:
        """A finished chunk's arrays; ``ValueError`` if its file is another sweep's."""
        if chunk in self._memory:
            return self._memory[chunk]
        stats = load_npz(self.file(chunk))
        theirs = str(stats.pop("__fingerprint__"))
        if theirs != self.fingerprint:
            raise _mismatch(self.folder, theirs, self.fingerprint)
        return stats

    def wait(self, chunks: list[Chunk], seconds: float) -> None:
        """Wait for the other processes' chunks; ``TimeoutError`` after ``seconds``."""
        deadline = time.time() + seconds
        while True:
            missing = [c for c in chunks if not self.has(c)]
            if not missing or time.time() >= deadline:
                break
            time.sleep(min(2.0, max(0.0, deadline - time.time())))
        if missing:
            raise TimeoutError(
                f"{len(missing)} of {len(chunks)} chunks are still missing in {self.folder} "
                f"after {seconds:g} s; re-run the same sweep to compute them and merge"
            )

    def merge(
        self, groups: list[_Group], chunks: list[Chunk], shape: tuple[int, ...]
    ) -> dict[str, np.ndarray]:
        """``sim_mean/<field>`` and ``sim_se/<field>`` over the grid (``shape + (rounds,)``)."""
        size = int(np.prod(shape))
        mean: dict[str, np.ndarray] = {}
        se: dict[str, np.ndarray] = {}
        rounds = 0
        for c in chunks:
            stats = self.load(c)
            if not mean:
                fields = [k[5:] for k in stats if k.startswith("mean/")]
                rounds = stats[f"mean/{fields[0]}"].shape[-1]
                mean = {f: np.full((size, rounds), np.nan) for f in fields}
                se = {f: np.full((size, rounds), np.nan) for f in fields}
            grp = groups[c[0]]
            at = grp.idx[c[1] : c[1] + grp.size(c[1])]
            for f in mean:
                mean[f][at] = stats[f"mean/{f}"]
                se[f][at] = stats[f"se/{f}"]
        out = {}
        for f in mean:
            out[f"sim_mean/{f}"] = mean[f].reshape(shape + (rounds,))
            out[f"sim_se/{f}"] = se[f].reshape(shape + (rounds,))
        return out

    def remove(self) -> None:
        """Delete the parts folder (after the merge, its chunks are redundant)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _finished(path, fingerprint: str) -> Results | None:
    """The results already at ``path`` if the same sweep made them (and no parts are pending).

    A re-run of a finished sweep then simulates nothing; results of another configuration at
    ``path`` are simply recomputed and replaced (they are never mixed).
    """
    if path is None or not os.path.isfile(path) or os.path.isdir(os.fspath(path) + ".parts"):
        return None
    try:
        old = load_results(path)
    except (OSError, ValueError, KeyError):
        return None
    return old if old.meta.get("fingerprint") == fingerprint else None


def _assigned(n_chunks: int, process_index: int, process_count: int) -> list[int]:
    """The chunks (global indices) one process computes: every ``process_count``-th.

    Round robin rather than contiguous blocks, so expensive groups are shared by all.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process index {process_index} not in [0, {process_count})")
    return list(range(process_index, n_chunks, process_count))


# ------------------------------------------------------------------------------ the driver


def _meta(sweep: Sweep) -> dict[str, Any]:
    return {
        "sweep": sweep.to_json(),
        "axis_order": sweep.axis_names,
        "cases": list(sweep.cases),
        "grid_size": int(np.prod(sweep.shape)),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": len(jax.devices()),
        "platform": platform.platform(),
    }


def _theory(theory: Callable, pts: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict:
    """``theory/<name>`` arrays shaped like the grid (plus a trailing axis, e.g. rounds)."""
    data = {}
    for k, v in theory(pts).items():
        v = np.asarray(v, dtype=np.float64)
        data[f"theory/{k}"] = v.reshape(shape + v.shape[1:] if v.ndim > 1 else shape)
    return data


def _compute(
    sweep: Sweep,
    groups: list[_Group],
    store: ChunkStore,
    mine: list[Chunk],
    progress: bool | Callable[[dict], Any],
) -> int:
    """Simulate and save the chunks of ``mine`` the store lacks; returns how many."""
    from tqdm.auto import tqdm

    todo = [c for c in mine if not store.has(c)]
    bar = tqdm(
        total=sum(groups[g].size(s) for g, s in mine),
        initial=sum(groups[g].size(s) for g, s in mine if (g, s) not in todo),
        desc=f"sweep {sweep.name}",
        unit="pt",
        disable=progress is not True,
        leave=False,
        dynamic_ncols=True,
    )
    keys = jax.random.split(jax.random.key(sweep.seed), sweep.seeds)
    mesh = _local_mesh()
    try:
        for n_done, (g, s) in enumerate(todo, 1):
            store.save((g, s), _simulate_chunk(groups[g], s, keys, mesh))
            bar.update(groups[g].size(s))
            if callable(progress):
                info = {"group": g, "start": s, "points": groups[g].size(s)}
                progress({**info, "done": n_done, "todo": len(todo)})
    finally:
        bar.close()
    return len(todo)


@in_float64  # bitwise the same arrays whatever the caller's jax_enable_x64
def run_sweep(
    sweep: Sweep,
    theory: Callable[[dict[str, np.ndarray]], Mapping[str, Any]] | None = None,
    path: str | os.PathLike | None = None,
    progress: bool | Callable[[dict], Any] = True,
    *,
    process: tuple[int, int] | None = None,
    wait: float = 3600.0,
) -> Results | None:
    """Evaluate ``theory`` and (if ``sweep.seeds``) the simulation on every grid point.

    Args:
        sweep: the :class:`Sweep`.
        theory: maps the flattened parameter dict to named prediction arrays (length G).
        path: if given, the results are written there (atomically), and the run is resumable:
            finished chunks go to ``<path>.parts/`` as they complete, a re-run loads them and
            computes only the missing ones, and the folder is removed after the merge. If
            ``path`` already holds the finished results of the same sweep (same fingerprint),
            nothing is simulated again.
        progress: ``True`` shows a progress bar over grid points (rate and ETA); a callable is
            called after every computed (and saved) chunk with ``{"group", "start", "points",
            "done", "todo"}`` instead.
        process: ``(process_index, process_count)``; default
            ``(jax.process_index(), jax.process_count())``. Process ``i`` computes the chunks
            whose index is ``i`` modulo the count; process 0 then waits for the others' files
            and merges; the others return ``None``.
        wait: seconds process 0 waits for the other processes' chunks (``TimeoutError``
            after; re-running merges what is there and computes the rest).

    All parameters are validated on the whole grid, and an existing parts folder is checked
    against this sweep's fingerprint (``ValueError`` on a mismatch), before anything is
    computed. ``meta["groups"]`` records each static group's ``d``, ``n_max``, path, points
    and chunk size; ``meta["chunks_computed"]`` / ``meta["chunks_loaded"]`` how many chunks
    this call computed or read back.
    """
    t0 = time.time()
    pts = sweep.points()
    meta = _meta(sweep)
    index, count = process if process is not None else (jax.process_index(), jax.process_count())
    if not 0 <= index < count:
        raise ValueError(f"process index {index} not in [0, {count})")
    if count > 1 and path is None:
        raise ValueError("a sweep over several processes needs a results path (shared folder)")

    groups = _groups(sweep, pts) if sweep.seeds else []
    store = reuse = None
    if groups:
        fp, definition = _fingerprint(sweep, groups)
        meta["fingerprint"] = fp
        reuse = _finished(path, fp)
        if reuse is None:
            store = ChunkStore.open(path, fp, definition)  # raises on a mismatch: nothing ran

    data = _theory(theory, pts, sweep.shape) if theory is not None and index == 0 else {}
    if reuse is not None:  # the same sweep already finished at `path`: nothing to simulate
        if index != 0:
            return None
        data.update({k: v for k, v in reuse.data.items() if k.startswith(("sim_mean/", "sim_se/"))})
        for k in ("chunks", "groups", "processes"):
            meta[k] = reuse.meta.get(k)
        meta["chunks_computed"], meta["chunks_loaded"] = 0, reuse.meta.get("chunks")
    elif groups:
        chunks = [(gi, s) for gi, grp in enumerate(groups) for s in grp.starts]
        mine = [chunks[i] for i in _assigned(len(chunks), index, count)]
        computed = _compute(sweep, groups, store, mine, progress)
        meta.update(chunks=len(chunks), chunks_computed=computed, processes=count)
        if index != 0:
            return None  # process 0 merges
        store.wait(chunks, wait)
        meta["chunks_loaded"] = len(chunks) - computed
        data.update(store.merge(groups, chunks, sweep.shape))
        meta["groups"] = [
            {
                "d": grp.d,
                "n_max": grp.n_max,
                "path": grp.plan.path,
                "points": len(grp.idx),
                "chunk": grp.chunk,
            }
            for grp in groups
        ]
    if index != 0:
        return None  # a theory-only sweep: process 0 alone evaluates and writes it
    meta["seconds"] = round(time.time() - t0, 3)
    res = Results(axes=sweep.grid_axes(), data=data, meta=meta)
    if path is not None:
        res.save(path)
        if store is not None:
            store.remove()  # merged: the parts are redundant
    return res


# ---------------------------------------------------------------------------------- dry run


def _matmul_rate(dtype: str = "float32", size: int = 1024) -> float:
    """FLOP/s of one ``size x size`` NumPy matmul (after one warm-up product)."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    a @ a  # warm-up: thread pool, page faults
    t = time.perf_counter()
    a @ a
    return 2.0 * size**3 / max(time.perf_counter() - t, 1e-9)


def dry_run(sweep: Sweep, measure: bool = True) -> dict:
    """What :func:`run_sweep` would do, without compiling or computing anything.

    Returns the grid size, the number of (point, seed) runs and, per static group, ``d``,
    ``n_max``, the chosen path, the chunk size, the number of chunks, the bytes of sampled data
    a device holds at once (``seeds`` runs of one point; ``block_rows`` rows for streaming,
    O(d^2) for the fast path) and the FLOPs (see :func:`run_flops`). With ``measure``, also
    the machine's matmul rate (one NumPy matmul in the sweep's dtype) and the time estimate
    ``flops / rate`` (a CPU rate: on accelerators, an upper bound).
    """
    pts = sweep.points()
    g = int(np.prod(sweep.shape))
    out: dict[str, Any] = {
        "name": sweep.name,
        "grid_shape": list(sweep.shape),
        "grid_size": g,
        "seeds": sweep.seeds,
        "runs": g * sweep.seeds,
        "devices": len(jax.local_devices()),
        "processes": jax.process_count(),
        "groups": [],
        "flops": 0.0,
    }
    if not sweep.seeds:
        return out
    groups = _groups(sweep, pts)
    for grp in groups:
        n_chunks = len(grp.starts)
        runs = n_chunks * grp.chunk * sweep.seeds  # padded points compute too
        flops = runs * run_flops(grp.plan.path, grp.plan.spec)
        out["groups"].append(
            {
                "d": grp.d,
                "n_max": grp.n_max,
                "path": grp.plan.path,
                "points": len(grp.idx),
                "chunk": grp.chunk,
                "chunks": n_chunks,
                "bytes_per_device": sweep.seeds * run_bytes(grp.plan.path, grp.plan.spec),
                "flops": flops,
            }
        )
        out["flops"] += flops
    if measure:
        rate = _matmul_rate(groups[0].plan.spec.dtype)
        out["matmul_flops_per_s"] = rate
        out["seconds"] = out["flops"] / (rate * out["processes"])
    return out
