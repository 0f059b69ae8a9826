"""Training checkpoints by elapsed time as well as by steps (issue 12): where they fall never
changes the numbers, an interruption between step checkpoints resumes from the last time
checkpoint bitwise, and a real ``kill -9`` of a smoke-scale command resumes to the results of
an uninterrupted run."""

import dataclasses
import importlib
import json
import math
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

# ``gmmcollapse.models.train`` is shadowed by the function of that name in the package
from tiny_model import CFG, copy_data

from gmmcollapse.models import (
    TrainConfig,
    load_model,
    train,
)

train_mod = importlib.import_module("gmmcollapse.models.train")

# history records at 20 and 40; no step checkpoint before the end; 5 steps per jitted call
TC = TrainConfig(steps=40, batch_size=16, lr=1e-2, warmup=5, eval_every=20, steps_per_call=5)


def _leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(nnx.split(model)[1]))]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _losses(res):
    return [(h["step"], h["loss"]) for h in res.history]


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def uninterrupted():
    src, tgt = copy_data()
    return src, tgt, train(CFG, TC, src, tgt, progress=False)


def test_ckpt_seconds_is_validated():
    assert TrainConfig().ckpt_seconds == 60.0
    TrainConfig(ckpt_seconds=0.0)
    TrainConfig(ckpt_seconds=math.inf)  # never by time
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="ckpt_seconds"):
            TrainConfig(ckpt_seconds=bad)


def test_time_checkpoints_change_nothing_and_resume_bitwise(uninterrupted, tmp_path):
    """``ckpt_seconds=0``: a checkpoint after every jitted call, between the step marks. The
    numbers equal an uninterrupted run without checkpoints; a run stopped right after the
    step-15 checkpoint (inside the first history record) resumes there and ends bitwise the
    same, history losses included."""
    src, tgt, ref = uninterrupted
    tc = dataclasses.replace(TC, ckpt_seconds=0.0)
    seen = []
    with_ckpt = train(CFG, tc, src, tgt, ckpt_dir=tmp_path / "a", progress=False,
                      on_checkpoint=seen.append)  # fmt: skip
    assert seen == list(range(5, 45, 5))  # after every call, not only at the end
    assert _same(ref.model, with_ckpt.model) and _losses(ref) == _losses(with_ckpt)

    def stop_at_15(step):
        if step == 15:
            raise _Killed

    with pytest.raises(_Killed):
        train(CFG, tc, src, tgt, ckpt_dir=tmp_path / "b", progress=False, on_checkpoint=stop_at_15)
    first = []
    orig = train_mod._batch_indices
    try:
        train_mod._batch_indices = lambda s, *a, **k: first.append(s) or orig(s, *a, **k)
        # resumed with the default ckpt_seconds: not part of the checkpoint's fingerprint
        resumed = train(CFG, TC, src, tgt, ckpt_dir=tmp_path / "b", progress=False)
    finally:
        train_mod._batch_indices = orig
    assert first[0] == 15  # resumed from the time checkpoint, not from scratch
    assert _same(ref.model, resumed.model)
    assert _losses(ref) == _losses(resumed)  # the step-20 record averages steps 1-20


def test_step_checkpoints_only_without_time(uninterrupted, tmp_path):
    """``ckpt_seconds=inf`` keeps the step rule alone: one checkpoint, at the end."""
    src, tgt, ref = uninterrupted
    seen = []
    res = train(CFG, dataclasses.replace(TC, ckpt_seconds=math.inf), src, tgt,
                ckpt_dir=tmp_path, progress=False, on_checkpoint=seen.append)  # fmt: skip
    assert seen == [40] and _same(ref.model, res.model)


# ------------------------------------------------------------------------ a real kill -9

GEN_STEPS = 3000  # the generator trains long enough (a few seconds) to be killed mid-way
SORT = ["sort", "--scale", "smoke", "--quiet", "--set", "rounds=1", "--set", "n_syn=32",
        "--set", f"gen_steps={GEN_STEPS}"]  # fmt: skip


def _cli(args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "gmmcollapse.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _finished_steps(out: Path) -> list[int]:
    d = out / "ckpt" / "generator" / "steps"
    # orbax writes a checkpoint under a temporary name and renames it to its step when complete
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_kill_9_during_training_then_rerun_gives_the_uninterrupted_results(tmp_path):
    """``gmmcollapse sort --scale smoke`` with a checkpoint every 0.2 s, killed with SIGKILL
    while its generator trains (after a time checkpoint, long before the next step one), then
    run again: it resumes from the checkpoint and ends with the results, generator parameters
    and per-example evaluations of an uninterrupted run, bit for bit."""
    ref = tmp_path / "ref"
    base = _cli([*SORT, "--out", str(ref)])  # default ckpt_seconds: no time checkpoint here
    assert base.wait(timeout=300) == 0, base.stderr.read()

    out = tmp_path / "killed"
    args = [*SORT, "--set", "train.ckpt_seconds=0.2", "--out", str(out)]
    proc = _cli(args)
    deadline = time.monotonic() + 120
    while not _finished_steps(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    steps = _finished_steps(out)
    assert steps and steps[-1] < GEN_STEPS, steps  # killed inside the generator's training
    assert not (out / "generator" / "config.json").exists()

    # progress bars on: the generator's starts where the checkpoint left off
    again = _cli([a for a in args if a != "--quiet"])
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"| {steps[-1]}/{GEN_STEPS} [" in err and f"| 0/{GEN_STEPS} [" not in err

    # bit for bit: every number of results.json, the generator and the evaluations
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (ref / "results.json").read_text()
    )
    assert _same(load_model(out / "generator"), load_model(ref / "generator"))
    evals = sorted(p.name for p in (ref / "eval").iterdir())
    assert evals == sorted(p.name for p in (out / "eval").iterdir()) and evals
    for name in evals:
        assert np.array_equal(np.load(out / "eval" / name), np.load(ref / "eval" / name))
