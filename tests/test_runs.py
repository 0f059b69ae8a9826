"""The helpers the model experiments share (gmmcollapse._runs): presets with old flat names,
the flat persisted config, the per-model recipe, cached candidate pools and results rows."""

import dataclasses
import types

import numpy as np
import pytest

from gmmcollapse import _runs, store
from gmmcollapse.models import Generated, TrainConfig, TransformerConfig


@dataclasses.dataclass(frozen=True)
class _Cfg:
    scale: str = "base"
    n: int = 1
    model: TransformerConfig = dataclasses.field(
        default_factory=lambda: TransformerConfig(10, 4, 5, width=32, heads=2, ff=64)
    )
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(steps=100))


ALIASES = {"width": "model.width", "heads": "model.heads", "steps": "train.steps"}
SCALES = {"base": _Cfg(), "big": _Cfg(scale="big", n=5)}


def test_preset_takes_old_flat_names_and_dotted_ones():
    a = _runs.preset(SCALES, "big", {"width": 64, "steps": 7}, "toy", ALIASES)
    b = _runs.preset(SCALES, "big", {"model.width": 64, "train.steps": 7}, "toy", ALIASES)
    assert a == b and a.model.width == 64 and a.train.steps == 7 and a.n == 5
    assert a.model.heads == 2  # the rest of the embedded config is the preset's
    with pytest.raises(ValueError, match="same field 'model.width'"):
        _runs.preset(SCALES, "base", {"width": 64, "model.width": 32}, "toy", ALIASES)
    with pytest.raises(ValueError, match="unknown toy config field"):
        _runs.preset(SCALES, "base", {"depth": 3}, "toy", ALIASES)
    with pytest.raises(ValueError, match="unknown toy config field 'model.depth'"):
        _runs.preset(SCALES, "base", {"model.depth": 3}, "toy", ALIASES)
    with pytest.raises(ValueError, match="scale"):
        _runs.preset(SCALES, "huge", {}, "toy", ALIASES)
    with pytest.raises(ValueError, match="heads must divide width"):  # validated on the way
        _runs.preset(SCALES, "base", {"width": 30, "heads": 4}, "toy", ALIASES)


def test_flat_json_keeps_the_old_names_and_adds_only_what_differs():
    cfg = _runs.preset(SCALES, "base", {"width": 64}, "toy", ALIASES)
    flat = _runs.flat_json(cfg, ALIASES)
    # the embedded fields stand where the embedded config does, in the aliases' order
    assert list(flat) == ["scale", "n", "width", "heads", "steps"]
    assert flat == {"scale": "base", "n": 1, "width": 64, "heads": 2, "steps": 100}
    odd = _runs.preset(SCALES, "base", {"model.positions": "sinusoidal", "train.clip": 0.5},
                       "toy", ALIASES)  # fmt: skip
    flat = _runs.flat_json(odd, ALIASES, drop=("n",))
    assert flat["model.positions"] == "sinusoidal" and flat["train.clip"] == 0.5
    assert "n" not in flat
    # the flat JSON names every setting: two configs differ iff their JSON does
    assert store.fingerprint(_runs.flat_json(odd, ALIASES)) != store.fingerprint(
        _runs.flat_json(_Cfg(), ALIASES)
    )


def test_recipe_derives_warmup_and_checkpoints_per_model():
    base = TrainConfig(steps=1, batch_size=32, lr=3e-3, warmup=300)
    tc = _runs.recipe(base, steps=100, seed=4, ckpt_floor=500)
    assert (tc.steps, tc.seed, tc.warmup, tc.ckpt_every) == (100, 4, 50, 500)
    assert (tc.batch_size, tc.lr) == (32, 3e-3)
    tc = _runs.recipe(base, steps=4000, seed=0, ckpt_floor=250)
    assert (tc.warmup, tc.ckpt_every) == (300, 1000)
    own = dataclasses.replace(base, ckpt_every=7)
    assert _runs.recipe(own, steps=4000, seed=0, ckpt_floor=250).ckpt_every == 7


def _pool(n, k, seed):
    rng = np.random.default_rng(seed)
    return Generated(
        rng.integers(0, 9, (n, k, 3)).astype(np.int32),
        rng.normal(size=(n, k)).astype(np.float32),
        rng.integers(1, 4, (n, k)).astype(np.int32),
    )


def test_cached_pools_store_once_and_read_back_in_order(tmp_path):
    run = store.RunDir(tmp_path / "run", {"a": 1}, stamp="config.json")
    made = []

    def compute():
        made.append(1)
        return {"greedy": _pool(5, 1, 0), "beam": _pool(5, 3, 1)}

    first = _runs.cached_pools(run, compute)
    again = _runs.cached_pools(run, lambda: 1 / 0)  # finished: read back, not recomputed
    assert made == [1] and list(first) == list(again) == ["greedy", "beam"]
    for name in first:
        for a, b in zip(first[name], again[name], strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    # the file keeps its historical layout: <pool>/<field>
    assert sorted(np.load(run.file("candidates.npz")).files) == sorted(
        f"{p}/{f}" for p in ("greedy", "beam") for f in Generated._fields
    )


def test_strategy_row_and_self_scores(tmp_path):
    out = str(tmp_path)
    _runs.save_eval(out, "generator", np.array([1.0, 0.0, 1.0, 0.0]))
    _runs.save_eval(out, "s@4", np.array([1.0, 1.0, 1.0, 0.0]))
    rates = {"phi": 1.0, "psi": 0.5, "p_star": 2 / 3, "p": 0.25, "n_selected": 3.0}

    def res(acc):
        return types.SimpleNamespace(rates=rates, metrics={"acc": acc}, n_inputs=4)

    per_round = [{"s": res(0.5)}, {"s": res(0.75)}]
    row = _runs.strategy_row(out, "s", per_round, ("acc",), "acc")
    assert list(row) == ["phi", "psi", "p_star", "p", "n_selected", "acc", "vs_generator", "rounds"]
    assert row["n_selected"] == 3 and isinstance(row["n_selected"], int)
    assert row["vs_generator"]["delta"] == pytest.approx(0.25) and row["rounds"] == [0.5, 0.75]
    assert "rounds" not in _runs.strategy_row(out, "s", per_round, ("acc",), None)
    g = _pool(2, 2, 3)
    np.testing.assert_array_equal(_runs.self_scores(g), g.logprob / np.maximum(g.length, 1))


def test_ckpt_seconds_is_left_out_of_run_configs():
    """Issue 12: how often training checkpoints by time changes no result, so a run directory
    resumes under another value and the results of both compare equal."""
    cfg = _runs.preset(SCALES, "base", {"train.ckpt_seconds": 0.5, "train.lr": 0.01}, "toy")
    flat = _runs.flat_json(cfg, ALIASES)
    assert "train.ckpt_seconds" not in flat and flat["train.lr"] == 0.01
    assert flat == _runs.flat_json(_runs.preset(SCALES, "base", {"train.lr": 0.01}, "toy"), ALIASES)
    from gmmcollapse import sorting

    a = sorting.make_config("smoke", **{"train.ckpt_seconds": 0.5}).to_json()
    assert "ckpt_seconds" not in a["train"] and a == sorting.make_config("smoke").to_json()


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_stage_times_add_up_over_invocations(tmp_path, monkeypatch):
    """Issue 12: a stage's time is summed over the invocations of a resumed run: the work kept
    (committed) before an interruption counts, a stage finished earlier keeps its time, one
    that only reads its results back adds nothing."""
    clock = _Clock()
    monkeypatch.setattr(_runs.time, "perf_counter", clock)
    path = str(tmp_path / "timing.json")
    t = _runs.StageTimes(path)
    with t.stage("generator"):
        clock.t += 5.0
    with pytest.raises(KeyboardInterrupt), t.stage("retrain"):  # interrupted mid-stage
        clock.t += 3.0
        t.commit(40)  # e.g. a training checkpoint: kept
        clock.t += 2.0  # lost with the interruption: done again next time
        raise KeyboardInterrupt
    assert t.as_dict() == {"generator": 5.0}

    t = _runs.StageTimes(path)  # the next invocation
    with t.stage("generator"):  # read back: its time stays
        clock.t += 0.25
    with t.stage("retrain"):
        clock.t += 4.0
    assert t.as_dict() == {"generator": 5.0, "retrain": 7.0}
    assert _runs.StageTimes(path).as_dict() == {"generator": 5.0, "retrain": 7.0}
    t.commit()  # outside a stage: nothing to add
    assert store.read_json(path) == {"done": {"generator": 5.0, "retrain": 7.0}, "partial": {}}
    (tmp_path / "timing.json").write_text("{trunc")  # unreadable: start over, no crash
    assert _runs.StageTimes(path).as_dict() == {}
