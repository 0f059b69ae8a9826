"""Sweeps under faults: concurrent identical runs, damaged or misplaced files, an ``out`` of the
wrong kind, sizes that cannot fit.

The sweep is the tiny one of test_sweep_scale.py (d = 4, float64, 3 seeds, two capacity groups,
primal path), so compiling, not computing, is the cost. Every faulty run must end with arrays
bitwise equal to the uninterrupted run's. The concurrency tests start real processes, which
coordinate through files (a child blocks after its first chunk until the test lets it go).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile

import numpy as np
import pytest

from gmmcollapse.gmm import SimSpec
from gmmcollapse.gmm.simulate import TRACE_COUNT
from gmmcollapse.gmm.sweep import (
    MEMORY_ENV,
    ChunkStore,
    Sweep,
    check_fits,
    dry_run,
    load_results,
    memory_limit,
    run_sweep,
)
from gmmcollapse.store import DamagedFile, DamagedFileWarning, FileLock

DEF = {
    "name": "faults",
    "axes": {"p": [0.0, 0.15, 0.3, 0.45, 0.6], "n": [100, 300]},
    "fixed": {"d": 4, "snr": 1.5, "phi": 1.0, "psi": 0.5, "lam": 0.1},
    "spec": {"dtype": "float64"},
    "seeds": 3,
    "seed": 7,
    "chunk": 1,
    "path": "primal",
}
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _sweep(**kw) -> Sweep:
    return Sweep(**{**DEF, **kw})


@pytest.fixture(scope="module")
def ref():
    return run_sweep(_sweep(), progress=False)


def _assert_bitwise(got, want):
    assert set(got.data) == set(want.data)
    for k, v in want.data.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


class _Stop(Exception):
    pass


def _stop_after(k):
    def callback(info):
        if info["done"] == k:
            raise _Stop

    return callback


def _interrupted(path, k=4):
    """``k`` of the 10 chunks saved in ``path.parts``, as after a crash."""
    with pytest.raises(_Stop):
        run_sweep(_sweep(), path=path, progress=_stop_after(k))


def _quiet_rerun(path, **kw):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = run_sweep(_sweep(), path=path, progress=False, **kw)
    return res, [str(w.message) for w in seen if issubclass(w.category, DamagedFileWarning)]


# ----------------------------------------------------------------- concurrent identical runs

_CHILD = """
import json, os, sys, time
import jax
jax.config.update("jax_compilation_cache_dir", os.environ["GMMCOLLAPSE_COMPILE_CACHE"])
from gmmcollapse.gmm.sweep import Sweep, run_sweep
definition, out, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]

def hold(info):  # after the first chunk, block until the test creates the go file
    if info["done"] == 1:
        deadline = time.time() + 120
        while not os.path.exists(out + ".go") and time.time() < deadline:
            time.sleep(0.05)

res = run_sweep(Sweep(**definition), path=out, progress=hold if mode == "hold" else True)
print("DONE", json.dumps([res.meta["chunks_computed"], res.meta["chunks_loaded"]]), flush=True)
"""


def _start(path, mode, log):
    with open(log, "w") as err:  # the child has its own copy of the file
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(DEF), str(path), mode],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def _wait_for(cond, what, seconds=120):
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _finish(proc):
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


def test_two_processes_same_sweep_the_second_waits_and_reuses(ref, tmp_path):
    """The issue's ``$S & sleep 9; $S``: the second run waits for the first, says so, and
    reuses its result; nothing is left behind and later reruns reuse it at once."""
    path = tmp_path / "X.npz"
    first = _start(path, "hold", tmp_path / "first.log")
    second = None
    try:
        _wait_for(lambda: os.path.exists(f"{path}.parts/chunk_0_0.npz"), "the first chunk")
        assert os.path.exists(f"{path}.parts/fingerprint.json")
        second = _start(path, "show", tmp_path / "second.log")
        log = tmp_path / "second.log"
        _wait_for(lambda: "waiting for it to finish" in log.read_text(), "the waiting line")
        text = log.read_text()
        assert f"is being computed by pid {first.pid} on host" in text
        assert f"{path}.lock" in text and "chunks are in" in text
        (tmp_path / "X.npz.go").write_text("")  # let the first one finish
        out1, out2 = _finish(first), _finish(second)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert first.returncode == 0 and second.returncode == 0, (tmp_path / "first.log").read_text()
    assert json.loads(out1.split("DONE")[1]) == [10, 0]
    assert json.loads(out2.split("DONE")[1]) == [0, 10]  # reused: nothing computed
    assert "reusing it" in (tmp_path / "second.log").read_text()
    assert sorted(os.listdir(tmp_path)) == ["X.npz", "X.npz.go", "first.log", "second.log"]
    again = run_sweep(_sweep(), path=path, progress=False)
    assert again.meta["chunks_computed"] == 0
    sims = {k: v for k, v in ref.data.items() if k.startswith("sim_")}
    _assert_bitwise(again, ref)
    _assert_bitwise(load_results(path), type(ref)(ref.axes, sims, ref.meta))


def test_a_killed_holder_is_taken_over_by_the_waiting_process(ref, tmp_path):
    """kill -9 of the run holding the lock: the waiting run takes over and resumes."""
    path = tmp_path / "X.npz"
    first = _start(path, "hold", tmp_path / "first.log")  # never let go: it blocks
    second = None
    try:
        _wait_for(lambda: os.path.exists(f"{path}.parts/chunk_0_0.npz"), "the first chunk")
        second = _start(path, "show", tmp_path / "second.log")
        log = tmp_path / "second.log"
        _wait_for(lambda: "waiting for it to finish" in log.read_text(), "the waiting line")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        out2 = _finish(second)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if first.stdout:
            first.stdout.close()
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    assert json.loads(out2.split("DONE")[1]) == [9, 1]  # resumed from the killed run's chunk
    text = (tmp_path / "second.log").read_text()
    assert "stopped or was killed" in text and "resuming from the 1 chunks" in text
    assert sorted(os.listdir(tmp_path)) == ["X.npz", "first.log", "second.log"]
    sims = {k: v for k, v in ref.data.items() if k.startswith("sim_")}
    _assert_bitwise(load_results(path), type(ref)(ref.axes, sims, ref.meta))


def test_waiting_times_out_with_what_it_waited_for_and_computes_nothing(tmp_path):
    path = tmp_path / "X.npz"
    held = FileLock(f"{path}.lock")
    assert held.try_acquire()
    try:
        traces = dict(TRACE_COUNT)
        with pytest.raises(TimeoutError) as err:
            run_sweep(_sweep(), path=path, progress=False, wait=0.3)
        msg = str(err.value)
        assert "gave up after waiting 0.3 s" in msg and f"pid {os.getpid()}" in msg
        assert f"{path}.lock" in msg and "nothing was computed here" in msg
        assert TRACE_COUNT == traces
        assert sorted(os.listdir(tmp_path)) == ["X.npz.lock"]  # no parts folder
    finally:
        held.release()


def test_a_stale_lock_file_of_a_dead_pid_is_taken_over(ref, tmp_path):
    path = tmp_path / "X.npz"
    record = {"pid": 2**22 + 12345, "host": __import__("socket").gethostname(), "started": 1.0}
    (tmp_path / "X.npz.lock").write_text(json.dumps(record))
    res = run_sweep(_sweep(), path=path, progress=False, wait=0)
    _assert_bitwise(res, ref)
    assert os.listdir(tmp_path) == ["X.npz"]


def test_a_finished_result_is_reused_even_next_to_a_parts_folder_without_fingerprint(ref, tmp_path):
    """What the old race left behind: complete X.npz and X.npz.parts without its stamp."""
    path = tmp_path / "X.npz"
    run_sweep(_sweep(), path=path, progress=False)
    os.makedirs(f"{path}.parts")
    shutil.copy(path, f"{path}.parts/chunk_0_4.npz")  # any stray chunk
    traces = dict(TRACE_COUNT)
    res = run_sweep(_sweep(), path=path, progress=False)
    assert res.meta["chunks_computed"] == 0 and TRACE_COUNT == traces
    _assert_bitwise(res, ref)
    assert os.listdir(tmp_path) == ["X.npz"]  # the stray folder is tidied (no one holds it)


def test_a_parts_folder_without_fingerprint_is_stamped_and_its_chunks_checked(ref, tmp_path):
    path = tmp_path / "X.npz"
    _interrupted(path, 3)
    os.remove(f"{path}.parts/fingerprint.json")
    res, warned = _quiet_rerun(path)
    assert any("has no readable fingerprint.json" in w for w in warned)
    assert (res.meta["chunks_loaded"], res.meta["chunks_computed"]) == (3, 7)
    _assert_bitwise(res, ref)


def test_the_parts_folder_is_never_without_its_fingerprint(tmp_path):
    """Created with its stamp inside; recreated with it if removed under a running sweep."""
    path = tmp_path / "X.npz"
    store = ChunkStore.open(path, "f" * 64, {"x": 1})
    assert os.listdir(f"{path}.parts") == ["fingerprint.json"]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp")] == []
    shutil.rmtree(f"{path}.parts")  # as the old code's finishing run did
    store.save((0, 0), {"mean/acc": np.zeros((1, 1)), "se/acc": np.zeros((1, 1))})
    assert sorted(os.listdir(f"{path}.parts")) == ["chunk_0_0.npz", "fingerprint.json"]
    with open(f"{path}.parts/fingerprint.json") as f:
        stamp = json.load(f)
    assert stamp == {"definition": {"x": 1}, "fingerprint": "f" * 64}


# ----------------------------------------------------------------------------- damaged files


def _flip(path, member="mean/acc.npy"):
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), "<u2")
        at = info.header_offset + 30 + int(name_len) + int(extra_len) + info.file_size - 1
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_chunk_is_reported_by_path_and_recomputed(ref, tmp_path, damage):
    path = tmp_path / "X.npz"
    _interrupted(path, 4)
    chunk = f"{path}.parts/chunk_0_1.npz"
    if damage == "flip":
        _flip(chunk)
    else:
        with open(chunk, "r+b") as f:
            f.truncate(os.path.getsize(chunk) // 3)
    res, warned = _quiet_rerun(path)
    assert len(warned) == 1 and warned[0].startswith(f"{chunk} is damaged or unreadable")
    assert warned[0].endswith("recomputing it")
    assert (res.meta["chunks_loaded"], res.meta["chunks_computed"]) == (3, 7)
    _assert_bitwise(res, ref)
    assert os.listdir(tmp_path) == ["X.npz"]


def test_a_truncated_results_file_is_reported_and_recomputed(ref, tmp_path):
    path = tmp_path / "X.npz"
    run_sweep(_sweep(), path=path, progress=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFile, match=r"X\.npz is damaged or unreadable"):
        load_results(path)
    res, warned = _quiet_rerun(path)
    assert len(warned) == 1 and warned[0].startswith(f"{path} is damaged or unreadable")
    assert res.meta["chunks_computed"] == 10
    _assert_bitwise(res, ref)
    _assert_bitwise(run_sweep(_sweep(), path=path, progress=False), ref)  # whole again


def test_a_chunk_copied_over_another_is_detected_and_recomputed(ref, tmp_path):
    path = tmp_path / "X.npz"
    _interrupted(path, 4)
    parts = f"{path}.parts"
    shutil.copy(f"{parts}/chunk_0_0.npz", f"{parts}/chunk_0_2.npz")  # a valid chunk, misplaced
    res, warned = _quiet_rerun(path)
    assert len(warned) == 1
    assert warned[0].startswith(f"{parts}/chunk_0_2.npz holds group 0, points 0 + 1, not group 0")
    assert "wrong place" in warned[0]
    assert (res.meta["chunks_loaded"], res.meta["chunks_computed"]) == (3, 7)
    _assert_bitwise(res, ref)


def test_a_chunk_of_another_sweep_is_detected_and_recomputed(ref, tmp_path):
    other = tmp_path / "other.npz"
    with pytest.raises(_Stop):
        run_sweep(_sweep(seed=8), path=other, progress=_stop_after(1))
    path = tmp_path / "X.npz"
    _interrupted(path, 2)
    shutil.copy(f"{other}.parts/chunk_0_0.npz", f"{path}.parts/chunk_0_0.npz")
    res, warned = _quiet_rerun(path)
    assert len(warned) == 1 and "belongs to another sweep" in warned[0]
    assert (res.meta["chunks_loaded"], res.meta["chunks_computed"]) == (1, 9)
    _assert_bitwise(res, ref)


# ------------------------------------------------------------------- out of the wrong kind


def test_out_a_directory_is_refused_before_anything(tmp_path):
    traces = dict(TRACE_COUNT)
    with pytest.raises(ValueError, match=r"^out \(the results path\) .* is a directory, not a"):
        run_sweep(_sweep(), path=tmp_path, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"file, on its path, is a file"):
        run_sweep(_sweep(), path=tmp_path / "file" / "r.npz", progress=False)
    os.makedirs(tmp_path / "r.npz.lock")
    with pytest.raises(ValueError, match=r"r\.npz\.lock must be a file"):
        run_sweep(_sweep(), path=tmp_path / "r.npz", progress=False)
    (tmp_path / "s.npz.parts").write_text("")
    with pytest.raises(ValueError, match=r"s\.npz\.parts must be a folder"):
        run_sweep(_sweep(), path=tmp_path / "s.npz", progress=False)
    assert TRACE_COUNT == traces
    assert sorted(os.listdir(tmp_path)) == ["file", "r.npz.lock", "s.npz.parts"]


# ------------------------------------------------------------------------ impossible sizes


def test_check_fits_refuses_with_the_figure_and_a_path_that_fits():
    spec = SimSpec(n_max=2**40, d=50)
    with pytest.raises(ValueError) as err:
        check_fits("dual", spec, limit=16 * 2**30)
    msg = str(err.value)
    assert "1 run needs" in msg and "TiB on path dual" in msg and "memory limit 16 GiB" in msg
    assert "path fast needs" in msg  # a flip model without margin test: the fast sampler
    with pytest.raises(ValueError, match=r"path projected needs .*path='projected'"):
        check_fits("dual", spec, pts={"tau": np.zeros(1)}, limit=16 * 2**30)
    shifted = {"tau": np.zeros(1), "sigma": np.full(1, 1.2)}  # the exact samplers are out
    with pytest.raises(ValueError, match=r"path streaming needs .*path='streaming'"):
        check_fits("dual", spec, pts=shifted, limit=16 * 2**30)
    assert check_fits("streaming", spec, pts={"tau": np.zeros(1)}, limit=16 * 2**30) < 2**30
    small = SimSpec(n_max=4096, d=64)
    one = check_fits("primal", small, limit=2**30)
    with pytest.raises(ValueError, match=r"at most \d+ seeds fit on path primal"):
        check_fits("primal", small, 10**6, pts={"tau": 0.0, "sigma": 1.2}, limit=2**30)
    assert check_fits("primal", small, 4, limit=2**30) == 4 * one
    with pytest.raises(ValueError, match="no path this model allows fits"):
        check_fits("primal", SimSpec(n_max=4096, d=64, learner="logistic"), limit=10)
    with pytest.raises(ValueError, match="path must be one of"):
        check_fits("gpu", small)


def test_memory_limit_sources(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    limit, source = memory_limit()
    assert limit > 0 and ("physical memory" in source or "device" in source)
    assert memory_limit(5e9) == (5e9, "limit")
    monkeypatch.setenv(MEMORY_ENV, "2e9")
    assert memory_limit() == (2e9, MEMORY_ENV)
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MEMORY_ENV} must be a number of bytes"):
        memory_limit()
    for bad in (0, -1, float("nan"), float("inf"), "8e9", True):
        with pytest.raises(ValueError, match=r"limit must be a number of bytes in \(0, inf\)"):
            memory_limit(bad)


def test_an_impossible_sweep_is_refused_before_compute_and_in_the_dry_run(tmp_path):
    huge = Sweep(
        "huge",
        axes={"p": [0.1, 0.2]},
        fixed={"n": 1e12, "d": 50, "snr": 1.5, "theta_ver": 0.5, "tau": 0.0},
        seeds=8,
        path="dual",
    )
    traces = dict(TRACE_COUNT)
    for call in (
        lambda: dry_run(huge, measure=False),
        lambda: run_sweep(huge, path=tmp_path / "h.npz", progress=False),
    ):
        with pytest.raises(
            ValueError, match=r"8 runs need .* TiB on path dual.*path projected needs"
        ):
            call()
    assert TRACE_COUNT == traces and os.listdir(tmp_path) == []
    # the memory limit is a parameter (and an environment variable)
    with pytest.raises(ValueError, match=r"memory limit 1 KiB \(limit;"):
        dry_run(_sweep(), measure=False, memory_limit=1024)
    assert dry_run(_sweep(), measure=False, memory_limit=1e9)["groups"]
