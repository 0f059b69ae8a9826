"""The one way a run is persisted: atomic files, one JSON policy, fingerprints, stage caches.

Every file the package writes goes through this module:

* **Atomic writes.** :func:`write_json`, :func:`write_text`, :func:`write_bytes`,
  :func:`save_npz` and :func:`atomic_open` (a file written piece by piece) write a temporary file in the target's folder (its name starts with
  ``.tmp-`` and ends with random digits, so it never looks like a finished file), ``fsync``
  it and ``os.replace`` it over the target. A reader, or a re-run after ``kill -9``, sees the
  old file or the complete new one, never a part. A failed write leaves the old file and no
  temporary file. New files get the usual permissions (``0o666`` minus the umask).
* **JSON and non-finite floats.** JSON has no NaN or infinity. :func:`jsonable` (used by every
  JSON writer here, and by :func:`fingerprint`) maps NaN to ``null``, ``+inf`` to the string
  ``"inf"`` and ``-inf`` to ``"-inf"``; it also turns tuples and NumPy arrays into lists and
  NumPy scalars into Python numbers. NaN -> ``null`` is what the results files have always
  held (e.g. ``psi`` when no candidate was wrong), so they keep their bytes; infinities keep
  their sign and stay distinct from NaN (e.g. a strategy's ``tau = -inf``, "no threshold").
  :func:`read_json` returns the file as stored (``null`` -> ``None``, ``"inf"`` stays a
  string); :func:`restore_floats` maps those back to floats where a float is expected.
* **Fingerprints.** :func:`fingerprint` is the sha256 of a config's canonical JSON (the policy
  above, sorted keys, no spaces): equal configs give equal fingerprints, whatever their key
  order or container types.
* **Run directories.** :class:`RunDir` claims a directory for one configuration: it records
  the config in a stamp file the first time and refuses, on reopening, a different one with a
  :class:`FingerprintMismatch` that names both fingerprints and the differing keys.
  :meth:`RunDir.stage` caches a stage's result (JSON, or arrays in ``.npz``): a finished stage
  is read back, a missing one is computed, written atomically and returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

__all__ = [
    "FingerprintMismatch",
    "RunDir",
    "atomic_open",
    "cached",
    "canonical_json",
    "claim_directory",
    "digest",
    "dumps",
    "fingerprint",
    "jsonable",
    "load_npz",
    "read_json",
    "restore_floats",
    "save_npz",
    "write_bytes",
    "write_json",
    "write_text",
]

# --------------------------------------------------------------------------- JSON policy


def _float(x: float) -> float | str | None:
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values under the package's policy for non-finite floats.

    NaN -> ``None``, ``+inf`` -> ``"inf"``, ``-inf`` -> ``"-inf"``; dicts and lists are
    converted recursively (tuples and arrays become lists, NumPy scalars Python numbers, dict
    keys stay as they are). Finite floats are returned unchanged (same ``repr``, same JSON).

    >>> jsonable({"a": float("nan"), "b": [1.5, float("-inf")], "c": (1, 2)})
    {'a': None, 'b': [1.5, '-inf'], 'c': [1, 2]}
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, float):  # also np.float64 (a float subclass)
        return _float(obj) if not math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj


def restore_floats(obj: Any) -> Any:
    """Inverse of :func:`jsonable` for numbers: ``None`` -> NaN, ``"inf"`` / ``"-inf"`` ->
    infinities, recursively. Use it only where every leaf is meant to be a float.

    >>> restore_floats([None, "inf", 2.0])
    [nan, inf, 2.0]
    """
    if obj is None:
        return math.nan
    if obj == "inf":
        return math.inf
    if obj == "-inf":
        return -math.inf
    if isinstance(obj, dict):
        return {k: restore_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [restore_floats(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(jsonable(obj), **kwargs)``, strict: the text is always valid JSON."""
    return json.dumps(jsonable(obj), allow_nan=False, **kwargs)


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: the policy, sorted keys, no spaces."""
    return dumps(obj, sort_keys=True, separators=(",", ":"))


def digest(*parts: str | bytes, length: int | None = None) -> str:
    """sha256 (hex) of the concatenated ``parts`` (strings as UTF-8), cut to ``length`` digits."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    return h.hexdigest()[:length]


def fingerprint(obj: Any) -> str:
    """sha256 (64 hex digits) of the canonical JSON of ``obj`` (see :func:`canonical_json`).

    >>> fingerprint({"b": 1, "a": (2, 3)}) == fingerprint({"a": [2, 3], "b": 1})
    True
    """
    return digest(canonical_json(obj))


# ------------------------------------------------------------------------- atomic writes


def _fsync_dir(folder: str) -> None:
    """Persist a rename (POSIX; silently skipped where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """A file to write ``path`` through: a temporary file next to it, moved over ``path`` when
    the ``with`` block ends without an exception (and deleted when it raises).

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. For files written piece by piece (e.g. a
    streamed JSON-lines corpus); whole values have :func:`write_text` and the others.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be one of w, wb, got {mode!r}")
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(
        folder, f".tmp-{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    try:
        kw = {} if mode == "wb" else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def _atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> str:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it over ``path``."""
    with atomic_open(path, mode) as f:
        write(f)
    return os.path.abspath(os.fspath(path))


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (folders are created); returns the path."""
    return _atomic(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return _atomic(path, lambda f: f.write(text), mode="w")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, **kwargs) -> str:
    """Write ``obj`` as JSON (the non-finite policy of :func:`jsonable`) atomically.

    ``indent=1`` and no trailing newline, as every JSON file of the package has been written;
    further keyword arguments go to :func:`json.dumps` (e.g. ``sort_keys``).
    """
    return write_text(path, dumps(obj, indent=indent, **kwargs))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, as stored (see :func:`restore_floats` for the non-finite floats)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_npz(path: str | os.PathLike, /, **arrays: Any) -> str:
    """``np.savez`` to ``path`` atomically (uncompressed; the name is kept as given)."""
    return _atomic(path, lambda f: np.savez(f, **arrays))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read into memory (no pickles)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# -------------------------------------------------------------------------- run directories


class FingerprintMismatch(ValueError):
    """A directory holds another configuration than the one that claims it.

    Attributes: ``path`` (the stamp file), ``stored`` and ``expected`` (the two fingerprints),
    ``keys`` (the top-level keys that differ, when both are dicts).
    """

    def __init__(self, message: str, path: str, stored: str, expected: str, keys: list[str]):
        super().__init__(message)
        self.path, self.stored, self.expected, self.keys = path, stored, expected, keys


def _differing(old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return sorted(str(k) for k in set(old) | set(new) if old.get(k) != new.get(k))
    return []


def claim_directory(
    directory: str | os.PathLike,
    filename: str,
    config: Any,
    what: str = "run directory",
    hint: str = "use another directory or delete it",
) -> str:
    """Record ``config`` in ``directory/filename``, or check that it matches the one there.

    Makes the directory if needed and returns the config's :func:`fingerprint`. The stamp file
    holds the config itself (``indent=1``), so a person can read what the directory is for. A
    different stored config raises :class:`FingerprintMismatch`, e.g. ``run directory out/
    holds a different configuration (stored fingerprint 3f2a..., this one 9c1e...; differs in
    lr); use another directory or delete it``. ``what`` and ``hint`` word that message.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, filename)
    new = jsonable(config)
    ours = fingerprint(new)
    if os.path.exists(path):
        old = jsonable(read_json(path))  # a stamp written before the policy may hold NaN
        if old != new:  # values, not text: 1 and 1.0 stay the same setting
            theirs = fingerprint(old)
            keys = _differing(old, new)
            diff = f"; differs in {', '.join(keys)}" if keys else ""
            raise FingerprintMismatch(
                f"{what} {directory} holds a different configuration (stored fingerprint "
                f"{theirs[:12]}, this one {ours[:12]}{diff}); {hint}",
                path,
                theirs,
                ours,
                keys,
            )
        return ours
    write_json(path, new)  # several processes may race here: they write the same content
    return ours


def cached(path: str | os.PathLike, compute: Callable[[], Any]) -> Any:
    """The stage result in ``path`` if it is there, else ``compute()`` written there first.

    A path ending in ``.npz`` holds arrays (``compute`` returns a mapping of arrays; the
    result is a ``dict`` of NumPy arrays either way); any other path holds JSON, and the
    result is the stored JSON either way (:func:`jsonable` of what ``compute`` returned), so a
    fresh and a resumed run see the same values.
    """
    path = os.fspath(path)
    if os.fspath(path).endswith(".npz"):
        if os.path.exists(path):
            return load_npz(path)
        arrays = {k: np.asarray(v) for k, v in dict(compute()).items()}
        save_npz(path, **arrays)
        return arrays
    if os.path.exists(path):
        return read_json(path)
    value = json.loads(dumps(compute()))
    write_json(path, value)
    return value


class RunDir:
    """A directory claimed by one configuration, with cached stages.

    ``RunDir(path, config)`` creates ``path`` and records ``config`` in ``path/stamp``, or
    reopens it when the stored config has the same :func:`fingerprint`; otherwise it raises
    :class:`FingerprintMismatch` (nothing is written). Then:

    * :meth:`file` names a file inside it;
    * :meth:`stage` returns a finished stage's cached result or computes and stores it;
    * :meth:`has` says whether a stage (or any file) is finished.

    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp(), {"lr": 0.1})
    >>> run.stage("eval.json", lambda: {"acc": 0.9, "psi": float("nan")})
    {'acc': 0.9, 'psi': None}
    >>> run.stage("eval.json", lambda: 1 / 0)  # finished: read back, not recomputed
    {'acc': 0.9, 'psi': None}
    """

    def __init__(
        self,
        path: str | os.PathLike,
        config: Any,
        *,
        stamp: str = "fingerprint.json",
        what: str = "run directory",
        hint: str = "use another directory or delete it",
    ):
        self.path = os.path.abspath(os.fspath(path))
        self.config = jsonable(config)
        self.fingerprint = claim_directory(self.path, stamp, self.config, what, hint)

    def file(self, *names: str) -> str:
        """The path of ``names`` (joined) inside the directory."""
        return os.path.join(self.path, *names)

    def has(self, *names: str) -> bool:
        """Whether ``file(*names)`` exists (a stage written atomically exists only when whole)."""
        return os.path.exists(self.file(*names))

    def stage(self, name: str, compute: Callable[[], Any]) -> Any:
        """:func:`cached` on ``file(name)``: ``.npz`` names hold arrays, others JSON."""
        target = self.file(name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return cached(target, compute)

    def __repr__(self) -> str:
        return f"RunDir({self.path!r}, fingerprint={self.fingerprint[:12]!r})"
