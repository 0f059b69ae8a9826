"""JAX's persistent compilation cache for the command line.

Every ``gmmcollapse`` command is a fresh process, and most of a small run's wall time is XLA
compiling the same programs as last time. :func:`enable_compile_cache` points JAX's persistent
compilation cache at a per-user directory so a repeat command loads them from disk instead.
The CLI's ``main()`` calls it once at start-up; the library never does (a library user turns
the cache on with two ``jax.config`` lines, see "Compilation cache" in ``docs/guide.md``).

Where the cache lives, first match wins:

1. ``GMMCOLLAPSE_NO_COMPILE_CACHE=1`` (or any value but ``0`` and the empty string): no cache;
2. ``GMMCOLLAPSE_COMPILE_CACHE=<dir>``;
3. a directory the user already gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
   ``jax.config.update("jax_compilation_cache_dir", ...)``);
4. ``$XDG_CACHE_HOME/gmmcollapse/jax`` (``XDG_CACHE_HOME`` must be an absolute path, as the
   XDG base-directory specification says; else it is ignored), by default
   ``~/.cache/gmmcollapse/jax``.

Entries are keyed by the program, the JAX/XLA versions and the device, so a stale entry is
never used; deleting the directory is always safe.
"""

from __future__ import annotations

import os

import jax

__all__ = ["MIN_COMPILE_SECONDS", "cache_directory", "enable_compile_cache"]

#: programs that compile faster than this are not written (JAX's default is 1 s). A repeat
#: ``gmmcollapse simulate --n 4096 --d 256 --seeds 1024`` took 2.7-2.9 s with 0.1 (8 entries,
#: 0.4 MB), 3.4 s with JAX's 1 s (1 entry) and 2.7-3.2 s with 0 (21 entries); 7-9 s uncached.
MIN_COMPILE_SECONDS = 0.1


def _off() -> bool:
    return os.environ.get("GMMCOLLAPSE_NO_COMPILE_CACHE", "") not in ("", "0")


def cache_directory() -> str | None:
    """The directory :func:`enable_compile_cache` would use, or ``None`` when it is turned off.

    Reads the environment and JAX's configuration only; creates nothing.
    """
    if _off():
        return None
    override = os.environ.get("GMMCOLLAPSE_COMPILE_CACHE")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gmmcollapse", "jax")


def enable_compile_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for this process; returns its directory.

    Returns ``None`` (and changes nothing) when ``GMMCOLLAPSE_NO_COMPILE_CACHE`` is set, or
    when the directory cannot be created (a read-only home, say: the command then runs
    without a cache rather than failing). Call it before the first compilation, as the CLI's
    ``main()`` does; it sets the process-wide ``jax_compilation_cache_dir`` and
    ``jax_persistent_cache_min_compile_time_secs`` (to :data:`MIN_COMPILE_SECONDS`, unless the
    user lowered it already), so library code must not call it.
    """
    directory = cache_directory()
    if directory is None:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    if jax.config.jax_persistent_cache_min_compile_time_secs > MIN_COMPILE_SECONDS:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
