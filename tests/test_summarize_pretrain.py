"""Issue 13: summarizers fine-tuned from one pretrained base.

* the gap-sentence data builder: the held-out sentence is really removed from the source (a
  mask in its place) and is the target; the most salient sentence is chosen; test articles
  never reach it;
* the config: ``init`` and the pretraining fields are validated; ``init=scratch`` keeps the
  run directory and the models of before;
* a smoke run with ``init=pretrained`` through the CLI (and ``reproduce``): the base is one
  stage, every model (generator, verifier, 100%-human reference, retrained models of every
  round) is fine-tuned from it, results and figures say so;
* a ``kill -9`` during pretraining resumes to the uninterrupted base, bit for bit.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from gmmcollapse.cli import main
from gmmcollapse.models import load_model, train
from gmmcollapse.models.train import _params_hash
from gmmcollapse.summarize import SubwordTokenizer, make_corpus, rouge_scores, train_tokenizer
from gmmcollapse.summarize import experiment as E
from gmmcollapse.summarize import pretrain as P

# ----------------------------------------------------------------------------- the data builder


@pytest.fixture(scope="module")
def corpus_tok():
    pairs = make_corpus(300, seed=4)
    return pairs, train_tokenizer(pairs, vocab_size=500)


def test_split_sentences_and_saliency_is_rouge1_against_the_rest(corpus_tok):
    pairs, _ = corpus_tok
    assert P.split_sentences('He said "Go." Then left.  Fine!') == ['He said "Go."', "Then left.",
                                                                     "Fine!"]  # fmt: skip
    assert P.split_sentences("3.5 tonnes arrived. Done") == ["3.5 tonnes arrived.", "Done"]
    for p in pairs[:5]:
        sents = P.split_sentences(p["text"])
        assert " ".join(sents) == p["text"]  # the built-in corpus: one space between sentences
        rest = [" ".join(sents[:i] + sents[i + 1 :]) for i in range(len(sents))]
        ref = rouge_scores(sents, rest, use_stemmer=False, types=("rouge1",))["rouge1"]
        np.testing.assert_allclose(P.saliency(sents), ref, atol=1e-12)
    assert P.saliency(["Only one."]).tolist() == [0.0]


def test_gap_sentence_removes_the_most_salient_sentence_from_the_source(corpus_tok):
    pairs, tok = corpus_tok
    articles = [p["text"] for p in pairs]
    src_len, tgt_len = 96, 24
    d = P.gap_sentence_data(tok, articles, max_src_len=src_len, max_tgt_len=tgt_len)
    assert d.src.shape[1] == src_len and d.tgt.shape[1] == tgt_len
    assert len(set(d.article.tolist())) == len(d.article)  # gaps=1: one example per article
    n_checked = 0
    for i, (a, j) in enumerate(zip(d.article, d.sentence, strict=True)):
        sents = P.split_sentences(articles[a])
        ids = tok.encode_ids(sents)
        sal = P.saliency(sents)
        before = [t for s in ids[:j] for t in s]
        # the chosen sentence: the most salient one whose gap fits in the source
        fits = [k for k in range(len(sents)) if sum(map(len, ids[:k])) < src_len]
        assert sal[j] == max(sal[k] for k in fits) and j == min(k for k in fits
                                                                if sal[k] == sal[j])  # fmt: skip
        # the source: the other sentences' tokens, the mask where the sentence was
        row = d.src[i][d.src[i] != 0].tolist()
        assert row.count(P.MASK) == 1 and row.index(P.MASK) == len(before)
        rest = [t for s in ids[:j] for t in s] + [P.MASK] + [t for s in ids[j + 1 :] for t in s]
        assert row == rest[:src_len]
        others = " ".join(sents[:j] + sents[j + 1 :])
        shown = tok.decode(d.src[i : i + 1])[0]  # the mask (BOS) decodes to nothing
        if sents[j] not in others:  # removed: the sentence's text is nowhere in the source
            assert sents[j] not in shown
            n_checked += 1
        # the target: the removed sentence, then EOS
        tgt = d.tgt[i][d.tgt[i] != 0].tolist()
        assert tgt == ids[j][: tgt_len - 1] + [2]
        if len(ids[j]) < tgt_len:
            assert tok.decode(d.tgt[i : i + 1])[0] == sents[j]
    assert n_checked > 0.9 * len(d.article)


def test_gap_sentence_gaps_windows_and_errors(corpus_tok):
    pairs, tok = corpus_tok
    articles = [p["text"] for p in pairs[:40]]
    one = P.gap_sentence_data(tok, articles, max_src_len=96, max_tgt_len=24, gaps=1)
    two = P.gap_sentence_data(tok, articles, max_src_len=96, max_tgt_len=24, gaps=2)
    assert len(two.src) == 2 * len(one.src)  # every corpus article has 2 or more sentences
    for a in set(two.article.tolist()):
        js = two.sentence[two.article == a]
        assert len(set(js.tolist())) == 2 and js[0] == one.sentence[one.article == a][0]
    # an article of one sentence gives nothing; a gap past the cut is skipped
    d = P.gap_sentence_data(tok, ["Only one sentence here.", articles[0]], max_src_len=96,
                            max_tgt_len=24)  # fmt: skip
    assert d.article.tolist() == [1]
    long = "The first sentence has many many many words in it. Ships sank. Ships sank again."
    first = len(tok.encode_ids(["The first sentence has many many many words in it."])[0])
    d = P.gap_sentence_data(tok, [long], max_src_len=first, max_tgt_len=24, gaps=3)
    assert d.sentence.tolist() == [0]  # only the first sentence's gap lies inside the cut
    with pytest.raises(ValueError, match="no gap-sentence example"):
        P.gap_sentence_data(tok, ["One.", "Two"], max_src_len=96, max_tgt_len=24)
    with pytest.raises(ValueError, match="gaps"):
        P.gap_sentence_data(tok, articles, max_src_len=96, max_tgt_len=24, gaps=0)


# ----------------------------------------------------------------------------- the config


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"init": "imagenet"}, "init must be one of"),
        ({"pretrain_steps": 0}, "pretrain_steps"),
        ({"pretrain_gaps": 0}, "pretrain_gaps"),
        ({"pretrain_steps": 2.5}, "pretrain_steps"),
    ],
)
def test_pretraining_fields_are_validated(overrides, match):
    with pytest.raises(ValueError, match=match):
        E.make_config("smoke", **overrides)


def test_bad_init_on_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["summarize", "--scale", "smoke", "--out", str(out), "--set", "init=both"]) == 2
    err = capsys.readouterr().err.strip()
    assert "init must be one of" in err and "\n" not in err and not out.exists()


def test_defaults_and_what_a_scratch_run_stores():
    """Pretrained by default at quick and paper scale, scratch at smoke. A scratch run's
    directory config is the one of before (no ``init``, no pretraining fields: earlier run
    directories resume); its results say ``init: scratch``."""
    assert E.make_config("quick").init == "pretrained" and E.make_config("paper").init == (
        "pretrained"
    )
    smoke = E.make_config("smoke")
    assert smoke.init == "scratch"
    before = {k: v for k, v in smoke.to_json().items() if k not in ("notes", "init")}
    assert smoke.run_json() == before and "pretrain_steps" not in smoke.to_json()
    assert smoke.to_json()["init"] == "scratch"
    pre = E.make_config("smoke", init="pretrained")
    assert pre.run_json()["init"] == "pretrained" and pre.run_json()["pretrain_steps"] == 300
    assert pre.run_json() != smoke.run_json()


def test_dry_run_shows_the_pretraining_stage_with_its_time(capsys):
    assert main(["summarize", "--scale", "paper", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "pretraining: one base, gap-sentence generation" in text
    assert "100000 steps x 64" in text and "on one GPU at 100 TFLOP/s" in text
    assert "each fine-tuned from the base" in text
    assert main(["summarize", "--scale", "smoke", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "pretraining: " not in text and "each from scratch" in text


# ----------------------------------------------------------------------------- pretrained runs

ARGS = ["--scale", "smoke", "--quiet", "--set", "init=pretrained", "--set",
        "selectors=oracle,verifier", "--set", "rates=0.5", "--set", "rounds=2"]  # fmt: skip


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    """A smoke run with ``init=pretrained`` through the CLI (two selectors, two rounds), with
    the articles handed to the gap-sentence builder recorded."""
    out = tmp_path_factory.mktemp("pretrained") / "run"
    seen = []
    real = E.gap_sentence_data

    def spy(tok, articles, **kw):
        seen.append(list(articles))
        return real(tok, articles, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "gap_sentence_data", spy)
        assert main(["summarize", *ARGS, "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text()), seen


def test_pretrained_smoke_run_through_the_cli(pretrained_run, capsys):
    out, r, _ = pretrained_run
    cfg = E.make_config("smoke", init="pretrained", selectors=("oracle", "verifier"),
                        rates=(0.5,), rounds=2)  # fmt: skip
    assert r["config"] == cfg.to_json() and r["init"] == "pretrained"
    assert r["config"]["pretrain_steps"] == 300 and r["config"]["pretrain_gaps"] == 2
    assert r["pretrain"]["steps"] == 300 and r["pretrain"]["articles"] == cfg.n_pairs
    assert cfg.n_pairs < r["pretrain"]["examples"] <= 2 * cfg.n_pairs
    assert 0.0 <= r["pretrained_base"]["rouge1"] <= 1.0
    assert list(r["timing"]) == ["data", "pretrain", "reference_models", "synthesize",
                                 "retrain"]  # fmt: skip
    assert (out / "pretrained" / "config.json").exists()
    assert (out / "pretrained" / "tokenizer" / "tokenizer.json").exists()
    # the figures say how the models started; the printed report too
    from gmmcollapse.plots.summarize import init_label

    assert init_label(r) == "fine-tuned from a base pretrained for 300 steps"
    assert init_label({"config": {}}) == "from scratch"  # results of before init existed
    for name in ("summarize_rates", "summarize_pstar"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
    assert main(["summarize", *ARGS, "--out", str(out)]) == 0  # resumes: only reads back
    printed = capsys.readouterr().out
    assert "init pretrained: every model fine-tuned from one base pretrained for 300" in printed
    assert "pretrained_base" in printed


def test_every_model_is_fine_tuned_from_the_base(pretrained_run):
    """The generator, the verifier model, the 100%-human reference and the retrained model of
    every round start from the base: each one's checkpoint records the base's hash."""
    out, _, _ = pretrained_run
    base = load_model(out / "pretrained")
    h = _params_hash(nnx.to_pure_dict(nnx.split(base)[1]))
    tags = sorted(p.name for p in (out / "ckpt").iterdir())
    assert "pretrain" in tags
    tuned = [t for t in tags if t != "pretrain"]
    for want in ("generator", "verifier", "human_full"):
        assert want in tuned
    assert any(t.startswith("round2") for t in tuned) and len(tuned) == 3 + 2 * 2
    for t in tuned:
        fp = json.loads((out / "ckpt" / t / "fingerprint.json").read_text())
        assert fp.get("init") == h, t
    assert "init" not in json.loads((out / "ckpt" / "pretrain" / "fingerprint.json").read_text())


def test_pretraining_reads_the_training_articles_only(pretrained_run):
    """The base learns from the training pool's articles: no summary, no test article."""
    _, _, seen = pretrained_run
    cfg = E.make_config("smoke")
    pool, test = E.load_data(cfg)
    assert seen == [[p["text"] for p in pool]]
    assert not set(seen[0]) & {p["text"] for p in test}
    assert not set(seen[0]) & {p["summary"] for p in pool}


@pytest.mark.filterwarnings("ignore:measure. no correct candidate")  # 20 steps: none correct
def test_scratch_run_has_no_base(tmp_path):
    """``init=scratch``: no pretraining stage, no base, checkpoints without a start hash
    (those of before: earlier runs resume), results saying scratch."""
    out = tmp_path / "scratch"
    args = ["summarize", "--scale", "smoke", "--quiet", "--out", str(out), "--set",
            "selectors=oracle", "--set", "rates=0.5", "--set", "train.steps=20"]  # fmt: skip
    assert main(args) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["init"] == "scratch" and r["pretrain"] is None and r["pretrained_base"] is None
    assert "pretrain" not in r["timing"] and not (out / "pretrained").exists()
    assert "init" not in json.loads((out / "config.json").read_text())
    for d in (out / "ckpt").iterdir():
        assert d.name != "pretrain"
        assert "init" not in json.loads((d / "fingerprint.json").read_text())


@pytest.mark.filterwarnings("ignore:measure. no correct candidate")
def test_reproduce_runs_the_pretrained_path(tmp_path, monkeypatch):
    """``gmmcollapse reproduce --only summarize`` at a scale whose default is pretrained (the
    quick preset, shrunk here to smoke size)."""
    tiny = E.make_config("smoke", init="pretrained", pretrain_steps=30, n_pairs=400, n_test=16,
                         selectors=("random", "oracle", "self"), rates=(0.5,),
                         **{"train.steps": 20})  # fmt: skip
    tiny = dataclasses.replace(tiny, scale="quick")
    monkeypatch.setitem(E.SCALES, "quick", tiny)
    res, figs = tmp_path / "results", tmp_path / "figs"
    assert main(["reproduce", "--only", "summarize", "--scale", "quick", "--quiet",
                 "--results", str(res), "--out", str(figs)]) == 0  # fmt: skip
    r = json.loads((res / "summarize" / "quick" / "results.json").read_text())
    assert r["init"] == "pretrained" and r["pretrain"]["steps"] == 30
    assert (res / "summarize" / "quick" / "pretrained" / "config.json").exists()
    assert (figs / "summarize_rates.png").exists()


def test_inits_figure_compares_runs(pretrained_run, tmp_path):
    """``figures/summarize_inits.py``: the runs side by side, each titled by its init."""
    import runpy

    out, r, _ = pretrained_run
    script = Path(__file__).resolve().parents[1] / "figures" / "summarize_inits.py"
    old = sys.argv
    sys.argv = [str(script), str(out), str(out), "--figures", str(tmp_path)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old
    assert (tmp_path / "summarize_inits.png").stat().st_size > 10_000
    from gmmcollapse.plots.summarize import inits

    _, head = inits([str(out)], str(tmp_path / "b"))
    h = head[str(out)]
    assert h["init"] == "pretrained" and h["generator"] == r["generator"]["rouge1"]
    assert h["oracle"]["0.5"] == r["selectors"]["oracle"]["0.5"]["vs_generator"]["delta"]


# ----------------------------------------------------------------------------- kill -9

KILL_STEPS = 600  # long enough (seconds) to be killed mid-way
KILL_ARGS = ["summarize", "--scale", "smoke", "--set", "init=pretrained", "--set",
             f"pretrain_steps={KILL_STEPS}", "--set", "selectors=oracle", "--set", "rates=0.5",
             "--set", "train.steps=10", "--set", "n_pairs=400", "--set", "n_test=16",
             "--set", "train.ckpt_seconds=0.2"]  # fmt: skip


def _steps(out: Path) -> list[int]:
    d = out / "ckpt" / "pretrain" / "steps"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_kill_9_during_pretraining_resumes_to_the_uninterrupted_base(tmp_path):
    """The CLI killed with SIGKILL while the base pretrains (after a time checkpoint), then
    run again: the pretraining resumes from the checkpoint (its progress bar starts there)
    and the base is bit for bit the one of an uninterrupted pretraining."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gmmcollapse.cli", *KILL_ARGS, "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not _steps(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    steps = _steps(out)
    assert steps and steps[-1] < KILL_STEPS, steps  # killed inside the pretraining
    assert not (out / "pretrained" / "config.json").exists()

    again = subprocess.run([*cmd[:-3], "--out", str(out)], capture_output=True, text=True,
                           timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"| {steps[-1]}/{KILL_STEPS} [" in again.stderr
    assert f"| 0/{KILL_STEPS} [" not in again.stderr

    # the uninterrupted pretraining of the same data and recipe, in this process
    cfg = E.make_config("smoke", init="pretrained", pretrain_steps=KILL_STEPS, n_pairs=400,
                        n_test=16)  # fmt: skip
    pool, _ = E.load_data(cfg)
    tok = SubwordTokenizer.load(out / "tokenizer")
    assert tok == train_tokenizer(pool, vocab_size=cfg.model.vocab_size)
    d = P.gap_sentence_data(tok, [p["text"] for p in pool], max_src_len=cfg.model.max_src_len,
                            max_tgt_len=cfg.model.max_tgt_len, gaps=cfg.pretrain_gaps)  # fmt: skip
    ref = train(cfg.model_config(tok.vocab_size), cfg.pretrain_config(), d.src, d.tgt,
                progress=False).model  # fmt: skip
    got = load_model(out / "pretrained")
    for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(nnx.split(got)[1])),
                    jax.tree.leaves(nnx.to_pure_dict(nnx.split(ref)[1])), strict=True):  # fmt: skip
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert json.loads((out / "results.json").read_text())["init"] == "pretrained"
