"""Flags that mean what they say (issue 12, section 3), through ``gmmcollapse.cli.main``:

* conflicting or meaningless flags are one-line errors (exit 2), before anything is computed
  or created;
* ``--out`` of the wrong kind is refused the same way;
* every flag has help text and shows its default; ``sweep --help`` lists the axis names;
  ``--round-data`` (the GMM commands' replace/accumulate) keeps ``--data`` as a hidden alias;
* output: ``sweep --json`` prints JSON, all-NaN table columns are left out, the header reads
  "sweep:" (not "sweep sweep:"), the dry-run estimate counts start-up and compilation, and a
  closed stdout pipe exits quietly.
"""

import argparse
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gmmcollapse import cli
from gmmcollapse.cli import build_parser, main
from gmmcollapse.gmm import commands as C
from gmmcollapse.gmm.sweep import PARAM_NAMES, Results, dry_run


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, needle):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


# ------------------------------------------------------------------ conflicting / meaningless

_POINT = ["--n", 20, "--d", 4, "--snr", 1]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["sweep", *_POINT, "--axis", "p=0,1", "--axis", "p=0,0.5"], "--axis p is given twice"),
        (["sweep", "--d", 4, "--snr", 1, "--axis", "n=20,40", "--n", 20], "--n and --axis n="),
        (["sweep", *_POINT, "--axis", "p=0,1", "--p", 0.2], "--p and --axis p="),
        (["sweep", *_POINT, "--p", 0.2, "--generator", "linear"], "--p do(es) not apply"),
        (["sweep", *_POINT, "--axis", "p=0,1", "--generator", "linear"], "--p do(es) not apply"),
        (["sweep", *_POINT, "--theta-gen", 1.0], "--theta-gen do(es) not apply"),
        (["sweep", *_POINT, "--mix-real"], "--mix-real needs --n-real"),
        (["sweep", *_POINT, "--n-real", 10], "--n-real applies to --generator ridge"),
        (["sweep", *_POINT, "--seeds", 1], "seeds must be 0 (theory only) or"),
        (["sweep", *_POINT, "--seeds", -3], "seeds must be 0 (theory only) or"),
        (["sweep", *_POINT, "--axis", "mix_real=0,1"], "axis mix_real: the name must be one"),
        (["simulate", *_POINT, "--p", 0.2, "--generator", "linear"], "--p do(es) not apply"),
        (["simulate", *_POINT, "--lam-gen", 0.2], "--lam-gen do(es) not apply"),
        (["simulate", *_POINT, "--mix-real"], "--mix-real needs --n-real"),
        (["simulate", *_POINT, "--round-data", "accumulate", "--data", "replace"], "disagree"),
    ],
)
def test_conflicting_or_meaningless_flags_exit_2(capsys, tmp_path, argv, needle):
    if argv[0] == "sweep":
        argv = [*argv, "--out", tmp_path / "never.npz", "--quiet"]
    code, out, err = _run(capsys, *argv)
    _one_line_error(code, err, needle)
    assert out == "" and list(tmp_path.iterdir()) == []  # nothing computed, nothing created


def test_meaningful_combinations_still_run(capsys):
    # --n-real with --mix-real, and the ridge generator's own flags, are accepted
    for extra in (["--n-real", 10, "--mix-real"], ["--generator", "ridge", "--n-real", 10]):
        plan = C.simulate_plan(
            {"n": 20.0, "d": 4.0, "snr": 1.0, "n_real": 10.0},
            mix_real="--mix-real" in extra,
            generator="ridge" if "ridge" in extra else "flip",
            measure=False,
        )
        assert plan["chunks"] == 1


@pytest.mark.parametrize("flag", ["data", "format"])
def test_set_and_flag_of_the_same_field_exit_2(capsys, flag):
    value = {"data": "pairs.jsonl", "format": "xsum"}[flag]
    argv = ["summarize", "--scale", "smoke", f"--{flag}", value, "--set", f"{flag}={value}"]
    code, out, err = _run(capsys, *argv, "--dry-run")
    _one_line_error(code, err, f"--{flag} and --set {flag}= both give {flag}")
    assert out == ""


# ------------------------------------------------------------------------ --out of the wrong kind


def test_sweep_out_a_directory_exits_2_before_anything(capsys, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    code, out, err = _run(capsys, "sweep", *_POINT, "--seeds", 2, "--out", folder, "--quiet")
    _one_line_error(code, err, f"--out {folder} is a directory")
    assert out == "" and list(folder.iterdir()) == [] and sorted(tmp_path.iterdir()) == [folder]
    # a folder on the way that is a file is refused too
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, "sweep", *_POINT, "--out", tmp_path / "file" / "a.npz", "--quiet")
    _one_line_error(code, err, "is a file, not a directory")


@pytest.mark.parametrize("command", ["eigen", "summarize", "sort"])
def test_experiment_out_an_existing_file_exits_2(capsys, tmp_path, command):
    target = tmp_path / "taken"
    target.write_text("not a run directory")
    code, out, err = _run(capsys, command, "--scale", "smoke", "--out", target, "--quiet")
    _one_line_error(code, err, f"--out {target} is an existing file")
    assert out == "" and sorted(tmp_path.iterdir()) == [target]
    assert target.read_text() == "not a run directory"
    code, _, err = _run(capsys, command, "--scale", "smoke", "--out", target / "run", "--quiet")
    _one_line_error(code, err, "is a file, not a directory")


def test_reproduce_out_an_existing_file_exits_2(capsys, tmp_path):
    target = tmp_path / "figs"
    target.write_text("x")
    argv = ["reproduce", "--only", "gmm", "--scale", "smoke", "--figure", "phase"]
    code, _, err = _run(capsys, *argv, "--results", tmp_path / "res", "--out", target, "--quiet")
    _one_line_error(code, err, f"--out {target} is an existing file")
    assert sorted(tmp_path.iterdir()) == [target]


# ------------------------------------------------------------------------------------- help


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_flag_has_help_and_shows_its_default():
    parser = build_parser()
    fmt = cli._HelpFormatter("gmmcollapse")
    for command, sub in _subparsers(parser).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{command} {action.option_strings}"
            if action.help is argparse.SUPPRESS:  # a hidden alias of another flag
                assert action.option_strings == ["--data"] and command in (
                    "theory", "simulate", "sweep",
                ), where  # fmt: skip
                continue
            assert action.help and action.help.strip(), f"no help: {where}"
            text = fmt._get_help_string(action) % {"default": action.default}
            default = action.default
            if not (default is None or default is False or default == []):
                assert "default" in text, f"default not shown: {where}: {text}"
    # the flags the issue found bare
    for command, flags in {
        "simulate": ["--generator", "--learner", "--rounds", "--round-data"],
        "sweep": ["--name", "--out", "--no-theory", "--quiet", "--json"],
        "summarize": ["--data", "--quiet", "--out"],
    }.items():
        sub = _subparsers(parser)[command]
        for flag in flags:
            action = sub._option_string_actions[flag]
            assert action.help and action.help is not argparse.SUPPRESS, (command, flag)


def test_sweep_help_lists_the_axis_names(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    names = text.split("NAME one of ")[1].split(" (default")[0]
    assert names.split(", ") == list(C.AXIS_NAMES)
    # exactly the parameters a sweep varies (mix_real is the --mix-real switch)
    assert set(C.AXIS_NAMES) == PARAM_NAMES - {"mix_real"}
    assert "(default: 16)" in text  # the sweep's own default for --seeds


def test_round_data_keeps_data_as_a_hidden_alias(capsys):
    # accumulate has an exact theory at n = inf: no long-run limit is printed for it
    argv = ["theory", "--n", "inf", "--d", 100, "--snr", 1, "--p", 0.2, "--rounds", 2, "--json"]
    new = _run(capsys, *argv, "--round-data", "accumulate")
    old = _run(capsys, *argv, "--data", "accumulate")
    default = _run(capsys, *argv)
    assert new[0] == old[0] == default[0] == 0
    assert new[1] == old[1] != default[1]  # the same flag, and it changes the result
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "--round-data" in text and "--data" not in text.replace("--round-data", "")
    with pytest.raises(SystemExit):
        main(["summarize", "--help"])
    assert "--data DATA" in capsys.readouterr().out  # summarize's --data: a corpus file


# ----------------------------------------------------------------------------------- output


def test_sweep_json_prints_json(capsys, tmp_path):
    path = tmp_path / "t.npz"
    argv = ["sweep", "--axis", "p=0,0.5", "--n", 100, "--d", 10, "--snr", 1.5, "--seeds", 0]
    code, out, err = _run(capsys, *argv, "--out", path, "--quiet", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["out"] == str(path) and doc["grid_shape"] == [2]
    assert doc["axes"] == {"p": [0.0, 0.5]}
    assert len(doc["data"]["theory/ridge_accuracy"]) == 2
    code, out, _ = _run(capsys, *argv, "--out", path, "--json", "--dry-run")
    assert code == 0 and json.loads(out)["grid_size"] == 2


def _results(data: dict, axes: dict) -> Results:
    meta = {"seconds": 1.0, "groups": [{"path": "primal"}], "chunks": 1, "chunks_computed": 1}
    return Results(axes=axes, data=data, meta=meta)


def test_sweep_table_leaves_out_all_nan_columns():
    p = np.array([0.0, 0.5])
    data = {
        "theory/ridge_accuracy": np.full(2, np.nan),  # e.g. the logistic learner: no theory
        "theory/infinite_data_accuracy": np.array([0.9, 0.8]),
        "sim_mean/acc": np.array([[0.91], [0.79]]),
        "sim_se/acc": np.array([[0.01], [np.nan]]),  # partly NaN: kept
    }
    lines = C.format_sweep(_results(data, {"p": p}), (2,), "x.npz").splitlines()
    assert lines[1].split() == ["p", "infinite_data_accuracy", "acc", "se"]
    assert "nan" not in lines[2] and lines[3].split()[-1] == "nan"


def test_dry_run_header_and_estimate_with_start_up_and_compilation(capsys, tmp_path):
    sw = C.make_sweep({"n": 50.0, "d": 8.0, "snr": 1.0}, ["p=0:1:3"], seeds=2)
    assert C.format_dry_run(dry_run(sw, measure=False)).startswith("sweep: grid 3 = ")
    named = C.make_sweep({"n": 50.0, "d": 8.0, "snr": 1.0}, ["p=0:1:3"], seeds=2, name="g")
    assert C.format_dry_run(dry_run(named, measure=False)).startswith("sweep g: grid 3 = ")
    argv = ["sweep", "--axis", "p=0:1:3", "--n", 50, "--d", 8, "--snr", 1, "--seeds", 2]
    code, out, err = _run(capsys, *argv, "--out", tmp_path / "x.npz", "--dry-run")
    assert code == 0, err
    assert not out.startswith("sweep sweep") and out.startswith("sweep: grid 3")
    line = next(x for x in out.splitlines() if x.startswith("estimated time: "))
    seconds = float(line.split()[2])
    # one static group and the theory: two compiled programs, and the start-up
    assert seconds >= C.STARTUP_SECONDS + 2 * C.COMPILE_SECONDS
    assert "start-up and compilation (modelled:" in line and "2 compiled programs" in line
    assert list(tmp_path.iterdir()) == []


class _ClosedPipe(io.TextIOBase):
    """A stdout whose reader went away: every write raises BrokenPipeError."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("no file descriptor")


def test_broken_pipe_exits_quietly_in_process(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(["theory", "--snr", "1", "--p", "0.2", "--phi", "1", "--psi", "0.5"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 141 and err == ""


def test_broken_pipe_exits_quietly_from_the_console_script(tmp_path):
    script = Path(sys.executable).with_name("gmmcollapse")
    script = str(script) if script.exists() else shutil.which("gmmcollapse")
    assert script is not None
    argv = ["sweep", "--axis", "p=0:1:300", *map(str, _POINT), "--seeds", "0", "--dry-run"]
    proc = subprocess.Popen(
        [script, *argv, "--out", str(tmp_path / "x.npz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the command writes (as `| head -0`)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_simulate_output_labels_measured_rates(capsys):
    code, out, err = _run(capsys, "simulate", *_POINT, "--p", 0.2, "--seeds", 2)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("accuracy ")
    assert [x.split()[0] for x in lines[1:]] == ["measured"] * 6
    assert lines[1].split()[1] == "p" and math.isfinite(float(lines[1].split()[2]))
