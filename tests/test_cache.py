"""The CLI's persistent compilation cache (gmmcollapse._cache): where it goes, the off switch,
and that a process which enables it writes compiled programs there (and one that does not,
nothing)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from gmmcollapse import _cache, cli

_ENV_KEYS = ("XDG_CACHE_HOME", "GMMCOLLAPSE_COMPILE_CACHE", "GMMCOLLAPSE_NO_COMPILE_CACHE")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _ENV_KEYS
        and not k.startswith("JAX_COMPILATION_CACHE")
        and not k.startswith("JAX_PERSISTENT_CACHE")
    }
    env.update(extra)
    return env


def _entries(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


# ------------------------------------------------------------------------- where it goes

_RESOLVE = r"""
import json, os
import jax
from gmmcollapse._cache import cache_directory

cases = json.loads(os.environ.pop("CASES"))
out = []
for env, jax_dir in cases:
    for k in ("XDG_CACHE_HOME", "GMMCOLLAPSE_COMPILE_CACHE", "GMMCOLLAPSE_NO_COMPILE_CACHE"):
        os.environ.pop(k, None)
    os.environ.update(env)
    jax.config.update("jax_compilation_cache_dir", jax_dir)
    out.append(cache_directory())
print(json.dumps(out))
"""


def test_directory_resolution(tmp_path):
    home = os.path.expanduser("~")
    xdg = str(tmp_path / "xdg")
    mine = str(tmp_path / "mine")
    cases = [
        ({}, None),
        ({"XDG_CACHE_HOME": xdg}, None),
        ({"XDG_CACHE_HOME": "relative/path"}, None),  # not absolute: ignored (XDG spec)
        ({"XDG_CACHE_HOME": xdg, "GMMCOLLAPSE_COMPILE_CACHE": mine}, None),
        ({"XDG_CACHE_HOME": xdg}, "/already/given/to/jax"),
        ({"GMMCOLLAPSE_COMPILE_CACHE": mine}, "/already/given/to/jax"),
        ({"XDG_CACHE_HOME": xdg, "GMMCOLLAPSE_NO_COMPILE_CACHE": "1"}, None),
        ({"GMMCOLLAPSE_COMPILE_CACHE": mine, "GMMCOLLAPSE_NO_COMPILE_CACHE": "1"}, None),
        ({"XDG_CACHE_HOME": xdg, "GMMCOLLAPSE_NO_COMPILE_CACHE": "0"}, None),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _RESOLVE],
        env=_clean_env(CASES=json.dumps(cases)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == [
        os.path.join(home, ".cache", "gmmcollapse", "jax"),
        os.path.join(xdg, "gmmcollapse", "jax"),
        os.path.join(home, ".cache", "gmmcollapse", "jax"),
        mine,
        "/already/given/to/jax",
        mine,
        None,
        None,
        os.path.join(xdg, "gmmcollapse", "jax"),
    ]


# --------------------------------------------------------------------- called in process


@pytest.fixture
def restore_jax_cache_config():
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {n: getattr(jax.config, n) for n in names}
    yield
    for n, v in saved.items():
        jax.config.update(n, v)


def test_enable_sets_the_directory(tmp_path, monkeypatch, restore_jax_cache_config):
    target = tmp_path / "compiled"
    monkeypatch.setenv("GMMCOLLAPSE_COMPILE_CACHE", str(target))
    monkeypatch.delenv("GMMCOLLAPSE_NO_COMPILE_CACHE", raising=False)
    got = _cache.enable_compile_cache()
    assert got == str(target) and target.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(target)
    assert jax.config.jax_persistent_cache_min_compile_time_secs <= _cache.MIN_COMPILE_SECONDS


def test_off_switch_changes_nothing(tmp_path, monkeypatch, restore_jax_cache_config):
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("GMMCOLLAPSE_COMPILE_CACHE", str(tmp_path / "compiled"))
    monkeypatch.setenv("GMMCOLLAPSE_NO_COMPILE_CACHE", "1")
    assert _cache.cache_directory() is None
    assert _cache.enable_compile_cache() is None
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "compiled").exists()


def test_an_uncreatable_directory_means_no_cache(tmp_path, monkeypatch, restore_jax_cache_config):
    before = jax.config.jax_compilation_cache_dir
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GMMCOLLAPSE_COMPILE_CACHE", str(blocker / "jax"))
    monkeypatch.delenv("GMMCOLLAPSE_NO_COMPILE_CACHE", raising=False)
    assert _cache.enable_compile_cache() is None
    assert jax.config.jax_compilation_cache_dir == before


# ----------------------------------------------------------- a fresh process compiles

_COMPILE = r"""
import json, sys
import jax
from gmmcollapse._cache import enable_compile_cache

directory = enable_compile_cache() if sys.argv[1] == "1" else None
from gmmcollapse import gmm

res = gmm.simulate(jax.random.key(0), gmm.make_params(64, 2.0, p=0.2), gmm.SimSpec(n_max=64, d=8))
print(json.dumps({"directory": directory, "acc": float(res.acc[0])}))
"""


def _compile_in_child(tmp_path: Path, enable: bool, **env: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _COMPILE, "1" if enable else "0"],
        env=_clean_env(XDG_CACHE_HOME=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_process_that_enables_it_writes_entries_and_reuses_them(tmp_path):
    target = tmp_path / "gmmcollapse" / "jax"
    first = _compile_in_child(tmp_path, enable=True)
    assert first["directory"] == str(target)
    entries = _entries(target)
    assert entries, "no compiled program was written"
    second = _compile_in_child(tmp_path, enable=True)
    assert second == first  # same numbers from the cached program
    assert sorted(_entries(target)) == sorted(entries)  # nothing new to write


@pytest.mark.slow  # the [off] case of the CLI test covers the switch
def test_the_off_switch_and_the_library_write_nothing(tmp_path):
    off = _compile_in_child(tmp_path, enable=True, GMMCOLLAPSE_NO_COMPILE_CACHE="1")
    assert off["directory"] is None
    library = _compile_in_child(tmp_path, enable=False)  # importing/using the library only
    assert library["acc"] == off["acc"]
    assert _entries(tmp_path) == []


# ------------------------------------------------------------------- the console script

_WIRED = "enable_compile_cache" in inspect.getsource(cli)


@pytest.mark.skipif(not _WIRED, reason="cli.main() does not call enable_compile_cache yet")
@pytest.mark.parametrize("off", [False, True], ids=["on", "off"])
def test_a_cli_call_writes_entries_unless_switched_off(tmp_path, off):
    script = Path(sys.executable).with_name("gmmcollapse")
    extra = {"GMMCOLLAPSE_NO_COMPILE_CACHE": "1"} if off else {}
    proc = subprocess.run(
        [str(script), "simulate", "--n", "64", "--d", "8", "--snr", "1", "--p", "0.2"],
        env=_clean_env(XDG_CACHE_HOME=str(tmp_path), **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = _entries(tmp_path / "gmmcollapse" / "jax")
    assert (entries == []) if off else entries
