"""The summarization experiment end to end at smoke scale: mechanics, results format, resume,
real-corpus files, CLI.

The smoke config checks mechanics, not science: a tiny model trained briefly with a loose
correctness threshold, so every selector and rate runs (train, decode, score, select, retrain,
evaluate, figures). The findings are checked at the quick scale (docs/summarize.md).
"""

import dataclasses
import json
import math
import os
import shutil

import numpy as np
import pytest

from gmmcollapse import store
from gmmcollapse.cli import main
from gmmcollapse.models import score
from gmmcollapse.plots import summarize as plots
from gmmcollapse.summarize import experiment as E
from gmmcollapse.summarize import rouge_scores, write_jsonl
from gmmcollapse.summarize.coverage import coverage, report

ROUGE = ("rouge1", "rouge2", "rougeL")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke run as the README's main command makes it (``reproduce``); returns the run
    directory, its results and the figure directory."""
    root = tmp_path_factory.mktemp("summarize_smoke")
    figs = root / "figs"
    code = main(["reproduce", "--only", "summarize", "--scale", "smoke", "--quiet",
                 "--results", str(root / "results"), "--out", str(figs)])  # fmt: skip
    assert code == 0
    out = root / "results" / "summarize" / "smoke"
    with open(out / "results.json") as f:
        return out, json.load(f), figs


def _is_rouge(d):
    return all(0.0 <= d[k] <= 1.0 for k in ROUGE)


def test_results_json_has_the_issue_format(smoke_run):
    _, r, figs = smoke_run
    cfg = E.make_config("smoke")
    assert r["config"] == cfg.to_json()
    for k in ("generator", "human_full", "verifier_model"):
        assert _is_rouge(r[k]), k
    assert list(r["selectors"]) == [
        "random",
        "oracle",
        "self",
        "verifier",
        "oracle_best_of_k",
        "self_best_of_k",
        "verifier_best_of_k",
    ]
    for name, per_rate in r["selectors"].items():
        assert list(per_rate) == ["0.125", "0.25", "0.5"], name
        for rate, v in per_rate.items():
            assert {"phi", "psi", "p_star", "rouge1", "rouge2", "rougeL"} <= set(v)
            assert _is_rouge(v), (name, rate)
            assert v["p_star"] is None or 0.0 <= v["p_star"] <= 1.0
            assert v["vs_generator"] is not None
    s = r["sizes"]
    assert s["gen"] + s["verifier"] + s["syn"] == s["pool"] == cfg.n_pairs
    assert s["gen"] == int(cfg.gen_fraction * cfg.n_pairs) and s["test"] == cfg.n_test
    for name in ("summarize_rates", "summarize_pstar", "summarize_coverage"):
        assert (figs / f"{name}.png").stat().st_size > 10_000


def test_selections_keep_the_requested_rates(smoke_run):
    _, r, _ = smoke_run
    n_syn = r["sizes"]["syn"]
    for name, per_rate in r["selectors"].items():
        for rate, v in per_rate.items():
            # one summary per kept article; at most floor(r n) articles
            assert 0 < v["n_selected"] <= math.floor(float(rate) * n_syn), (name, rate)
            if name == "random":
                assert v["n_selected"] == math.floor(float(rate) * n_syn)


def test_spearman_is_recomputed_from_the_reported_points(smoke_run):
    _, r, _ = smoke_run
    pts = [v for d in r["selectors"].values() for v in d.values()]
    ps = [math.nan if v["p_star"] is None else v["p_star"] for v in pts]
    rho = E.spearman(ps, [v["rouge1"] for v in pts])
    assert rho == r["spearman"]
    assert r["spearman_pstar_rouge1"] == rho["rho"]
    assert rho["n"] >= 3 and rho["rho"] is not None  # the loose threshold defines p*
    for rate, w in r["spearman_within_rate"].items():
        ps = [math.nan if d[rate]["p_star"] is None else d[rate]["p_star"]
              for d in r["selectors"].values()]  # fmt: skip
        assert w == E.spearman(ps, [d[rate]["rouge1"] for d in r["selectors"].values()])


def test_scores_are_rouge_selfscore_and_verifier_logprob(smoke_run):
    out, r, _ = smoke_run
    cfg = E.make_config("smoke")
    z = np.load(out / "scores_beam.npz")
    cand = np.load(out / "candidates.npz")
    n, k = cand["beam/logprob"].shape
    assert z["oracle"].shape == z["self"].shape == z["verifier"].shape == (n, k)
    np.testing.assert_array_equal(z["correct"], z["oracle"] >= cfg.correct_rouge1)
    np.testing.assert_allclose(
        z["self"], cand["beam/logprob"] / np.maximum(cand["beam/length"], 1), rtol=1e-6
    )
    # the oracle is ROUGE-1 against the reference, the verifier its own log p(summary|article)
    pool, _ = E.load_data(cfg)
    syn = E._split_pool(cfg, pool)["syn"]
    from gmmcollapse.models import load_model
    from gmmcollapse.summarize import SubwordTokenizer

    tok = SubwordTokenizer.load(out / "tokenizer")
    assert SubwordTokenizer.load(out / "generator" / "tokenizer") == tok
    rows = [0, 1, n - 1]
    texts = tok.decode(cand["beam/tokens"][rows, 0])
    ref = rouge_scores(texts, [syn[i]["summary"] for i in rows])["rouge1"]
    np.testing.assert_allclose(z["oracle"][rows, 0], ref)
    ver = load_model(out / "verifier")
    src = tok.encode_source([syn[i]["text"] for i in rows], cfg.model.max_src_len)
    lp, ln = score(ver, src, cand["beam/tokens"][rows, 0], progress=False)
    np.testing.assert_allclose(z["verifier"][rows, 0], lp / ln, rtol=1e-5, atol=1e-6)
    assert r["candidates"]["beam"]["oracle_best_rouge1"] >= r["candidates"]["beam"]["rouge1"]


def _mtimes(root):
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(root)
        for f in files
        if not f.startswith("results.json") and "figures" not in d
    }


def test_rerun_resumes_without_retraining(smoke_run, capsys):
    out, r, _ = smoke_run
    before = _mtimes(out)
    assert main(["summarize", "--scale", "smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Spearman(p*, ROUGE-1)" in printed and "human_full" in printed
    with open(out / "results.json") as f:
        r2 = json.load(f)
    # issue 12: the timings are those of the first run (kept in timing.json), not of this
    # invocation, which only read the stages back
    assert r2 == r and set(r["timing"]) == {"data", "reference_models", "synthesize", "retrain"}
    # nothing was trained, decoded, scored or evaluated again: no file was written or added
    assert _mtimes(out) == before


def test_other_config_in_the_same_directory_is_refused(smoke_run, capsys):
    out, _, _ = smoke_run
    code = main(["summarize", "--scale", "smoke", "--out", str(out), "--set", "train.steps=7"])
    assert code == 2
    assert "out directory" in capsys.readouterr().err


def test_figures_only_redraws_from_results(smoke_run, tmp_path):
    out, _, _ = smoke_run
    figs = tmp_path / "figs"
    code = main(["summarize", "--out", str(out), "--figures-only", "--figures", str(figs)])
    assert code == 0
    assert sorted(os.listdir(figs)) == [
        "summarize_coverage.pdf",
        "summarize_coverage.png",
        "summarize_pstar.pdf",
        "summarize_pstar.png",
        "summarize_rates.pdf",
        "summarize_rates.png",
    ]


@pytest.mark.slow  # a second whole smoke run
def test_a_real_corpus_file_runs_through_the_pipeline(tmp_path):
    """A JSON-lines file in XL-Sum fields, a reduced smoke run (2 selectors, 1 rate)."""
    data = write_jsonl(tmp_path / "pairs.jsonl", 500, seed=3)
    out = tmp_path / "run"
    code = main(
        ["summarize", "--scale", "smoke", "--out", str(out), "--quiet", "--data", data,
         "--format", "xlsum", "--set", "selectors=random,oracle_best_of_k",
         "--set", "rates=0.5", "--set", "train.steps=20", "--set", "n_test=32"]
    )  # fmt: skip
    assert code == 0
    with open(out / "results.json") as f:
        r = json.load(f)
    assert r["config"]["data"] == data and r["config"]["format"] == "xlsum"
    assert r["sizes"]["pool"] == 500 - 32 and r["sizes"]["test"] == 32
    assert set(r["selectors"]) == {"random", "oracle_best_of_k"}
    assert list(r["selectors"]["random"]) == ["0.5"]
    # no selector reads the verifier's scores, so no verifier model is trained
    assert r["verifier_model"] is None and not (out / "verifier").exists()
    assert "verifier" not in np.load(out / "scores_beam.npz").files


def test_load_data_is_deterministic_and_disjoint(tmp_path):
    cfg = E.make_config("smoke", n_pairs=200, n_test=20)
    pool, test = E.load_data(cfg)
    assert len(pool) == 200 and len(test) == 20
    assert not {p["id"] for p in pool} & {p["id"] for p in test}
    parts = E._split_pool(cfg, pool)
    ids = [{p["id"] for p in parts[k]} for k in ("gen", "verifier", "syn")]
    assert sum(map(len, ids)) == 200 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert E.load_data(cfg) == (pool, test)
    data = write_jsonl(tmp_path / "few.jsonl", 10)
    with pytest.raises(ValueError, match="n_test=20 needs at least 28"):
        E.load_data(E.make_config("smoke", data=data, n_test=20))


def test_strategies_name_selector_and_rate():
    cfg = E.make_config("smoke", selectors=("random", "self", "verifier_best_of_k"))
    s = {x.name: x for x in E.strategies(cfg)}
    assert list(s) == [f"{n}~{r}" for n in cfg.selectors for r in ("0.125", "0.25", "0.5")]
    assert s["random~0.25"].rule == "random_fraction" and s["random~0.25"].rate == 0.25
    assert (s["self~0.5"].rule, s["self~0.5"].pool, s["self~0.5"].score) == (
        "top_fraction",
        "greedy",
        "self",
    )
    v = s["verifier_best_of_k~0.125"]
    assert (v.rule, v.pool, v.score, v.rate) == ("top_fraction", "beam", "verifier", 0.125)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"format": "json"}, "format must be one of"),
        ({"gen_fraction": 0.6, "verifier_fraction": 0.5}, "gen_fraction \\+ verifier_fraction"),
        ({"gen_fraction": 0.0}, "gen_fraction"),
        ({"rates": ()}, "rates must not be empty"),
        ({"rates": (0.5, 1.5)}, "rates"),
        ({"selectors": ("oracle", "magic")}, "selectors must be distinct names"),
        ({"selectors": ("oracle", "oracle")}, "selectors must be distinct names"),
        ({"correct_rouge1": 1.2}, "correct_rouge1"),
        ({"width": 30, "heads": 4}, "heads"),
        ({"tgt_len": 1}, "tgt_len"),
        ({"rates": (0.25, 0.25)}, "rates must be distinct"),
        ({"n_test": 1}, "n_test"),
        ({"kept": -1}, "kept"),
        ({"kept": 2.5}, "kept"),
    ],
)
def test_bad_config_is_refused_before_any_work(overrides, match):
    with pytest.raises(ValueError, match=match):
        E.make_config("smoke", **overrides)


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["summarize", "--out", str(tmp_path / "a"), "--set", "nope=1"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err
    assert main(["summarize", "--out", str(tmp_path / "b"), "--set", "rates=a,b"]) == 2
    assert "cannot read" in capsys.readouterr().err
    code = main(["summarize", "--scale", "smoke", "--out", str(tmp_path / "c"), "--data",
                 str(tmp_path / "missing.jsonl")])  # fmt: skip
    assert code == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["summarize", "--figures-only", "--out", str(tmp_path / "d")]) == 2
    assert "gmmcollapse summarize --out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["--scale", "paper"], ["--scale", "smoke", "--data", "hf:xlsum"],
     ["--scale", "smoke", "--set", "data=hf:xsum"]],
)  # fmt: skip
def test_hf_data_without_datasets_is_one_line_before_any_work(args, monkeypatch, tmp_path, capsys):
    """Issue 12: ``hf:`` data (the paper scale's default) without the ``datasets`` package is
    refused before the run directory is made or anything computed, in one line (exit 2) that
    says what to install and what to pass instead; the dry-run plan says so too."""
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # the import fails
    loaded = []
    monkeypatch.setattr(E, "load_data", lambda *a: loaded.append(a))
    out = tmp_path / "run"
    assert main(["summarize", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "error: data 'hf:" in err and "\n" not in err
    for hint in ("pip install datasets", "gmmcollapse[data]", "--data FILE", "--set data=FILE"):
        assert hint in err, hint
    assert "Traceback" not in err and not out.exists() and loaded == []
    assert main(["summarize", *args, "--dry-run"]) == 0
    assert "needs the optional package datasets" in capsys.readouterr().out


def test_a_data_file_of_unknown_type_is_refused_at_config_time(tmp_path):
    (tmp_path / "notes.txt").write_text("not a corpus\n")
    with pytest.raises(ValueError, match="cannot tell the file type.*--format"):
        E.make_config("smoke", data=str(tmp_path / "notes.txt"))
    os.rename(write_jsonl(tmp_path / "pairs.jsonl", 40, seed=1), tmp_path / "pairs.txt")
    cfg = E.make_config("smoke", data=str(tmp_path / "pairs.txt"))  # JSON lines, other name
    assert len(E.load_data(dataclasses.replace(cfg, n_pairs=0, n_test=8))[0]) == 32


def test_dry_run_prints_the_plan(capsys):
    assert main(["summarize", "--scale", "paper", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "hf:xlsum" in text and "24 models" in text and "6+6 layers" in text


def test_spearman_edge_cases():
    assert E.spearman([1, 2], [3, 4])["rho"] is None
    assert E.spearman([1, 1, 1], [1, 2, 3])["rho"] is None
    r = E.spearman([0.5, 0.7, math.nan, 0.9, 1.0], [0.1, 0.2, 0.9, 0.4, 0.3])
    # finite pairs: ranks (1, 2, 3, 4) and (1, 2, 4, 3): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert r["n"] == 4 and r["rho"] == pytest.approx(0.8)


def test_figures_script_draws_from_the_run(smoke_run, tmp_path):
    import runpy
    import sys
    from pathlib import Path

    out = smoke_run[0]
    script = Path(__file__).resolve().parents[1] / "figures" / "summarize.py"
    old = sys.argv
    sys.argv = [str(script), "--out", str(out), "--figures", str(tmp_path / "f2")]
    try:
        with pytest.raises(SystemExit) as ex:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old
    assert ex.value.code == 0 and (tmp_path / "f2" / "summarize_pstar.png").exists()


def test_rounds_through_the_pipeline(tmp_path):
    """``--set rounds=2``: each selector's model summarizes the synthesis articles again and a
    fresh model trains on the accumulated selections (pipeline.run_rounds)."""
    out = tmp_path / "rounds"
    args = ["summarize", "--scale", "smoke", "--out", str(out), "--quiet",
            "--set", "rounds=2", "--set", "round_data=accumulate", "--set", "train.steps=40",
            "--set", "selectors=oracle,self", "--set", "rates=0.5"]  # fmt: skip
    assert main(args) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["rounds"] == 2 and r["verifier_model"] is None
    for name in ("oracle", "self"):
        entry = r["selectors"][name]["0.5"]
        assert len(entry["rounds"]) == 2 and entry["rounds"][0] == entry["rouge1"]
        assert all(v is None or 0.0 <= v <= 1.0 for v in entry["rounds"])
        assert (out / "round2" / f"{name}~0.5").is_dir()


def test_the_config_embeds_the_model_and_recipe_and_keeps_the_old_names():
    cfg = E.make_config("smoke")
    assert (cfg.model.vocab_size, cfg.model.max_src_len, cfg.model.max_tgt_len) == (600, 64, 16)
    assert (cfg.train.steps, cfg.train.batch_size) == (150, 32)
    old = E.make_config("smoke", steps=300, src_len=32, width=64)
    new = E.make_config("smoke", **{"train.steps": 300, "model.max_src_len": 32, "model.width": 64})
    assert old == new and old.train.steps == 300
    with pytest.raises(ValueError, match="same field"):
        E.make_config("smoke", steps=300, **{"train.steps": 20})
    flat = cfg.to_json()
    assert set(E.ALIASES) <= set(flat) and "model" not in flat and flat["steps"] == 150
    # every model: the trained tokenizer's vocabulary, warm-up <= steps / 2, checkpoints >= 250
    assert cfg.model_config(321).vocab_size == 321
    tc = cfg.train_config(5)
    assert (tc.steps, tc.seed, tc.warmup, tc.ckpt_every) == (150, 5, 10, 250)


def test_kept_adds_selections_of_one_size_to_a_finished_run(smoke_run, tmp_path, capsys):
    """``--set kept=N``: every selector also keeps exactly N pairs at every rate, choosing among
    the first ceil(N / rate) synthesis articles; the finished run's directory accepts it, its
    other results stay as they were, and the rate where that is every article reuses the
    usual selection."""
    src, r, _ = smoke_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    n_syn = r["sizes"]["syn"]
    kept = n_syn // 8  # all the articles at rate 0.125
    figs = tmp_path / "figs"
    code = main(["summarize", "--scale", "smoke", "--out", str(out), "--set", f"kept={kept}",
                 "--figures", str(figs)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert f"every selection keeping {kept} pairs" in printed
    with open(out / "results.json") as f:
        r2 = json.load(f)
    fixed = r2.pop("fixed_kept")
    assert r2.pop("config") == E.make_config("smoke", kept=kept).to_json()
    r2["timing"].pop("retrain_fixed_kept")
    assert r2 == {k: v for k, v in r.items() if k not in ("config", "fixed_kept")}
    assert r["fixed_kept"] is None and "kept" not in r["config"]
    assert fixed["kept"] == kept
    assert fixed["articles"] == {"0.125": n_syn, "0.25": n_syn // 2, "0.5": n_syn // 4}
    for name, per_rate in fixed["selectors"].items():
        assert list(per_rate) == ["0.125", "0.25", "0.5"], name
        for rate, v in per_rate.items():
            assert v["n_selected"] == kept, (name, rate)
        assert per_rate["0.125"] == r["selectors"][name]["0.125"], name
        assert per_rate["0.5"] != r["selectors"][name]["0.5"], name
    assert fixed["spearman"]["n"] == 21
    cov = coverage(str(out), fixed_kept=True)  # recomputes the fixed-size selections
    assert fixed["coverage"] == json.loads(store.dumps(cov))
    assert {n: {q: v["n_selected"] for q, v in d.items()} for n, d in cov["selectors"].items()} \
        == {n: dict.fromkeys(d, kept) for n, d in fixed["selectors"].items()}  # fmt: skip
    assert os.path.exists(out / "strategies" / f"oracle~0.5@{n_syn // 4}.json")
    assert (figs / "summarize_pstar.png").stat().st_size > 10_000


def test_kept_beyond_the_synthesis_articles_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["summarize", "--scale", "smoke", "--out", str(out), "--set", "kept=151"])
    assert code == 2
    err = capsys.readouterr().err
    assert "kept must be in [0, 150] for 1200 synthesis articles at rate 0.125" in err
    assert not out.exists()
    with pytest.raises(ValueError, match="kept must be in"):
        E.describe(E.make_config("smoke", kept=151))
    assert "14 more models" in E.describe(E.make_config("smoke", kept=150))  # 0.125 reused
    assert "21 more models" in E.describe(E.make_config("smoke", kept=100))


@pytest.mark.parametrize("feature", ["count", "summary_words"])
def test_coverage_recomputes_the_runs_selections(smoke_run, feature):
    """Every selection recomputed from the score tables keeps what the run recorded; the
    kept shares are shares; the per-bin deltas, weighted by their held-out articles, give
    back the run's vs_generator delta."""
    out, r, _ = smoke_run
    cov = coverage(str(out), feature)
    nb = len(cov["bins"])
    assert sum(cov["test_n"]) == r["sizes"]["test"] and len(cov["pool_share"]) == nb
    assert math.isclose(sum(cov["pool_share"]), 1.0)
    assert {n: list(d) for n, d in cov["selectors"].items()} == {
        n: list(d) for n, d in r["selectors"].items()
    }
    w = np.array(cov["test_n"], float)
    for name, per_rate in cov["selectors"].items():
        for rate, v in per_rate.items():
            assert v["n_selected"] == r["selectors"][name][rate]["n_selected"]
            assert math.isclose(sum(v["kept_share"]), 1.0), (name, rate)
            d = np.nan_to_num(np.array(v["delta"]))  # an empty bin weighs nothing
            want = 100 * r["selectors"][name][rate]["vs_generator"]["delta"]
            assert np.dot(w, d) / w.sum() == pytest.approx(want, abs=1e-9), (name, rate)
    assert "random @ 0.125" in report(cov)
    if feature == "count":  # the run stored the same, computed while it ran
        assert r["coverage"] == json.loads(store.dumps(cov))


def test_coverage_refuses_a_run_that_does_not_match_its_results(smoke_run, tmp_path):
    src, _, _ = smoke_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    with np.load(out / "scores_greedy.npz") as z:
        t = dict(z)
    t["oracle"] = np.where(np.arange(len(t["oracle"]))[:, None] % 2 == 0, 2.0, t["oracle"])
    np.savez(out / "scores_greedy.npz", **t)  # oracle selections now keep other articles
    with pytest.raises(ValueError, match="does not match its results"):
        coverage(str(out))
    with pytest.raises(ValueError, match="has no fixed_kept results"):
        coverage(str(src), fixed_kept=True)
    with pytest.raises(ValueError, match="feature must be one of"):
        coverage(str(src), "length")
    with pytest.raises(FileNotFoundError, match="no results.json"):
        coverage(str(tmp_path))


def test_coverage_by_count_needs_the_built_in_corpus(smoke_run, tmp_path):
    src, r, _ = smoke_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, 20)
    res = dict(r, config=dict(r["config"], data=str(data)))
    (out / "results.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="feature 'count' needs the built-in corpus"):
        coverage(str(out), "count")


def test_coverage_figure_and_script(smoke_run, tmp_path, capsys):
    out, _, _ = smoke_run
    paths, cov = plots.coverage(str(out), str(tmp_path), rate="0.25")
    assert os.path.getsize(paths[0]) > 10_000 and cov["feature"] == "count"
    with pytest.raises(ValueError, match="rate must be one of"):
        plots.coverage(str(out), str(tmp_path), rate="0.3")


def test_coverage_matches_the_run_whatever_the_callers_x64_setting(smoke_run):
    """The run selects in float64; with the caller's x64 off, the random selections must be
    recomputed in float64 too (they draw different numbers in float32)."""
    import jax

    out, _, _ = smoke_run
    with jax.enable_x64(False):
        cov = coverage(str(out))
    assert cov == coverage(str(out))
