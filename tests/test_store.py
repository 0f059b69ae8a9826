"""The run store: atomic writes, the JSON policy for non-finite floats, fingerprints, claimed
directories and cached stages."""

import json
import math
import os

import numpy as np
import pytest

from gmmcollapse import store
from gmmcollapse.store import FingerprintMismatch, RunDir


class _Boom(Exception):
    pass


# ----------------------------------------------------------------------------- atomic writes


def _no_temporaries(folder) -> bool:
    return not [n for n in os.listdir(folder) if n.startswith(".tmp-")]


def test_a_failing_json_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    store.write_json(path, {"acc": 0.5})
    before = path.read_bytes()

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        store.write_json(path, {"acc": Unserializable()})
    assert path.read_bytes() == before
    assert _no_temporaries(tmp_path)

    def fail(*args, **kwargs):
        raise _Boom

    monkeypatch.setattr(store.os, "fsync", fail)  # the write itself dies midway
    with pytest.raises(_Boom):
        store.write_json(path, {"acc": 0.75})
    assert path.read_bytes() == before
    assert _no_temporaries(tmp_path)


def test_a_failing_npz_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    store.save_npz(path, x=np.arange(3.0))
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"half a file")
        raise _Boom

    monkeypatch.setattr(store.np, "savez", broken_savez)
    with pytest.raises(_Boom):
        store.save_npz(path, x=np.zeros(5))
    assert path.read_bytes() == before
    assert _no_temporaries(tmp_path)
    monkeypatch.undo()
    np.testing.assert_array_equal(store.load_npz(path)["x"], np.arange(3.0))


def test_writes_create_folders_keep_names_and_round_trip(tmp_path):
    arrays = {"mean/acc": np.linspace(0, 1, 4), "n": np.arange(3, dtype=np.int32)}
    p = store.save_npz(tmp_path / "sub" / "chunk_0_0.npz", **arrays)
    assert p == str(tmp_path / "sub" / "chunk_0_0.npz")  # no second .npz appended
    back = store.load_npz(p)
    assert list(back) == list(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)
    store.write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    store.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _no_temporaries(tmp_path) and _no_temporaries(tmp_path / "sub")


def test_new_files_follow_the_umask(tmp_path):
    mask = os.umask(0o022)
    try:
        store.write_json(tmp_path / "x.json", {})
    finally:
        os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------- JSON policy


def test_nan_is_null_and_infinities_keep_their_sign(tmp_path):
    obj = {
        "nan": float("nan"),
        "inf": math.inf,
        "neg": -math.inf,
        "np": np.float64("nan"),
        "np32": np.float32(0.5),
        "arr": np.array([1.0, np.nan, np.inf]),
        "tuple": (1, 2.5),
        "nested": [{"x": float("nan")}],
        "ok": 0.1,
        "flag": True,
    }
    path = tmp_path / "p.json"
    store.write_json(path, obj)
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    back = store.read_json(path)
    assert back == {
        "nan": None,
        "inf": "inf",
        "neg": "-inf",
        "np": None,
        "np32": 0.5,
        "arr": [1.0, None, "inf"],
        "tuple": [1, 2.5],
        "nested": [{"x": None}],
        "ok": 0.1,
        "flag": True,
    }
    restored = store.restore_floats(back["arr"])
    assert restored[0] == 1.0 and math.isnan(restored[1]) and restored[2] == math.inf
    assert store.restore_floats("-inf") == -math.inf


def test_the_bytes_match_the_historical_results_writer(tmp_path):
    """Results with NaN were written as ``json.dump(obj-with-NaN-as-None, f, indent=1)``."""
    obj = {"config": {"lr": 0.001, "name": "a"}, "psi": float("nan"), "acc": [0.25, 1 / 3]}
    old = json.dumps({**obj, "psi": None}, indent=1)
    store.write_json(tmp_path / "r.json", obj)
    assert (tmp_path / "r.json").read_text() == old


def test_fingerprint_is_canonical():
    a = {"b": 1, "a": (2.0, float("nan")), "c": {"y": 1, "x": 2}}
    b = {"c": {"x": 2, "y": 1}, "a": [2.0, None], "b": 1}
    assert store.fingerprint(a) == store.fingerprint(b)
    assert len(store.fingerprint(a)) == 64
    assert store.fingerprint({"b": 2}) != store.fingerprint({"b": 1})
    assert store.fingerprint(math.inf) != store.fingerprint(math.nan)
    assert store.canonical_json(a) == '{"a":[2.0,null],"b":1,"c":{"x":2,"y":1}}'


# ---------------------------------------------------------------------------- run directories


def test_a_run_dir_reopens_with_the_same_config_and_refuses_another(tmp_path):
    cfg = {"lr": 0.1, "steps": 10, "tau": -math.inf}
    run = RunDir(tmp_path / "run", cfg)
    assert run.fingerprint == store.fingerprint(cfg)
    assert store.read_json(run.file("fingerprint.json")) == {
        "lr": 0.1,
        "steps": 10,
        "tau": "-inf",
    }
    again = RunDir(tmp_path / "run", dict(reversed(cfg.items())))
    assert again.fingerprint == run.fingerprint
    with pytest.raises(FingerprintMismatch) as err:
        RunDir(tmp_path / "run", {**cfg, "lr": 0.2, "extra": 1}, what="out directory")
    msg = str(err.value)
    assert msg.startswith(f"out directory {tmp_path / 'run'} holds a different configuration")
    assert (
        run.fingerprint[:12] in msg
        and store.fingerprint({**cfg, "lr": 0.2, "extra": 1})[:12] in msg
    )
    assert "differs in extra, lr" in msg
    assert err.value.keys == ["extra", "lr"] and err.value.stored == run.fingerprint
    assert isinstance(err.value, ValueError)
    # nothing was written by the refused claim
    assert store.read_json(run.file("fingerprint.json"))["lr"] == 0.1


def test_a_stamp_written_with_nan_literals_still_matches(tmp_path):
    """Stamps written before the policy held ``NaN``; the same config reopens them."""
    (tmp_path / "fingerprint.json").write_text(json.dumps({"x": float("nan"), "n": 3}))
    RunDir(tmp_path, {"x": float("nan"), "n": 3})
    with pytest.raises(FingerprintMismatch):
        RunDir(tmp_path, {"x": 1.0, "n": 3})


def test_stages_compute_once(tmp_path):
    run = RunDir(tmp_path, {"seed": 0})
    calls = []

    def metrics():
        calls.append("json")
        return {"acc": np.float64(0.5), "psi": float("nan"), "sizes": (1, 2)}

    def arrays():
        calls.append("npz")
        return {"scores": np.arange(4.0), "ids": np.array([3, 1], np.int32)}

    first = run.stage("eval/metrics.json", metrics)
    assert first == {"acc": 0.5, "psi": None, "sizes": [1, 2]}  # as stored, already on a fresh run
    assert run.has("eval", "metrics.json")
    assert run.stage("eval/metrics.json", metrics) == first
    a = run.stage("pools.npz", arrays)
    b = run.stage("pools.npz", arrays)
    assert calls == ["json", "npz"]
    for k in ("scores", "ids"):
        assert np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype


def test_a_failing_stage_writes_nothing(tmp_path):
    run = RunDir(tmp_path, {})

    def fail():
        raise _Boom

    with pytest.raises(_Boom):
        run.stage("x.json", fail)
    assert not run.has("x.json")
    assert run.stage("x.json", lambda: [1]) == [1]


def test_cached_without_a_run_dir(tmp_path):
    n = []
    assert store.cached(tmp_path / "c.json", lambda: n.append(1) or {"a": 1}) == {"a": 1}
    assert store.cached(tmp_path / "c.json", lambda: n.append(1) or {"a": 2}) == {"a": 1}
    assert n == [1]
