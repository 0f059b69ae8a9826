"""The eigenvalue experiment end to end at smoke scale: mechanics, results format, resume, CLI.

The smoke config checks mechanics, not science: a tiny model with a loose tolerance, so every
strategy selects something and every path (train, decode, select, retrain, evaluate, figures)
runs. The scientific findings are checked on the quick scale (closing note, docs/eigen.md).
"""

import json
import math

import numpy as np
import pytest

import gmmcollapse  # noqa: F401
from gmmcollapse.cli import main
from gmmcollapse.eigen import experiment as E
from gmmcollapse.plots.eigen import crossover

ACC_KEYS = {"0.05", "0.02", "0.01", "0.005"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eigen_smoke")
    code = main(["eigen", "--scale", "smoke", "--out", str(out), "--quiet"])
    assert code == 0
    with open(out / "results.json") as f:
        return out, json.load(f)


def _is_acc(d):
    return ACC_KEYS <= set(d) and all(0.0 <= v <= 1.0 for v in d.values())


def test_results_json_has_the_documented_format(smoke_run):
    _, r = smoke_run
    cfg = E.make_config("smoke")
    assert r["config"]["scale"] == "smoke" and r["config"]["n_syn"] == cfg.n_syn
    assert _is_acc(r["generator"]["acc"])
    for k in ("greedy", "oracle_best_of_k", "lowest_perplexity"):
        assert _is_acc(r["warmup"][k])
    names = {s.name for s in E.strategies(cfg)}
    assert set(r["strategies"]) == names
    assert {"none", "oracle_prune", "oracle_best_of_k", "self_best_of_k", "invariants"} <= names
    assert "noisy_oracle_0.5" in names
    for name, s in r["strategies"].items():
        assert {"phi", "psi", "p_star", "n_selected", "acc"} <= set(s), name
        assert s["n_selected"] > 0, name  # the loose smoke tolerance makes every pool nonempty
        assert _is_acc(s["acc"]), name
    # curves: the configured sizes plus the full size, for the configured strategies
    for name in cfg.curve_strategies:
        assert [p["n_syn"] for p in r["curves"][name]] == [*cfg.sizes, cfg.n_syn]


def test_rates_follow_from_the_rules(smoke_run):
    _, r = smoke_run
    s = r["strategies"]
    # no verifier keeps everything: phi = psi = 1, p* = 1/2
    assert s["none"]["phi"] == 1.0 and s["none"]["psi"] == 1.0 and s["none"]["p_star"] == 0.5
    assert s["none"]["n_selected"] == r["config"]["n_syn"]
    # the oracle keeps exactly the correct answers
    assert s["oracle_prune"]["phi"] == 1.0 and s["oracle_prune"]["psi"] == 0.0
    assert s["oracle_best_of_k"]["psi"] == 0.0
    # best-of-k keeps at most one candidate per input
    for name in ("oracle_best_of_k", "self_best_of_k", "invariants_best_of_k"):
        assert s[name]["n_selected"] <= r["config"]["n_syn"]
    assert s["self_best_of_k"]["n_selected"] == r["config"]["n_syn"]
    # the noisy oracle: phi = 1 exactly, psi near p_noise (binomial, a few hundred draws)
    noisy = s["noisy_oracle_0.5"]
    assert noisy["phi"] == 1.0
    n_wrong = r["config"]["n_syn"] * noisy["p"]
    assert abs(noisy["psi"] - 0.5) < 5 * math.sqrt(0.25 / n_wrong)
    # the generator's error measured on the greedy pool is the same for every greedy strategy
    assert s["none"]["p"] == pytest.approx(s["oracle_prune"]["p"])


def test_figures_written_and_nonempty(smoke_run):
    out, _ = smoke_run
    for name in ("warmup", "pstar", "datasize"):
        png = out / "figures" / f"eigen_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_rerun_resumes_without_training(smoke_run, monkeypatch, capsys):
    out, r = smoke_run
    calls = []
    import gmmcollapse._runs as runs
    import gmmcollapse.eigen.experiment as mod

    monkeypatch.setattr(runs, "train", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(mod.EigenDomain, "train", lambda *a, **k: calls.append(1))
    assert main(["eigen", "--scale", "smoke", "--out", str(out), "--quiet"]) == 0
    assert calls == []
    with open(out / "results.json") as f:
        again = json.load(f)
    # issue 12: the timings too: those of the run that computed the stages (timing.json), not
    # of this invocation, which only read them back
    assert again == r
    assert list(r["timing"]) == ["generator", "warmup", "synthesize", "retrain"]
    assert all(v > 0 for v in r["timing"].values())


def test_run_dir_with_other_config_is_refused(smoke_run, capsys):
    out, _ = smoke_run
    code = main(["eigen", "--scale", "smoke", "--out", str(out), "--quiet", "--set", "beam=3"])
    err = capsys.readouterr().err
    assert code == 2 and "beam" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, word",
    [
        (["--set", "beam=0"], "beam"),
        (["--set", "n_syn=abc"], "n_syn"),
        (["--set", "nope=1"], "KEY"),
        (["--set", "tau=-1"], "tau"),
        (["--set", "encoding=P7"], "encoding"),
        (["--set", "sizes=10,999999"], "sizes"),
    ],
)
def test_bad_overrides_exit_2_before_compute(args, word, capsys, tmp_path):
    code = main(["eigen", "--scale", "smoke", "--out", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing was started


@pytest.mark.slow  # builds the paper-size model
def test_paper_config_fits_one_gpu_and_its_model_steps(capsys):
    """The paper scale's plan: memory for training and decoding under 16 GB, and one real
    optimizer step of its 24M-parameter model runs (here on CPU, a tiny batch)."""
    assert main(["eigen", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "5x5" in out and "P1000" in out
    cfg = E.make_config("paper")
    mem = E.memory_estimate(cfg)
    assert mem["train_bytes"] < 16e9 and mem["decode_bytes"] < 16e9
    assert cfg.model.param_count() == pytest.approx(mem["params"])
    from gmmcollapse.eigen import sample_matrices
    from gmmcollapse.models import TrainConfig, train

    tok = cfg.tokenizer
    import jax

    b = sample_matrices(jax.random.key(0), 2, cfg.k)
    src, tgt = np.asarray(tok.encode_src(b.matrices)), np.asarray(tok.encode_tgt(b.eigenvalues))
    res = train(cfg.model, TrainConfig(steps=1, batch_size=2), src, tgt, progress=False)
    assert np.isfinite(res.history[-1]["loss"])


def test_crossover_interpolates():
    pts = [(0.5, 0.1), (0.6, 0.2), (0.8, 0.4), (1.0, 0.5)]
    assert crossover(pts, 0.3) == pytest.approx(0.7)
    assert crossover(pts, 0.05) == 0.5
    assert math.isnan(crossover(pts, 0.9))


@pytest.mark.slow  # two trained rounds per strategy; the smoke results fixture covers one
def test_two_rounds_each_strategy_generates_its_next_round(tmp_path):
    out = tmp_path / "r2"
    sets = ["rounds=2", "n_syn=64", "sizes=", "p_noise=", "train.steps=20", "n_test=32"]
    argv = ["eigen", "--scale", "smoke", "--out", str(out), "--quiet"]
    assert main([*argv, *(x for s in sets for x in ("--set", s))]) == 0
    r = json.loads((out / "results.json").read_text())
    for name, s in r["strategies"].items():
        assert len(s["rounds"]) == 2, name
        assert s["rounds"][0] == s["acc"]
    # round-2 models were trained and evaluated under their own names
    assert (out / "eval" / "round2_none_n64.npy").exists()
    assert (out / "ckpt" / "round2_none_n64").is_dir()


def test_the_config_embeds_the_model_and_recipe_and_keeps_the_old_names():
    cfg = E.make_config("smoke")
    tok = cfg.tokenizer
    assert (cfg.model.vocab_size, cfg.model.max_src_len, cfg.model.max_tgt_len) == (
        tok.vocab_size,
        tok.src_len,
        tok.tgt_len,
    )  # set from the encoding and k
    assert (cfg.model.width, cfg.train.steps, cfg.gen_steps) == (32, 100, 300)
    # the old flat names still work, and name the embedded fields
    old = E.make_config("smoke", width=64, retrain_steps=20, lr=1e-3)
    new = E.make_config("smoke", **{"model.width": 64, "train.steps": 20, "train.lr": 1e-3})
    assert old == new and old.model.width == 64 and old.train.steps == 20
    with pytest.raises(ValueError, match="same field"):
        E.make_config("smoke", width=64, **{"model.width": 32})
    with pytest.raises(ValueError, match="heads"):
        E.make_config("smoke", width=31)
    assert set(E.ALIASES) <= set(cfg.to_json())  # results and stamps keep the flat spelling
    # the per-model recipe: warm-up at most half the steps, checkpoints every quarter (>= 500)
    tc = cfg.train_config(40, 7)
    assert (tc.steps, tc.seed, tc.warmup, tc.ckpt_every, tc.lr) == (40, 7, 20, 500, 3e-3)
    assert cfg.train_config(4000, 0).ckpt_every == 1000
