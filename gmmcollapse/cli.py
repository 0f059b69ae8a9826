"""``gmmcollapse`` command line: a thin layer that parses flags and calls the library.

Subcommands: ``theory``, ``simulate``, ``sweep`` (:mod:`gmmcollapse.gmm.commands`), one per
model experiment of the registry (:data:`gmmcollapse.experiments.MODEL_EXPERIMENTS`: ``eigen``,
``summarize``, ``sort``) and ``reproduce`` (:func:`gmmcollapse.experiments.reproduce`). Invalid
values print one line naming the parameter and exit with code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from gmmcollapse.experiments import MODEL_EXPERIMENTS, check_run_dir
from gmmcollapse.gmm.commands import AXIS_NAMES, PARAM_FLAGS
from gmmcollapse.gmm.spec import PARAM_DEFAULTS

__all__ = ["build_parser", "main"]

SCALES = ("smoke", "quick", "paper")
GENERATORS = ("flip", "linear", "ridge")
DATA = ("replace", "accumulate")


class _HelpFormatter(argparse.HelpFormatter):
    """Every flag's help ends with its default, unless it names one already or has none (a
    switch, or a flag whose absence the help explains)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
        ):
            return text
        return text + " (default: %(default)s)"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _given(args) -> dict:
    """The parameter flags given (``PARAM_FLAGS`` names -> values)."""
    return {k: v for k, _ in PARAM_FLAGS if (v := getattr(args, k, None)) is not None}


def _opts(args, *names) -> dict:
    return {k: getattr(args, k) for k in names}


_SIM_OPTS = ("seeds", "seed", "generator", "learner", "rounds", "data", "mix_real", "n_test",
             "dtype", "path")  # fmt: skip


def _round_data(args) -> None:
    """``args.data``: ``--round-data``, or its old spelling ``--data`` (a hidden alias)."""
    new, old = args.round_data, args.data_alias
    if new is not None and old is not None and new != old:
        raise ValueError(
            f"--round-data {new} and --data {old} disagree (--data is the old spelling of "
            "--round-data); give --round-data once"
        )
    args.data = new or old or "replace"


def _check_out_file(out: str) -> None:
    """``sweep --out`` must name a file (not a directory) whose folder is not a file."""
    if os.path.isdir(out):
        raise ValueError(
            f"--out {out} is a directory; sweep writes one .npz file, e.g. "
            f"--out {os.path.join(out, 'sweep.npz')}"
        )
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):  # the nearest existing folder (the root always exists)
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--out {out}: {parent} is a file, not a directory")


# ---------------------------------------------------------------------------------- commands


def _cmd_theory(args) -> int:
    from gmmcollapse.gmm.commands import format_theory, theory_values

    values = theory_values(_given(args), args.generator, args.rounds, args.data)
    if not values:
        print(
            "no prediction is determined by these flags (try --snr --p --phi --psi)",
            file=sys.stderr,
        )
        return 2
    print(format_theory(values, as_json=args.json))
    return 0


def _cmd_simulate(args) -> int:
    from gmmcollapse.gmm.commands import simulate_text

    opts = _opts(args, *_SIM_OPTS)
    print(simulate_text(_given(args), as_json=args.json, dry_run=args.dry_run, **opts))
    return 0


def _cmd_sweep(args) -> int:
    if args.distributed:
        import jax

        # before any JAX computation; arguments not given are auto-detected (Cloud TPU, Slurm,
        # Open MPI, Kubernetes) or read from JAX_COORDINATOR_ADDRESS, as JAX documents
        kw = _opts(args, "coordinator_address", "num_processes", "process_id")
        jax.distributed.initialize(**{k: v for k, v in kw.items() if v is not None})

    from gmmcollapse import store
    from gmmcollapse.gmm import commands as C
    from gmmcollapse.gmm.sweep import dry_run, run_sweep

    opts = _opts(args, "name", "chunk", *_SIM_OPTS)
    sweep = C.make_sweep(_given(args), args.axis, **opts)
    _check_out_file(args.out)
    if args.dry_run:
        plan = dry_run(sweep)
        print(store.dumps(plan) if args.json else C.format_dry_run(plan, not args.no_theory))
        return 0
    structure = _opts(args, "generator", "rounds", "data", "learner")
    theory = None if args.no_theory else C.sweep_theory(**structure)
    res = run_sweep(sweep, theory, args.out, progress=not args.quiet, wait=args.wait)
    if res is None:  # a distributed run's process > 0: its chunks are in the parts folder
        import jax

        print(
            f"process {jax.process_index()} of {jax.process_count()}: wrote its chunks to "
            f"{args.out}.parts; process 0 merges"
        )
        return 0
    if args.json:
        print(C.sweep_json(res, args.out))
    else:
        print(C.format_sweep(res, sweep.shape, args.out, table=not args.quiet))
    return 0


def _cmd_experiment(args) -> int:
    """``gmmcollapse eigen`` / ``summarize`` / ``sort``: plan, run, figures, summary."""
    from gmmcollapse import experiments as E

    check_run_dir("out", args.out)  # before the config (and any data) is read
    check_run_dir("figures", args.figures)
    cfg = None
    if not args.figures_only:  # --figures-only reads OUT/results.json: no config, no data
        exp = E.load(args.command)[0]
        aliases = getattr(exp, "ALIASES", {})
        overrides = E.parse_overrides(args.set, type(exp.SCALES[args.scale]), aliases)
        flags = (getattr(args, "data", None), getattr(args, "format", None))
        cfg = exp.make_config(args.scale, **E.data_overrides(overrides, *flags))
    E.run_model_experiment(
        args.command, cfg, scale=args.scale, out=args.out, figures=args.figures,
        dry_run=args.dry_run, quiet=args.quiet,
    )  # fmt: skip
    return 0


def _cmd_reproduce(args) -> int:
    from gmmcollapse.experiments import reproduce

    opts = _opts(args, "only", "scale", "figure", "results", "out", "figures_only", "quiet")
    reproduce(**opts, log=functools.partial(print, flush=True))
    return 0


# ------------------------------------------------------------------------------------ parser


def _add_param_flags(parser: argparse.ArgumentParser, simulated: str | None = None) -> None:
    """One ``--name`` flag per parameter; ``simulated`` (the command's name) adds each
    one's simulation default to its help (theory: a flag not given is not assumed)."""
    for name, help_text in PARAM_FLAGS:
        flag = "--" + name.replace("_", "-")
        if simulated and name not in AXIS_NAMES:
            continue  # n_syn and the class-specific rates: theory only
        if simulated and name in ("n", "d", "snr"):
            extra = " (required, as this flag or an --axis)" if simulated == "sweep" else ""
            help_text += extra or " (required)"
        elif simulated and name in PARAM_DEFAULTS and "default" not in help_text:
            help_text += f" (default: {PARAM_DEFAULTS[name]:g})"
        parser.add_argument(flag, dest=name, type=_float, default=None, help=help_text)


def _add_round_data(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--round-data", choices=DATA, default=None, help=help_text)
    # the old spelling, kept working (a hidden alias: summarize's --data is a corpus file)
    p.add_argument("--data", dest="data_alias", choices=DATA, default=None, help=argparse.SUPPRESS)


def _add_sim_flags(p: argparse.ArgumentParser, command: str) -> None:
    _add_param_flags(p, command)
    p.add_argument("--seeds", type=int, default=32, help="independent runs (sweep: per grid point)")
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        default="flip",
        help="round 0's generator: flip (label flips at rate --p), linear (a linear labeller "
        "at angle --theta-gen) or ridge (ridge on --n-real real samples, --lam-gen); another "
        "generator's flags are refused",
    )
    p.add_argument(
        "--learner",
        choices=("ridge", "logistic"),
        default="ridge",
        help="the model retrained on the selected data",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of synthesize -> select -> retrain; later rounds' generator is the "
        "previous round's model",
    )
    _add_round_data(
        p,
        "what each round trains on: replace (its own selected data) or accumulate (the "
        "selected data of every round so far) (default: replace)",
    )
    p.add_argument(
        "--mix-real",
        action="store_true",
        help="add the --n-real real samples to every round's training set (needs --n-real)",
    )
    p.add_argument(
        "--n-test", type=int, default=0, help="also report accuracy on this many test samples"
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="dtype of the sampled data",
    )
    p.add_argument(
        "--path",
        choices=("auto", "fast", "projected", "primal", "dual", "streaming"),
        default="auto",
        help="how to simulate (default auto: the fastest exact path; see docs/scale.md)",
    )


def _add_experiment_parser(sub, command: str, e) -> None:
    p = sub.add_parser(
        command,
        help=e.help,
        description=e.description + " Writes OUT/results.json and OUT/figures/. Re-running "
        "with the same --out resumes.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--scale", choices=SCALES, default="quick", help="size preset")
    p.add_argument("--out", default=None, help=f"run directory (default results/{command}/SCALE)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field, e.g. {e.example} (repeatable; see {e.config}; "
        "default: the preset's values)",
    )
    p.add_argument("--figures", default=None, help="figure directory (default OUT/figures)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (and estimates); run nothing"
    )
    p.add_argument("--figures-only", action="store_true", help="redraw from OUT/results.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    if e.data_flags:
        p.add_argument(
            "--data",
            default=None,
            help="article/summary pairs: a .jsonl/.csv/.parquet file, or hf:NAME (Hugging "
            "Face datasets, e.g. hf:xlsum; needs a network). Default: the built-in corpus "
            "(paper scale: hf:xlsum); not together with --set data=",
        )
        p.add_argument(
            "--format",
            choices=("auto", "xlsum", "xsum", "cnndm"),
            default=None,
            help="field names of --data (default auto: detected)",
        )
    p.set_defaults(func=_cmd_experiment)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmmcollapse",
        description="Training on verified synthesized data: Gaussian-mixture theory, simulation and figures.",
        formatter_class=_HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "theory",
        help="print every prediction the given parameters determine",
        description="Print every prediction the given parameters determine: a function is "
        "evaluated when all its parameters are given (a parameter flag not given is not "
        "assumed).",
        formatter_class=_HelpFormatter,
    )
    _add_param_flags(p)
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        default=None,
        help="round 0's generator: flip (--p), linear (--theta-gen) or ridge (--n-real, "
        "--lam-gen); its flags only (default: every family the flags determine)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="also print the per-round accuracy of iterated retraining and its long-run limit "
        "(default: one round, no retraining theory)",
    )
    _add_round_data(p, "retraining data (default replace; accumulate: exact for n = inf only)")
    p.add_argument("--json", action="store_true", help="print a JSON object keyed by function name")
    p.set_defaults(func=_cmd_theory)

    p = sub.add_parser(
        "simulate",
        help="simulate at one parameter point; mean accuracy and SE over seeds",
        description="Simulate at one parameter point: the mean accuracy and its standard "
        "error over seeds, and the rates measured in the simulation. Seeds run in chunks "
        "that fit a memory budget; --dry-run shows the plan.",
        formatter_class=_HelpFormatter,
    )
    _add_sim_flags(p, "simulate")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the path, seeds per chunk, memory per chunk and the time estimate; "
        "compute nothing",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"mean": ..., "se": ...} as JSON (with --dry-run: the plan)',
    )
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "sweep",
        help="theory and simulation over a named grid, written to a .npz file",
        description="Theory and simulation over a grid of parameter points (the Cartesian "
        "product of the --axis values), written to one .npz file. Axis names: "
        + ", ".join(AXIS_NAMES)
        + ".",
        formatter_class=_HelpFormatter,
    )
    _add_sim_flags(p, "sweep")
    p.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=A:B:K[:log] | NAME=V1,V2",
        help="a grid axis (repeatable, each NAME once); NAME one of "
        + ", ".join(AXIS_NAMES)
        + " (default: no axis, one point)",
    )
    p.add_argument("--name", default="sweep", help="the sweep's name, recorded in the results file")
    p.add_argument(
        "--out",
        default="results/sweep.npz",
        help="the results file (.npz; not a directory); re-running with the same --out resumes",
    )
    p.add_argument("--no-theory", action="store_true", help="simulate only: no theory columns")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the results (axes and every array) as one JSON object; with --dry-run, "
        "the plan",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="grid points per compiled call and saved file (default 0: from a memory budget)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print grid size, paths, chunks, memory and time estimates; compute nothing",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize(), each process computes its share of "
        "the chunks into OUT.parts (a shared filesystem) and process 0 merges",
    )
    p.add_argument(
        "--coordinator-address",
        default=None,
        help="with --distributed: host:port (default: detected, see jax.distributed)",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        default=None,
        help="with --distributed (default: detected)",
    )
    p.add_argument(
        "--process-id", type=int, default=None, help="with --distributed (default: detected)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=3600.0,
        help="seconds process 0 waits for the other processes' chunks (default 3600)",
    )
    p.set_defaults(func=_cmd_sweep, seeds=16)

    for command, e in MODEL_EXPERIMENTS.items():
        _add_experiment_parser(sub, command, e)

    p = sub.add_parser(
        "reproduce",
        help="run the experiments and regenerate every figure",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--only",
        choices=("gmm", *MODEL_EXPERIMENTS),
        default=None,
        help="one domain (default: all)",
    )
    p.add_argument("--scale", choices=SCALES, default="quick", help="size preset")
    p.add_argument(
        "--figure",
        action="append",
        default=None,
        help="only this figure (repeatable): a GMM name such as phase, or eigen_warmup, "
        "eigen_pstar, eigen_datasize, summarize_rates, summarize_pstar (default: all)",
    )
    p.add_argument(
        "--results",
        default="results",
        help="root of the result files: RESULTS/gmm/*.npz, RESULTS/eigen/SCALE/, "
        "RESULTS/summarize/SCALE/ (default results)",
    )
    p.add_argument("--out", default="figures/out", help="where figures go (default figures/out)")
    p.add_argument("--figures-only", action="store_true", help="redraw from existing results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_reproduce)
    return parser


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so the interpreter's final flush does
    not raise (and print a traceback) again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (in-process)
        pass


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
        if hasattr(args, "round_data"):  # theory, simulate, sweep
            _round_data(args)
        with jax.enable_x64(True):
            code = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
            return code
    except BrokenPipeError:  # e.g. `gmmcollapse sweep --dry-run | head -1`: exit quietly
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away
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
