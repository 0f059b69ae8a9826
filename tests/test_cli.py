"""The command line: ``theory`` equals the library, ``simulate`` agrees with the exact ridge
formula, ``sweep`` writes a readable results file, ``reproduce`` draws a figure, and invalid
input exits with code 2 and one line naming the parameter.

Commands run in-process through ``gmmcollapse.cli.main`` (argv list, output via capsys); one
test runs the installed console script to check the real exit code and stderr.
"""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gmmcollapse  # noqa: F401  (enables float64)
import gmmcollapse.theory as T
from gmmcollapse.cli import main
from gmmcollapse.gmm.sweep import load_results

SNR, P, PHI, PSI, LAM = 1.5, 0.3, 1.0, 0.5, 0.1
POINT = ["--snr", "1.5", "--p", "0.3", "--phi", "1", "--psi", "0.5"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------------------------------ theory


def test_theory_json_equals_the_library(capsys):
    got = _json(capsys, "theory", "--n", 200, "--d", 50, *POINT, "--lam", LAM)
    want = {
        "breakdown_point": T.breakdown_point(PHI, PSI),
        "keep_fraction": T.keep_fraction(P, PHI, PSI),
        "effective_noise": T.effective_noise(P, PHI, PSI),
        "bayes_accuracy": T.bayes_accuracy(SNR),
        "infinite_data_accuracy": T.infinite_data_accuracy(SNR, P, PHI, PSI),
        "ridge_accuracy": T.ridge_accuracy(200.0, 50.0, SNR, P, PHI, PSI, LAM),
    }
    # exactly these: the mixed / linear / class-specific ones lack arguments
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == float(value), name  # JSON floats round-trip exactly


def test_theory_omits_functions_whose_arguments_are_missing(capsys):
    got = _json(capsys, "theory", *POINT, "--lam", LAM)  # no --n, --d
    assert "ridge_accuracy" not in got and "infinite_data_accuracy" in got
    got = _json(capsys, "theory", "--phi", 1, "--psi", 0.5)  # rates only
    assert set(got) == {"breakdown_point"}
    assert got["breakdown_point"] == float(T.breakdown_point(1.0, 0.5)) == pytest.approx(2 / 3)
    # mixing in real data brings in mixed_ridge_accuracy (n = synthesized samples)
    got = _json(capsys, "theory", "--n", 200, "--d", 50, *POINT, "--lam", LAM, "--n-real", 40)
    assert got["mixed_ridge_accuracy"] == float(
        T.mixed_ridge_accuracy(40.0, 200.0, 50.0, SNR, P, PHI, PSI, LAM)
    )


def test_theory_linear_functions_appear_with_angles_and_threshold(capsys):
    tg, tv, tau = 0.3, 0.2, 0.1
    base = _json(capsys, "theory", *POINT)
    assert not any("linear" in k for k in base)
    got = _json(capsys, "theory", *POINT, "--theta-gen", tg, "--theta-ver", tv, "--tau", tau)
    lin = T.linear_keep_rates(SNR, tg, tv, tau)
    assert got["linear_keep_rates"] == {k: float(v) for k, v in lin._asdict().items()}
    # --phi/--psi act as a noisy oracle on top of the margin test, as in the simulation
    assert got["linear_infinite_data_accuracy"] == float(
        T.linear_infinite_data_accuracy(SNR, tg, tv, tau, phi=PHI, psi=PSI)
    )
    flip = T.flip_linear_keep_rates(SNR, P, tv, tau)
    assert got["flip_linear_keep_rates"] == {k: float(v) for k, v in flip._asdict().items()}
    assert got["flip_linear_infinite_data_accuracy"] == float(
        T.flip_linear_infinite_data_accuracy(SNR, P, tv, tau, phi=PHI, psi=PSI)
    )


def test_theory_text_has_one_line_per_function(capsys):
    argv = ["theory", "--n", 200, "--d", 50, *POINT, "--lam", LAM, "--theta-ver", 0.2, "--tau", 0.1]
    names = list(_json(capsys, *argv))
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == names  # same functions, same order
    ridge = next(line for line in lines if line.startswith("ridge_accuracy "))
    assert float(ridge.split()[1]) == pytest.approx(
        float(T.ridge_accuracy(200.0, 50.0, SNR, P, PHI, PSI, LAM)), rel=1e-9
    )


def test_theory_finite_selection_and_retraining(capsys):
    """--theta-ver/--tau/--lam bring the finite-n/d theory of selection that reads x;
    --generator and --rounds the retraining theory, equal to the library."""
    point = ["--n", 400, "--d", 100, "--snr", 1.0, "--theta-ver", 0.3, "--tau", 0.1, "--lam", LAM]
    got = _json(capsys, "theory", *point, "--p", 0.2, "--psi", 0.5, "--generator", "flip")
    assert got["flip_linear_ridge_accuracy"] == float(
        T.flip_linear_ridge_accuracy(400, 100, 1.0, 0.2, 0.3, 0.1, LAM, 1.0, 0.5)
    )
    assert got["finite_breakdown_point"] == float(
        T.finite_breakdown_point(400, 100, 1.0, 0.3, 0.1, LAM, 1.0, 0.5)
    )
    assert "linear_ridge_accuracy" not in got  # another generator's function
    got = _json(
        capsys, "theory", *point, "--theta-gen", 1.0, "--generator", "linear", "--rounds", 3
    )
    want = T.retraining_accuracy(
        3, 400, 100, 1.0, generator="linear", theta_gen=1.0, theta_ver=0.3, tau=0.1, lam=LAM
    )
    assert got["retraining_accuracy"] == [float(v) for v in want]
    assert got["retraining_accuracy"][0] == got["linear_ridge_accuracy"]
    assert got["retraining_limit"]["converged"] is True
    got = _json(capsys, "theory", *point, "--generator", "ridge", "--n-real", 50, "--lam-gen", 0.2)
    want = T.retraining_accuracy(
        1, 400, 100, 1.0, generator="ridge", n_real=50, lam_gen=0.2, theta_ver=0.3, tau=0.1,
        lam=LAM,
    )  # fmt: skip
    assert got["retraining_accuracy"] == [float(want[0])]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--p", 0.2, "--generator", "linear"], "--p"),
        (["--theta-gen", 1.0, "--generator", "flip"], "--theta-gen"),
        (["--p", 0.2, "--rounds", 2, "--n-real", 10], "--n-real"),
        (["--p", 0.2, "--rounds", 0], "rounds"),
    ],
)
def test_theory_flags_that_do_not_apply_exit_2(capsys, argv, needle):
    code, _, err = _run(capsys, "theory", "--n", 400, "--d", 100, "--snr", 1.0, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- simulate


def test_simulate_json_agrees_with_exact_ridge_accuracy(capsys):
    n, d, seeds = 200, 50, 16
    got = _json(capsys, "simulate", "--n", n, "--d", d, *POINT, "--lam", LAM, "--seeds", seeds)
    assert {"mean", "se"} <= set(got)
    assert got["se"] > 0
    exact = float(T.ridge_accuracy(n, d, SNR, P, PHI, PSI, LAM))
    # Monte Carlo noise (4 SE) plus the O(1/d) finite-size correction of the formula
    assert abs(got["mean"] - exact) <= 4 * got["se"] + 1 / d
    assert got["measured"]["p"] == pytest.approx(P, abs=4 * math.sqrt(P * (1 - P) / (n * seeds)))


# ---------------------------------------------------------------------------- invalid input

_SIM = ["simulate", "--n", 20, "--d", 4, "--snr", 1.0, "--seeds", 2]


@pytest.mark.parametrize(
    "argv, name",
    [
        (["theory", "--snr", 1, "--p", 1.5, "--phi", 1, "--psi", 0.5], "p"),
        (["theory", "--snr", 1, "--p", -0.1, "--phi", 1, "--psi", 0.5], "p"),
        (["theory", "--snr", 1, "--p", "nan", "--phi", 1, "--psi", 0.5], "p"),
        (["theory", "--snr", 1, "--p", 0.2, "--phi", 0, "--psi", 0], "phi"),
        (["theory", "--n", 100, "--d", 10, *POINT, "--lam", -1], "lam"),
        (["theory", "--n", 100, "--d", 0, *POINT, "--lam", 0.1], "d"),
        ([*_SIM, "--p", 1.5], "p"),
        ([*_SIM, "--p", "nan"], "p"),
        ([*_SIM, "--phi", 0, "--psi", 0], "phi"),
        ([*_SIM, "--lam", -1], "lam"),
        (["simulate", "--n", 20, "--d", 0.5, "--snr", 1], "d"),
        (["simulate", "--n", 20, "--d", 0, "--snr", 1], "d"),
        (["simulate", "--n", 20.5, "--d", 4, "--snr", 1], "n"),
        (["simulate", "--n", "inf", "--d", 4, "--snr", 1], "n"),
        ([*_SIM, "--seeds", 1], "seeds"),
        (["simulate", "--d", 4, "--snr", 1], "n"),  # missing
        (["sweep", "--axis", "p=0,1.5", "--n", 20, "--d", 4, "--snr", 1, "--seeds", 2], "p"),
        (["sweep", "--axis", "n=20,inf", "--d", 4, "--snr", 1, "--seeds", 2], "n"),
    ],
)
def test_invalid_values_exit_2_with_one_line(capsys, tmp_path, argv, name):
    if argv[0] == "sweep":
        argv = [*argv, "--out", tmp_path / "never.npz", "--quiet"]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    # the parameter is named as a word (or flag) in the message
    assert any(w.strip(":,'-") == name for w in lines[0].split()), lines[0]
    assert not (tmp_path / "never.npz").exists()


def test_theory_without_a_determined_prediction_exits_2(capsys):
    code, out, err = _run(capsys, "theory", "--d", 5)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------- sweep


def test_sweep_writes_a_results_file(capsys, tmp_path):
    path = tmp_path / "out" / "grid.npz"
    argv = ["sweep", "--axis", "p=0:1:3", "--axis", "n=100,200", "--d", 8, "--snr", SNR]
    argv += ["--phi", PHI, "--psi", PSI, "--lam", LAM, "--seeds", 2, "--n-test", 16]
    argv += ["--out", path, "--quiet"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert out.startswith(f"wrote {path}")
    res = load_results(path)
    assert list(res.axes) == ["p", "n"]
    np.testing.assert_array_equal(res.axes["p"], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(res.axes["n"], [100.0, 200.0])
    pp, nn = np.meshgrid(res.axes["p"], res.axes["n"], indexing="ij")
    np.testing.assert_allclose(
        res["theory/ridge_accuracy"],
        np.asarray(T.ridge_accuracy(nn, 8.0, SNR, pp, PHI, PSI, LAM)),
        rtol=1e-12,
    )
    for k in ("sim_mean/acc", "sim_se/acc", "sim_mean/acc_test"):
        assert res[k].shape == (3, 2, 1), k  # grid + rounds
        assert np.all(np.isfinite(res[k])), k
    # the measured flip rate follows the p axis: exactly 0 and 1 at the ends
    np.testing.assert_array_equal(res["sim_mean/p"][[0, 2], :, 0], [[0.0, 0.0], [1.0, 1.0]])
    assert res.meta["sweep"]["spec"]["n_test"] == 16  # --n-test reaches the simulation
    assert res.meta["sweep"]["fixed"] == {"d": 8.0, "snr": SNR, "phi": PHI, "psi": PSI, "lam": LAM}


@pytest.mark.parametrize("axis", ["p", "p=0:1", "p=a,b", "p=0:1:0", "p=0:1:x", "p=", "foo=1,2"])
def test_malformed_axis_exits_2(capsys, tmp_path, axis):
    out_file = tmp_path / "never.npz"
    code, _, err = _run(
        capsys,
        "sweep",
        "--axis",
        axis,
        "--n",
        20,
        "--d",
        4,
        "--snr",
        1,
        "--out",
        out_file,
        "--quiet",
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "axis" in err or "foo" in err
    assert not out_file.exists()


# --------------------------------------------------------------------------------- reproduce


def test_reproduce_phase_smoke(capsys, tmp_path):
    results, figures = tmp_path / "results", tmp_path / "figures"
    argv = ["reproduce", "--only", "gmm", "--scale", "smoke", "--figure", "phase"]
    code, _, err = _run(capsys, *argv, "--results", results, "--out", figures, "--quiet")
    assert code == 0, err
    png, pdf = figures / "gmm_phase.png", figures / "gmm_phase.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (results / "gmm" / "gmm_phase.npz").exists()
    assert sorted(p.name for p in figures.iterdir()) == [
        "gmm_phase.pdf",
        "gmm_phase.png",
    ]  # phase only


def test_reproduce_unknown_figure_exits_2(capsys, tmp_path):
    code, _, err = _run(
        capsys, "reproduce", "--figure", "nope", "--results", tmp_path, "--out", tmp_path
    )
    assert code == 2 and "figure" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ console script


def test_console_script_exit_code_and_stderr():
    script = Path(sys.executable).with_name("gmmcollapse")
    script = str(script) if script.exists() else shutil.which("gmmcollapse")
    # the README's install command always provides it; a missing script is a failure
    assert script is not None, "the gmmcollapse console script is not installed"
    proc = subprocess.run(
        [script, "simulate", "--n", "20", "--d", "4", "--snr", "1", "--p", "1.5"],
        capture_output=True,
        check=False,  # the exit code is what we test
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "gmmcollapse simulate: error: p must be a number in [0, 1], got 1.5"
    ]
