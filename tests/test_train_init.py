"""``train(..., init=params)`` (issue 13): training starts from given parameters (fine-tuning a
pretrained model); without ``init`` nothing changes, checkpoints included."""

import dataclasses
import importlib
import json

import jax
import numpy as np
import pytest
from flax import nnx
from tiny_model import CFG, copy_data

from gmmcollapse.models import (
    TrainConfig,
    TransformerConfig,
    init_params,
    init_state,
    train,
    train_steps,
)
from gmmcollapse.store import FingerprintMismatch

train_mod = importlib.import_module("gmmcollapse.models.train")

TC = TrainConfig(steps=40, batch_size=16, lr=1e-2, warmup=5, eval_every=20, steps_per_call=5)


def _reverse_data(n=24, seed=1):
    src, tgt = copy_data(n, seed)
    return src, np.concatenate([src[:, ::-1], tgt[:, 3:]], axis=1)


def _params(model):
    return nnx.to_pure_dict(nnx.split(model)[1])


def _leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(_params(model))]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _losses(res):
    return [(h["step"], h["loss"]) for h in res.history]


@pytest.fixture(scope="module")
def pretrained():
    """A model trained on one task: the base to fine-tune from."""
    return train(CFG, TC, *copy_data(), progress=False).model


def test_init_with_the_fresh_parameters_is_bitwise_the_fresh_run():
    """Starting from exactly the parameters ``train`` would draw gives its run bit for bit:
    ``init`` only replaces the starting point."""
    data = _reverse_data()
    ref = train(CFG, TC, *data, progress=False)
    _, fresh = init_params(CFG, TC.seed)
    res = train(CFG, TC, *data, progress=False, init=fresh)
    assert _same(res.model, ref.model) and _losses(res) == _losses(ref)


def test_fine_tuning_starts_from_the_given_model(pretrained):
    """From the pretrained model the loss starts where it left off, not at a fresh model's;
    a Transformer and its pure-dict parameters are the same start; the base is not changed."""
    before = _leaves(pretrained)
    data = copy_data(seed=5)
    tc = dataclasses.replace(TC, steps=5, eval_every=0)
    scratch = train(CFG, tc, *data, progress=False)
    tuned = train(CFG, tc, *data, progress=False, init=pretrained)
    assert tuned.history[-1]["loss"] < 0.5 * scratch.history[-1]["loss"]
    as_dict = train(CFG, tc, *data, progress=False, init=_params(pretrained))
    assert _same(as_dict.model, tuned.model)
    assert all(np.array_equal(a, b) for a, b in zip(before, _leaves(pretrained), strict=True))


def test_train_steps_from_init_state_matches_train(pretrained):
    """``init_state(..., init=)`` + ``train_steps`` takes ``train``'s steps from the same start."""
    data = _reverse_data()
    tc = TrainConfig(steps=10, batch_size=16, lr=1e-2, warmup=5, steps_per_call=5)
    ref = train(CFG, tc, *data, progress=False, init=pretrained)
    st = init_state(CFG, tc, init=pretrained)
    for _ in range(2):
        st, _ = train_steps(CFG, tc, st, *data)
    got = train_mod.bind(st.graphdef, st.params)
    assert _same(got, ref.model)


def test_init_of_another_shape_is_refused(pretrained):
    other = TransformerConfig(vocab_size=8, max_src_len=3, max_tgt_len=4, enc_layers=1,
                              dec_layers=1, width=32, heads=2, ff=32)  # fmt: skip
    with pytest.raises(ValueError, match="init: parameter .* has shape"):
        train(other, TC, *copy_data(), progress=False, init=pretrained)
    deeper = TransformerConfig(vocab_size=8, max_src_len=3, max_tgt_len=4, enc_layers=2,
                               dec_layers=1, width=16, heads=2, ff=32)  # fmt: skip
    with pytest.raises(ValueError, match="init must be a Transformer or its parameters"):
        train(deeper, TC, *copy_data(), progress=False, init=pretrained)
    with pytest.raises(ValueError, match="init must be"):
        train(CFG, TC, *copy_data(), progress=False, init=[1, 2])


def test_checkpoints_record_the_start_and_resume_bitwise(pretrained, tmp_path):
    """With ``init`` the fingerprint holds a hash of the starting parameters: a checkpoint
    resumes only from the same start; without ``init`` the fingerprint is what it always
    was (earlier checkpoints still resume). An interrupted fine-tuning resumes bitwise."""
    data = _reverse_data()
    ref = train(CFG, TC, *data, progress=False, init=pretrained)

    class Killed(Exception):
        pass

    def stop(step):
        if step == 20:
            raise Killed

    d = tmp_path / "tuned"
    tc = dataclasses.replace(TC, ckpt_every=20)
    with pytest.raises(Killed):
        train(CFG, tc, *data, progress=False, init=pretrained, ckpt_dir=d, on_checkpoint=stop)
    res = train(CFG, tc, *data, progress=False, init=pretrained, ckpt_dir=d)
    assert _same(res.model, ref.model)
    fp = json.loads((d / "fingerprint.json").read_text())
    assert fp["init"] == train_mod._params_hash(_params(pretrained))
    # another start, or none, in the same directory: refused
    with pytest.raises(FingerprintMismatch):
        train(CFG, tc, *data, progress=False, ckpt_dir=d)
    _, fresh = init_params(CFG, 3)
    with pytest.raises(FingerprintMismatch):
        train(CFG, tc, *data, progress=False, init=fresh, ckpt_dir=d)
    # no init: the fingerprint of before (model, recipe, data), no "init" key
    d2 = tmp_path / "scratch"
    train(CFG, tc, *data, progress=False, ckpt_dir=d2)
    fp2 = json.loads((d2 / "fingerprint.json").read_text())
    assert "init" not in fp2
    expected = train_mod._fingerprint(CFG, tc, len(data[0]), train_mod._data_hash(*data))
    assert fp2 == json.loads(json.dumps(expected))
