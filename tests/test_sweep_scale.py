"""Sweeps at scale: determinism, sharding, resumable chunk store, multi-process split, dry run.

Every check here is *bitwise*: a point's numbers come from one per-point program (``lax.map``
over points of ``vmap`` over seeds), so they cannot depend on the chunk size, on how many
devices share a chunk, on how many processes share the grid, or on whether the run was
interrupted. Any indexing, padding, ordering or merge mistake would move values by ~1e-2.

The shared sweep is tiny (d = 4, float64, 3 seeds, two capacity groups) and forced onto the
primal path, so compilation, not compute, is the cost; its chunk-1 program is reused by the
resumption and multi-process tests. Subprocesses: one with 4 forced host devices, one that is
``kill -9``-ed mid-sweep, and two CLI processes joined by ``jax.distributed``.
"""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse.cli import main
from gmmcollapse.gmm.simulate import TRACE_COUNT
from gmmcollapse.gmm.sweep import (
    Sweep,
    _assigned,
    _groups,
    _summary,
    dry_run,
    load_results,
    run_sweep,
)

P = [0.0, 0.15, 0.3, 0.45, 0.6]
N = [100, 300]  # capacities 128 and 512: two static groups
DEF = {
    "name": "scale",
    "axes": {"p": P, "n": N},
    "fixed": {"d": 4, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1},
    "spec": {"dtype": "float64"},
    "seeds": 3,
    "seed": 7,
    "path": "primal",
}
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _sweep(**kw) -> Sweep:
    return Sweep(**{**DEF, **kw})


@pytest.fixture(scope="module")
def ref():
    """The uninterrupted single-device run (automatic chunk: one chunk per group)."""
    return run_sweep(_sweep(), progress=False)


def _assert_bitwise(got, want):
    assert set(got.data) == set(want.data)
    for k, v in want.data.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)  # NaN where NaN


def _parts(path) -> list[str]:
    folder = f"{path}.parts"
    return sorted(n for n in os.listdir(folder) if n.startswith("chunk_"))


# ------------------------------------------------------------------------------ determinism


def test_every_point_equals_a_direct_vmap_over_seeds(ref):
    """The chunk program changes nothing: each point is bitwise the direct per-point program."""
    s = _sweep()
    keys = jax.random.split(jax.random.key(s.seed), s.seeds)
    groups = _groups(s, s.points())
    assert [(g.n_max, g.plan.path) for g in groups] == [(128, "primal"), (512, "primal")]
    assert [(g["n_max"], g["path"]) for g in ref.meta["groups"]] == [
        (128, "primal"),
        (512, "primal"),
    ]
    flat = {k: v.reshape(len(P) * len(N), -1) for k, v in ref.data.items()}
    for g in groups:
        direct = jax.vmap(g.plan.simulate, in_axes=(0, None, None))
        for q, at in enumerate(g.idx):
            point = jax.tree.map(lambda a, q=q: a[q], g.params)
            res = direct(keys, point, g.plan.spec)
            want = _summary({k: np.asarray(v)[None] for k, v in res._asdict().items()})
            for k, v in want.items():
                kind, field = k.split("/")
                got = flat[f"sim_{kind}/{field}"][at]
                np.testing.assert_array_equal(got, v[0], err_msg=f"{k} at point {at}")


@pytest.mark.parametrize("chunk", [1, 3])  # 3 on 5 points per group: the last chunk is padded
def test_chunk_size_does_not_change_a_bit(ref, chunk):
    before = TRACE_COUNT["simulate"]
    res = run_sweep(_sweep(chunk=chunk), progress=False)
    # parameters are traced: one trace per group, however many chunks (10 or 4) it has
    assert TRACE_COUNT["simulate"] - before <= 2
    assert [g["chunk"] for g in res.meta["groups"]] == [chunk, chunk]
    _assert_bitwise(res, ref)


def test_two_runs_are_bitwise_identical_and_the_second_compiles_nothing(ref):
    before = dict(TRACE_COUNT)
    _assert_bitwise(run_sweep(_sweep(), progress=False), ref)
    assert TRACE_COUNT == before  # the compiled chunk programs are reused


# --------------------------------------------------------------------------------- sharding

_SHARDED = """
import json, sys
import jax
from gmmcollapse.gmm.sweep import Sweep, run_sweep
assert len(jax.devices()) == 4, jax.devices()
definition = json.loads(sys.argv[1])
for chunk, out in ((3, sys.argv[2]), (0, sys.argv[3])):
    run_sweep(Sweep(**{**definition, "chunk": chunk}), path=out, progress=False)
"""


def test_sharded_over_4_devices_equals_single_device(ref, tmp_path):
    """4 forced host devices: chunks of 3 (padded to 4) and 5 (padded to 8) points."""
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    outs = [tmp_path / "chunk3.npz", tmp_path / "auto.npz"]
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED, json.dumps(DEF), *map(str, outs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for out in outs:
        res = load_results(out)
        assert res.meta["devices"] == 4
        _assert_bitwise(res, ref)


# ------------------------------------------------------------------------- resumable store


class _Stop(Exception):
    pass


def _stop_after(k):
    def callback(info):
        if info["done"] == k:
            raise _Stop

    return callback


def test_interrupted_run_resumes_bitwise_and_computes_only_the_rest(ref, tmp_path):
    path = tmp_path / "res.npz"
    s = _sweep(chunk=1)  # 10 chunks of one point
    with pytest.raises(_Stop):
        run_sweep(s, path=path, progress=_stop_after(3))
    assert not path.exists()
    assert _parts(path) == ["chunk_0_0.npz", "chunk_0_1.npz", "chunk_0_2.npz"]
    stamp = json.loads((tmp_path / "res.npz.parts" / "fingerprint.json").read_text())
    assert stamp["definition"]["groups"][0]["chunk"] == 1

    seen = []
    res = run_sweep(s, path=path, progress=seen.append)
    assert res.meta["chunks"] == 10
    assert (res.meta["chunks_loaded"], res.meta["chunks_computed"]) == (3, 7)
    assert [(i["group"], i["start"]) for i in seen][:2] == [(0, 3), (0, 4)]
    _assert_bitwise(res, ref)
    _assert_bitwise(load_results(path), ref)
    assert load_results(path).meta["fingerprint"] == stamp["fingerprint"]
    assert os.listdir(tmp_path) == ["res.npz"]  # parts merged and removed


def test_a_different_configuration_is_refused_before_computing(tmp_path):
    path = tmp_path / "res.npz"
    with pytest.raises(_Stop):
        run_sweep(_sweep(chunk=1), path=path, progress=_stop_after(1))
    before = _parts(path)
    for other in (_sweep(chunk=1, seed=8), _sweep(chunk=2), _sweep(chunk=1, seeds=4)):
        traces = dict(TRACE_COUNT)
        with pytest.raises(ValueError, match="made by a different sweep configuration") as err:
            run_sweep(other, path=path, progress=False)
        assert "use a new output path or delete" in str(err.value)
        assert str(tmp_path / "res.npz.parts") in str(err.value)
        assert TRACE_COUNT == traces  # nothing compiled, nothing computed
    assert _parts(path) == before
    # the name changes no number: it resumes
    res = run_sweep(_sweep(chunk=1, name="renamed"), path=path, progress=False)
    assert res.meta["chunks_loaded"] == 1


_KILLED = """
import json, sys
from gmmcollapse.gmm.sweep import Sweep, run_sweep
run_sweep(Sweep(**json.loads(sys.argv[1])), path=sys.argv[2], progress=False)
"""


@pytest.mark.slow  # a real kill -9 of a long sweep; the in-process resume tests cover the default suite
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """A real SIGKILL mid-sweep: finished chunks survive, the re-run computes only the rest.

    12 chunks of ~0.3 s each (d = 128, n = 8192, 16 seeds); the child is killed as soon as
    its first chunk file appears.
    """
    definition = {
        "name": "killed",
        "axes": {"p": list(np.linspace(0.0, 0.55, 12))},
        "fixed": {"d": 128, "n": 8192, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1},
        "spec": {"dtype": "float64"},
        "seeds": 16,
        "seed": 11,
        "chunk": 1,
        "path": "primal",
    }
    path = tmp_path / "killed.npz"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, json.dumps(definition), str(path)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 120
        while not (os.path.isdir(f"{path}.parts") and _parts(path)):
            assert child.poll() is None, child.stderr.read().decode()
            assert time.time() < deadline, "no chunk was written in 120 s"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    survived = _parts(path)
    assert 1 <= len(survived) < 12 and not path.exists()

    resumed = run_sweep(Sweep(**definition), path=path, progress=False)
    assert resumed.meta["chunks_loaded"] == len(survived)
    assert resumed.meta["chunks_computed"] == 12 - len(survived)
    assert sorted(os.listdir(tmp_path)) == ["killed.npz"]
    whole = run_sweep(Sweep(**definition), progress=False)  # uninterrupted, in memory
    assert whole.meta["chunks_computed"] == 12
    _assert_bitwise(resumed, whole)


# ----------------------------------------------------------------------------- multi-host


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("n_chunks", [0, 1, 7, 10])
def test_every_chunk_is_assigned_to_exactly_one_process(count, n_chunks):
    shares = [_assigned(n_chunks, i, count) for i in range(count)]
    flat = [c for share in shares for c in share]
    assert sorted(flat) == list(range(n_chunks))  # all of them, none twice
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    with pytest.raises(ValueError, match="process index"):
        _assigned(n_chunks, count, count)


def test_parts_of_two_processes_merge_into_the_single_process_run(ref, tmp_path):
    path = tmp_path / "two.npz"
    s = _sweep(chunk=1)
    # process 0 first: computes its 5 chunks, then gives up waiting for process 1's
    with pytest.raises(TimeoutError, match="5 of 10 chunks are still missing"):
        run_sweep(s, path=path, progress=False, process=(0, 2), wait=0)
    assert _parts(path) == [
        f"chunk_{g}_{i}.npz" for g, i in ((0, 0), (0, 2), (0, 4), (1, 1), (1, 3))
    ]
    assert run_sweep(s, path=path, progress=False, process=(1, 2)) is None  # not the merger
    assert len(_parts(path)) == 10 and not path.exists()
    merged = run_sweep(s, path=path, progress=False, process=(0, 2), wait=0)
    assert (merged.meta["chunks_computed"], merged.meta["chunks_loaded"]) == (0, 10)
    assert merged.meta["processes"] == 2
    _assert_bitwise(merged, ref)
    _assert_bitwise(load_results(path), ref)
    assert os.listdir(tmp_path) == ["two.npz"]


def test_several_processes_need_a_results_path():
    with pytest.raises(ValueError, match="needs a results path"):
        run_sweep(_sweep(), progress=False, process=(0, 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two JAX processes; the 4-device sharding test covers the default suite
def test_cli_distributed_two_processes_equal_the_single_process_run(ref, tmp_path):
    """``gmmcollapse sweep --distributed``: two real JAX processes, one shared parts folder."""
    script = os.path.join(os.path.dirname(sys.executable), "gmmcollapse")
    assert os.path.exists(script), "the gmmcollapse console script is not installed"
    out = tmp_path / "dist.npz"
    argv = [script, "sweep", "--axis", "p=" + ",".join(map(str, P)), "--axis", "n=100,300"]
    argv += ["--d", "4", "--snr", "1.5", "--phi", "1", "--psi", "0.5", "--lam", "0.1"]
    argv += ["--seeds", "3", "--seed", "7", "--dtype", "float64", "--path", "primal"]
    argv += ["--chunk", "1", "--out", str(out), "--quiet", "--no-theory", "--distributed"]
    argv += ["--coordinator-address", f"localhost:{_free_port()}", "--num-processes", "2"]
    procs = [
        subprocess.Popen(
            [*argv, "--process-id", str(i)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
    assert "wrote" in outputs[0][0] and "5 of 10 chunks computed" in outputs[0][0]
    assert "process 1 of 2" in outputs[1][0]
    res = load_results(out)
    assert res.meta["processes"] == 2 and res.meta["chunks_computed"] == 5
    sims = {k: v for k, v in ref.data.items() if k.startswith("sim_")}
    _assert_bitwise(res, dataclasses.replace(ref, data=sims))
    assert os.listdir(tmp_path) == ["dist.npz"]


# ----------------------------------------------------------------------- observability


def test_dry_run_plans_paths_memory_and_flops_without_compiling():
    traces = dict(TRACE_COUNT)
    s = Sweep(
        "plan",
        axes={"n": [100, 3000, 2**20]},
        fixed={"d": 256, "snr": 1.0, "p": 0.2, "phi": 1.0, "psi": 0.5},
        seeds=32,
    )
    plan = dry_run(s, measure=False)
    assert TRACE_COUNT == traces
    assert plan["grid_size"] == 3 and plan["runs"] == 96
    assert [g["path"] for g in plan["groups"]] == ["fast", "fast", "fast"]
    fast = plan["groups"][0]["bytes_per_device"]
    assert fast == plan["groups"][2]["bytes_per_device"] == 32 * (256 * 256 + 2 * 256) * 4
    # with a margin test (selection looks at x) the fast sampler is out: the projected sampler
    # takes every n of one d in one group ...
    linear = dataclasses.replace(s, fixed={**s.fixed, "tau": 0.0})
    plan = dry_run(linear, measure=False)
    assert [(g["path"], g["n_max"], g["points"]) for g in plan["groups"]] == [
        ("projected", 2**20, 3)
    ]
    assert plan["groups"][0]["bytes_per_device"] < 32 * 2**20  # blocks of rows, not n x d
    # ... and with the shifted law on top it is out too: dual, primal, streaming
    linear = dataclasses.replace(s, fixed={**s.fixed, "tau": 0.0, "sigma": 1.2})
    plan = dry_run(linear, measure=False)
    groups = plan["groups"]
    assert [g["path"] for g in groups] == ["dual", "primal", "streaming"]
    assert [g["n_max"] for g in groups] == [128, 4096, 2**20]
    # streaming holds a few blocks of rows, not n_max: far below the primal bytes at 2^20
    assert groups[2]["bytes_per_device"] < 32 * 2**20 * 256 * 4 / 64
    assert groups[2]["flops"] > groups[1]["flops"] > groups[0]["flops"]
    assert plan["flops"] == sum(g["flops"] for g in groups)
    timed = dry_run(linear)
    assert timed["matmul_flops_per_s"] > 1e8
    assert timed["seconds"] == pytest.approx(timed["flops"] / timed["matmul_flops_per_s"])
    with pytest.raises(ValueError, match="path 'fast' needs"):
        dry_run(dataclasses.replace(linear, path="fast"), measure=False)


def test_cli_dry_run_prints_the_plan_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "never.npz"
    argv = ["sweep", "--axis", "p=0:1:5", "--axis", "n=100,1000", "--d", "64", "--snr", "1"]
    argv += ["--phi", "1", "--psi", "0.5", "--seeds", "8", "--out", str(out), "--dry-run"]
    traces = dict(TRACE_COUNT)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "grid 5x2 = 10 points x 8 seeds = 80 runs" in text
    assert "fast" in text and "mem/device" in text and "estimated time:" in text
    assert "GFLOP/s" in text and "nothing computed" in text
    assert TRACE_COUNT == traces and not os.listdir(tmp_path)


def test_progress_bar_counts_points_with_rate_and_starts_at_the_loaded_ones(
    ref, capsys, monkeypatch, tmp_path
):
    import tqdm.auto

    class Eager(tqdm.auto.tqdm):  # redraw on every update (the sweep is faster than 0.1 s)
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "mininterval": 0})

    monkeypatch.setattr(tqdm.auto, "tqdm", Eager)
    path = tmp_path / "bar.npz"
    with pytest.raises(_Stop):
        run_sweep(_sweep(chunk=1), path=path, progress=_stop_after(3))
    capsys.readouterr()
    run_sweep(_sweep(chunk=1), path=path, progress=True)
    err = capsys.readouterr().err
    assert "sweep scale:" in err and "pt/s" in err
    frames = [f for f in err.split("\r") if "sweep scale:" in f]
    assert " 3/10 " in frames[0]  # the 3 saved points count as done: ETA for the rest
    assert " 10/10 " in frames[-1]


def test_cli_simulate_path_flag(capsys):
    """``simulate --path primal`` is over_seeds on the primal path; an ineligible path exits 2."""
    from gmmcollapse.gmm import SimSpec, make_params, over_seeds, summarize

    argv = ["simulate", "--n", "20", "--d", "4", "--snr", "1", "--p", "0.2", "--psi", "0.5"]
    argv += ["--seeds", "4", "--seed", "3", "--dtype", "float64"]
    assert main([*argv, "--path", "primal", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["path"] == "primal"
    spec = SimSpec(n_max=20, d=4, dtype="float64", solver="primal")
    res = over_seeds(jax.random.key(3), make_params(20, 1.0, p=0.2, psi=0.5), spec, 4)
    mean, se = summarize(res)
    assert (got["mean"], got["se"]) == (float(mean.acc[-1]), float(se.acc[-1]))
    assert main([*argv, "--tau", "0", "--path", "fast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "path 'fast' needs" in err[0]


def test_rerunning_a_finished_sweep_simulates_nothing(tmp_path):
    from gmmcollapse.gmm.simulate import TRACE_COUNT
    from gmmcollapse.gmm.sweep import Sweep, run_sweep

    sw = Sweep(
        "reuse", axes={"p": [0.1, 0.4]}, fixed={"n": 32, "d": 8, "snr": 1.0}, seeds=2, path="primal"
    )
    out = tmp_path / "r.npz"
    first = run_sweep(sw, None, out, progress=False)
    assert first.meta["chunks_computed"] >= 1
    before = TRACE_COUNT["simulate"]
    again = run_sweep(sw, None, out, progress=False)
    assert again.meta["chunks_computed"] == 0 and TRACE_COUNT["simulate"] == before
    for k, v in first.data.items():
        np.testing.assert_array_equal(again.data[k], v)
    # another configuration at the same path is recomputed, not mixed in
    other = run_sweep(
        Sweep(
            "reuse",
            axes={"p": [0.2, 0.4]},
            fixed={"n": 32, "d": 8, "snr": 1.0},
            seeds=2,
            path="primal",
        ),
        None,
        out,
        progress=False,
    )
    assert other.meta["chunks_computed"] >= 1
    assert not np.array_equal(other["sim_mean/acc"], first["sim_mean/acc"])
