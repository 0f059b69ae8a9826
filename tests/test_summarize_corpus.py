"""The built-in news corpus (gmmcollapse.summarize.corpus): determinism, streaming, the grammar's
promises (summary grounded in the article, documented sizes) and that it is not trivial; and the
ROUGE wrapper (gmmcollapse.summarize.rouge)."""

import json
import re
import time

import numpy as np
import pytest

from gmmcollapse.summarize import (
    CorpusConfig,
    iter_corpus,
    make_corpus,
    mean_rouge,
    number_to_words,
    rouge_scores,
    split,
    write_jsonl,
)
from gmmcollapse.summarize import corpus as corpus_mod

N = 600


@pytest.fixture(scope="module")
def pairs():
    return make_corpus(N, seed=0, with_facts=True)


def test_same_seed_same_corpus_and_different_seeds_differ():
    a, b = make_corpus(50, seed=3), make_corpus(50, seed=3)
    assert a == b
    c = make_corpus(50, seed=4)
    assert sum(x["text"] == y["text"] for x, y in zip(a, c, strict=True)) == 0
    assert len({x["summary"] for x in a} & {y["summary"] for y in c}) < 3


def test_keys_types_and_unique_ids(pairs):
    assert len(pairs) == N
    for ex in make_corpus(20, seed=1):
        assert set(ex) == {"id", "text", "summary"}
        assert all(isinstance(v, str) and v for v in ex.values())
    assert len({ex["id"] for ex in pairs}) == N
    assert len({ex["text"] for ex in pairs}) == N


def test_chunking_and_offsets_do_not_change_examples():
    whole = make_corpus(37, seed=9)
    chunks = list(iter_corpus(37, seed=9, chunk_size=8))
    assert [len(c) for c in chunks] == [8, 8, 8, 8, 5]
    assert [ex for c in chunks for ex in c] == whole
    assert make_corpus(12, seed=9, start=25) == whole[25:]
    assert make_corpus(0, seed=9) == []


def test_write_jsonl_streams_the_same_pairs(tmp_path):
    path = write_jsonl(tmp_path / "news.jsonl", 25, seed=2, chunk_size=7)
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert rows == make_corpus(25, seed=2)
    assert not (tmp_path / "news.jsonl.tmp").exists()


def test_summary_is_the_canonical_sentence_of_the_key_facts(pairs):
    for ex in pairs:
        f = ex["facts"]
        actor = f["actor"][0].upper() + f["actor"][1:]
        assert ex["summary"] == (
            f"{actor} {f['verb']} {f['count']} {f['noun']} in {f['place']} on {f['day']}."
        )


def test_key_facts_are_all_in_the_article(pairs):
    """Every fact of the summary can be found in the text (the count in digits or in words)."""
    for ex in pairs:
        f, text = ex["facts"], ex["text"]
        assert f["place"] in text and f["day"] in text and f["noun"] in text
        assert f["actor"].lower() in text.lower()
        assert re.search(rf"\b{f['count']}\b", text) or number_to_words(f["count"]) in text.lower()


def test_the_corpus_is_not_trivial(pairs):
    """Measured properties that make small models err (thresholds well inside the defaults)."""
    key_pos = np.array([ex["facts"]["key_position"] for ex in pairs])
    assert 0.35 < np.mean(key_pos > 0) < 0.75  # the key event is often not first
    # the count must be converted from words (or found in a follow-up) in many articles
    digits = np.mean(
        [re.search(rf"\b{ex['facts']['count']}\b", ex["text"]) is None for ex in pairs]
    )
    assert digits > 0.3
    # almost every article has other numbers than the count, and other places
    n_numbers = [len(re.findall(r"\b\d+\b", ex["text"])) for ex in pairs]
    assert np.mean(np.array(n_numbers) >= 2) > 0.5
    places = [sum(p in ex["text"] for p in set(corpus_mod.PLACES)) for ex in pairs[:200]]
    assert np.mean(np.array(places) >= 2) > 0.9

    # a "first number" heuristic gets the count wrong in most articles
    def first_number(text):
        m = re.search(r"\b\d+\b", text)
        return int(m.group()) if m else None

    right = np.mean([first_number(ex["text"]) == ex["facts"]["count"] for ex in pairs])
    assert right < 0.45
    # the lead sentence is a poor summary; the reference itself scores 1
    lead = [ex["text"].split(". ")[0] + "." for ex in pairs[:300]]
    refs = [ex["summary"] for ex in pairs[:300]]
    assert mean_rouge(lead, refs)["rouge1"] < 0.6
    assert mean_rouge(refs, refs) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    # articles of several sentences
    lengths = [len(ex["text"].split()) for ex in pairs]
    assert 30 < np.median(lengths) < 120 and max(lengths) < 250


def test_summaries_are_varied(pairs):
    s = [ex["summary"] for ex in pairs]
    assert len(set(s)) == N
    assert len({ex["facts"]["verb"] for ex in pairs}) == corpus_mod._N_ACTIONS
    assert len({ex["facts"]["day"] for ex in pairs}) == 7


def test_config_knobs_change_the_articles():
    easy = CorpusConfig(
        p_key_first=1.0,
        p_words=0.0,
        p_split_place=0.0,
        p_split_time=0.0,
        p_vague_count=0.0,
        min_distractors=0,
        max_distractors=0,
        max_details=0,
        max_background=0,
    )
    for ex in make_corpus(100, seed=0, config=easy, with_facts=True):
        assert ex["facts"]["n_sentences"] == 1 and ex["facts"]["key_position"] == 0
        assert str(ex["facts"]["count"]) in ex["text"]
    small = make_corpus(100, seed=0, config=CorpusConfig(max_count=20), with_facts=True)
    assert max(ex["facts"]["count"] for ex in small) <= 20


def test_docstring_states_the_vocabulary_sizes():
    doc = corpus_mod.__doc__
    assert f"{len(corpus_mod.PLACES)} places" in doc
    assert f"{len(corpus_mod.COMPANIES)} company names" in doc
    assert f"{len(corpus_mod.PERSONS)} person names" in doc
    assert f"{len(corpus_mod.FOUNDATIONS)} foundations" in doc
    assert f"{corpus_mod._N_ACTIONS} actions" in doc
    assert f"{corpus_mod._N_FIXED_ACTORS} fixed organisations" in doc
    assert f"{len(corpus_mod._CATEGORIES)} actor categories" in doc


def test_generation_is_fast():
    t = time.perf_counter()
    make_corpus(5000, seed=11)
    assert time.perf_counter() - t < 5.0  # about 0.15 s here; 10^5 pairs take about 3 s


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (12, "twelve"),
        (40, "forty"),
        (42, "forty-two"),
        (100, "one hundred"),
        (105, "one hundred and five"),
        (342, "three hundred and forty-two"),
        (1000, "one thousand"),
        (45_007, "forty-five thousand and seven"),
        (120_300, "one hundred and twenty thousand three hundred"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_invalid_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="n must"):
        make_corpus(-1)
    with pytest.raises(ValueError, match="n must"):
        number_to_words(10**6)
    with pytest.raises(ValueError, match="seed must"):
        make_corpus(3, seed=1.5)
    with pytest.raises(ValueError, match="chunk_size must"):
        next(iter_corpus(3, chunk_size=0))
    with pytest.raises(ValueError, match="p_words must"):
        CorpusConfig(p_words=1.5)
    with pytest.raises(ValueError, match="max_distractors must"):
        CorpusConfig(min_distractors=3, max_distractors=2)


def test_split_is_a_seeded_partition():
    pairs = make_corpus(103, seed=0)
    a, b, c = split(pairs, [0.7, 0.2, 0.1], seed=1)
    assert (len(a), len(b), len(c)) == (72, 20, 11)  # the last part takes the remainder
    ids = [p["id"] for p in a + b + c]
    assert sorted(ids) == sorted(p["id"] for p in pairs)
    assert split(pairs, [0.7, 0.2, 0.1], seed=1) == (a, b, c)
    assert split(pairs, [0.7, 0.2, 0.1], seed=2)[0] != a
    (half,) = split(pairs, [0.5])
    assert len(half) == 51
    with pytest.raises(ValueError, match="sum to at most 1"):
        split(pairs, [0.7, 0.5])
    with pytest.raises(ValueError, match="fractions must"):
        split(pairs, [0.0, 0.5])


# ----------------------------------------------------------------------------- ROUGE


def test_rouge_known_values():
    s = rouge_scores(
        ["the cat sat on the mat", "police arrested 12 men", "nothing alike"],
        ["the cat sat on the mat", "police arrested 14 men", "a dog"],
    )
    assert set(s) == {"rouge1", "rouge2", "rougeL"}
    assert all(v.dtype == np.float64 and v.shape == (3,) for v in s.values())
    np.testing.assert_allclose([s[k][0] for k in s], 1.0)
    # 3 of 4 unigrams, 1 of 3 bigrams (police arrested), LCS 3 of 4
    np.testing.assert_allclose(s["rouge1"][1], 0.75)
    np.testing.assert_allclose(s["rouge2"][1], 1 / 3)
    np.testing.assert_allclose(s["rougeL"][1], 0.75)
    assert s["rouge1"][2] == 0.0
    # stemming: "rescues" matches "rescued"
    assert rouge_scores(["rescues"], ["rescued"])["rouge1"][0] == 1.0
    assert rouge_scores(["rescues"], ["rescued"], use_stemmer=False)["rouge1"][0] == 0.0


def test_rouge_mean_and_errors():
    m = mean_rouge(["a b", "c d"], ["a b", "x y"])
    assert m == pytest.approx({"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5})
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="not one string"):
        rouge_scores("abc", "abc")
    with pytest.raises(ValueError, match="must not be empty"):
        mean_rouge([], [])
    assert rouge_scores([], [])["rouge1"].shape == (0,)


def test_rouge_types_subset():
    preds, refs = ["police arrested 12 men", "a b c"], ["police arrested 14 men", "a c b"]
    full = rouge_scores(preds, refs)
    one = rouge_scores(preds, refs, types=["rouge1"])
    assert list(one) == ["rouge1"]
    np.testing.assert_array_equal(one["rouge1"], full["rouge1"])
    two = rouge_scores(preds, refs, types=("rougeL", "rouge2"))
    assert set(two) == {"rouge2", "rougeL"}
    np.testing.assert_array_equal(two["rougeL"], full["rougeL"])
    with pytest.raises(ValueError, match="types must be a non-empty subset"):
        rouge_scores(preds, refs, types=["rouge3"])
    with pytest.raises(ValueError, match="types must be a non-empty subset"):
        rouge_scores(preds, refs, types=[])
