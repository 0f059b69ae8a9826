"""The library behind the ``theory`` / ``simulate`` / ``sweep`` commands
(:mod:`gmmcollapse.gmm.commands`), called directly: the same values and text the command line
prints, and one-line ``ValueError`` messages for bad input."""

import json

import numpy as np
import pytest

import gmmcollapse.theory as T
from gmmcollapse.cli import main
from gmmcollapse.gmm import commands as C
from gmmcollapse.gmm.sweep import dry_run

POINT = {"snr": 1.5, "p": 0.3, "phi": 1.0, "psi": 0.5}


def test_theory_values_match_the_library_and_the_cli(capsys):
    given = {"n": 200.0, "d": 50.0, **POINT, "lam": 0.1}
    values = C.theory_values(given)
    assert list(values) == [
        "breakdown_point", "keep_fraction", "effective_noise", "bayes_accuracy",
        "infinite_data_accuracy", "ridge_accuracy",
    ]  # fmt: skip
    assert values["ridge_accuracy"] == T.ridge_accuracy(200.0, 50.0, 1.5, 0.3, 1.0, 0.5, 0.1)
    argv = ["theory", "--n", "200", "--d", "50", "--snr", "1.5", "--p", "0.3", "--phi", "1"]
    for as_json in (False, True):
        assert main([*argv, "--psi", "0.5", "--lam", "0.1"] + ["--json"] * as_json) == 0
        assert capsys.readouterr().out == C.format_theory(values, as_json) + "\n"


def test_theory_values_rounds_and_generators():
    given = {"n": 400.0, "d": 100.0, "snr": 1.0, "theta_ver": 0.3, "tau": 0.1, "lam": 0.1}
    got = C.theory_values({**given, "theta_gen": 1.0}, "linear", rounds=3)
    want = T.retraining_accuracy(
        3, 400, 100, 1.0, generator="linear", theta_gen=1.0, theta_ver=0.3, tau=0.1, lam=0.1
    )
    np.testing.assert_array_equal(got["retraining_accuracy"], want)
    assert "retraining_limit" in got and "flip_linear_ridge_accuracy" not in got
    text = C.format_theory(got)
    assert text.splitlines()[-1].startswith("retraining_limit") and "converged=1" in text
    assert json.loads(C.format_theory(got, as_json=True))["retraining_limit"]["converged"]
    for bad, needle in (
        (({**given, "p": 0.2}, "linear"), "--p do(es) not apply"),
        (({**given, "p": 0.2, "n_real": 10.0}, None, 2), "--n-real with --rounds"),
        (({"snr": 1.0, "p": 0.2}, None, 2), "need --n, --d"),
        (({**given, "p": 0.2}, None, 0), "rounds must be a whole number >= 1, got 0"),
    ):
        with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            C.theory_values(*bad)
    assert C.theory_values({"d": 5.0}) == {}


@pytest.mark.parametrize(
    "text, name, values",
    [
        ("p=0:1:3", "p", [0.0, 0.5, 1.0]),
        ("n=10:1000:3:log", "n", [10.0, 100.0, 1000.0]),
        ("theta-ver=0,0.5", "theta_ver", [0.0, 0.5]),
    ],
)
def test_parse_axis(text, name, values):
    got_name, got = C.parse_axis(text)
    assert got_name == name
    np.testing.assert_allclose(got, values, rtol=1e-12)


@pytest.mark.parametrize("text", ["p", "p=0:1", "p=a,b", "p=0:1:x", "p="])
def test_parse_axis_refuses_malformed_text(text):
    with pytest.raises(ValueError, match="axis"):
        C.parse_axis(text)


def test_make_sweep_and_its_dry_run_text():
    given = {"d": 8.0, "snr": 1.5, "lam": 0.1}
    sw = C.make_sweep(given, ["p=0:1:3", "n=100,200"], seeds=2, n_test=16, name="g")
    assert sw.name == "g" and sw.shape == (3, 2) and sw.seeds == 2
    assert dict(sw.fixed) == {"d": 8.0, "snr": 1.5, "lam": 0.1}
    assert sw.spec["n_test"] == 16 and sw.spec["generator"] == "flip"
    mixed = C.make_sweep({**given, "n": 20.0, "n_real": 10.0}, mix_real=True)
    assert mixed.fixed["mix_real"] == 1.0
    with pytest.raises(ValueError, match="sweep does not take --p-pos"):
        C.make_sweep({**given, "p_pos": 0.1})
    text = C.format_dry_run(dry_run(sw, measure=False)).splitlines()
    assert text[0] == "sweep g: grid 3x2 = 6 points x 2 seeds = 12 runs; 1 device(s), 1 process(es)"
    assert text[1].split() == ["group", "d", "n_max", "path", "points", "chunk", "chunks",
                               "mem/device", "GFLOP"]  # fmt: skip
    assert text[-1] == "dry run: nothing computed"


def test_simulate_point_equals_the_cli(capsys):
    given = {"n": 20.0, "d": 4.0, "snr": 1.0, "p": 0.2, "lam": 0.1}
    out = C.simulate_point(given, seeds=4, rounds=2)
    assert set(out) == {"mean", "se", "path", "mean_per_round", "se_per_round", "measured"}
    assert out["mean"] == out["mean_per_round"][-1] and len(out["se_per_round"]) == 2
    argv = ["simulate", "--n", "20", "--d", "4", "--snr", "1", "--p", "0.2", "--lam", "0.1"]
    assert main([*argv, "--seeds", "4", "--rounds", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == out
    lines = C.format_simulation(out, 4, 0.5).splitlines()
    assert lines[0].startswith(f"accuracy  {out['mean']:.6f} +- ") and "4 seeds" in lines[0]
    assert lines[-1].startswith("per round ") and len(lines) == 8
    # the rates counted in the simulation are labelled as measured, not named like the inputs
    assert [line.split()[:2] for line in lines[1:7]] == [["measured", k] for k in out["measured"]]
    with pytest.raises(ValueError, match="--n is required"):
        C.simulate_point({"d": 4.0, "snr": 1.0})
    with pytest.raises(ValueError, match="seeds must be a whole number >= 2"):
        C.simulate_point(given, seeds=1)
    with pytest.raises(ValueError, match="d must be a whole number >= 1, got 0.5"):
        C.simulate_point({**given, "d": 0.5})
