"""``gmmcollapse.models.train_steps``: the steps of ``train``, one jitted call at a time."""

import importlib

import jax
import numpy as np
import pytest
from flax import nnx

# ``gmmcollapse.models.train`` is shadowed by the function of that name in the package
from tiny_model import CFG, copy_data

from gmmcollapse.models import (
    TrainConfig,
    init_params,
    init_state,
    train,
    train_steps,
)

train_mod = importlib.import_module("gmmcollapse.models.train")

TC = TrainConfig(steps=40, batch_size=16, lr=1e-2, warmup=5, eval_every=20, steps_per_call=20)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_train_steps_is_train_bitwise():
    """Two calls of 20 steps are ``train``'s two calls (evaluation every 20 steps): the same
    parameters and losses, bit for bit, from the same compiled program."""
    src, tgt = copy_data()
    ref = train(CFG, TC, src, tgt, progress=False)
    n_compiled = train_mod._run_steps._cache_size()

    state = init_state(CFG, TC)
    assert state.step == 0
    assert all(
        np.array_equal(a, b)
        for a, b in zip(_leaves(state.params), _leaves(init_params(CFG, TC.seed)[1]), strict=True)
    )
    losses = []
    for _ in range(2):
        state, ls = train_steps(CFG, TC, state, src, tgt)
        assert isinstance(ls, np.ndarray) and ls.shape == (20,)
        losses.append(ls)
    assert state.step == 40
    assert train_mod._run_steps._cache_size() == n_compiled  # no new compilation
    trained = nnx.to_pure_dict(nnx.split(ref.model)[1])
    assert jax.tree.structure(trained) == jax.tree.structure(state.params)
    pairs = zip(_leaves(trained), _leaves(state.params), strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert [h["loss"] for h in ref.history] == [float(np.mean(ls.tolist())) for ls in losses]
    assert losses[1].mean() < losses[0].mean()


def test_train_steps_n_steps_validation():
    src, tgt = copy_data()
    with pytest.raises(ValueError, match="n_steps"):
        train_steps(CFG, TC, init_state(CFG, TC), src, tgt, 0)
