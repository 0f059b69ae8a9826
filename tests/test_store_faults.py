"""The run store under faults: damaged files, locks whose holder dies, paths of the wrong kind.

Store-level checks only (no JAX compute); the sweep's use of them is in test_sweep_faults.py.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from gmmcollapse import store
from gmmcollapse.store import DamagedFile, FileLock, LockTimeout, RunDir


def _flip_last_data_byte(path, member: str) -> None:
    """Flip the last byte of ``member``'s stored data inside the zip (an array byte)."""
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


# ------------------------------------------------------------------------------ damaged files


def test_load_npz_names_a_truncated_or_flipped_file(tmp_path):
    path = tmp_path / "a.npz"
    store.save_npz(path, x=np.arange(64.0), y=np.ones(3))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DamagedFile, match=r"a\.npz is damaged or unreadable") as err:
        store.load_npz(path)
    assert err.value.path == str(path) and isinstance(err.value, ValueError)
    path.write_bytes(good)
    _flip_last_data_byte(path, "x.npy")
    with pytest.raises(DamagedFile, match="CRC"):  # zip's CRC-32 is checked: arrays read whole
        store.load_npz(path)
    with pytest.raises(FileNotFoundError):  # missing is not damaged
        store.load_npz(tmp_path / "none.npz")


def test_checked_npz_round_trip_and_checksum(tmp_path):
    path = tmp_path / "c.npz"
    store.save_checked_npz(path, {"group": 1, "start": 4}, a=np.arange(3.0), b=np.eye(2))
    head, arrays = store.load_checked_npz(path)
    assert head == {"group": 1, "start": 4}
    np.testing.assert_array_equal(arrays["a"], np.arange(3.0))
    assert set(arrays) == {"a", "b"}
    # the same header over other arrays (a valid zip): the checksum catches it
    raw = store.load_npz(path)
    store.save_npz(path, **{**raw, "a": np.arange(3.0) + 1})
    with pytest.raises(DamagedFile, match="checksum mismatch"):
        store.load_checked_npz(path)
    store.save_npz(path, a=np.arange(3.0))  # no header at all
    with pytest.raises(DamagedFile, match="no checksum header"):
        store.load_checked_npz(path)


def test_array_digest_sees_values_dtypes_shapes_and_names():
    a = {"x": np.arange(4.0)}
    assert store.array_digest(a) == store.array_digest({"x": np.arange(4.0)})
    for other in (
        {"x": np.arange(4.0) + 1},
        {"x": np.arange(4.0).astype(np.float32)},
        {"x": np.arange(4.0).reshape(2, 2)},
        {"y": np.arange(4.0)},
    ):
        assert store.array_digest(other) != store.array_digest(a)


# ------------------------------------------------------------------------------------ locks


def test_file_lock_is_exclusive_and_records_its_holder(tmp_path):
    lock = FileLock(tmp_path / "sub" / "x.lock")
    assert lock.try_acquire() and lock.held
    info = lock.holder()
    assert info["pid"] == os.getpid() and info["host"] and info["started"] <= time.time()
    assert store.holder_alive(info) is True
    assert "running" in store.describe_holder(info, lock.path)
    other = FileLock(lock.path)
    assert not other.try_acquire()  # another open file: refused, even in this process
    seen = []
    with pytest.raises(LockTimeout, match=rf"pid {os.getpid()} on host .*gave up waiting") as err:
        other.acquire(0.2, on_wait=lambda h, w: seen.append(w), poll=0.05)
    assert err.value.path == lock.path and err.value.holder["pid"] == os.getpid()
    assert seen and isinstance(err.value, TimeoutError)
    assert other.acquire(5, on_wait=lambda h, w: True) is False  # on_wait ends the wait
    lock.release()
    assert not os.path.exists(lock.path) and not lock.held
    with other:  # free now
        assert other.held
    assert not os.path.exists(lock.path)


def test_a_lock_file_of_a_dead_process_is_taken(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    path = tmp_path / "x.lock"
    record = {"pid": pid, "host": __import__("socket").gethostname(), "started": 1.0}
    path.write_text(json.dumps(record))
    assert store.holder_alive(record) is False
    assert "no longer running" in store.describe_holder(record)
    lock = FileLock(path)
    assert lock.try_acquire()
    assert lock.holder()["pid"] == os.getpid()
    lock.release()
    assert store.holder_alive({"pid": 1, "host": "elsewhere"}) is None


_HOLD = """
import sys, time
from gmmcollapse.store import FileLock
lock = FileLock(sys.argv[1])
assert lock.try_acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_the_lock_of_a_killed_process_is_released(tmp_path):
    path = tmp_path / "x.lock"
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert not lock.try_acquire()
        assert lock.holder()["pid"] == child.pid
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert lock.acquire(10, poll=0.05)  # the kernel released it: no stale lock
        assert lock.holder()["pid"] == os.getpid()
        lock.release()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()


# ------------------------------------------------------------------ paths of the wrong kind


def test_run_dir_on_an_existing_file_is_a_value_error_and_creates_nothing(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"out directory .*taken is an existing file, not a dir"):
        RunDir(f, {"a": 1}, what="out directory")
    with pytest.raises(ValueError, match=r"taken, on its path, is a file"):
        RunDir(f / "sub", {"a": 1})
    with pytest.raises(ValueError, match="is an existing file"):
        store.claim_directory(f, "stamp.json", {"a": 1})
    assert sorted(os.listdir(tmp_path)) == ["taken"] and f.read_text() == "x"


def test_file_path_checks(tmp_path):
    store.check_file_path(tmp_path / "new" / "r.npz")  # can be made: fine
    with pytest.raises(ValueError, match=r"^out .* is a directory, not a file.*results\.npz"):
        store.check_file_path(tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="on its path, is a file"):
        store.check_file_path(tmp_path / "f" / "r.npz")
    store.check_directory_path(tmp_path / "new" / "dir")
    assert sorted(os.listdir(tmp_path)) == ["f"]
