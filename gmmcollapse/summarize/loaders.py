"""Real summarization corpora from local files (JSON lines, CSV, parquet) or Hugging Face.

Field names (``format``):

=========  =============  ===============  ==========================================
format     article field  summary field    public corpus
=========  =============  ===============  ==========================================
xlsum      ``text``       ``summary``      XL-Sum (``csebuetnlp/xlsum``, ``english``)
xsum       ``document``   ``summary``      XSum (``EdinburghNLP/xsum``)
cnndm      ``article``    ``highlights``   CNN/DailyMail (``abisee/cnn_dailymail``, 3.0.0)
=========  =============  ===============  ==========================================

``format="auto"`` picks the one whose two fields the file has (and refuses a file that matches
none or several). Every loader returns ``[{"id", "text", "summary"}, ...]``: the file's ``id``
when it has one, else ``"<file name>:<line>"``. Other fields are ignored.

File types by extension (or ``filetype=``): ``.jsonl`` / ``.json`` / ``.ndjson`` (one JSON
object a line; a ``.json`` file holding one JSON array also works), ``.csv``, ``.tsv`` (header
row, RFC 4180 quoting, fields may span lines), ``.parquet`` (needs ``pyarrow``); ``.gz`` /
``.bz2`` after ``.jsonl``, ``.json``, ``.csv`` or ``.tsv`` are decompressed on the fly. A file
with another extension (or none) is recognised from its content (:func:`detect_filetype`):
gzip / bzip2 data, parquet's magic bytes, JSON (a line starting with ``{`` or ``[``), or a
header row naming one of the fields below, separated by tabs or commas.

Errors (``ValueError``) name the file and the line (CSV: the line a record starts on; parquet:
the row number, 1-based): invalid JSON, a row that is not an object, a missing field, a field that
is not a string, a CSV record with the wrong number of fields. A file with no rows, or without a
summary field, is an error. Rows whose text or summary is empty (or only whitespace) are skipped
with a warning (``skip_empty=True``, the default: XSum has a few) or are an error
(``skip_empty=False``); a file left with no pairs is an error.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from gmmcollapse._validate import check_choice, check_int

__all__ = [
    "FORMATS",
    "HF_DATASETS",
    "MissingPackageError",
    "datasets_available",
    "detect_filetype",
    "load_hf",
    "load_pairs",
    "require_datasets",
]

#: format -> (article field, summary field)
FORMATS: dict[str, tuple[str, str]] = {
    "xlsum": ("text", "summary"),
    "xsum": ("document", "summary"),
    "cnndm": ("article", "highlights"),
}
#: short names for :func:`load_hf` -> (dataset name, config, format)
HF_DATASETS: dict[str, tuple[str, str | None, str]] = {
    "xlsum": ("csebuetnlp/xlsum", "english", "xlsum"),
    "xsum": ("EdinburghNLP/xsum", None, "xsum"),
    "cnndm": ("abisee/cnn_dailymail", "3.0.0", "cnndm"),
}
_FILETYPES = ("jsonl", "csv", "tsv", "parquet")
_SUMMARY_FIELDS = sorted({s for _, s in FORMATS.values()})
_FIELDS = {f for pair in FORMATS.values() for f in pair}
_EXTENSIONS = ".jsonl, .json, .ndjson, .csv, .tsv, .parquet, optionally .gz/.bz2"


class MissingPackageError(ImportError, ValueError):
    """An optional package a request needs is not installed. A ``ValueError`` (the command line
    prints it as one line and exits with code 2) and an ``ImportError`` (as before)."""


def datasets_available() -> bool:
    """Whether the optional package ``datasets`` (Hugging Face) can be imported; does not
    import it (slow)."""
    import importlib.util
    import sys

    if "datasets" in sys.modules:
        return sys.modules["datasets"] is not None
    try:
        return importlib.util.find_spec("datasets") is not None
    except (ImportError, ValueError):
        return False


def _missing_datasets(what: str) -> str:
    return (
        f"{what} needs the optional package datasets and a network: install it with "
        f"pip install datasets (or pip install 'gmmcollapse[data]'), or download the corpus "
        f"and use the file instead: --data FILE (or --set data=FILE) on the command line, "
        f"data=FILE in make_config, or load_pairs(FILE) in Python"
    )


def require_datasets(what: str = "hf: data") -> None:
    """Raise :class:`MissingPackageError` (saying what to install and what to pass instead)
    unless ``datasets`` can be imported; ``what`` names the request in the message."""
    if not datasets_available():
        raise MissingPackageError(_missing_datasets(what), name="datasets")


def _check_format(format: str) -> None:
    check_choice("format", format, ("auto", *FORMATS))


def _resolve_fields(where: str, columns: Iterable[str], format: str) -> tuple[str, str]:
    """The (article, summary) field names for a file whose rows have ``columns``."""
    cols = set(columns)
    shown = ", ".join(sorted(map(str, cols))) or "none"
    if format != "auto":
        text_f, sum_f = FORMATS[format]
        missing = [f for f in (text_f, sum_f) if f not in cols]
        if missing:
            raise ValueError(
                f"{where}: no field {missing[0]!r} for format {format!r} "
                f"(expects {text_f!r} and {sum_f!r}; has {shown})"
            )
        return text_f, sum_f
    matches = [name for name, (t, s) in FORMATS.items() if t in cols and s in cols]
    if len(matches) == 1:
        return FORMATS[matches[0]]
    if len(matches) > 1:
        raise ValueError(
            f"{where}: fields match several formats ({', '.join(matches)}); "
            f"pass format= one of them"
        )
    if not cols & set(_SUMMARY_FIELDS):
        raise ValueError(
            f"{where}: no summaries: no field {' or '.join(map(repr, _SUMMARY_FIELDS))} "
            f"(has {shown})"
        )
    raise ValueError(
        f"{where}: no article field for any format "
        f"({', '.join(f'{k}: {t!r}/{s!r}' for k, (t, s) in FORMATS.items())}; has {shown})"
    )


class _Collector:
    """Validates rows and gathers the pairs of one source."""

    def __init__(self, source: str, fields: tuple[str, str], skip_empty: bool, limit: int | None):
        self.source = source
        self.text_f, self.sum_f = fields
        self.skip_empty = skip_empty
        self.limit = limit
        self.pairs: list[dict] = []
        self.rows = 0
        self.skipped = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.pairs) >= self.limit

    def add(self, where: str, row: Any, default_id: str) -> None:
        self.rows += 1
        if not isinstance(row, dict):
            # a malformed row of a data file: ValueError, like every other bad row
            got = type(row).__name__
            raise ValueError(f"{where}: expected an object, got {got}")  # noqa: TRY004
        values = []
        for f in (self.text_f, self.sum_f):
            if f not in row:
                raise ValueError(f"{where}: missing field {f!r}")
            v = row[f]
            if not isinstance(v, str):
                got = "null" if v is None else type(v).__name__
                msg = f"{where}: field {f!r} must be a string, got {got}"
                raise ValueError(msg)  # noqa: TRY004 (a bad row of a data file)
            values.append(v)
        text, summary = values
        if not text.strip() or not summary.strip():
            if not self.skip_empty:
                empty = self.text_f if not text.strip() else self.sum_f
                raise ValueError(f"{where}: field {empty!r} is empty")
            self.skipped += 1
            return
        rid = row.get("id")
        rid = default_id if rid is None or rid == "" else str(rid)
        self.pairs.append({"id": rid, "text": text, "summary": summary})

    def finish(self) -> list[dict]:
        if self.rows == 0:
            raise ValueError(f"{self.source}: no rows (empty file or data set)")
        if self.skipped:
            warnings.warn(
                f"{self.source}: skipped {self.skipped} of {self.rows} rows with an empty "
                f"{self.text_f!r} or {self.sum_f!r}",
                stacklevel=3,
            )
        if not self.pairs:
            raise ValueError(
                f"{self.source}: no pairs with a non-empty {self.text_f!r} and {self.sum_f!r}"
            )
        return self.pairs


def _filetype(path: str) -> tuple[str, str | None]:
    """(file type, compression) from the extension, else from the content."""
    name = os.path.basename(path).lower()
    comp = None
    for ext, c in ((".gz", "gzip"), (".bz2", "bz2")):
        if name.endswith(ext):
            name, comp = name[: -len(ext)], c
    for ext, ft in ((".jsonl", "jsonl"), (".json", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(ext):
            return ft, comp
    for ext in (".csv", ".tsv", ".parquet"):
        if name.endswith(ext):
            return ext[1:], comp
    found = _sniff(path)
    if found is not None:
        return found
    raise ValueError(
        f"filetype: cannot tell the file type of {path}: its extension is none of "
        f"{_EXTENSIONS}, and its content is not JSON, parquet, or a CSV/TSV header naming a "
        f"field ({', '.join(sorted(_FIELDS))}). Rename the file with one of these extensions "
        f"(the command line has no file-type flag; --format names the fields, not the file "
        f"type), or in Python pass filetype= one of {', '.join(_FILETYPES)} to load_pairs"
    )


def _sniff(path: str) -> tuple[str, str | None] | None:
    """(file type, compression) from the first bytes of ``path``, or None."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        comp = None
        if magic[:2] == b"\x1f\x8b":
            comp = "gzip"
        elif magic[:3] == b"BZh" and magic[3:4].isdigit():
            comp = "bz2"
        elif magic == b"PAR1":
            return "parquet", None
        with _open_binary(path, comp) as f:
            head = f.read(1 << 16)
    except (OSError, EOFError, ValueError):  # unreadable or a damaged compressed stream
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text[:1] in ("{", "["):
        return "jsonl", comp
    first = text.splitlines()[0] if text else ""
    for ft, sep in (("tsv", "\t"), ("csv", ",")):
        try:
            header = next(csv.reader([first], delimiter=sep))
        except (csv.Error, StopIteration):
            continue
        if len(header) >= 2 and _FIELDS & {h.strip() for h in header}:
            return ft, comp
    return None


def detect_filetype(path: str | os.PathLike) -> tuple[str, str | None]:
    """``(file type, compression)`` of a data file, as :func:`load_pairs` reads it with
    ``filetype="auto"``: from the extension (see the module docstring), else from the content.
    A file of neither is a ``ValueError`` saying how to name it."""
    return _filetype(os.fspath(path))


def _open_binary(path: str, comp: str | None):
    if comp == "gzip":
        return gzip.open(path, "rb")
    if comp == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _jsonl_lines(path: str, comp: str | None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a JSON array file as a whole."""
    with _open_binary(path, comp) as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        f.seek(0)
        if head.startswith(b"["):  # one JSON array (e.g. a .json export)
            try:
                data = json.loads(f.read().decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}: invalid JSON ({e})") from None
            for i, row in enumerate(data, 1):
                yield -i, row  # negative: an array index, not a line
            return
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not UTF-8 ({e.reason})") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None


def _load_jsonl(path, comp, format, skip_empty, limit) -> list[dict]:
    name = os.path.basename(path)
    col = None
    for lineno, row in _jsonl_lines(path, comp):
        where = f"{path}:{lineno}" if lineno > 0 else f"{path}: item {-lineno}"
        if col is None:
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            col = _Collector(path, _resolve_fields(where, row, format), skip_empty, limit)
        col.add(where, row, f"{name}:{abs(lineno)}")
        if col.full:
            break
    if col is None:
        raise ValueError(f"{path}: no rows (empty file)")
    return col.finish()


@contextlib.contextmanager
def _field_size_limit():
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _load_csv(path, comp, delimiter, format, skip_empty, limit) -> list[dict]:
    name = os.path.basename(path)
    with _open_binary(path, comp) as fb, _field_size_limit():
        f = io.TextIOWrapper(fb, encoding="utf-8-sig", newline="")
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        start = 1
        col = header = None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise ValueError(f"{path}:{start}: malformed CSV ({e})") from None
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{start}: not UTF-8 ({e.reason})") from None
            lineno, start = start, reader.line_num + 1
            if header is None:
                if not row:
                    continue
                header = row
                where = f"{path}:{lineno}"
                if len(set(header)) != len(header):
                    raise ValueError(f"{where}: repeated column names in the header {header}")
                col = _Collector(path, _resolve_fields(where, header, format), skip_empty, limit)
                continue
            if not row:  # blank line
                continue
            where = f"{path}:{lineno}"
            if len(row) != len(header):
                raise ValueError(
                    f"{where}: expected {len(header)} fields (as in the header), got {len(row)}"
                )
            col.add(where, dict(zip(header, row, strict=True)), f"{name}:{lineno}")
            if col.full:
                break
    if col is None:
        raise ValueError(f"{path}: no rows (empty file)")
    return col.finish()


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(
            "reading parquet files needs the optional package pyarrow (pip install pyarrow)"
        ) from e
    return pq


def _load_parquet(path, comp, format, skip_empty, limit) -> list[dict]:
    if comp is not None:
        raise ValueError(f"filetype: {path}: compressed parquet files are not supported")
    pq = _pyarrow_parquet()
    import pyarrow as pa

    name = os.path.basename(path)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    names = pf.schema_arrow.names
    fields = _resolve_fields(f"{path}", names, format)
    for f in fields:
        t = pf.schema_arrow.field(f).type
        is_view = getattr(pa.types, "is_string_view", lambda _: False)
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or is_view(t)):
            raise ValueError(f"{path}: column {f!r} must hold strings, got {t}")
    columns = [*fields, *(["id"] if "id" in names and "id" not in fields else [])]
    col = _Collector(path, fields, skip_empty, limit)
    rowno = 0
    for batch in pf.iter_batches(batch_size=8192, columns=columns):
        for row in batch.to_pylist():
            rowno += 1
            col.add(f"{path}: row {rowno}", row, f"{name}:{rowno}")
            if col.full:
                return col.finish()
    return col.finish()


def load_pairs(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    filetype: str = "auto",
    skip_empty: bool = True,
    limit: int | None = None,
) -> list[dict]:
    """Article/summary pairs ``[{"id", "text", "summary"}]`` from a local file.

    Args:
        path: a ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` / ``.parquet`` file (the first four
            optionally ``.gz`` / ``.bz2``).
        format: ``"auto"`` (detect from the field names), ``"xlsum"``, ``"xsum"`` or ``"cnndm"``.
        filetype: ``"auto"`` (from the extension, else the content: :func:`detect_filetype`),
            ``"jsonl"``, ``"csv"``, ``"tsv"``, ``"parquet"``.
        skip_empty: skip (with a warning) rows whose text or summary is empty; else an error.
        limit: stop after this many pairs.

    Raises:
        ValueError: malformed rows (with file and line), an empty file, no summary field, or no
            pair left; see the module docstring.
    """
    _check_format(format)
    if limit is not None:
        check_int("limit", limit, 1)
    path = os.fspath(path)
    check_choice("filetype", filetype, ("auto", *_FILETYPES))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    if filetype == "auto":
        ft, comp = _filetype(path)
    else:
        low = path.lower()
        ft, comp = (
            filetype,
            "gzip" if low.endswith(".gz") else "bz2" if low.endswith(".bz2") else None,
        )
    if ft == "jsonl":
        return _load_jsonl(path, comp, format, skip_empty, limit)
    if ft in ("csv", "tsv"):
        return _load_csv(path, comp, "," if ft == "csv" else "\t", format, skip_empty, limit)
    return _load_parquet(path, comp, format, skip_empty, limit)


def load_hf(
    name: str,
    config: str | None = None,
    split: str = "train",
    *,
    format: str = "auto",
    skip_empty: bool = True,
    limit: int | None = None,
    **kwargs: Any,
) -> list[dict]:
    """Pairs from a Hugging Face dataset (needs the optional ``datasets`` package and a network).

    ``name`` is a hub name (``"csebuetnlp/xlsum"``) or a short name from :data:`HF_DATASETS`
    (``"xlsum"``, ``"xsum"``, ``"cnndm"``), which also fills in ``config`` and ``format``. Extra
    keyword arguments go to ``datasets.load_dataset`` (e.g. ``cache_dir``). Rows are checked like
    :func:`load_pairs`, with ``<name>[<split>]: row N`` in the errors.
    """
    _check_format(format)
    if limit is not None:
        check_int("limit", limit, 1)
    if name in HF_DATASETS:
        hub, default_config, default_format = HF_DATASETS[name]
        name, config = hub, config if config is not None else default_config
        format = default_format if format == "auto" else format
    require_datasets(f"load_hf({name!r})")
    try:
        import datasets
    except ImportError as e:
        raise MissingPackageError(_missing_datasets(f"load_hf({name!r})"), name="datasets") from e
    ds = datasets.load_dataset(name, config, split=split, **kwargs)
    source = f"{name}{'/' + config if config else ''}[{split}]"
    fields = _resolve_fields(source, ds.column_names, format)
    col = _Collector(source, fields, skip_empty, limit)
    for i, row in enumerate(ds, 1):
        col.add(f"{source}: row {i}", row, f"{split}:{i}")
        if col.full:
            break
    return col.finish()
