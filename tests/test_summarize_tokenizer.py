"""SubwordTokenizer (gmmcollapse.summarize.tokenizer): ids after PAD/BOS/EOS, padding and
truncation, EOS on the summary side, decoding that stops at EOS, save/load, determinism (also
across processes)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gmmcollapse.models.transformer import BOS, EOS, N_SPECIAL, PAD
from gmmcollapse.summarize import SubwordTokenizer, make_corpus, train_tokenizer

VOCAB = 1200


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(800, seed=0)


@pytest.fixture(scope="module")
def tok(corpus):
    return train_tokenizer(corpus, vocab_size=VOCAB)


def test_vocabulary_and_special_ids(tok, corpus):
    assert (PAD, BOS, EOS, N_SPECIAL) == (0, 1, 2, 3)
    assert 259 <= tok.vocab_size <= VOCAB
    src = tok.encode_source([ex["text"] for ex in corpus], 300)
    assert src.dtype == np.int32 and src.shape == (800, 300)
    assert src.max() < tok.vocab_size
    # real tokens are never special ids: a row is tokens >= N_SPECIAL, then only PAD
    for row in src[:50]:
        n = int((row != PAD).sum())
        assert n > 0 and (row[:n] >= N_SPECIAL).all() and (row[n:] == PAD).all()
    # literal special-token strings are ordinary text
    ids = tok.encode(["<pad> <bos> <eos> </s> [PAD]"], 40)
    assert (ids[ids != PAD] >= N_SPECIAL).all()


def test_subwords_compress_the_corpus(tok, corpus):
    """BPE trained on the corpus: about 4 bytes and 1.4 words a token here."""
    texts = [ex["text"] for ex in corpus[:200]]
    n_tok = tok.count_tokens(texts)
    n_bytes = np.array([len(t.encode()) for t in texts])
    n_words = np.array([len(t.split()) for t in texts])
    assert n_bytes.sum() / n_tok.sum() > 3.5
    assert np.median(n_tok / n_words) < 1.7


def test_round_trip_of_summaries_articles_and_unseen_text(tok, corpus):
    summaries = [ex["summary"] for ex in corpus]
    assert tok.decode(tok.encode_target(summaries, 48)) == summaries
    texts = [ex["text"] for ex in corpus[:100]]
    assert tok.decode(tok.encode_source(texts, 400)) == texts
    # byte-level: nothing is unknown; whitespace runs become one space
    odd = ["Zürich – naïve café 東京 😀", "  tabs\tand\nnew   lines  ", ""]
    assert tok.decode(tok.encode(odd, 80)) == [
        "Zürich – naïve café 東京 😀",
        "tabs and new lines",
        "",
    ]


def test_padding_truncation_and_eos(tok):
    s = "The coast guard rescued 42 sailors in Ashford on Monday."
    n = int(tok.count_tokens([s])[0])
    assert n > 6
    full = tok.encode_target([s], n + 4)[0]
    assert (full[:n] >= N_SPECIAL).all() and full[n] == EOS and (full[n + 1 :] == PAD).all()
    src = tok.encode_source([s], n + 4)[0]
    assert (src[:n] == full[:n]).all() and (src[n:] == PAD).all()
    # truncation keeps the first tokens; the target keeps max_len - 1 of them, then EOS
    short_src = tok.encode_source([s], 5)[0]
    short_tgt = tok.encode_target([s], 5)[0]
    assert (short_src == full[:5]).all()
    assert (short_tgt[:4] == full[:4]).all() and short_tgt[4] == EOS
    assert tok.decode(tok.encode_target([s], 5))[0] == tok.decode(full[None, :4])[0]
    assert s.startswith(tok.decode(short_src)[0])
    # empty texts: PAD only (source) or EOS then PAD (target)
    assert (tok.encode([""], 3) == PAD).all()
    assert tok.encode_target([""], 3).tolist() == [[EOS, PAD, PAD]]
    assert tok.encode([], 7).shape == (0, 7)


def test_decode_stops_at_eos_and_ignores_pad_and_bos(tok):
    a, b = tok.encode_source(["police arrested", "forty-two men"], 6)
    na, nb = int((a != PAD).sum()), int((b != PAD).sum())
    row = np.concatenate([[BOS], a[:na], [PAD], [EOS], b[:nb]])
    assert tok.decode(row) == ["police arrested"]  # one row -> a list of one text
    glued = np.concatenate([a[:na], [PAD, PAD], b[:nb], [EOS, EOS]])
    assert tok.decode(glued[None]) == [tok.decode(np.concatenate([a[:na], b[:nb]]))[0]]
    assert tok.decode(np.array([[EOS, 7, 8], [PAD, PAD, PAD]])) == ["", ""]
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([[5, tok.vocab_size]])
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([[-1]])
    with pytest.raises(ValueError, match="ids must be integers"):
        tok.decode(np.array([[3.0, 4.0]]))
    with pytest.raises(ValueError, match="ids must have shape"):
        tok.decode(np.zeros((2, 2, 2), np.int32))


def test_save_and_load(tok, tmp_path, corpus):
    d = tok.save(tmp_path / "tok")
    assert sorted(os.listdir(d)) == ["tokenizer.json", "tokenizer_meta.json"]
    back = SubwordTokenizer.load(d)
    assert back == tok and back.fingerprint == tok.fingerprint
    assert back.vocab_size == tok.vocab_size
    texts = [ex["text"] for ex in corpus[:20]]
    np.testing.assert_array_equal(back.encode(texts, 64), tok.encode(texts, 64))
    assert SubwordTokenizer.from_str(tok.to_str()) == tok
    with pytest.raises(FileNotFoundError, match="no saved tokenizer"):
        SubwordTokenizer.load(tmp_path / "nothing")
    meta_path = tmp_path / "tok" / "tokenizer_meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "n_special": 4}))
    with pytest.raises(ValueError, match="special ids"):
        SubwordTokenizer.load(d)
    meta_path.write_text(json.dumps({**meta, "fingerprint": "0" * 16}))
    with pytest.raises(ValueError, match="does not match the fingerprint"):
        SubwordTokenizer.load(d)


def test_training_is_deterministic_and_depends_on_the_data(tok, corpus):
    assert train_tokenizer(corpus, vocab_size=VOCAB) == tok
    other = train_tokenizer(make_corpus(800, seed=1), vocab_size=VOCAB)
    assert other != tok
    smaller = train_tokenizer(corpus, vocab_size=600)
    assert smaller.vocab_size == 600


def test_training_is_deterministic_across_processes(tmp_path):
    code = (
        "import sys\n"
        "from gmmcollapse.summarize import make_corpus, train_tokenizer\n"
        "print(train_tokenizer(make_corpus(300, seed=2), vocab_size=700).fingerprint)\n"
    )
    here = train_tokenizer(make_corpus(300, seed=2), vocab_size=700).fingerprint
    env = {**os.environ, "PYTHONHASHSEED": "123", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == here


def test_invalid_arguments(tok):
    with pytest.raises(ValueError, match="vocab_size must"):
        SubwordTokenizer.train(["a b c"], vocab_size=100)
    with pytest.raises(ValueError, match="must not be empty"):
        SubwordTokenizer.train([])
    with pytest.raises(TypeError, match="must hold strings"):
        SubwordTokenizer.train(iter(["ok", 3]))
    with pytest.raises(TypeError, match="not one string"):
        tok.encode("a single string", 8)
    with pytest.raises(TypeError, match="must hold strings"):
        tok.encode(["ok", None], 8)
    with pytest.raises(ValueError, match="max_len must"):
        tok.encode(["a"], 0)
    with pytest.raises(ValueError, match="max_len must"):
        tok.encode_target(["a"], 1)
