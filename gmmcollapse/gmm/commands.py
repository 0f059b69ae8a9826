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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gmmcollapse import store

if TYPE_CHECKING:
    from gmmcollapse.gmm.sweep import Results, Sweep

__all__ = [
    "AXIS_NAMES",
    "CHUNK_BYTES",
    "COMPILE_SECONDS",
    "GENERATOR_PARAMS",
    "PARAM_FLAGS",
    "STARTUP_SECONDS",
    "THEORY_FUNCTIONS",
    "check_sim_flags",
    "format_dry_run",
    "format_simulate_plan",
    "format_simulation",
    "format_sweep",
    "format_theory",
    "make_sweep",
    "parse_axis",
    "retraining_values",
    "simulate_plan",
    "simulate_point",
    "simulate_text",
    "sweep_json",
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

#: the parameters a sweep may put on an ``--axis`` (the ``GMMParams`` fields and ``d``)
AXIS_NAMES: tuple[str, ...] = tuple(
    k for k, _ in PARAM_FLAGS if k != "n_syn" and not k.endswith(("_pos", "_neg"))
)

#: bytes of one chunk of ``simulate``'s seeds, as :func:`simulate_plan` models them
CHUNK_BYTES = 2**30


#: the start-up time of a command (Python, JAX and the package imported) in the dry-run
#: estimates: a model, measured on a 2-core CPU (1.5 s)
STARTUP_SECONDS = 1.5
#: the time to compile one program (a sweep's static group, the theory, or ``simulate``'s
#: chunk) in the dry-run estimates: a model, measured on a 2-core CPU (2.7 to 4.4 s by path);
#: a program already in the compile cache costs much less
COMPILE_SECONDS = 4.0

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


def check_sim_flags(
    names: Iterable[str], generator: str = "flip", mix_real: bool = False, command: str = "simulate"
) -> None:
    """Refuse parameters that a simulation of this structure would silently ignore.

    ``names`` are the parameters given (fixed values and axes). One-line ``ValueError`` for:
    the class-specific rates and ``n_syn`` (not simulated); another generator's parameters
    (:data:`GENERATOR_PARAMS`: e.g. ``p`` with ``generator="linear"``); ``mix_real`` without
    ``n_real``; ``n_real`` with neither the ridge generator nor ``mix_real``.

    Example:
        >>> check_sim_flags({"n", "d", "snr", "p"}, "flip")
        >>> check_sim_flags({"p"}, "linear")
        Traceback (most recent call last):
        ...
        ValueError: --p do(es) not apply to --generator linear (it takes --theta-gen)
    """
    from gmmcollapse._validate import check_choice

    check_choice("generator", generator, GENERATOR_PARAMS)
    names = set(names)
    unsupported = sorted(k for k in names if k == "n_syn" or k.endswith(("_pos", "_neg")))
    if unsupported:
        raise ValueError(
            f"{command} does not take {_flags(unsupported)} (use --n for synthesized samples)"
        )
    own = GENERATOR_PARAMS[generator]
    stray = [
        k
        for g, ks in GENERATOR_PARAMS.items()
        if g != generator
        for k in ks
        if k in names and k not in own and k != "n_real"
    ]
    if stray:
        raise ValueError(
            f"{_flags(stray)} do(es) not apply to --generator {generator} (it takes {_flags(own)})"
        )
    if mix_real and "n_real" not in names:
        raise ValueError("--mix-real needs --n-real (the real samples added to every round)")
    if "n_real" in names and generator != "ridge" and not mix_real:
        raise ValueError(
            "--n-real applies to --generator ridge or with --mix-real; alone it changes nothing"
        )


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


def _prepare(
    given: Mapping[str, float],
    *,
    seeds: int,
    generator: str,
    learner: str,
    rounds: int,
    data: str,
    mix_real: bool,
    n_test: int,
    dtype: str,
    path: str,
    chunk_bytes: float,
):
    """Validate a ``simulate`` request and plan it: ``(params, chosen Plan, plan dict)``.

    Everything is checked, and nothing compiled or computed: the values, the flags that would
    be ignored (:func:`check_sim_flags`), and whether one seed fits the memory limit
    (:func:`~gmmcollapse.gmm.sweep.check_fits`, on the modelled peak).
    """
    from gmmcollapse._validate import check_range
    from gmmcollapse.gmm import SimSpec, make_params, validate_params
    from gmmcollapse.gmm.paths import plan
    from gmmcollapse.gmm.sweep import check_fits, memory_limit, peak_bytes, run_bytes, run_flops

    for name in ("n", "d", "snr"):
        if given.get(name) is None:
            raise ValueError(f"--{name} is required")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 2:
        raise ValueError(f"seeds must be a whole number >= 2, got {seeds}")
    for name in ("n", "d"):
        v = given[name]
        if not (v >= 1 and float(v).is_integer()):
            raise ValueError(f"{name} must be a whole number >= 1, got {v:g}")
    check_range("chunk_bytes", chunk_bytes, 0.0, lo_open=True)
    check_sim_flags([k for k, v in given.items() if v is not None], generator, mix_real)
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
    pts = {k: np.asarray(v)[None] for k, v in params._asdict().items()}
    chosen = plan(spec, pts, path)
    check_fits(chosen.path, chosen.spec, 1, pts=pts)  # impossible sizes: refused here
    limit, source = memory_limit()
    per_seed = peak_bytes(chosen.path, chosen.spec)
    budget = min(float(chunk_bytes), limit)
    most = int(max(1, min(seeds, budget // per_seed)))
    chunks = -(-seeds // most)
    chunk = -(-seeds // chunks)  # balanced: the last chunk pads as few seeds as it can
    info = {
        "command": "simulate",
        "n": int(spec.n_max),
        "d": int(spec.d),
        "seeds": int(seeds),
        "path": chosen.path,
        "chunk": chunk,
        "chunks": chunks,
        "data_bytes_per_seed": int(run_bytes(chosen.path, chosen.spec)),
        "bytes_per_seed": int(per_seed),
        "bytes_per_chunk": int(per_seed * chunk),
        "chunk_budget": budget,
        "memory_limit": limit,
        "memory_source": source,
        # every chunk is one compiled program (the last one padded): padded seeds compute too
        "flops": chunks * chunk * run_flops(chosen.path, chosen.spec),
        "programs": 1,
    }
    return params, chosen, info


def simulate_plan(
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
    chunk_bytes: float = CHUNK_BYTES,
    measure: bool = True,
) -> dict:
    """What :func:`simulate_point` would do with these arguments, computing nothing.

    Validates everything :func:`simulate_point` does (a too-large request is refused here
    too) and returns the path, the seeds per chunk (``chunk``) and the number of chunks, the
    modelled memory of one seed and of one chunk (:data:`~gmmcollapse.gmm.sweep.PEAK_FACTOR` times the sampled data;
    chunks are sized to ``min(chunk_bytes, memory limit)``), the memory limit and where it
    comes from (:func:`~gmmcollapse.gmm.sweep.memory_limit`) and the FLOPs. With ``measure``
    also this machine's NumPy matmul rate and the time estimate: ``compute_seconds`` (FLOPs
    at that rate), ``overhead_seconds`` (the modelled start-up and compile time,
    :data:`STARTUP_SECONDS` + :data:`COMPILE_SECONDS`) and their sum ``seconds``.
    """
    del seed  # the plan does not depend on it
    _, chosen, info = _prepare(
        given, seeds=seeds, generator=generator, learner=learner, rounds=rounds, data=data,
        mix_real=mix_real, n_test=n_test, dtype=dtype, path=path, chunk_bytes=chunk_bytes,
    )  # fmt: skip
    if measure:
        from gmmcollapse.gmm.sweep import matmul_rate

        _add_estimate(info, matmul_rate(chosen.spec.dtype))
    return info


def _add_estimate(info: dict, rate: float, processes: int = 1) -> None:
    info["matmul_flops_per_s"] = rate
    info["compute_seconds"] = info["flops"] / (rate * processes)
    info["overhead_seconds"] = STARTUP_SECONDS + info["programs"] * COMPILE_SECONDS
    info["seconds"] = info["compute_seconds"] + info["overhead_seconds"]


def _estimate_text(info: Mapping[str, Any]) -> str:
    programs = info["programs"]
    return (
        f"estimated time: {info['seconds']:.3g} s = {info['compute_seconds']:.3g} s computing "
        f"({info['flops']:.3g} FLOP at {info['matmul_flops_per_s'] / 1e9:.3g} GFLOP/s, this "
        f"machine's NumPy matmul rate) + {info['overhead_seconds']:.3g} s start-up and "
        f"compilation (modelled: {STARTUP_SECONDS:g} s start-up, {programs} compiled "
        f"program{'s' if programs != 1 else ''} x {COMPILE_SECONDS:g} s; less for programs "
        f"in the compile cache)"
    )


def format_simulate_plan(info: Mapping[str, Any]) -> str:
    """The plan of :func:`simulate_plan` as text: path, chunks, memory and time estimate."""
    chunk, chunks = info["chunk"], info["chunks"]
    pad = chunks * chunk - info["seeds"]
    padded = f" (the last padded by {pad})" if pad else ""
    per_seed, data = _bytes(info["bytes_per_seed"]), _bytes(info["data_bytes_per_seed"])
    budget, limit = _bytes(info["chunk_budget"]), _bytes(info["memory_limit"])
    lines = [
        f"simulate: n {info['n']}, d {info['d']}, {info['seeds']} seeds, {info['path']} path",
        f"chunks: {chunks} of {chunk} seed(s){padded}, one compiled program",
        (
            f"memory per chunk: {_bytes(info['bytes_per_chunk'])} = {chunk} x {per_seed} per "
            f"seed (modelled: its sampled data, {data}, and XLA's working memory)"
        ),
        f"memory budget per chunk: {budget}; memory limit {limit} ({info['memory_source']})",
    ]
    if "seconds" in info:
        lines.append(_estimate_text(info))
    lines.append("dry run: nothing computed")
    return "\n".join(lines)


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
    chunk_bytes: float = CHUNK_BYTES,
) -> dict:
    """Simulate at one point: the mean accuracy and its standard error over ``seeds`` runs.

    Args:
        given: ``n``, ``d``, ``snr`` (required) and any of ``p``, ``phi``, ``psi``, ``lam``,
            ``theta_gen``, ``theta_ver``, ``tau``, ``n_real``, ``lam_gen``, ``beta``,
            ``gamma``, ``sigma``; a parameter this structure would ignore is refused
            (:func:`check_sim_flags`).
        seeds, seed: the number of runs and the base PRNG seed.
        generator, learner, rounds, data, n_test, dtype: as in :class:`~gmmcollapse.gmm.SimSpec`.
        mix_real: add the ``n_real`` real samples to every round.
        path: ``"auto"`` (the fastest exact path, as a sweep chooses) or a path's name.
        chunk_bytes: the memory budget of one chunk of seeds (the modelled peak, see
            :func:`simulate_plan`; capped by the memory limit).

    Returns:
        ``{"mean", "se", "path", "measured": {...}}`` (the last round), with
        ``mean_per_round`` / ``se_per_round`` when ``rounds > 1``; NaN measured rates are
        ``None``, so ``json.dumps`` of it is strict JSON. Seeds run in chunks that fit
        ``chunk_bytes``, every seed keeping its key whatever the chunking; seeds that fit one
        chunk run as one ``jax.vmap`` over all of them. A request whose one seed cannot fit
        the memory limit is refused (``ValueError`` naming the memory and a path that fits)
        before anything is compiled.
    """
    import jax

    from gmmcollapse.gmm import summarize

    params, chosen, info = _prepare(
        given, seeds=seeds, generator=generator, learner=learner, rounds=rounds, data=data,
        mix_real=mix_real, n_test=n_test, dtype=dtype, path=path, chunk_bytes=chunk_bytes,
    )  # fmt: skip
    keys = jax.random.split(jax.random.key(seed), seeds)
    # all chunks are one compiled program (the last one padded); every seed keeps its key
    chunk = info["chunk"]
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
    """The result of :func:`simulate_point` as text: accuracy +- SE, the measured rates
    (labelled ``measured``: they are counted in the simulation, not the inputs) and, over
    several rounds, the mean accuracy per round."""
    head = (
        f"accuracy  {out['mean']:.6f} +- {out['se']:.6f}  (mean +- SE over {seeds} seeds, "
        f"{out['path']} path, {seconds:.2f} s)"
    )
    lines = [head]
    for k, v in out["measured"].items():
        lines.append(f"measured {k:<13} {'nan' if v is None else f'{v:.6f}'}")
    if "mean_per_round" in out:
        lines.append("per round " + " ".join(f"{v:.4f}" for v in out["mean_per_round"]))
    return "\n".join(lines)


def simulate_text(
    given: Mapping[str, float], as_json: bool = False, dry_run: bool = False, **options: Any
) -> str:
    """:func:`simulate_point` (``options`` are its keywords) printed as JSON or as text; with
    ``dry_run`` the plan of :func:`simulate_plan` instead (nothing computed)."""
    if dry_run:
        info = simulate_plan(given, **options)
        return store.dumps(info) if as_json else format_simulate_plan(info)
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
    :func:`parse_axis` texts, ``given`` the fixed values.

    Refused (one-line ``ValueError``): an axis that is not in :data:`AXIS_NAMES`, the same
    axis twice, a parameter both on an axis and fixed, ``seeds = 1`` (0 is theory only; a
    standard error needs 2), and the parameters :func:`check_sim_flags` refuses (the
    class-specific rates, ``n_syn``, another generator's parameters, ``mix_real`` without
    ``n_real``).

    Example:
        >>> sw = make_sweep({"d": 8, "snr": 1.0, "n": 50}, ["p=0:1:3"], seeds=2)
        >>> sw.shape, dict(sw.fixed)
        ((3,), {'n': 50, 'd': 8, 'snr': 1.0})
    """
    from gmmcollapse.gmm.sweep import Sweep

    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 0:
        raise ValueError(f"seeds must be 0 (theory only) or a whole number >= 2, got {seeds}")
    if seeds == 1:
        raise ValueError(
            "seeds must be 0 (theory only) or a whole number >= 2, got 1 (a standard error "
            "needs two runs)"
        )
    grid: dict[str, np.ndarray] = {}
    for text in axes:
        key, values = parse_axis(text)
        if key not in AXIS_NAMES:
            raise ValueError(f"axis {key}: the name must be one of {', '.join(AXIS_NAMES)}")
        if key in grid:
            raise ValueError(f"--axis {key} is given twice; give each axis once")
        grid[key] = values
    fixed = {k: v for k, _ in PARAM_FLAGS if (v := given.get(k)) is not None}
    both = [k for k in fixed if k in grid]
    if both:
        flag = _flags(both[:1])
        raise ValueError(
            f"{flag} and --axis {both[0]}=... are both given; give a swept parameter as an axis "
            "only"
        )
    check_sim_flags(set(fixed) | set(grid), generator, mix_real, "sweep")
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


def _sweep_label(name: str) -> str:
    """``sweep NAME`` ("sweep" alone for the default name, not "sweep sweep")."""
    return "sweep" if name in ("", "sweep") else f"sweep {name}"


def format_dry_run(plan: Mapping[str, Any], theory: bool = True) -> str:
    """The plan of :func:`gmmcollapse.gmm.sweep.dry_run` as text: the grid, a table of the
    static groups (path, chunks, memory, GFLOP) and the time estimate: the FLOPs at the
    measured matmul rate plus the modelled start-up and compile time (:data:`STARTUP_SECONDS`,
    :data:`COMPILE_SECONDS` per static group, and one more for the theory with ``theory``)."""
    shape = "x".join(map(str, plan["grid_shape"])) or "1"
    head = (
        f"{_sweep_label(plan['name'])}: grid {shape} = {plan['grid_size']} points x "
        f"{plan['seeds']} seeds = {plan['runs']} runs; {plan['devices']} device(s), "
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
        info = {
            "flops": plan["flops"],
            "programs": len(plan["groups"]) + bool(theory),
            "matmul_flops_per_s": plan["matmul_flops_per_s"],
        }
        _add_estimate(info, plan["matmul_flops_per_s"], plan.get("processes", 1))
        lines.append(_estimate_text(info))
    lines.append("dry run: nothing computed")
    return "\n".join(lines)


#: the columns of the ``sweep`` table, in order (those in the results and not all NaN)
_TABLE = ("theory/ridge_accuracy", "theory/infinite_data_accuracy", "sim_mean/acc", "sim_se/acc")


def format_sweep(res: Results, shape: Sequence[int], out: str, table: bool = True) -> str:
    """A finished sweep (:class:`~gmmcollapse.gmm.sweep.Results` written to ``out``): one
    line, and with ``table`` for grids of at most 200 points a table of the theory and the
    simulated accuracy (last round) at every point; a column that is NaN at every point (a
    prediction the theory does not make for this structure) is left out."""
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
    size = grids[0].size
    cols = {c: res[c].reshape(size, -1)[:, -1] for c in _TABLE if c in res.data}
    cols = {c: v for c, v in cols.items() if not np.all(np.isnan(v))}
    if table and size <= 200:
        heads = names + [c.split("/")[-1] if not c.startswith("sim_se") else "se" for c in cols]
        lines.append("  ".join(f"{c:>12}" for c in heads))
        for i in range(size):
            row = [g.reshape(-1)[i] for g in grids] + [v[i] for v in cols.values()]
            lines.append("  ".join(f"{v:>12.6g}" for v in row))
    return "\n".join(lines)


def sweep_json(res: Results, out: str) -> str:
    """A finished sweep as one JSON object: ``out``, ``grid_shape``, ``seconds``, ``paths``,
    the chunk counts, ``axes`` and every array of the results (``theory/...``,
    ``sim_mean/...``, ``sim_se/...``) as nested lists shaped like the grid (plus rounds); NaN
    is ``null`` (strict JSON, :func:`gmmcollapse.store.dumps`)."""
    meta = res.meta
    doc = {
        "out": str(out),
        "grid_shape": [len(v) for v in res.axes.values()],
        "seconds": meta.get("seconds"),
        "paths": sorted({g["path"] for g in meta.get("groups") or []}),
        "chunks": meta.get("chunks"),
        "chunks_computed": meta.get("chunks_computed"),
        "axes": {k: np.asarray(v).tolist() for k, v in res.axes.items()},
        "data": {k: np.asarray(v).tolist() for k, v in res.data.items()},
    }
    return store.dumps(doc)
