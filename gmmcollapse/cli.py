"""``gmmcollapse`` command line: a thin layer that parses flags and calls the library.

Subcommands: ``theory``, ``simulate``, ``sweep``, ``eigen``, ``summarize``, ``reproduce``. Invalid values print one
line naming the parameter and exit with code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time

from gmmcollapse import store
from gmmcollapse.experiments import MODEL_EXPERIMENTS

__all__ = ["main"]

# theory functions the CLI can evaluate, in print order
_THEORY = (
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

# the generator-specific flags (retraining_accuracy / --generator)
_GENERATOR_FLAGS = {"flip": ("p",), "linear": ("theta_gen",), "ridge": ("n_real", "lam_gen")}

_FLOAT_FLAGS = (
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


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _add_param_flags(parser: argparse.ArgumentParser, names=None) -> None:
    for name, help_text in _FLOAT_FLAGS:
        if names is None or name in names:
            flag = "--" + name.replace("_", "-")
            parser.add_argument(flag, dest=name, type=_float, default=None, help=help_text)


def _jsonable(v):
    import numpy as np

    if hasattr(v, "_asdict"):
        return {k: _jsonable(x) for k, x in v._asdict().items()}
    arr = np.asarray(v)
    return arr.item() if arr.ndim == 0 else arr.tolist()


def _fmt(v) -> str:
    import numpy as np

    if hasattr(v, "_asdict"):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v._asdict().items())
    arr = np.asarray(v)
    if arr.ndim:
        return "[" + ", ".join(f"{float(x):.10g}" for x in arr.reshape(-1)) + "]"
    return f"{float(v):.10g}"


def _retraining_values(given: dict, generator: str, rounds: int, data: str) -> dict:
    """``retraining_accuracy`` (per round) and, for ``replace``, ``retraining_limit``."""
    from gmmcollapse import theory as T

    missing = [k for k in ("n", "d", "snr") if k not in given]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise ValueError(f"--rounds / --generator need {flags}")
    if generator != "ridge" and "n_real" in given:
        raise ValueError(
            "--n-real with --rounds applies to --generator ridge only (the retraining theory "
            "does not mix real rows into every round)"
        )
    kw = {k: given[k] for k in _GENERATOR_FLAGS[generator] if k in given}
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
    given: dict, generator: str | None = None, rounds: int | None = None, data: str = "replace"
) -> dict:
    """Every theory function whose required arguments are all in ``given``: name -> value.

    With ``generator`` (flip, linear, ridge) the flags of other generators are refused, the
    single-round functions of other generators are skipped, and with ``rounds`` (or the ridge
    generator, which only the retraining theory covers) the per-round accuracy of iterated
    retraining and its long-run limit are added.
    """
    from gmmcollapse import theory as T

    if generator is not None:
        stray = [
            k
            for g, names in _GENERATOR_FLAGS.items()
            if g != generator
            for k in names
            if k in given and not (k == "n_real" and generator != "ridge")
        ]
        if stray:
            flags = ", ".join("--" + k.replace("_", "-") for k in stray)
            raise ValueError(f"{flags} do(es) not apply to --generator {generator}")
    skip = {
        None: set(),
        "flip": {"linear_keep_rates", "linear_infinite_data_accuracy", "linear_ridge_accuracy"},
        "linear": {
            "flip_linear_keep_rates",
            "flip_linear_infinite_data_accuracy",
            "flip_linear_ridge_accuracy",
            "finite_breakdown_point",
        },
    }.get(generator, set(_THEORY) - {"breakdown_point", "bayes_accuracy"})

    alias = {"n_syn": "n"}  # mixed_ridge_accuracy's n_syn falls back to --n
    out = {}
    for name in _THEORY:
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
        out.update(_retraining_values(given, generator or "flip", rounds or 1, data))
    return out


def _cmd_theory(args) -> int:
    given = {k: v for k, v in vars(args).items() if k in dict(_FLOAT_FLAGS) and v is not None}
    if args.rounds is not None and args.rounds < 1:
        raise ValueError(f"rounds must be a whole number >= 1, got {args.rounds}")
    values = theory_values(given, args.generator, args.rounds, args.data)
    if not values:
        print(
            "no prediction is determined by these flags (try --snr --p --phi --psi)",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(store.dumps({k: _jsonable(v) for k, v in values.items()}))
    else:
        width = max(map(len, values))
        for k, v in values.items():
            print(f"{k:<{width}}  {_fmt(v)}")
    return 0


def _sim_params(args):
    from gmmcollapse.gmm import make_params

    kw = {}
    for name in (
        "p",
        "phi",
        "psi",
        "lam",
        "theta_gen",
        "theta_ver",
        "tau",
        "n_real",
        "lam_gen",
        "beta",
        "gamma",
        "sigma",
    ):
        v = getattr(args, name, None)
        if v is not None:
            kw[name] = v
    if args.mix_real:
        kw["mix_real"] = 1.0
    return make_params(args.n, args.snr, **kw)


def _require(args, *names):
    for name in names:
        if getattr(args, name) is None:
            raise ValueError(f"--{name.replace('_', '-')} is required")


def _spec(args, n_max: int, d: int):
    from gmmcollapse.gmm import SimSpec

    return SimSpec(
        n_max=n_max,
        d=d,
        generator=args.generator,
        learner=args.learner,
        rounds=args.rounds,
        data=args.data,
        n_real_max=int(args.n_real or 0),
        n_test=args.n_test,
        dtype=args.dtype,
    )


def _cmd_simulate(args) -> int:
    import jax
    import numpy as np

    from gmmcollapse.gmm import summarize, validate_params
    from gmmcollapse.gmm.paths import plan

    _require(args, "n", "d", "snr")
    if args.seeds < 2:
        raise ValueError(f"seeds must be a whole number >= 2, got {args.seeds}")
    for name in ("n", "d"):
        v = getattr(args, name)
        if not (v >= 1 and float(v).is_integer()):
            raise ValueError(f"{name} must be a whole number >= 1, got {v:g}")
    spec = _spec(args, int(args.n), int(args.d))
    params = _sim_params(args)
    validate_params(params, spec)
    # the same path choice as a sweep (one point: a group of one, leading axis 1)
    chosen = plan(spec, {k: np.asarray(v)[None] for k, v in params._asdict().items()}, args.path)
    t0 = time.time()
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    # seeds run in chunks that fit a 1 GiB budget (the sweep's memory model), all chunks one
    # compiled program (the last one padded); every seed keeps its key whatever the chunking
    from gmmcollapse.gmm.sweep import run_bytes

    chunk = int(max(1, min(args.seeds, 2**30 // max(1, run_bytes(chosen.path, chosen.spec)))))
    run = jax.jit(jax.vmap(chosen.simulate, in_axes=(0, None, None)), static_argnums=2)
    parts = []
    for start in range(0, args.seeds, chunk):
        sel = np.minimum(np.arange(start, start + chunk), args.seeds - 1)
        part = run(keys[sel], params, chosen.spec)
        parts.append(jax.tree.map(lambda v, k=args.seeds - start: np.asarray(v)[:k], part))
    res = jax.tree.map(lambda *v: np.concatenate(v), *parts)
    mean, se = summarize(res)
    out = {"mean": float(mean.acc[-1]), "se": float(se.acc[-1]), "path": chosen.path}
    if args.rounds > 1:
        out["mean_per_round"] = np.asarray(mean.acc).tolist()
        out["se_per_round"] = np.asarray(se.acc).tolist()
    # NaN (e.g. psi when no label was wrong) becomes null so the JSON stays strict
    out["measured"] = {
        k: (None if math.isnan(v) else v)
        for k in ("p", "phi", "psi", "p_star", "keep_fraction", "gen_acc")
        for v in [float(getattr(mean, k)[-1])]
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"accuracy  {out['mean']:.6f} +- {out['se']:.6f}  (mean +- SE over {args.seeds} seeds, "
            f"{chosen.path} path, {time.time() - t0:.2f} s)"
        )
        for k, v in out["measured"].items():
            print(f"{k:<13} {'nan' if v is None else f'{v:.6f}'}")
        if args.rounds > 1:
            print("per round", " ".join(f"{v:.4f}" for v in out["mean_per_round"]))
    return 0


def _parse_axis(text: str):
    """``name=a:b:k`` (k points, linear), ``name=a:b:k:log`` or ``name=v1,v2,...``."""
    import numpy as np

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


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _print_dry_run(plan: dict) -> None:
    shape = "x".join(map(str, plan["grid_shape"])) or "1"
    print(
        f"sweep {plan['name']}: grid {shape} = {plan['grid_size']} points x {plan['seeds']} "
        f"seeds = {plan['runs']} runs; {plan['devices']} device(s), "
        f"{plan['processes']} process(es)"
    )
    if plan["groups"]:
        head = ("group", "d", "n_max", "path", "points", "chunk", "chunks", "mem/device", "GFLOP")
        rows = [
            (
                i,
                g["d"],
                g["n_max"],
                g["path"],
                g["points"],
                g["chunk"],
                g["chunks"],
                _bytes(g["bytes_per_device"]),
                f"{g['flops'] / 1e9:.3g}",
            )
            for i, g in enumerate(plan["groups"])
        ]
        widths = [max(len(str(r[j])) for r in [head, *rows]) for j in range(len(head))]
        for r in [head, *rows]:
            print("  ".join(f"{v!s:>{w}}" for v, w in zip(r, widths)))
        print("mem/device: sampled data of one point's seeds (a device runs its points one by one)")
    if "seconds" in plan:
        print(
            f"estimated time: {plan['seconds']:.3g} s ({plan['flops']:.3g} FLOP at "
            f"{plan['matmul_flops_per_s'] / 1e9:.3g} GFLOP/s, this machine's NumPy matmul rate)"
        )
    print("dry run: nothing computed")


def _cmd_sweep(args) -> int:
    import numpy as np

    if args.distributed:
        import jax

        # before any JAX computation; arguments not given are auto-detected (Cloud TPU, Slurm,
        # Open MPI, Kubernetes) or read from JAX_COORDINATOR_ADDRESS, as JAX documents
        kw = {
            "coordinator_address": args.coordinator_address,
            "num_processes": args.num_processes,
            "process_id": args.process_id,
        }
        jax.distributed.initialize(**{k: v for k, v in kw.items() if v is not None})

    from gmmcollapse.gmm.predict import predict
    from gmmcollapse.gmm.sweep import Sweep, dry_run, run_sweep

    axes = dict(_parse_axis(a) for a in args.axis)
    fixed = {}
    for name, _ in _FLOAT_FLAGS:
        v = getattr(args, name, None)
        if v is not None and name not in axes:
            fixed[name] = v
    if args.mix_real:
        fixed["mix_real"] = 1.0
    spec = {
        "generator": args.generator,
        "learner": args.learner,
        "rounds": args.rounds,
        "data": args.data,
        "n_test": args.n_test,
        "dtype": args.dtype,
    }
    unsupported = sorted(k for k in fixed if k == "n_syn" or k.endswith(("_pos", "_neg")))
    if unsupported:
        flags = ", ".join("--" + k.replace("_", "-") for k in unsupported)
        raise ValueError(f"sweep does not take {flags} (use --n for synthesized samples)")
    sweep = Sweep(
        args.name,
        axes=axes,
        fixed=fixed,
        spec=spec,
        seeds=args.seeds,
        seed=args.seed,
        chunk=args.chunk,
        path=args.path,
    )
    if args.dry_run:
        _print_dry_run(dry_run(sweep))
        return 0
    structure = {"rounds": args.rounds, "data": args.data, "learner": args.learner}
    theory = None if args.no_theory else (lambda pts: predict(pts, args.generator, **structure))
    res = run_sweep(sweep, theory, args.out, progress=not args.quiet, wait=args.wait)
    if res is None:  # a distributed run's process > 0: its chunks are in the parts folder
        import jax

        print(
            f"process {jax.process_index()} of {jax.process_count()}: wrote its chunks to "
            f"{args.out}.parts; process 0 merges"
        )
        return 0
    paths = ", ".join(sorted({g["path"] for g in res.meta.get("groups", [])})) or "theory only"
    done = ""
    if "chunks" in res.meta:
        done = f", {res.meta['chunks_computed']} of {res.meta['chunks']} chunks computed"
    print(
        f"wrote {args.out}: grid {'x'.join(map(str, sweep.shape))}, {res.meta['seconds']:.1f} s"
        f" ({paths}{done})"
    )
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
    if not args.quiet and len(grids[0].reshape(-1)) <= 200:
        print(
            "  ".join(
                f"{c:>12}"
                for c in names
                + [c.split("/")[-1] if not c.startswith("sim_se") else "se" for c in cols]
            )
        )
        for i in range(grids[0].size):
            row = [g.reshape(-1)[i] for g in grids] + [
                res[c].reshape(grids[0].size, -1)[i, -1] for c in cols
            ]
            print("  ".join(f"{v:>12.6g}" for v in row))
    return 0


def _parse_overrides(items: list[str], config_cls) -> dict:
    """``--set key=value`` pairs for an experiment config, converted to the field's type."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(config_cls)
    fields = {}
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):  # an embedded config: its fields as "name.field"
            sub_hints = typing.get_type_hints(tp)
            fields |= {f"{f.name}.{g.name}": _type_name(sub_hints[g.name])
                       for g in dataclasses.fields(tp)}  # fmt: skip
        else:
            fields[f.name] = _type_name(tp)
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields or key == "scale":
            allowed = ", ".join(sorted(set(fields) - {"scale"}))
            raise ValueError(f"--set expects KEY=VALUE with KEY one of {allowed}; got {item!r}")
        kind = fields[key]
        try:
            if kind.startswith("tuple"):
                parts = [t.strip() for t in text.split(",") if t.strip()]
                out[key] = tuple(_convert(t, kind.partition("[")[2]) for t in parts)
            elif "None" in kind and text.lower() in ("", "none"):
                out[key] = None
            else:
                out[key] = _convert(text, kind)
        except (ValueError, argparse.ArgumentTypeError):
            raise ValueError(f"--set {key}: cannot read {text!r} as {kind}") from None
    return out


def _type_name(tp) -> str:
    """``tuple[int, ...]`` -> "tuple[int, ...]", ``int`` -> "int", ``str | None`` -> "str | None"."""
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _convert(text: str, kind: str):
    """``text`` as the first of bool / int / float / str named in the type ``kind``."""
    if kind.startswith("bool"):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError
        return text.lower() in ("1", "true", "yes")
    if kind.startswith("int"):
        v = _float(text)
        if v != int(v):
            raise ValueError
        return int(v)
    if kind.startswith("float"):
        return _float(text)
    return text


def _cmd_experiment(args) -> int:
    """``gmmcollapse eigen`` / ``gmmcollapse summarize``: plan, run, figures, summary."""
    from gmmcollapse.experiments import load

    exp, plots = load(args.command, plots_only=args.figures_only)
    t0 = time.time()
    if args.figures_only:  # only reads OUT/results.json: no config, no data needed
        out = args.out or os.path.join("results", args.command, args.scale)
        res = plots.load_run(out)
    else:
        config_cls = type(exp.SCALES[args.scale])
        overrides = _parse_overrides(args.set, config_cls)
        if getattr(args, "data", None) is not None:
            overrides["data"] = args.data
            overrides.setdefault("format", "auto")  # a preset's format is for its own data
        if getattr(args, "format", None) is not None:
            overrides["format"] = args.format
        data = overrides.get("data")
        if data and not data.startswith("hf:"):
            overrides["data"] = os.path.abspath(data)  # the run must find it when resumed
        cfg = exp.make_config(args.scale, **overrides)
        print(exp.describe(cfg))
        if args.dry_run:
            return 0
        out = args.out or os.path.join("results", args.command, cfg.scale)
        res = exp.run(cfg, out, progress=not args.quiet, log=None if args.quiet else print)
    figs = args.figures or os.path.join(out, "figures")
    for name in plots.FIGURES:
        paths, _ = plots.draw(name, out, figs)
        print(f"figure {paths[0]}")
    print(exp.report(res) if exp is not None else load(args.command)[0].report(res))
    print(f"done in {time.time() - t0:.1f} s; results in {os.path.join(out, 'results.json')}")
    return 0


def _cmd_reproduce(args) -> int:
    from gmmcollapse.experiments import MODEL_EXPERIMENTS, load
    from gmmcollapse.experiments.gmm import EXPERIMENTS, run_experiment
    from gmmcollapse.plots.gmm import draw

    domains = {"gmm": list(EXPERIMENTS)}
    for command in MODEL_EXPERIMENTS:
        domains[command] = list(load(command, plots_only=True)[1].FIGURES)
    if args.only not in (None, *domains):
        raise ValueError(f"only must be one of {', '.join(domains)}, got {args.only!r}")
    names = [(d, n) for d in ([args.only] if args.only else domains) for n in domains[d]]
    label = lambda d, n: n if d == "gmm" else f"{d}_{n}"
    if args.figure:
        full = {label(d, n): (d, n) for d, n in names}
        unknown = set(args.figure) - set(full)
        if unknown:
            raise ValueError(
                f"figure must be among {', '.join(full)}, got {', '.join(sorted(unknown))}"
            )
        names = [full[f] for f in full if f in args.figure]
    t_all = time.time()
    done: set[str] = set()
    for domain, name in names:
        t0 = time.time()
        if domain == "gmm":
            gmm_dir = os.path.join(args.results, "gmm")
            if not args.figures_only:
                run_experiment(name, args.scale, gmm_dir, progress=not args.quiet)
            paths, headline = draw(name, gmm_dir, args.out)
        else:
            exp, plots = load(domain, plots_only=args.figures_only)
            run_dir = os.path.join(args.results, domain, args.scale)
            if not args.figures_only and domain not in done:
                exp.run(exp.make_config(args.scale), run_dir, progress=not args.quiet, log=None)
                done.add(domain)
            paths, headline = plots.draw(name, run_dir, args.out)
        extra = f"  {json.dumps(headline)}" if headline else ""
        print(
            f"[{time.time() - t0:6.1f} s] {label(domain, name):<19} -> {paths[0]}{extra}",
            flush=True,
        )
    print(f"done in {time.time() - t_all:.1f} s; figures in {os.path.abspath(args.out)}")
    return 0


def _add_experiment_parser(sub, command, *, help, description, example, config):
    p = sub.add_parser(
        command,
        help=help,
        description=description + " Writes OUT/results.json and OUT/figures/. Re-running "
        "with the same --out resumes.",
    )
    p.add_argument("--scale", choices=("smoke", "quick", "paper"), default="quick")
    p.add_argument("--out", default=None, help=f"run directory (default results/{command}/SCALE)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field, e.g. {example} (repeatable; see {config})",
    )
    p.add_argument("--figures", default=None, help="figure directory (default OUT/figures)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (and estimates); run nothing"
    )
    p.add_argument("--figures-only", action="store_true", help="redraw from OUT/results.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=_cmd_experiment)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmmcollapse",
        description="Training on verified synthesized data: Gaussian-mixture theory, simulation and figures.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_th = sub.add_parser("theory", help="print every prediction the given parameters determine")
    _add_param_flags(p_th)
    p_th.add_argument(
        "--generator",
        choices=("flip", "linear", "ridge"),
        default=None,
        help="round 0's generator: flip (--p), linear (--theta-gen) or ridge (--n-real, "
        "--lam-gen); its flags only (default: every family the flags determine)",
    )
    p_th.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="also print the per-round accuracy of iterated retraining and its long-run limit",
    )
    p_th.add_argument(
        "--data",
        choices=("replace", "accumulate"),
        default="replace",
        help="retraining data (default replace; accumulate: exact for n = inf only)",
    )
    p_th.add_argument(
        "--json", action="store_true", help="print a JSON object keyed by function name"
    )
    p_th.set_defaults(func=_cmd_theory)

    def sim_flags(p):
        _add_param_flags(p)
        p.add_argument("--seeds", type=int, default=32, help="independent runs (default 32)")
        p.add_argument("--seed", type=int, default=0, help="base PRNG seed (default 0)")
        p.add_argument("--generator", choices=("flip", "linear", "ridge"), default="flip")
        p.add_argument("--learner", choices=("ridge", "logistic"), default="ridge")
        p.add_argument("--rounds", type=int, default=1)
        p.add_argument("--data", choices=("replace", "accumulate"), default="replace")
        p.add_argument(
            "--mix-real", action="store_true", help="add the n_real real samples to every round"
        )
        p.add_argument(
            "--n-test", type=int, default=0, help="also report accuracy on this many test samples"
        )
        p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
        p.add_argument(
            "--path",
            choices=("auto", "fast", "projected", "primal", "dual", "streaming"),
            default="auto",
            help="how to simulate (default auto: the fastest exact path; see docs/scale.md)",
        )
        p.add_argument("--json", action="store_true", help='print {"mean": ..., "se": ...} as JSON')

    p_sim = sub.add_parser(
        "simulate", help="simulate at one parameter point; mean accuracy and SE over seeds"
    )
    sim_flags(p_sim)
    p_sim.set_defaults(func=_cmd_simulate)

    p_sw = sub.add_parser(
        "sweep", help="theory and simulation over a named grid, written to a .npz file"
    )
    sim_flags(p_sw)
    p_sw.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=A:B:K[:log] | NAME=V1,V2",
        help="a grid axis (repeatable)",
    )
    p_sw.add_argument("--name", default="sweep")
    p_sw.add_argument("--out", default="results/sweep.npz")
    p_sw.add_argument("--no-theory", action="store_true")
    p_sw.add_argument("--quiet", action="store_true")
    p_sw.add_argument(
        "--chunk", type=int, default=0, help="grid points per compiled call and saved file"
    )
    p_sw.add_argument(
        "--dry-run",
        action="store_true",
        help="print grid size, paths, chunks, memory and time estimates; compute nothing",
    )
    p_sw.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize(), each process computes its share of "
        "the chunks into OUT.parts (a shared filesystem) and process 0 merges",
    )
    p_sw.add_argument("--coordinator-address", default=None, help="with --distributed: host:port")
    p_sw.add_argument("--num-processes", type=int, default=None, help="with --distributed")
    p_sw.add_argument("--process-id", type=int, default=None, help="with --distributed")
    p_sw.add_argument(
        "--wait",
        type=float,
        default=3600.0,
        help="seconds process 0 waits for the other processes' chunks (default 3600)",
    )
    p_sw.set_defaults(func=_cmd_sweep, seeds=16)

    for command, e in MODEL_EXPERIMENTS.items():
        p_exp = _add_experiment_parser(
            sub, command, help=e.help, description=e.description, example=e.example,
            config=e.config,
        )  # fmt: skip
        if e.data_flags:
            p_exp.add_argument(
                "--data",
                default=None,
                help="article/summary pairs: a .jsonl/.csv/.parquet file, or hf:NAME (Hugging "
                "Face datasets, e.g. hf:xlsum; needs a network). Default: the built-in corpus "
                "(paper scale: hf:xlsum)",
            )
            p_exp.add_argument(
                "--format",
                choices=("auto", "xlsum", "xsum", "cnndm"),
                default=None,
                help="field names of --data (default auto: detected)",
            )

    p_re = sub.add_parser("reproduce", help="run the experiments and regenerate every figure")
    p_re.add_argument(
        "--only",
        choices=("gmm", *MODEL_EXPERIMENTS),
        default=None,
        help="one domain (default: all)",
    )
    p_re.add_argument("--scale", choices=("smoke", "quick", "paper"), default="quick")
    p_re.add_argument(
        "--figure",
        action="append",
        default=None,
        help="only this figure (repeatable): a GMM name such as phase, or eigen_warmup, "
        "eigen_pstar, eigen_datasize, summarize_rates, summarize_pstar",
    )
    p_re.add_argument(
        "--results",
        default="results",
        help="root of the result files: RESULTS/gmm/*.npz, RESULTS/eigen/SCALE/, "
        "RESULTS/summarize/SCALE/ (default results)",
    )
    p_re.add_argument("--out", default="figures/out", help="where figures go (default figures/out)")
    p_re.add_argument("--figures-only", action="store_true", help="redraw from existing results")
    p_re.add_argument("--quiet", action="store_true", help="no progress bars")
    p_re.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import jax

    from gmmcollapse._cache import enable_compile_cache

    # the command line, not the library, keeps compiled programs on disk (off with
    # GMMCOLLAPSE_NO_COMPILE_CACHE=1) and computes in 64-bit mode, as the experiments and
    # sweeps were written for; a context, so an in-process caller's setting is restored
    enable_compile_cache()
    try:
        with jax.enable_x64(True):
            return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"gmmcollapse {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TimeoutError as err:
        print(f"gmmcollapse {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
