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
  is read back, a missing one is computed, written atomically and returned. A path that
  exists and is not a directory is refused with a ``ValueError`` before anything is written.
* **Damaged files.** :func:`load_npz` raises :class:`DamagedFile` (a ``ValueError``) naming the
  path when a file is truncated or corrupt, instead of ``zipfile.BadZipFile`` and the like.
  :func:`save_checked_npz` / :func:`load_checked_npz` also store a checksum of the arrays and
  a small JSON header saying what the file holds, verified on load.
* **Locks.** :class:`FileLock` lets one process at a time work on an output (e.g. a sweep's
  ``<results>.lock``). It is an OS lock (``flock``), released by the kernel when its holder
  dies, even by ``kill -9``, so a stale lock never blocks; the file also records the holder's
  pid, host and start time, which waiting processes report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import socket
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Self

import numpy as np

__all__ = [
    "DamagedFile",
    "DamagedFileWarning",
    "FileLock",
    "FingerprintMismatch",
    "LockTimeout",
    "RunDir",
    "array_digest",
    "atomic_open",
    "cached",
    "canonical_json",
    "check_directory_path",
    "check_file_path",
    "claim_directory",
    "describe_holder",
    "digest",
    "dumps",
    "fingerprint",
    "holder_alive",
    "jsonable",
    "load_checked_npz",
    "load_npz",
    "read_json",
    "restore_floats",
    "save_checked_npz",
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


class DamagedFile(ValueError):
    """A file of the store is truncated, corrupt or not what it claims to be.

    Attributes: ``path`` and ``reason``. The message names both, e.g. ``X.npz.parts/
    chunk_0_3.npz is damaged or unreadable (Bad CRC-32 for file 'mean/acc.npy')``.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path} is damaged or unreadable ({reason})")


class DamagedFileWarning(UserWarning):
    """A damaged file was found and is being recomputed or rebuilt (the message names it)."""


#: what reading a truncated or corrupt ``.npz`` raises (zip, zlib, NumPy's format checks)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read into memory (no pickles).

    ``FileNotFoundError`` when there is no file; :class:`DamagedFile` (naming the path) when
    it is truncated or corrupt (every array is read whole, so zip's CRC-32 is checked).
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (FileNotFoundError, IsADirectoryError):
        raise
    except _READ_ERRORS as err:
        raise DamagedFile(path, f"{type(err).__name__}: {err}") from err


def array_digest(arrays: Any) -> str:
    """sha256 (hex) of named arrays: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(canonical_json([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


#: the entry of a checked ``.npz`` that holds its JSON header
_HEADER = "__header__"


def save_checked_npz(path: str | os.PathLike, header: dict, /, **arrays: Any) -> str:
    """:func:`save_npz` of ``arrays`` plus a JSON header: ``header`` and the arrays' checksum.

    :func:`load_checked_npz` verifies the checksum; the header says what the file holds (e.g.
    a sweep chunk's group, point range and fingerprint), so a reader can check that too.
    """
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    head = {**jsonable(header), "sha256": array_digest(arrays)}
    return save_npz(path, **arrays, **{_HEADER: np.asarray(canonical_json(head))})


def load_checked_npz(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """``(header, arrays)`` of a file written by :func:`save_checked_npz`.

    :class:`DamagedFile` (naming the path) when the file is unreadable, has no header, or its
    arrays do not match the checksum; ``FileNotFoundError`` when it is missing.
    """
    arrays = load_npz(path)
    if _HEADER not in arrays:
        raise DamagedFile(path, "no checksum header: not written by save_checked_npz")
    try:
        head = json.loads(str(arrays.pop(_HEADER)))
        stored = head.pop("sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise DamagedFile(path, f"unreadable header: {err}") from err
    if stored != array_digest(arrays):
        raise DamagedFile(path, "checksum mismatch: its arrays changed after it was written")
    return head, arrays


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


def _first_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def check_directory_path(directory: str | os.PathLike, name: str = "out") -> None:
    """``ValueError`` naming ``name`` unless ``directory`` is, or can be made, a directory.

    Refused: an existing file (or anything not a directory) at ``directory``, and a file
    where one of its parent folders should be. Nothing is created.
    """
    directory = os.fspath(directory)
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ValueError(
            f"{name} {directory} is an existing file, not a directory; pass a new or existing "
            "directory"
        )
    base = _first_existing(directory)
    if not os.path.isdir(base):
        raise ValueError(
            f"{name} {directory} cannot be a directory: {base}, on its path, is a file"
        )


def check_file_path(path: str | os.PathLike, name: str = "out") -> None:
    """``ValueError`` naming ``name`` unless ``path`` is, or can be made, a file.

    Refused: an existing directory at ``path``, and a file where one of its parent folders
    should be. Nothing is created.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(
            f"{name} {path} is a directory, not a file; pass a file path, e.g. "
            f"{os.path.join(path, 'results.npz')}"
        )
    base = _first_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(base):
        raise ValueError(f"{name} {path} cannot be a file: {base}, on its path, is a file")


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
    A ``directory`` that exists and is not a directory (or lies under a file) raises
    ``ValueError`` (see :func:`check_directory_path`) before anything is created.
    """
    directory = os.fspath(directory)
    check_directory_path(directory, name=what)
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


# ------------------------------------------------------------------------------------ locks

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, see FileLock._try_exclusive
    fcntl = None


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started, in the kernel's clock ticks since boot (Linux), or None.

    With the pid it identifies a process: a pid reused by a new process has another start.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat.rsplit(b")", 1)[1].split()[19].decode()  # field 22, starttime
    except (OSError, IndexError, ValueError):
        return None


def holder_alive(info: dict | None) -> bool | None:
    """Whether the process a lock record names still runs: ``True`` / ``False`` on this host,
    ``None`` when it cannot be told (another host, or no record)."""
    if not info or info.get("host") != socket.gethostname():
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return None
    started = info.get("proc_start")
    now = _process_start(pid)
    # False when the pid now names another process
    return started is None or now is None or now == started


def describe_holder(info: dict | None, path: str | None = None) -> str:
    """A lock record as words: ``pid 4242 on host node1 (started 12:00:01, 35 s ago, alive)``."""
    if not info:
        return "a process that has not written its record yet"
    text = f"pid {info.get('pid')} on host {info.get('host')}"
    bits = []
    if isinstance(info.get("started"), (int, float)):
        started = info["started"]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        bits.append(f"started {stamp}, {max(0.0, time.time() - started):.0f} s ago")
    if path is not None:
        with contextlib.suppress(OSError):
            bits.append(f"last active {max(0.0, time.time() - os.stat(path).st_mtime):.0f} s ago")
    alive = holder_alive(info)
    bits.append({True: "running", False: "no longer running", None: "liveness unknown"}[alive])
    return f"{text} ({', '.join(bits)})"


class LockTimeout(TimeoutError):
    """Waiting for a :class:`FileLock` took longer than allowed. ``path`` and ``holder`` (the
    record of the process that holds it, or ``None``) are attributes."""

    def __init__(self, message: str, path: str, holder: dict | None):
        super().__init__(message)
        self.path, self.holder = path, holder


class FileLock:
    """An exclusive lock on a file, for one process at a time (e.g. ``<results>.lock``).

    It is an OS lock (``fcntl.flock``) on the file, so the kernel releases it when the holder
    exits or dies, even by ``kill -9``: a stale lock file is simply taken by the next process.
    The holder writes its record into the file, ``{"pid", "host", "started", "proc_start"}``
    (``proc_start`` identifies the process where a pid is reused), and :meth:`touch` marks it
    active; :meth:`holder` and :func:`describe_holder` let a waiting process say what it waits
    for. :meth:`release` deletes the file (while still holding it; :meth:`try_acquire` checks
    that the file it locked is still the one at ``path``).

    Where ``flock`` is missing (Windows) or not supported by the file system, the file is
    created exclusively instead (``O_EXCL``), and a record of a process that no longer runs on
    this host is taken over.

    >>> import tempfile, os
    >>> lock = FileLock(os.path.join(tempfile.mkdtemp(), "x.lock"))
    >>> with lock:
    ...     FileLock(lock.path).try_acquire()  # another holder: refused
    False
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def holder(self) -> dict | None:
        """The record in the lock file (the holder's pid, host, start), or ``None``."""
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.loads(f.read() or "null")
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _record(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "proc_start": _process_start(os.getpid()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; ``False`` (at once) if another process holds it."""
        if self._fd is not None:
            return True
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if fcntl is None:  # pragma: no cover
            return self._try_exclusive()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError:  # a file system without flock
                os.close(fd)
                return self._try_exclusive()
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder deleted the file as it released it: lock the new one
        self._fd = fd
        self._record(fd)
        return True

    def _try_exclusive(self) -> bool:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                info = self.holder()
                try:
                    idle = time.time() - os.stat(self.path).st_mtime
                except FileNotFoundError:
                    continue
                if holder_alive(info) is False or (info is None and idle > 60):
                    # the record of a dead process (or none, long after its creation): take it
                    # over. Best effort: without flock two takers could race here
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
                    continue
                return False
            self._fd = fd
            self._record(fd)
            return True
        return False

    def acquire(
        self,
        timeout: float = math.inf,
        on_wait: Callable[[dict | None, float], Any] | None = None,
        poll: float = 0.5,
    ) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds.

        While another process holds it, ``on_wait(holder_record, seconds_waited)`` is called
        about every ``poll`` seconds; when it returns true the wait stops and ``acquire``
        returns ``False`` (e.g. the holder's result appeared). :class:`LockTimeout` (a
        ``TimeoutError`` naming the file and the holder) after ``timeout``.
        """
        t0 = time.monotonic()
        while not self.try_acquire():
            waited = time.monotonic() - t0
            info = self.holder()
            if on_wait is not None and on_wait(info, waited):
                return False
            if waited >= timeout:
                raise LockTimeout(
                    f"{self.path} is held by {describe_holder(info, self.path)}; gave up "
                    f"waiting after {timeout:g} s",
                    self.path,
                    info,
                )
            time.sleep(max(0.0, min(poll, timeout - waited)))
        return True

    def touch(self) -> None:
        """Mark the lock active now (its file's modification time), for waiting processes."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Delete the lock file and release the lock (nothing if not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({self.path!r}, held={self.held})"
