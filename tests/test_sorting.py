"""The third domain (docs/guide.md): one module, run through the registry, the CLI and the
pipeline's rounds at smoke scale."""

import json

import numpy as np
import pytest

from gmmcollapse import sorting as S
from gmmcollapse.cli import main
from gmmcollapse.experiments import MODEL_EXPERIMENTS, load
from gmmcollapse.models import EOS, N_SPECIAL, Generated


def test_registered_once_and_loadable():
    assert "sort" in MODEL_EXPERIMENTS
    exp, figs = load("sort")
    assert exp is S and figs is S
    for name in ("SCALES", "make_config", "describe", "run", "report", "FIGURES", "draw"):
        assert hasattr(exp, name), name


def test_nested_overrides_reach_the_embedded_configs():
    cfg = S.make_config("smoke", **{"model.width": 48, "train.steps": 7, "rounds": 3})
    assert (cfg.model.width, cfg.train.steps, cfg.rounds) == (48, 7, 3)
    assert cfg.model.max_src_len == cfg.length  # set from the task, not the preset
    with pytest.raises(ValueError, match="unknown sort config field"):
        S.make_config("smoke", **{"model.nope": 1})
    with pytest.raises(ValueError, match="round_data must be one of"):
        S.make_config("smoke", round_data="mix")


def test_exact_verifier_and_multiset_scores():
    cfg = S.make_config("smoke")
    src = np.array([[3, 1, 2, 1]]) + N_SPECIAL
    good = np.r_[np.array([1, 1, 2, 3]) + N_SPECIAL, EOS]
    order = np.r_[np.array([1, 2, 1, 3]) + N_SPECIAL, EOS]  # same digits, wrong order
    wrong = np.r_[np.array([1, 2, 3, 3]) + N_SPECIAL, EOS]  # one digit swapped for another
    tokens = np.stack([good, order, wrong])[None]
    gen = Generated(tokens, np.zeros((1, 3)), np.full((1, 3), 5))
    dom = S.SortDomain(cfg, src, "/nonexistent")
    sc = dom.scores(src, "beam", gen)
    np.testing.assert_array_equal(sc["correct"], [[True, False, False]])
    np.testing.assert_array_equal(sc["oracle"], [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(sc["multiset"], [[0.0, 0.0, -2.0]])


def test_smoke_run_through_the_cli_with_rounds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sort", "--scale", "smoke", "--out", str(out), "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    rounds = res["config"]["rounds"]
    assert rounds == 2
    for name, s in res["strategies"].items():
        assert len(s["rounds"]) == rounds, name
        assert 0.0 <= s["p_star"] <= 1.0 or s["p_star"] is None
    assert (out / "figures" / "sort_rounds.png").stat().st_size > 5000
    # later rounds generated with the strategy's own model: their models and results exist
    assert any((out / "round2").iterdir())
    text = capsys.readouterr().out
    assert "exact-match accuracy" in text and "sort smoke" in text
    # a rerun resumes: nothing retrained, same results
    assert main(["sort", "--scale", "smoke", "--out", str(out), "--quiet"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again == res


def test_dry_run_plan_counts_the_rounds(capsys):
    assert main(["sort", "--scale", "smoke", "--set", "rounds=3", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    n = 1 + len(S.strategies(S.make_config("smoke"))) * 3
    assert f"{n} models" in plan and "3 round(s)" in plan
