import os
import tempfile

import jax
import pytest

# The library leaves jax_enable_x64 alone (tests/test_no_global_state.py checks it); the
# suite's own reference computations are float64, so the harness turns it on here.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# The test harness (not the library) keeps compiled programs on disk for the session, shared by
# pytest-xdist workers and by the modules after each one drops its in-memory programs (below):
# the same program is compiled once per run, not once per module.
_CACHE = os.environ.get("GMMCOLLAPSE_TEST_JAX_CACHE") or os.path.join(
    tempfile.gettempdir(), "gmmcollapse-test-jax-cache"
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
# command-line runs in child processes use the same directory, not the user's cache folder
os.environ.setdefault("GMMCOLLAPSE_COMPILE_CACHE", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def key():
    return jax.random.key(0)


from hypothesis import settings

# JAX compiles on first call, which can exceed hypothesis' per-example deadline.
settings.register_profile("gmmcollapse", deadline=None, max_examples=50)
settings.load_profile("gmmcollapse")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after every test module.

    Each compiled XLA:CPU program holds memory mappings of its own; one pytest process that
    compiles thousands of programs (this suite does) reaches the kernel's vm.max_map_count
    (65530 by default) and LLVM segfaults on the next compile. Programs are only shared within
    a module, so clearing the caches between modules costs little.
    """
    yield
    jax.clear_caches()
