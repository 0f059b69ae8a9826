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
import sys
import tempfile
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
    DamagedFile,
    DamagedFileWarning,
    FileLock,
    LockTimeout,
    check_file_path,
    describe_holder,
    digest,
    dumps,
    jsonable,
    load_checked_npz,
    load_npz,
    read_json,
    restore_floats,
    save_checked_npz,
    save_npz,
    write_json,
)
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "MEMORY_ENV",
    "ChunkStore",
    "Results",
    "Sweep",
    "check_fits",
    "dry_run",
    "grid_points",
    "load_results",
    "memory_limit",
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
    """Read a file written by :func:`save_results`.

    :class:`~gmmcollapse.store.DamagedFile` (a ``ValueError`` naming the path) when the file
    is truncated, corrupt or has no readable ``__meta__``.
    """
    arrays = load_npz(path)
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except (KeyError, ValueError) as err:
        raise DamagedFile(path, f"no readable __meta__ entry: {err}") from err
    if not isinstance(meta, dict):
        raise DamagedFile(path, "its __meta__ entry is not a JSON object")
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


#: the peak memory of one run over its sampled data (:func:`run_bytes`), by path: XLA's
#: temporaries (random bits, products, copies of the rows). Rounded up from the compiled
#: programs' own memory analysis on CPU, which measured at most 6.4 (primal, streaming), 1.9
#: (dual), 1.7 (projected) and 0.31 (fast); a test keeps it an upper bound
PEAK_FACTOR = {"fast": 1.0, "projected": 3.0, "dual": 3.0, "primal": 8.0, "streaming": 8.0}


def peak_bytes(path: str, spec: SimSpec) -> float:
    """The modelled peak memory of one run: :data:`PEAK_FACTOR` times :func:`run_bytes`."""
    return PEAK_FACTOR.get(path, max(PEAK_FACTOR.values())) * run_bytes(path, spec)


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


#: environment variable: the bytes of sampled data one device may hold (see :func:`memory_limit`)
MEMORY_ENV = "GMMCOLLAPSE_MEMORY_LIMIT"

#: share of the physical memory used as the limit where JAX reports no device memory (CPU)
RAM_SHARE = 0.75


def _fmt_bytes(n: float) -> str:
    """``n`` bytes as text with a binary unit (``1.5 GiB``; huge values stay in TiB)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def memory_limit(limit: float | None = None) -> tuple[float, str]:
    """The bytes of sampled data one device may hold at once, and where that figure comes from.

    In order: ``limit`` when given; the environment variable ``GMMCOLLAPSE_MEMORY_LIMIT``
    (bytes, e.g. ``8e9``); the memory of the first local device where JAX reports it
    (``memory_stats()["bytes_limit"]``: GPUs, TPUs); else :data:`RAM_SHARE` of the physical
    memory (``os.sysconf``). ``ValueError`` (naming ``limit`` or the variable) unless it is a
    number > 0.
    """
    if limit is not None:
        source = "limit"
    elif os.environ.get(MEMORY_ENV, "").strip():
        text = os.environ[MEMORY_ENV].strip()
        try:
            limit = float(text)
        except ValueError:
            raise ValueError(
                f"{MEMORY_ENV} must be a number of bytes > 0 (e.g. 8e9), got {text!r}"
            ) from None
        source = MEMORY_ENV
    else:
        stats = None
        try:
            stats = jax.local_devices()[0].memory_stats()
        except (RuntimeError, NotImplementedError, AttributeError):  # no memory statistics
            stats = None
        if stats and stats.get("bytes_limit"):
            limit, source = float(stats["bytes_limit"]), "the device's memory"
        else:
            try:
                ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            except (ValueError, OSError, AttributeError):
                ram = 16 * 2**30  # unknown: assume a modest machine
            limit, source = RAM_SHARE * ram, f"{RAM_SHARE:.0%} of physical memory"
    try:
        ok = math.isfinite(float(limit)) and float(limit) > 0
    except (TypeError, ValueError):
        ok = False
    if isinstance(limit, (bool, str)) or not ok:
        name = MEMORY_ENV if source == MEMORY_ENV else "limit"
        raise ValueError(f"{name} must be a number of bytes in (0, inf), got {limit!r}")
    return float(limit), source


def check_fits(
    path: str,
    spec: SimSpec,
    seeds: int = 1,
    *,
    pts: Mapping[str, Any] | GMMParams | None = None,
    limit: float | None = None,
) -> int:
    """Bytes that ``seeds`` runs of ``spec`` hold at once on ``path``; ``ValueError`` when
    they exceed the memory limit.

    Args:
        path: one of :data:`~gmmcollapse.gmm.paths.PATHS`, or ``"auto"`` (the path
            :func:`~gmmcollapse.gmm.paths.plan` picks for ``spec`` and ``pts``).
        spec: the static structure (as planned, or as given: ``stream`` / ``solver`` are
            reset when other paths are tried).
        seeds: runs held at once (vmapped together); ``simulate`` chunks its seeds, so it
            checks one.
        pts: the parameter values (they decide whether the fast and projected samplers are
            exact); ``None`` checks the spec only.
        limit: bytes; default :func:`memory_limit` (``GMMCOLLAPSE_MEMORY_LIMIT``, else the
            device's memory, else 75% of physical memory).

    The figure is :func:`peak_bytes` (the sampled data and XLA's working memory).
    The error says how much is needed, the limit and where it comes from, and the cheapest
    other path the model allows with its figure (or that none fits), e.g. ``n_max = 2^40,
    d = 50: 1 run needs 7.81e+12 TiB on path dual, over the memory limit 17.2 GiB (75% of
    physical memory); path streaming needs 1.06 MiB (pass path='streaming')``. Nothing is
    compiled or computed.
    """
    check_int("seeds", seeds, 1)
    limit, source = memory_limit(limit)
    base = dataclasses.replace(spec, stream=False, solver="auto")
    if path == "auto":
        chosen = plan(base, pts)
        path, spec = chosen.path, chosen.spec
    elif path not in PATHS:
        raise ValueError(f"path must be one of auto, {', '.join(PATHS)}, got {path!r}")
    need = seeds * peak_bytes(path, spec)
    if need <= limit:
        return int(need)
    others = []
    for other in PATHS:
        if other == path:
            continue
        try:
            alt = plan(base, pts, path=other)
        except ValueError:  # this path cannot run the model exactly
            continue
        others.append((seeds * peak_bytes(other, alt.spec), other))
    fitting = sorted(o for o in others if o[0] <= limit)
    runs = f"{seeds} run{'s' if seeds > 1 else ''}"
    head = (
        f"n_max = {spec.n_max}, d = {spec.d}: {runs} need{'s' if seeds == 1 else ''} "
        f"{_fmt_bytes(need)} on path {path}, over the memory limit {_fmt_bytes(limit)} "
        f"({source}; set {MEMORY_ENV} to change it)"
    )
    if fitting:
        b, other = fitting[0]
        tail = f"path {other} needs {_fmt_bytes(b)} (path='{other}'; --path {other})"
    elif seeds > 1 and peak_bytes(path, spec) <= limit:
        tail = f"at most {int(limit // peak_bytes(path, spec))} seeds fit on path {path}"
    else:
        tail = "no path this model allows fits: lower n or d"
    raise ValueError(f"{head}; {tail}")


def _lead(size: int, a) -> np.ndarray:
    """A NumPy copy of ``a`` with a leading axis of ``size`` (scalars are broadcast)."""
    a = np.asarray(a)
    return np.broadcast_to(a, (size,) + a.shape).copy() if a.ndim == 0 else a


def _groups(sweep: Sweep, pts: dict[str, np.ndarray], limit: float | None = None) -> list[_Group]:
    """Validate the whole grid, split it into static groups and plan each (nothing compiles).

    Each group's ``seeds`` runs of one point must fit the memory limit (:func:`check_fits`;
    ``limit`` as there): ``ValueError`` otherwise, naming a path that would fit.
    """
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
    for d, n_max, idx, params, chosen in rest:  # every group fits before any is sized
        check_fits(chosen.path, chosen.spec, sweep.seeds, pts=params._asdict(), limit=limit)
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
    written atomically to ``<path>.parts/chunk_<group>_<start>.npz``, so any process, or a
    re-run after ``kill -9``, finds them there. The rules that keep the folder trustworthy:

    * the folder is never without its stamp, ``fingerprint.json`` (``{"fingerprint",
      "definition"}``): it is created under a temporary name with the stamp inside and renamed
      into place, and a missing or unreadable stamp is rewritten (with a warning) before any
      chunk is saved;
    * a chunk file says what it covers and is checksummed (:func:`gmmcollapse.store.
      save_checked_npz`: the sweep's fingerprint, its group, first point and number of
      points, and a sha256 of its arrays). :meth:`get` verifies all of it; a truncated,
      corrupt, foreign or misplaced chunk is reported by path (a
      :class:`~gmmcollapse.store.DamagedFileWarning`) and treated as missing, so the sweep
      recomputes it.
    """

    def __init__(self, folder: str | None, fingerprint: str, definition: dict | None = None):
        self.folder = folder
        self.fingerprint = fingerprint
        self.definition = definition
        self._memory: dict[Chunk, dict[str, np.ndarray]] = {}
        self._reported: set[str] = set()

    @staticmethod
    def stamp_of(folder: str) -> str | None:
        """The fingerprint in ``folder/fingerprint.json``; ``None`` when missing or unreadable."""
        try:
            theirs = read_json(os.path.join(folder, "fingerprint.json")).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None
        return theirs if isinstance(theirs, str) else None

    @classmethod
    def check(cls, path: str | os.PathLike | None, fingerprint: str) -> None:
        """``ValueError`` (nothing is created) when ``<path>.parts`` holds another sweep's
        chunks (its stamp names another fingerprint) or is not a folder."""
        if path is None:
            return
        folder = os.fspath(path) + ".parts"
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise ValueError(
                f"out {path}: its parts folder {folder} is an existing file; move it away"
            )
        theirs = cls.stamp_of(folder) if os.path.isdir(folder) else None
        if theirs is not None and theirs != fingerprint:
            raise _mismatch(folder, theirs, fingerprint)

    @classmethod
    def open(cls, path: str | os.PathLike | None, fingerprint: str, definition: dict):
        """The store of a sweep for results ``path`` (``None``: in memory only).

        Creates ``<path>.parts/`` with its stamp, or reopens it; ``ValueError`` (before
        anything is computed) when it holds another configuration's chunks.
        """
        if path is None:
            return cls(None, fingerprint)
        cls.check(path, fingerprint)
        store = cls(os.fspath(path) + ".parts", fingerprint, definition)
        store._ensure()
        return store

    def _stamp(self) -> dict:
        return jsonable({"definition": self.definition, "fingerprint": self.fingerprint})

    def _ensure(self) -> None:
        """Make the folder, its stamp first (or give a stamp-less folder its stamp)."""
        folder = self.folder
        if not os.path.isdir(folder):
            parent = os.path.dirname(os.path.abspath(folder))
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(folder)}.", dir=parent)
            try:
                write_json(os.path.join(tmp, "fingerprint.json"), self._stamp())
                os.rename(tmp, folder)  # the folder appears with its stamp inside
                return
            except OSError:
                if not os.path.isdir(folder):
                    raise
                # another process made it first: use theirs (checked below)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        theirs = self.stamp_of(folder)
        if theirs == self.fingerprint:
            return
        if theirs is not None:
            raise _mismatch(folder, theirs, self.fingerprint)
        if any(n.startswith("chunk_") for n in os.listdir(folder)):
            warnings.warn(
                f"{folder} has no readable fingerprint.json (left by an interrupted run); "
                "writing it, and checking every chunk there one by one (a chunk of another "
                "sweep is recomputed)",
                DamagedFileWarning,
                stacklevel=3,
            )
        write_json(os.path.join(folder, "fingerprint.json"), self._stamp())

    def file(self, chunk: Chunk) -> str:
        """The chunk's file in the parts folder."""
        return os.path.join(self.folder, f"chunk_{chunk[0]}_{chunk[1]}.npz")

    def has(self, chunk: Chunk) -> bool:
        """Whether the chunk is there (saved here, or its file by any process; not verified)."""
        return chunk in self._memory or (
            self.folder is not None and os.path.exists(self.file(chunk))
        )

    def save(self, chunk: Chunk, stats: dict[str, np.ndarray]) -> None:
        """Keep a computed chunk (and write its file atomically, with what it covers)."""
        if self.folder is not None:
            if not os.path.isdir(self.folder):
                self._ensure()  # never a chunk in a folder without its stamp
            head = {
                "format": 2,
                "fingerprint": self.fingerprint,
                "group": chunk[0],
                "start": chunk[1],
                "points": _points(stats),
            }
            save_checked_npz(self.file(chunk), head, **stats)
        self._memory[chunk] = stats

    def _problem(self, head: dict, stats: dict, chunk: Chunk, size: int | None) -> str | None:
        path = self.file(chunk)
        theirs = head.get("fingerprint")
        if theirs != self.fingerprint:
            return (
                f"{path} belongs to another sweep (fingerprint {str(theirs)[:16]}, this sweep "
                f"{self.fingerprint[:16]})"
            )
        got = (head.get("group"), head.get("start"), head.get("points"))
        want = (chunk[0], chunk[1], _points(stats) if size is None else size)
        if got != want or _points(stats) != want[2]:
            return (
                f"{path} holds group {got[0]}, points {got[1]} + {got[2]}, not group {want[0]}"
                f", points {want[1]} + {want[2]} (a chunk copied to the wrong place)"
            )
        return None

    def get(self, chunk: Chunk, size: int | None = None) -> dict[str, np.ndarray] | None:
        """A finished chunk's arrays, verified; ``None`` when it is missing or unusable.

        ``size`` is the number of points it must cover. An unreadable, corrupt, foreign or
        misplaced chunk file is reported once (a ``DamagedFileWarning`` naming it and what is
        wrong) and treated as missing: the caller recomputes it, and saving replaces the file.
        """
        if chunk in self._memory:
            return self._memory[chunk]
        if self.folder is None:
            return None
        path = self.file(chunk)
        try:
            head, stats = load_checked_npz(path)
        except FileNotFoundError:
            return None
        except DamagedFile as err:
            problem = str(err)
        else:
            problem = self._problem(head, stats, chunk, size)
        if problem is not None:
            if path not in self._reported:
                self._reported.add(path)
                warnings.warn(f"{problem}; recomputing it", DamagedFileWarning, stacklevel=2)
            return None
        self._memory[chunk] = stats
        return stats

    def load(self, chunk: Chunk, size: int | None = None) -> dict[str, np.ndarray]:
        """A finished chunk's arrays; ``ValueError`` naming the file when it is missing,
        damaged, another sweep's or in the wrong place (see :meth:`get`)."""
        if chunk in self._memory:
            return self._memory[chunk]
        path = self.file(chunk)
        head, stats = load_checked_npz(path)  # FileNotFoundError, DamagedFile
        problem = self._problem(head, stats, chunk, size)
        if problem is not None:
            raise ValueError(problem)
        self._memory[chunk] = stats
        return stats

    def wait(
        self, chunks: list[Chunk], seconds: float, say: Callable[[str], Any] | None = None
    ) -> None:
        """Wait for the other processes' chunks; ``TimeoutError`` after ``seconds``.

        ``say`` (e.g. ``print`` to stderr) is told what is awaited, at once and every 30 s.
        """
        deadline = time.time() + seconds
        told = -math.inf
        while True:
            missing = [c for c in chunks if not self.has(c)]
            if not missing or time.time() >= deadline:
                break
            if say is not None and time.time() - told >= 30:
                told = time.time()
                say(
                    f"waiting for {len(missing)} of {len(chunks)} chunks from the other "
                    f"processes in {self.folder} (up to {max(0, deadline - told):.0f} s more)"
                )
            time.sleep(min(2.0, max(0.0, deadline - time.time())))
        if missing:
            raise TimeoutError(
                f"{len(missing)} of {len(chunks)} chunks are still missing in {self.folder} "
                f"after {seconds:g} s; re-run the same sweep to compute them and merge"
            )

    def merge(
        self, groups: list[_Group], chunks: list[Chunk], shape: tuple[int, ...]
    ) -> dict[str, np.ndarray]:
        """``sim_mean/<field>`` and ``sim_se/<field>`` over the grid (``shape + (rounds,)``).

        Every chunk is checked to cover the points it is merged into (:meth:`load`).
        """
        size = int(np.prod(shape))
        mean: dict[str, np.ndarray] = {}
        se: dict[str, np.ndarray] = {}
        rounds = 0
        for c in chunks:
            grp = groups[c[0]]
            stats = self.load(c, grp.size(c[1]))
            if not mean:
                fields = [k[5:] for k in stats if k.startswith("mean/")]
                rounds = stats[f"mean/{fields[0]}"].shape[-1]
                mean = {f: np.full((size, rounds), np.nan) for f in fields}
                se = {f: np.full((size, rounds), np.nan) for f in fields}
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
        """Delete the parts folder (after the merge, its chunks are redundant). Only the
        process that holds the results' lock (or the last of a distributed run) calls it."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _points(stats: Mapping[str, np.ndarray]) -> int | None:
    """The number of points a chunk's arrays cover (their common leading length)."""
    lengths = {int(np.shape(v)[0]) for v in stats.values() if np.ndim(v) >= 1}
    return lengths.pop() if len(lengths) == 1 else None


def _finished(path, fingerprint: str, quiet: bool = False) -> Results | None:
    """The results already at ``path`` if the same sweep made them, else ``None``.

    A re-run of a finished sweep then simulates nothing, whatever else lies next to it;
    results of another configuration at ``path`` are simply recomputed and replaced (they
    are never mixed), and a damaged results file is reported (unless ``quiet``) and
    recomputed.
    """
    if path is None or not os.path.isfile(path):
        return None
    try:
        old = load_results(path)
    except DamagedFile as err:
        if not quiet:
            warnings.warn(f"{err}; recomputing it", DamagedFileWarning, stacklevel=3)
        return None
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
    lock: FileLock | None = None,
) -> int:
    """Simulate and save the chunks of ``mine`` the store lacks (or holds damaged); returns
    how many. ``lock`` (the results' lock, if held) is marked active after every chunk."""
    from tqdm.auto import tqdm

    todo = [c for c in mine if store.get(c, groups[c[0]].size(c[1])) is None]
    if not todo:
        return 0
    bar = tqdm(
        total=sum(groups[g].size(s) for g, s in mine),
        initial=sum(groups[g].size(s) for g, s in mine if (g, s) not in todo),
        desc="sweep" if sweep.name == "sweep" else f"sweep {sweep.name}",
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
            if lock is not None:
                lock.touch()
            bar.update(groups[g].size(s))
            if callable(progress):
                info = {"group": g, "start": s, "points": groups[g].size(s)}
                progress({**info, "done": n_done, "todo": len(todo)})
    finally:
        bar.close()
    return len(todo)


def _say(progress) -> Callable[[str], Any] | None:
    """Where status lines go: stderr with the progress bar, nowhere otherwise."""
    if progress is not True:
        return None
    return lambda text: print(text, file=sys.stderr, flush=True)


class _Waiter:
    """``on_wait`` of the results' lock: says what it waits for, stops when the holder's
    results (the same sweep) appear at ``path``."""

    def __init__(self, path, fingerprint: str, lock: FileLock, n_chunks: int, say):
        self.path, self.fingerprint, self.lock = os.fspath(path), fingerprint, lock
        self.n_chunks, self.say = n_chunks, say
        self.result: Results | None = None
        self.holder: dict | None = None
        self._seen = None
        self._told = -math.inf

    def chunks_there(self) -> int:
        try:
            return sum(n.startswith("chunk_") for n in os.listdir(self.path + ".parts"))
        except OSError:
            return 0

    def __call__(self, holder: dict | None, waited: float) -> bool:
        self.holder = holder or self.holder
        try:
            st = os.stat(self.path)
            seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            seen = None
        if seen is not None and seen != self._seen:  # a new results file: is it ours?
            self._seen = seen
            self.result = _finished(self.path, self.fingerprint, quiet=True)
            if self.result is not None:
                if self.say is not None:
                    self.say(
                        f"{self.path}: finished by {describe_holder(self.holder)} while this "
                        f"run waited {waited:.0f} s; reusing it"
                    )
                return True
        if self.say is not None and waited - self._told >= 30:
            self._told = waited
            self.say(
                f"{self.path} is being computed by {describe_holder(holder, self.lock.path)}, "
                f"which holds {self.lock.path}; waiting for it to finish and reuse its result "
                f"({self.chunks_there()} of {self.n_chunks} chunks are in {self.path}.parts)"
            )
        return False

    def timeout(self, seconds: float) -> TimeoutError:
        return TimeoutError(
            f"gave up after waiting {seconds:g} s (wait / --wait) for "
            f"{describe_holder(self.holder, self.lock.path)}, which holds {self.lock.path} "
            f"and is computing {self.path} ({self.chunks_there()} of {self.n_chunks} chunks "
            f"are in {self.path}.parts); nothing was computed here. Re-run later to reuse or "
            "resume its result, or pass a longer wait"
        )


def _check_out(path) -> None:
    """``ValueError`` naming ``out`` unless ``path`` can hold the results (nothing created)."""
    path = os.fspath(path)
    check_file_path(path, "out (the results path)")
    for suffix, kind in ((".parts", "a folder"), (".lock", "a file")):
        other = path + suffix
        wrong = os.path.isfile(other) if kind == "a folder" else os.path.isdir(other)
        if wrong:
            raise ValueError(
                f"out (the results path) {path}: {other} must be {kind} of this sweep's, but "
                f"is {'a file' if kind == 'a folder' else 'a folder'}; move it away"
            )


def _tidy(path, fingerprint: str) -> None:
    """Remove a parts folder left next to finished results, if no process holds the lock.

    Only a folder of this sweep, or one without a readable stamp (an interrupted run's).
    """
    folder = os.fspath(path) + ".parts"
    if not os.path.isdir(folder):
        return
    lock = FileLock(os.fspath(path) + ".lock")
    if not lock.try_acquire():
        return  # someone works on it: leave it alone
    try:
        if ChunkStore.stamp_of(folder) in (fingerprint, None):
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        lock.release()


@in_float64  # bitwise the same arrays whatever the caller's jax_enable_x64
def run_sweep(
    sweep: Sweep,
    theory: Callable[[dict[str, np.ndarray]], Mapping[str, Any]] | None = None,
    path: str | os.PathLike | None = None,
    progress: bool | Callable[[dict], Any] = True,
    *,
    process: tuple[int, int] | None = None,
    wait: float = 3600.0,
    memory_limit: float | None = None,
) -> Results | None:
    """Evaluate ``theory`` and (if ``sweep.seeds``) the simulation on every grid point.

    Args:
        sweep: the :class:`Sweep`.
        theory: maps the flattened parameter dict to named prediction arrays (length G).
        path: if given, the results are written there (atomically), and the run is resumable:
            finished chunks go to ``<path>.parts/`` as they complete, a re-run loads them and
            computes only the missing ones, and the folder is removed after the merge. If
            ``path`` already holds the finished results of the same sweep (same fingerprint),
            nothing is simulated again. See "Files and processes" below.
        progress: ``True`` shows a progress bar over grid points (rate and ETA), and status
            lines on stderr when this run waits for another; a callable is called after every
            computed (and saved) chunk with ``{"group", "start", "points", "done", "todo"}``
            instead.
        process: ``(process_index, process_count)``; default
            ``(jax.process_index(), jax.process_count())``. Process ``i`` computes the chunks
            whose index is ``i`` modulo the count; process 0 then waits for the others' files
            and merges; the others return ``None``.
        wait: seconds to wait for another process: for the process holding ``<path>.lock``
            (below), and for process 0, for the other processes' chunks (``TimeoutError``
            after either, saying what it waited for; re-running reuses or resumes).
        memory_limit: the bytes of sampled data a device may hold for one point's seeds
            (:func:`check_fits`); default :func:`memory_limit`: the environment variable
            ``GMMCOLLAPSE_MEMORY_LIMIT``, else the device's memory as JAX reports it, else
            75% of the physical memory. A group that does not fit is refused (``ValueError``
            with the figure and a path that fits) before anything is computed.

    Files and processes (with ``path``):

    * ``path`` must be a file path: a directory there, or a file where a parent folder should
      be, is a ``ValueError`` naming ``out`` before anything is computed or created.
    * Finished results of the same sweep at ``path`` are reused at once.
    * Otherwise process 0 takes ``<path>.lock`` (:class:`gmmcollapse.store.FileLock`: an OS
      lock, released even when its holder is killed). A second run of the same command
      waits for the holder, saying so on stderr when ``progress`` is on, and reuses its
      results as soon as they are written; if the holder dies, it takes over the lock and
      resumes from the chunks there. Only the lock holder deletes the parts folder, after
      writing the results, so nothing another live run needs is deleted.
    * Chunks are checked on load (checksum, fingerprint, the points they cover); a damaged or
      misplaced chunk, or a damaged results file, is reported by path (a
      :class:`~gmmcollapse.store.DamagedFileWarning`) and recomputed.

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
    if path is not None:
        _check_out(path)

    groups = _groups(sweep, pts, memory_limit) if sweep.seeds else []
    store = reuse = lock = None
    say = _say(progress)
    if groups:
        fp, definition = _fingerprint(sweep, groups)
        meta["fingerprint"] = fp
        reuse = _finished(path, fp)
        if reuse is not None and index == 0:
            _tidy(path, fp)
        if reuse is None and path is not None:
            ChunkStore.check(path, fp)  # another sweep's parts: refused before waiting
            if index == 0:
                lock = FileLock(os.fspath(path) + ".lock")
                n_chunks = sum(len(grp.starts) for grp in groups)
                waiter = _Waiter(path, fp, lock, n_chunks, say)
                try:
                    got = lock.acquire(wait, on_wait=waiter)
                except LockTimeout:
                    raise waiter.timeout(wait) from None
                # the holder may have finished just before we got the lock
                reuse = _finished(path, fp, quiet=True) if got else waiter.result
                if reuse is not None and say is not None and got:
                    say(f"{os.fspath(path)}: finished by another run meanwhile; reusing it")
                elif reuse is None and say is not None and waiter.holder is not None:
                    say(
                        f"{lock.path} was released without finished results (its holder, "
                        f"{describe_holder(waiter.holder)}, stopped or was killed); resuming "
                        f"from the {waiter.chunks_there()} chunks in {os.fspath(path)}.parts"
                    )

    try:
        if groups and reuse is None:
            store = ChunkStore.open(path, fp, definition)  # raises on a mismatch: nothing ran
        data = _theory(theory, pts, sweep.shape) if theory is not None and index == 0 else {}
        if reuse is not None:  # the same sweep already finished at `path`: nothing to simulate
            if index != 0:
                return None
            sims = ("sim_mean/", "sim_se/")
            data.update({k: v for k, v in reuse.data.items() if k.startswith(sims)})
            for k in ("chunks", "groups", "processes"):
                meta[k] = reuse.meta.get(k)
            meta["chunks_computed"], meta["chunks_loaded"] = 0, reuse.meta.get("chunks")
        elif groups:
            chunks = [(gi, s) for gi, grp in enumerate(groups) for s in grp.starts]
            mine = [chunks[i] for i in _assigned(len(chunks), index, count)]
            computed = _compute(sweep, groups, store, mine, progress, lock)
            meta.update(chunks=len(chunks), chunks_computed=computed, processes=count)
            if index != 0:
                return None  # process 0 merges
            store.wait(chunks, wait, say)
            # the other processes' chunks are verified too: a damaged one is recomputed here
            computed += _compute(sweep, groups, store, chunks, progress, lock)
            meta["chunks_computed"] = computed
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
                store.remove()  # merged: the parts are redundant (we hold the lock)
        return res
    finally:
        if lock is not None:
            lock.release()


# ---------------------------------------------------------------------------------- dry run


def matmul_rate(dtype: str = "float32", size: int = 1024) -> float:
    """FLOP/s of one ``size x size`` NumPy matmul (after one warm-up product)."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    a @ a  # warm-up: thread pool, page faults
    t = time.perf_counter()
    a @ a
    return 2.0 * size**3 / max(time.perf_counter() - t, 1e-9)


def dry_run(sweep: Sweep, measure: bool = True, memory_limit: float | None = None) -> dict:
    """What :func:`run_sweep` would do, without compiling or computing anything.

    Returns the grid size, the number of (point, seed) runs and, per static group, ``d``,
    ``n_max``, the chosen path, the chunk size, the number of chunks, the bytes of sampled data
    a device holds at once (``seeds`` runs of one point; ``block_rows`` rows for streaming,
    O(d^2) for the fast path) and the FLOPs (see :func:`run_flops`). With ``measure``, also
    the machine's matmul rate (one NumPy matmul in the sweep's dtype) and the time estimate
    ``flops / rate`` (a CPU rate: on accelerators, an upper bound).

    A group whose ``seeds`` runs of one point do not fit ``memory_limit`` (see
    :func:`check_fits`) is refused with a ``ValueError``, as :func:`run_sweep` would.
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
    groups = _groups(sweep, pts, memory_limit)
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
        rate = matmul_rate(groups[0].plan.spec.dtype)
        out["matmul_flops_per_s"] = rate
        out["seconds"] = out["flops"] / (rate * out["processes"])
    return out
