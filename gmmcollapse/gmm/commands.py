"""The library behind ``gmmcollapse theory``, ``simulate`` and ``sweep``: plain values in (the
flags' values, by parameter name), values and printable text out.

* :func:`theory_values`: every theory function the given parameters determine, by name
  (:data:`THEORY_FUNCTIONS`, in print order), and with a generator or rounds the per-round
  accuracy of iterated retraining (:func:`retraining_values`); :func:`format_theory` prints it.
* :func:`simulate_point`: mean accuracy and standard error over seeds at one parameter point,
  on the path a sweep would choose; :func:`format_simulation` prints it.
* :func:`make_sweep` builds a :class:`~gmmcollapse.gmm.Sweep` from ``name=...`` axis texts
  (:func:`parse_axis`) and fixed values; :func:`format_dry_run` prints the plan of
  :func:`~gmmcollapse.gmm.sweep.dry_run`, :func:`format_sweep` a finished sweep.

:data:`PARAM_FLAGS` lists the parameters these commands take (name, help text): the command
line makes one ``--name`` flag of each. Invalid values raise ``ValueError`` with a one-line
message naming the parameter.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gmmcollapse import store

if TYPE_CHECKING:
    from gmmcollapse.gmm.sweep import Results, Sweep

__all__ = [
    "GENERATOR_PARAMS",
    "PARAM_FLAGS",
    "THEORY_FUNCTIONS",
    "format_dry_run",
    "format_simulation",
    "format_sweep",
    "format_theory",
    "make_sweep",
    "parse_axis",
    "retraining_values",
    "simulate_point",
    "simulate_text",
    "sweep_theory",
    "theory_values",
]

#: the parameters of the commands, ``(name, help)``: ``--name`` flags taking a number
PARAM_FLAGS: tuple[tuple[str, str], ...] = (
    ("n", "synthesized samples (pruned ones included)"),
    ("d", "dimension"),
    ("snr", "||mu||"),
    ("p", "generator label-error rate"),
    ("phi", "keep rate of correct labels"),
    ("psi", "keep rate of wrong labels"),
    ("lam", "ridge strength"),
    ("n_real", "real samples"),
    ("n_syn", "synthesized samples (mixed_ridge_accuracy)"),
    ("beta", "synthetic mean scale along mu"),
    ("gamma", "norm of the synthetic mean's part orthogonal to mu"),
    ("sigma", "synthetic noise scale"),
    ("theta_gen", "linear generator angle to mu (rad)"),
    ("lam_gen", "ridge strength of the ridge generator (default 0.1)"),
    ("theta_ver", "linear verifier angle to mu (rad)"),
    ("tau", "linear verifier margin threshold"),
    ("p_pos", "class +1 label-error rate"),
    ("p_neg", "class -1 label-error rate"),
    ("phi_pos", "class +1 keep rate of correct"),
    ("phi_neg", "class -1 keep rate of correct"),
    ("psi_pos", "class +1 keep rate of wrong"),
    ("psi_neg", "class -1 keep rate of wrong"),
)

#: theory functions :func:`theory_values` evaluates, in print order
THEORY_FUNCTIONS = (
    "breakdown_point",
    "keep_fraction",
    "effective_noise",
    "bayes_accuracy",
    "infinite_data_accuracy",
    "ridge_accuracy",
    "mixed_ridge_accuracy",
    "shifted_mixed_ridge_accuracy",
    "linear_keep_rates",
    "linear_infinite_data_accuracy",
    "flip_linear_keep_rates",
    "flip_linear_infinite_data_accuracy",
    "flip_linear_ridge_accuracy",
    "linear_ridge_accuracy",
    "finite_breakdown_point",
    "class_infinite_data_accuracy",
)

#: the parameters of each round-0 generator (the others' are refused)
GENERATOR_PARAMS = {"flip": ("p",), "linear": ("theta_gen",), "ridge": ("n_real", "lam_gen")}

#: the parameters of a simulation besides n, d and snr (the other flags do not apply to it)
_SIM_PARAMS = (
    "p", "phi", "psi", "lam", "theta_gen", "theta_ver", "tau", "n_real", "lam_gen", "beta",
    "gamma", "sigma",
)  # fmt: skip

#: single-round functions skipped for each generator
_SKIP = {
    None: set(),
    "flip": {"linear_keep_rates", "linear_infinite_data_accuracy", "linear_ridge_accuracy"},
    "linear": {
        "flip_linear_keep_rates",
        "flip_linear_infinite_data_accuracy",
        "flip_linear_ridge_accuracy",
        "finite_breakdown_point",
    },
}


def _flags(names: Sequence[str]) -> str:
    return ", ".join("--" + k.replace("_", "-") for k in names)


# ------------------------------------------------------------------------------------ theory


def retraining_values(given: Mapping[str, float], generator: str, rounds: int, data: str) -> dict:
    """``retraining_accuracy`` (per round) and, for ``data="replace"``, ``retraining_limit``
    (:mod:`gmmcollapse.theory.retraining`) at the point ``given`` (``n``, ``d``, ``snr`` and
    the generator's and verifier's parameters)."""
    from gmmcollapse import theory as T

    missing = [k for k in ("n", "d", "snr") if k not in given]
    if missing:
        raise ValueError(f"--rounds / --generator need {_flags(missing)}")
    if generator != "ridge" and "n_real" in given:
        raise ValueError(
            "--n-real with --rounds applies to --generator ridge only (the retraining theory "
            "does not mix real rows into every round)"
        )
    kw = {k: given[k] for k in GENERATOR_PARAMS[generator] if k in given}
    kw.update({k: given[k] for k in ("phi", "psi", "theta_ver", "tau", "lam") if k in given})
    args = (given["n"], given["d"], given["snr"])
    out = {
        "retraining_accuracy": T.retraining_accuracy(
            rounds, *args, generator=generator, data=data, **kw
        )
    }
    if data == "replace":
        out["retraining_limit"] = T.retraining_limit(*args, generator=generator, **kw)
    return out


def theory_values(
    given: Mapping[str, float],
    generator: str | None = None,
    rounds: int | None = None,
    data: str = "replace",
) -> dict:
    """Every theory function whose required arguments are all in ``given``: name -> value.

    With ``generator`` (flip, linear, ridge) the parameters of other generators are refused,
    the single-round functions of other generators are skipped, and with ``rounds`` (or the
    ridge generator, which only the retraining theory covers) the per-round accuracy of
    iterated retraining and its long-run limit are added (:func:`retraining_values`).

    Example:
        >>> v = theory_values({"snr": 1.5, "p": 0.3, "phi": 1.0, "psi": 0.5})
        >>> list(v)
        ['breakdown_point', 'keep_fraction', 'effective_noise', 'bayes_accuracy', 'infinite_data_accuracy']
        >>> round(float(v["breakdown_point"]), 6)
        0.666667
    """
    from gmmcollapse import theory as T

    if rounds is not None and rounds < 1:
        raise ValueError(f"rounds must be a whole number >= 1, got {rounds}")
    if generator is not None:
        stray = [
            k
            for g, names in GENERATOR_PARAMS.items()
            if g != generator
            for k in names
            if k in given and not (k == "n_real" and generator != "ridge")
        ]
        if stray:
            raise ValueError(f"{_flags(stray)} do(es) not apply to --generator {generator}")
    skip = _SKIP.get(generator, set(THEORY_FUNCTIONS) - {"breakdown_point", "bayes_accuracy"})

    alias = {"n_syn": "n"}  # mixed_ridge_accuracy's n_syn falls back to n
    out = {}
    for name in THEORY_FUNCTIONS:
        if name in skip:
            continue
        fn = getattr(T, name)
        kwargs, ok = {}, True
        for pname, par in inspect.signature(fn).parameters.items():
            if pname in given:
                kwargs[pname] = given[pname]
            elif pname in alias and alias[pname] in given:
                kwargs[pname] = given[alias[pname]]
            elif pname == "n_real" and name.startswith(("mixed", "shifted")) and "n" in given:
                kwargs[pname] = 0.0
            elif par.default is inspect.Parameter.empty:
                ok = False
                break
        if not ok:
            continue
        if name == "shifted_mixed_ridge_accuracy" and not {"beta", "gamma", "sigma"} & set(given):
            continue
        if name == "mixed_ridge_accuracy" and "n_real" not in given:
            continue
        if name in ("flip_linear_ridge_accuracy", "linear_ridge_accuracy") and "lam" not in given:
            continue
        out[name] = fn(**kwargs)
    if rounds is not None or generator == "ridge":
        out.update(retraining_values(given, generator or "flip", rounds or 1, data))
    return out


def _jsonable(v):
    if hasattr(v, "_asdict"):
        return {k: _jsonable(x) for k, x in v._asdict().items()}
    arr = np.asarray(v)
    return arr.item() if arr.ndim == 0 else arr.tolist()


def _fmt(v) -> str:
    if hasattr(v, "_asdict"):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v._asdict().items())
    arr = np.asarray(v)
    if arr.ndim:
        return "[" + ", ".join(f"{float(x):.10g}" for x in arr.reshape(-1)) + "]"
    return f"{float(v):.10g}"


def format_theory(values: Mapping[str, Any], as_json: bool = False) -> str:
    """The values of :func:`theory_values`, one ``name  value`` line each (10 significant
    digits), or a JSON object keyed by function name (exact floats)."""
    if as_json:
        return store.dumps({k: _jsonable(v) for k, v in values.items()})
    width = max(map(len, values))
    return "\n".join(f"{k:<{width}}  {_fmt(v)}" for k, v in values.items())


# ---------------------------------------------------------------------------------- simulate


def simulate_point(
    given: Mapping[str, float],
    *,
    seeds: int = 32,
    seed: int = 0,
    generator: str = "flip",
    learner: str = "ridge",
    rounds: int = 1,
    data: str = "replace",
    mix_real: bool = False,
    n_test: int = 0,
    dtype: str = "float32",
    path: str = "auto",
) -> dict:
    """Simulate at one point: the mean accuracy and its standard error over ``seeds`` runs.

    Args:
        given: ``n``, ``d``, ``snr`` (required) and any of ``p``, ``phi``, ``psi``, ``lam``,
            ``theta_gen``, ``theta_ver``, ``tau``, ``n_real``, ``lam_gen``, ``beta``,
            ``gamma``, ``sigma`` (others are ignored).
        seeds, seed: the number of runs and the base PRNG seed.
        generator, learner, rounds, data, n_test, dtype: as in :class:`~gmmcollapse.gmm.SimSpec`.
        mix_real: add the ``n_real`` real samples to every round.
        path: ``"auto"`` (the fastest exact path, as a sweep chooses) or a path's name.

    Returns:
        ``{"mean", "se", "path", "measured": {...}}`` (the last round), with
        ``mean_per_round`` / ``se_per_round`` when ``rounds > 1``; NaN measured rates are
        ``None``, so ``json.dumps`` of it is strict JSON. Seeds run in chunks that fit a
        1 GiB budget, every seed keeping its key whatever the chunking.
    """
    import jax

    from gmmcollapse.gmm import SimSpec, make_params, summarize, validate_params
    from gmmcollapse.gmm.paths import plan
    from gmmcollapse.gmm.sweep import run_bytes

    for name in ("n", "d", "snr"):
        if given.get(name) is None:
            raise ValueError(f"--{name} is required")
    if seeds < 2:
        raise ValueError(f"seeds must be a whole number >= 2, got {seeds}")
    for name in ("n", "d"):
        v = given[name]
        if not (v >= 1 and float(v).is_integer()):
            raise ValueError(f"{name} must be a whole number >= 1, got {v:g}")
    spec = SimSpec(
        n_max=int(given["n"]),
        d=int(given["d"]),
        generator=generator,
        learner=learner,
        rounds=rounds,
        data=data,
        n_real_max=int(given.get("n_real") or 0),
        n_test=n_test,
        dtype=dtype,
    )
    kw = {k: given[k] for k in _SIM_PARAMS if given.get(k) is not None}
    if mix_real:
        kw["mix_real"] = 1.0
    params = make_params(given["n"], given["snr"], **kw)
    validate_params(params, spec)
    # the same path choice as a sweep (one point: a group of one, leading axis 1)
    chosen = plan(spec, {k: np.asarray(v)[None] for k, v in params._asdict().items()}, path)
    keys = jax.random.split(jax.random.key(seed), seeds)
    # seeds run in chunks that fit a 1 GiB budget (the sweep's memory model), all chunks one
    # compiled program (the last one padded); every seed keeps its key whatever the chunking
    chunk = int(max(1, min(seeds, 2**30 // max(1, run_bytes(chosen.path, chosen.spec)))))
    run = jax.jit(jax.vmap(chosen.simulate, in_axes=(0, None, None)), static_argnums=2)
    parts = []
    for start in range(0, seeds, chunk):
        sel = np.minimum(np.arange(start, start + chunk), seeds - 1)
        part = run(keys[sel], params, chosen.spec)
        parts.append(jax.tree.map(lambda v, k=seeds - start: np.asarray(v)[:k], part))
    res = jax.tree.map(lambda *v: np.concatenate(v), *parts)
    mean, se = summarize(res)
    out = {"mean": float(mean.acc[-1]), "se": float(se.acc[-1]), "path": chosen.path}
    if rounds > 1:
        out["mean_per_round"] = np.asarray(mean.acc).tolist()
        out["se_per_round"] = np.asarray(se.acc).tolist()
    # NaN (e.g. psi when no label was wrong) becomes null so the JSON stays strict
    out["measured"] = {
        k: (None if math.isnan(v) else v)
        for k in ("p", "phi", "psi", "p_star", "keep_fraction", "gen_acc")
        for v in [float(getattr(mean, k)[-1])]
    }
    return out


def format_simulation(out: Mapping[str, Any], seeds: int, seconds: float) -> str:
    """The result of :func:`simulate_point` as text: accuracy +- SE, the measured rates and,
    over several rounds, the mean accuracy per round."""
    head = (
        f"accuracy  {out['mean']:.6f} +- {out['se']:.6f}  (mean +- SE over {seeds} seeds, "
        f"{out['path']} path, {seconds:.2f} s)"
    )
    lines = [head]
    for k, v in out["measured"].items():
        lines.append(f"{k:<13} {'nan' if v is None else f'{v:.6f}'}")
    if "mean_per_round" in out:
        lines.append("per round " + " ".join(f"{v:.4f}" for v in out["mean_per_round"]))
    return "\n".join(lines)


def simulate_text(given: Mapping[str, float], as_json: bool = False, **options: Any) -> str:
    """:func:`simulate_point` (``options`` are its keywords) printed as JSON or as text."""
    t0 = time.time()
    out = simulate_point(given, **options)
    if as_json:
        return json.dumps(out)
    return format_simulation(out, options.get("seeds", 32), time.time() - t0)


# ------------------------------------------------------------------------------------- sweep


def parse_axis(text: str) -> tuple[str, np.ndarray]:
    """``name=a:b:k`` (k points, linear), ``name=a:b:k:log`` or ``name=v1,v2,...``.

    Example:
        >>> parse_axis("p=0:1:3")
        ('p', array([0. , 0.5, 1. ]))
        >>> parse_axis("n-real=10,100")
        ('n_real', array([ 10., 100.]))
    """
    if "=" not in text:
        raise ValueError(f"axis must look like name=start:stop:num or name=v1,v2, got {text!r}")
    name, spec = text.split("=", 1)
    name = name.strip().replace("-", "_")
    try:
        if ":" in spec:
            parts = spec.split(":")
            a, b, k = float(parts[0]), float(parts[1]), int(parts[2])
            vals = (
                np.logspace(math.log10(a), math.log10(b), k)
                if parts[3:] == ["log"]
                else np.linspace(a, b, k)
            )
        else:
            vals = np.array([float(v) for v in spec.split(",")])
    except (ValueError, IndexError):
        raise ValueError(
            f"axis {name} must look like name=start:stop:num[:log] or name=v1,v2, got {spec!r}"
        ) from None
    return name, vals


def make_sweep(
    given: Mapping[str, float],
    axes: Sequence[str] = (),
    *,
    name: str = "sweep",
    seeds: int = 16,
    seed: int = 0,
    chunk: int = 0,
    path: str = "auto",
    generator: str = "flip",
    learner: str = "ridge",
    rounds: int = 1,
    data: str = "replace",
    mix_real: bool = False,
    n_test: int = 0,
    dtype: str = "float32",
) -> Sweep:
    """The :class:`~gmmcollapse.gmm.Sweep` of the ``sweep`` command: ``axes`` are
    :func:`parse_axis` texts, ``given`` the fixed values (a parameter on an axis is not
    fixed); the class-specific rates and ``n_syn`` are refused.

    Example:
        >>> sw = make_sweep({"d": 8, "snr": 1.0, "n": 50}, ["p=0:1:3"], seeds=2)
        >>> sw.shape, dict(sw.fixed)
        ((3,), {'n': 50, 'd': 8, 'snr': 1.0})
    """
    from gmmcollapse.gmm.sweep import Sweep

    grid = dict(parse_axis(a) for a in axes)
    fixed = {k: v for k, _ in PARAM_FLAGS if (v := given.get(k)) is not None and k not in grid}
    if mix_real:
        fixed["mix_real"] = 1.0
    spec = {
        "generator": generator,
        "learner": learner,
        "rounds": rounds,
        "data": data,
        "n_test": n_test,
        "dtype": dtype,
    }
    unsupported = sorted(k for k in fixed if k == "n_syn" or k.endswith(("_pos", "_neg")))
    if unsupported:
        raise ValueError(
            f"sweep does not take {_flags(unsupported)} (use --n for synthesized samples)"
        )
    return Sweep(
        name, axes=grid, fixed=fixed, spec=spec, seeds=seeds, seed=seed, chunk=chunk, path=path
    )


def sweep_theory(
    generator: str = "flip", rounds: int = 1, data: str = "replace", learner: str = "ridge"
) -> Callable[[dict], dict]:
    """The theory of a sweep with this structure: :func:`gmmcollapse.gmm.predict`."""
    from gmmcollapse.gmm.predict import predict

    return lambda pts: predict(pts, generator, rounds=rounds, data=data, learner=learner)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def format_dry_run(plan: Mapping[str, Any]) -> str:
    """The plan of :func:`gmmcollapse.gmm.sweep.dry_run` as text: the grid, a table of the
    static groups (path, chunks, memory, GFLOP) and the time estimate."""
    shape = "x".join(map(str, plan["grid_shape"])) or "1"
    head = (
        f"sweep {plan['name']}: grid {shape} = {plan['grid_size']} points x {plan['seeds']} "
        f"seeds = {plan['runs']} runs; {plan['devices']} device(s), "
        f"{plan['processes']} process(es)"
    )
    lines = [head]
    if plan["groups"]:
        head = ("group", "d", "n_max", "path", "points", "chunk", "chunks", "mem/device", "GFLOP")
        rows = [
            (
                i, g["d"], g["n_max"], g["path"], g["points"], g["chunk"], g["chunks"],
                _bytes(g["bytes_per_device"]), f"{g['flops'] / 1e9:.3g}",
            )
            for i, g in enumerate(plan["groups"])
        ]  # fmt: skip
        widths = [max(len(str(r[j])) for r in [head, *rows]) for j in range(len(head))]
        for r in [head, *rows]:
            lines.append("  ".join(f"{v!s:>{w}}" for v, w in zip(r, widths)))
        lines.append(
            "mem/device: sampled data of one point's seeds (a device runs its points one by one)"
        )
    if "seconds" in plan:
        lines.append(
            f"estimated time: {plan['seconds']:.3g} s ({plan['flops']:.3g} FLOP at "
            f"{plan['matmul_flops_per_s'] / 1e9:.3g} GFLOP/s, this machine's NumPy matmul rate)"
        )
    lines.append("dry run: nothing computed")
    return "\n".join(lines)


def format_sweep(res: Results, shape: Sequence[int], out: str, table: bool = True) -> str:
    """A finished sweep (:class:`~gmmcollapse.gmm.sweep.Results` written to ``out``): one
    line, and with ``table`` for grids of at most 200 points a table of the theory and the
    simulated accuracy (last round) at every point."""
    paths = ", ".join(sorted({g["path"] for g in res.meta.get("groups", [])})) or "theory only"
    done = ""
    if "chunks" in res.meta:
        done = f", {res.meta['chunks_computed']} of {res.meta['chunks']} chunks computed"
    head = (
        f"wrote {out}: grid {'x'.join(map(str, shape))}, {res.meta['seconds']:.1f} s"
        f" ({paths}{done})"
    )
    lines = [head]
    names = list(res.axes)
    grids = np.meshgrid(*res.axes.values(), indexing="ij")
    cols = [
        k
        for k in (
            "theory/ridge_accuracy",
            "theory/infinite_data_accuracy",
            "sim_mean/acc",
            "sim_se/acc",
        )
        if k in res.data
    ]
    if table and len(grids[0].reshape(-1)) <= 200:
        heads = names + [c.split("/")[-1] if not c.startswith("sim_se") else "se" for c in cols]
        lines.append("  ".join(f"{c:>12}" for c in heads))
        for i in range(grids[0].size):
            row = [g.reshape(-1)[i] for g in grids] + [
                res[c].reshape(grids[0].size, -1)[i, -1] for c in cols
            ]
            lines.append("  ".join(f"{v:>12.6g}" for v in row))
    return "\n".join(lines)
