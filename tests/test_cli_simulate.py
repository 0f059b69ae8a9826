"""``simulate`` under a memory budget (issue 12, section 1): seeds run in chunks sized from a
model of the peak memory that bounds what XLA really allocates, ``--dry-run`` shows the plan,
and sizes that cannot fit are refused with the memory figure and a path that fits, before
anything is compiled."""

import json

import jax
import numpy as np
import pytest

from gmmcollapse.cli import main
from gmmcollapse.gmm import SimSpec, make_params, summarize
from gmmcollapse.gmm import commands as C
from gmmcollapse.gmm.paths import plan
from gmmcollapse.gmm.sweep import MEMORY_ENV, run_bytes

#: the issue's request: 4096 seeds of n = 4096, d = 256 asked XLA for 104 GB at once
ISSUE = ["--n", 4096, "--d", 256, "--snr", 1, "--p", 0.3, "--theta-ver", 0.2618, "--tau", 0]
ISSUE += ["--lam", 0.1, "--seeds", 4096]
ISSUE_GIVEN = {"n": 4096.0, "d": 256.0, "snr": 1.0, "p": 0.3, "theta_ver": 0.2618, "tau": 0.0}
ISSUE_GIVEN["lam"] = 0.1


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", ["primal", "auto"])
def test_dry_run_plans_the_issue_request_in_chunks(capsys, path):
    code, out, err = _run(capsys, "simulate", *ISSUE, "--path", path, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    want = "primal" if path == "primal" else "projected"
    assert lines[0] == f"simulate: n 4096, d 256, 4096 seeds, {want} path"
    assert lines[1].startswith("chunks: ") and "memory per chunk: " in out
    assert "start-up and compilation (modelled:" in out and lines[-1] == "dry run: nothing computed"
    info = json.loads(_run(capsys, "simulate", *ISSUE, "--path", path, "--dry-run", "--json")[1])
    assert info["path"] == want and info["chunks"] > 1
    assert info["chunk"] * info["chunks"] >= 4096 > info["chunk"] * (info["chunks"] - 1)
    assert info["bytes_per_chunk"] <= C.CHUNK_BYTES
    assert info["seconds"] >= C.STARTUP_SECONDS + C.COMPILE_SECONDS
    assert f"chunks: {info['chunks']} of {info['chunk']} seed(s)" in out


@pytest.mark.parametrize(
    "spec, params, path",
    [
        ({"n_max": 4096, "d": 256}, {"p": 0.3, "theta_ver": 0.2618, "tau": 0.0}, "primal"),
        pytest.param(
            {"n_max": 4096, "d": 256},
            {"p": 0.3, "theta_ver": 0.2618, "tau": 0.0},
            "projected",
            marks=pytest.mark.slow,
        ),
        ({"n_max": 100, "d": 256}, {"p": 0.3, "theta_ver": 0.2618, "tau": 0.0}, "dual"),
        ({"n_max": 1 << 15, "d": 32}, {"p": 0.3, "theta_ver": 0.2618, "tau": 0.0}, "streaming"),
        pytest.param({"n_max": 4096, "d": 256}, {"p": 0.3}, "fast", marks=pytest.mark.slow),
    ],
)
def test_modelled_chunk_memory_bounds_what_xla_allocates(spec, params, path):
    """The plan's memory per chunk is at least what the compiled chunk program asks for
    (XLA's own memory analysis; compiled, never run)."""
    given = {"n": float(spec["n_max"]), "d": float(spec["d"]), "snr": 1.0, "lam": 0.1, **params}
    info = C.simulate_plan(given, seeds=4096, path=path, measure=False)
    assert info["path"] == path and 1 < info["chunk"] < 4096
    sim_spec = SimSpec(**spec)
    point = make_params(given["n"], 1.0, lam=0.1, **params)
    chosen = plan(sim_spec, {k: np.asarray(v)[None] for k, v in point._asdict().items()}, path)
    keys = jax.random.split(jax.random.key(0), info["chunk"])
    run = jax.jit(jax.vmap(chosen.simulate, in_axes=(0, None, None)), static_argnums=2)
    with jax.enable_x64(True):
        stats = run.lower(keys, point, chosen.spec).compile().memory_analysis()
    if stats is None:
        pytest.skip("this backend reports no memory analysis")
    used = stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes
    assert used <= info["bytes_per_chunk"], (used, info)
    if path == "primal":  # the old budget counted only the sampled data: XLA asks for more
        assert used > 4 * run_bytes(chosen.path, chosen.spec) * info["chunk"]


def test_chunked_seeds_agree_and_one_chunk_is_the_direct_vmap():
    given = {"n": 64.0, "d": 8.0, "snr": 1.0, "p": 0.2, "lam": 0.1, "theta_ver": 0.3, "tau": 0.0}
    with jax.enable_x64(True):
        one = C.simulate_point(given, seeds=6, path="primal")
        many = C.simulate_point(given, seeds=6, path="primal", chunk_bytes=1)  # 1 seed a chunk
        # one chunk: exactly the single vmap over every seed that simulate always ran
        spec = SimSpec(n_max=64, d=8)
        point = make_params(64.0, 1.0, p=0.2, lam=0.1, theta_ver=0.3, tau=0.0)
        chosen = plan(spec, {k: np.asarray(v)[None] for k, v in point._asdict().items()}, "primal")
        keys = jax.random.split(jax.random.key(0), 6)
        res = jax.jit(jax.vmap(chosen.simulate, in_axes=(0, None, None)), static_argnums=2)(
            keys, point, chosen.spec
        )
        mean, se = summarize(jax.tree.map(np.asarray, res))
    assert (
        C.simulate_plan(given, seeds=6, path="primal", chunk_bytes=1, measure=False)["chunks"] == 6
    )
    assert one["mean"] == float(mean.acc[-1]) and one["se"] == float(se.acc[-1])
    assert many["mean"] == pytest.approx(one["mean"], rel=1e-6)
    assert many["se"] == pytest.approx(one["se"], rel=1e-4)
    assert many["measured"] == one["measured"]  # counts: the same draws, chunk by chunk


def test_memory_limit_caps_the_chunk(monkeypatch):
    given = {"n": 1024.0, "d": 64.0, "snr": 1.0, "p": 0.2, "lam": 0.1, "tau": 0.0}
    free = C.simulate_plan(given, seeds=64, path="primal", measure=False)
    assert free["chunks"] == 1
    monkeypatch.setenv(MEMORY_ENV, str(free["bytes_per_seed"] * 10))
    capped = C.simulate_plan(given, seeds=64, path="primal", measure=False)
    assert capped["chunk"] == 10 and capped["chunks"] == 7  # balanced: 7 chunks of 10
    assert capped["memory_source"] == MEMORY_ENV


def test_impossible_sizes_are_refused_before_compute(capsys):
    code, out, err = _run(
        capsys, "simulate", "--n", "1e12", "--d", 50, "--snr", 1, "--path", "primal"
    )
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "TiB on path primal" in lines[0] and "over the memory limit" in lines[0]
    assert "path fast needs" in lines[0]  # the path that would fit
    # the dry run refuses too, rather than printing a plan
    code, out, err = _run(
        capsys, "simulate", "--n", "1e12", "--d", 50, "--snr", 1, "--path", "primal", "--dry-run"
    )
    assert code == 2 and out == "" and "over the memory limit" in err


def test_a_seed_over_the_limit_with_xla_memory_is_refused(monkeypatch, capsys):
    """Sampled data under the limit, but not with XLA's working memory: refused, naming a
    path that fits."""
    spec = plan(SimSpec(n_max=1 << 16, d=64), None, "primal").spec
    data = run_bytes("primal", spec)
    monkeypatch.setenv(MEMORY_ENV, str(2 * data))
    argv = ["simulate", "--n", 1 << 16, "--d", 64, "--snr", 1, "--p", 0.2, "--path", "primal"]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "1 run needs" in err and "on path primal" in err and "path fast needs" in err
