"""Named parameter grids evaluated by theory and simulation, written to self-describing files.

A :class:`Sweep` names its axes (a Cartesian product of values), the parameters held fixed,
the static structure of the simulation and the number of seeds. :func:`run_sweep` evaluates

* the **theory**: any function mapping a dict of parameter arrays (every grid point at once,
  flattened) to a dict of prediction arrays, e.g. :func:`gmmcollapse.gmm.predict`;
* the **simulation**: :func:`gmmcollapse.gmm.over_grid` on chunks of grid points, with the
  mean and standard error over seeds of every :class:`~gmmcollapse.gmm.SimResult` field.

Grid points that need different static shapes (``d``, or the sample capacity ``n_max``) are
grouped; within a group ``n`` is traced and ``n_max`` is rounded up to a power of two, so a
sweep over ``n`` compiles a handful of times, not once per value. Points are processed in
fixed-size chunks (the last one padded) so each group compiles once; a progress bar reports
chunks.

Results (:class:`Results`) are a ``.npz`` file with one array per quantity, shaped like the grid
(plus a trailing rounds axis for simulation fields), and a JSON ``__meta__`` entry holding the
sweep definition, the versions and the timing: enough to re-run it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gmmcollapse._validate import check_int
from gmmcollapse.gmm.simulate import _simulate
from gmmcollapse.gmm.spec import _DEFAULTS, GMMParams, SimSpec, make_params, validate_params

__all__ = ["Results", "Sweep", "grid_points", "load_results", "run_sweep", "save_results"]

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
        chunk: grid points per compiled call (0 = automatic from ``memory_budget``).
        memory_budget: bytes of sampled data allowed per chunk when ``chunk = 0``.
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
                    if k not in _DEFAULTS:  # n, snr, d have no default
                        raise ValueError(
                            f"{k} is set by some cases only: give it in every case or in fixed"
                        )
                    n = len(next(iter(part.values()))) if part else 1
                    part[k] = np.full((n,), _DEFAULTS[k], dtype=np.float64)
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}

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
    """Write ``results`` to ``path`` atomically (temporary file in the same folder, rename)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    arrays = {f"axis/{k}": v for k, v in results.axes.items()}
    arrays.update(results.data)
    arrays["__meta__"] = np.asarray(json.dumps(results.meta))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_results(path) -> Results:
    """Read a file written by :func:`save_results`."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        axes = {k[5:]: f[k] for k in f.files if k.startswith("axis/")}
        order = meta.get("axis_order", list(axes))
        axes = {k: axes[k] for k in order}
        data = {k: f[k] for k in f.files if not k.startswith("axis/") and k != "__meta__"}
    return Results(axes=axes, data=data, meta=meta)


def _capacity(n: float) -> int:
    return int(2 ** math.ceil(math.log2(max(n, 1))))


#: (grid chunk) x (seeds) runs in one compiled call; compiled once per (spec, chunk size)
_grid_run = jax.jit(
    jax.vmap(jax.vmap(_simulate, in_axes=(0, None, None)), in_axes=(None, 0, None)),
    static_argnums=2,
)


def _sim_group(key, pts: dict[str, np.ndarray], spec: SimSpec, seeds: int, chunk: int, progress):
    """Simulate every point of one static group; returns mean and se arrays per field."""
    g = len(pts["n"])
    params = make_params(**{k: v for k, v in pts.items() if k != "d"})
    # defaults come back as scalars: give every leaf the leading grid axis
    params = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (g,) + a.shape) if a.ndim == 0 else a, params
    )
    keys = jax.random.split(key, seeds)
    run = _grid_run
    means, ses = [], []
    for start in range(0, g, chunk):
        idx = np.arange(start, start + chunk)
        idx = np.minimum(idx, g - 1)  # pad the last chunk by repeating its last point
        sub = jax.tree.map(lambda a, i=idx: a[i], params)
        res = run(keys, sub, spec)
        valid = min(chunk, g - start)
        res = jax.tree.map(lambda a, v=valid: np.asarray(a)[:v], res)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            # all-NaN slices (e.g. psi when no label was wrong) stay NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            means.append({k: np.nanmean(v, axis=1) for k, v in res._asdict().items()})
            ses.append(
                {
                    k: np.nanstd(v, axis=1, ddof=1)
                    / np.sqrt(np.maximum(np.sum(~np.isnan(v), axis=1), 1))
                    for k, v in res._asdict().items()
                }
            )
        progress(valid)
    cat = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return cat(means), cat(ses)


def run_sweep(
    sweep: Sweep,
    theory: Callable[[dict[str, np.ndarray]], Mapping[str, Any]] | None = None,
    path: str | os.PathLike | None = None,
    progress: bool = True,
) -> Results:
    """Evaluate ``theory`` and (if ``sweep.seeds``) the simulation on every grid point.

    Args:
        sweep: the :class:`Sweep`.
        theory: maps the flattened parameter dict to named prediction arrays (length G).
        path: if given, the results are written there (atomically).
        progress: show a progress bar over simulated grid points.

    All parameters are validated on the whole grid before anything is compiled.
    """
    t0 = time.time()
    pts = sweep.points()
    g = int(np.prod(sweep.shape))
    shape = sweep.shape
    data: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {
        "sweep": sweep.to_json(),
        "axis_order": sweep.axis_names,
        "cases": list(sweep.cases),
        "grid_size": g,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": len(jax.devices()),
        "platform": platform.platform(),
    }

    if sweep.seeds:
        if "n" not in pts or "snr" not in pts:
            raise ValueError("a simulated sweep needs n and snr (as axes or fixed values)")
        if "d" not in pts:
            raise ValueError("a simulated sweep needs d (as an axis or a fixed value)")
        base = dict(sweep.spec)
        # validate everything before compiling anything (the theory included).
        # d, n and n_real pick the static shapes (int(), log2): NaN, inf or fractions fail here
        check_int("d", pts["d"], 1)
        check_int("n", pts["n"], 1)
        check_int("n_real", pts.get("n_real"), 0)
        n_real_max = int(base.pop("n_real_max", int(np.max(pts.get("n_real", [0])))))
        groups: dict[tuple[int, int], list[int]] = {}
        for i in range(g):
            groups.setdefault((int(pts["d"][i]), _capacity(pts["n"][i])), []).append(i)
        specs = {k: SimSpec(n_max=k[1], d=k[0], n_real_max=n_real_max, **base) for k in groups}
        for k, idx in groups.items():
            sub = {name: v[idx] for name, v in pts.items() if name != "d"}
            validate_params(make_params(**sub), specs[k])

    if theory is not None:
        for k, v in theory(pts).items():
            data[f"theory/{k}"] = np.asarray(v, dtype=np.float64).reshape(shape)

    if sweep.seeds:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=g, desc=f"sweep {sweep.name}", unit="pt", disable=not progress, leave=False
        )
        key = jax.random.key(sweep.seed)
        rounds = int(base.get("rounds", 1))
        fields = None
        mean_all: dict[str, np.ndarray] = {}
        se_all: dict[str, np.ndarray] = {}
        paths = {}
        for k, idx in groups.items():
            spec = specs[k]
            per_point = (
                sweep.seeds * (spec.n_max * spec.d + spec.d * spec.d + spec.n_real_max * spec.d) * 8
            )
            chunk = sweep.chunk or int(max(1, min(len(idx), sweep.memory_budget // per_point)))
            sub = {name: v[idx] for name, v in pts.items()}
            m, s = _sim_group(key, sub, spec, sweep.seeds, chunk, bar.update)
            paths[f"d={k[0]},n_max={k[1]}"] = "dual" if spec.use_dual else "primal"
            if fields is None:
                fields = list(m)
                mean_all = {f: np.full((g, rounds), np.nan) for f in fields}
                se_all = {f: np.full((g, rounds), np.nan) for f in fields}
            for f in fields:
                mean_all[f][idx] = m[f]
                se_all[f][idx] = s[f]
        bar.close()
        for f in fields:
            data[f"sim_mean/{f}"] = mean_all[f].reshape(shape + (rounds,))
            data[f"sim_se/{f}"] = se_all[f].reshape(shape + (rounds,))
        meta["solver_paths"] = paths
    meta["seconds"] = round(time.time() - t0, 3)
    axes = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in sweep.axes.items()}
    if sweep.cases:
        axes = {"case": np.arange(len(sweep.cases), dtype=np.float64), **axes}
    res = Results(axes=axes, data=data, meta=meta)
    if path is not None:
        res.save(path)
    return res
