"""Loaders for real corpora (gmmcollapse.summarize.loaders): XL-Sum / XSum / CNN-DM field names
in JSON lines, CSV and parquet, auto-detected or chosen; errors with file and line; the Hugging
Face path with a stand-in ``datasets`` module (no network)."""

import bz2
import csv
import gzip
import json
import re
import sys
import types

import pytest

from gmmcollapse.summarize import FORMATS, load_hf, load_pairs, make_corpus, write_jsonl

ROWS = [
    {"id": "a1", "text": "Police arrested 12 men in Ashford.", "summary": "Police arrested 12."},
    {"id": "a2", "text": 'A "quoted", multi-line\narticle, with commas.', "summary": "Quoted one."},
    {"id": "a3", "text": "Zürich – naïve café 東京.", "summary": "Unicode survives."},
]


def _rows(fmt, rows=ROWS, extra=True):
    text_f, sum_f = FORMATS[fmt]
    out = []
    for r in rows:
        row = {"id": r["id"], text_f: r["text"], sum_f: r["summary"]}
        if extra:
            row["url"] = "https://example.org/" + r["id"]  # other fields are ignored
        out.append(row)
    return out


def _write(path, rows, filetype=None):
    filetype = filetype or path.suffix[1:]
    if filetype == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    elif filetype in ("csv", "tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(
                f, fieldnames=list(rows[0]), delimiter="," if filetype == "csv" else "\t"
            )
            w.writeheader()
            w.writerows(rows)
    elif filetype == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


EXPECTED = [{"id": r["id"], "text": r["text"], "summary": r["summary"]} for r in ROWS]


@pytest.mark.parametrize("filetype", ["jsonl", "csv", "tsv", "parquet"])
@pytest.mark.parametrize("fmt", ["xlsum", "xsum", "cnndm"])
def test_each_format_in_each_file_type_auto_and_explicit(tmp_path, filetype, fmt):
    path = _write(tmp_path / f"data.{filetype}", _rows(fmt))
    assert load_pairs(path) == EXPECTED
    assert load_pairs(path, format=fmt) == EXPECTED
    other = {"xlsum": "cnndm", "xsum": "cnndm", "cnndm": "xsum"}[fmt]
    with pytest.raises(ValueError, match=f"format '{other}'"):
        load_pairs(path, format=other)


def test_compressed_and_explicit_filetype_and_json_array(tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in _rows("xsum")).encode()
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "d.jsonl.bz2").write_bytes(bz2.compress(data))
    (tmp_path / "d.txt").write_bytes(data)
    (tmp_path / "d.json").write_text(json.dumps(_rows("xsum")))
    assert load_pairs(tmp_path / "d.jsonl.gz") == EXPECTED
    assert load_pairs(tmp_path / "d.jsonl.bz2") == EXPECTED
    assert load_pairs(tmp_path / "d.txt", filetype="jsonl") == EXPECTED
    assert load_pairs(tmp_path / "d.json") == EXPECTED
    assert load_pairs(tmp_path / "d.txt") == EXPECTED  # JSON lines, told from the content
    (tmp_path / "notes.txt").write_text("just some prose, with a comma\nand more\n")
    with pytest.raises(ValueError, match="cannot tell the file type"):
        load_pairs(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="filetype must be one of"):
        load_pairs(tmp_path / "d.txt", filetype="xml")
    with pytest.raises(ValueError, match="format must be one of"):
        load_pairs(tmp_path / "d.jsonl.gz", format="cnn")
    with pytest.raises(FileNotFoundError):
        load_pairs(tmp_path / "missing.jsonl")


def test_file_type_from_the_content_when_the_extension_says_nothing(tmp_path):
    """Issue 12: JSON lines (and the other types) are recognised from the content, and a file
    of no recognisable type gets an error that names what exists: the extensions, the Python
    argument, and that the command line's --format is about fields."""
    from gmmcollapse.summarize import loaders as L

    lines = "".join(json.dumps(r) + "\n" for r in _rows("xsum"))
    cases = {
        "lines.txt": lines.encode(),
        "no_extension": lines.encode(),
        "bom.data": b"\xef\xbb\xbf\n  " + lines.encode(),  # BOM and blank lines first
        "array.txt": json.dumps(_rows("xsum")).encode(),
        "lines.gzip": gzip.compress(lines.encode()),  # compression from the magic bytes
        "lines.bzip": bz2.compress(lines.encode()),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert L.detect_filetype(tmp_path / name)[0] == "jsonl", name
        assert load_pairs(tmp_path / name) == EXPECTED, name
    for ft in ("csv", "tsv", "parquet"):
        path = _write(tmp_path / f"data.{ft}", _rows("xsum"))
        renamed = path.rename(tmp_path / f"{ft}_data.dat")
        assert L.detect_filetype(renamed)[0] == ft
        assert load_pairs(renamed) == EXPECTED
    for name, data in {"prose.txt": b"a, b\nc\n", "empty": b"", "bin.dat": b"\x00\x01\x02"}.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError) as err:
            load_pairs(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith("filetype: cannot tell the file type") and "\n" not in msg
        assert ".jsonl" in msg and "filetype=" in msg and "--format" in msg
        assert "pass filetype=" not in msg.split("Python")[0]  # not offered to CLI users
    with pytest.raises(FileNotFoundError):  # a missing file is that, whatever its name
        load_pairs(tmp_path / "missing.txt")


def test_ids_default_to_file_and_line_and_limit(tmp_path):
    rows = [{"document": f"doc {i}", "summary": f"sum {i}"} for i in range(5)]
    path = _write(tmp_path / "x.jsonl", rows)
    pairs = load_pairs(path)
    assert [p["id"] for p in pairs] == [f"x.jsonl:{i}" for i in range(1, 6)]
    assert load_pairs(path, limit=2) == pairs[:2]
    with pytest.raises(ValueError, match="limit must"):
        load_pairs(path, limit=0)


def test_builtin_corpus_round_trips_through_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "news.jsonl", 30, seed=4)
    assert load_pairs(path) == make_corpus(30, seed=4)


# ----------------------------------------------------------------------------- errors


def _jsonl_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_malformed_jsonl_rows_name_file_and_line(tmp_path):
    good = json.dumps({"text": "t", "summary": "s"})
    cases = {
        "{not json": "invalid JSON",
        "[1, 2]": "expected an object, got list",
        json.dumps({"text": "t"}): "missing field 'summary'",
        json.dumps({"text": "t", "summary": None}): "field 'summary' must be a string, got null",
        json.dumps({"text": 3, "summary": "s"}): "field 'text' must be a string, got int",
    }
    for bad, msg in cases.items():
        path = _jsonl_lines(tmp_path / "bad.jsonl", [good, "", bad, good])
        with pytest.raises(ValueError, match=rf"bad\.jsonl:3: {re.escape(msg)}"):
            load_pairs(path)
    path = tmp_path / "latin.jsonl"
    path.write_bytes(good.encode() + b"\n" + b'{"text": "caf\xe9", "summary": "s"}\n')
    with pytest.raises(ValueError, match=r"latin\.jsonl:2: not UTF-8"):
        load_pairs(path)


def test_malformed_csv_rows_name_the_line_a_record_starts_on(tmp_path):
    path = tmp_path / "bad.csv"
    # line 1 header, record 1 spans lines 2-3, record 2 spans lines 4-5 and has one field
    path.write_text('text,summary\n"two\nlines",ok\n"only one\nfield"\n"x",y\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv:4: expected 2 fields .* got 1"):
        load_pairs(path)
    path.write_text('text,summary\n"a",b\n"unterminated,b\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv:3: malformed CSV"):
        load_pairs(path)
    path.write_text("text,text,summary\na,b,c\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv:1: repeated column names"):
        load_pairs(path)


def test_parquet_nulls_and_wrong_types_name_the_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"article": ["a", "b", "c"], "highlights": ["x", None, "z"]}), path)
    with pytest.raises(ValueError, match=r"bad\.parquet: row 2: field 'highlights' must be"):
        load_pairs(path)
    pq.write_table(pa.table({"text": ["a"], "summary": [3]}), path)
    with pytest.raises(ValueError, match="column 'summary' must hold strings, got int64"):
        load_pairs(path)
    path.write_text("not parquet")
    with pytest.raises(ValueError, match="not a readable parquet file"):
        load_pairs(path)


@pytest.mark.parametrize("filetype", ["jsonl", "csv", "parquet"])
def test_empty_files_are_clear_errors(tmp_path, filetype):
    path = tmp_path / f"empty.{filetype}"
    if filetype == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        schema = pa.schema([("text", pa.string()), ("summary", pa.string())])
        pq.write_table(schema.empty_table(), path)
    else:
        path.write_text("\n\n" if filetype == "jsonl" else "")
    with pytest.raises(ValueError, match="no rows"):
        load_pairs(path)
    if filetype == "csv":
        path.write_text("text,summary\n")  # header only
        with pytest.raises(ValueError, match="no rows"):
            load_pairs(path)


@pytest.mark.parametrize("filetype", ["jsonl", "csv", "parquet"])
def test_a_set_without_summaries_is_a_clear_error(tmp_path, filetype):
    rows = [{"id": "1", "text": "an article"}, {"id": "2", "text": "another"}]
    path = _write(tmp_path / f"nosum.{filetype}", rows)
    with pytest.raises(ValueError, match="no summaries: no field 'highlights' or 'summary'"):
        load_pairs(path)
    with pytest.raises(ValueError, match="no field 'summary' for format 'xlsum'"):
        load_pairs(path, format="xlsum")


def test_unknown_and_ambiguous_fields(tmp_path):
    path = _write(tmp_path / "odd.jsonl", [{"body": "x", "summary": "y"}])
    with pytest.raises(ValueError, match="no article field"):
        load_pairs(path)
    path = _write(tmp_path / "both.jsonl", [{"text": "x", "document": "x", "summary": "y"}])
    with pytest.raises(ValueError, match="several formats .*xlsum, xsum"):
        load_pairs(path)
    assert load_pairs(path, format="xsum")[0]["text"] == "x"


def test_empty_summaries_are_skipped_with_a_warning_or_refused(tmp_path):
    rows = [
        {"text": "a", "summary": "s"},
        {"text": "b", "summary": "  "},
        {"text": "", "summary": "s"},
        {"text": "d", "summary": "t"},
    ]
    path = _write(tmp_path / "gaps.jsonl", rows)
    with pytest.warns(UserWarning, match="skipped 2 of 4 rows"):
        pairs = load_pairs(path)
    assert [p["text"] for p in pairs] == ["a", "d"]
    with pytest.raises(ValueError, match=r"gaps\.jsonl:2: field 'summary' is empty"):
        load_pairs(path, skip_empty=False)
    path = _write(
        tmp_path / "blank.csv", [{"text": "a", "summary": ""}, {"text": "b", "summary": ""}]
    )
    with pytest.raises(ValueError, match="no pairs with a non-empty"), pytest.warns(UserWarning):
        load_pairs(path)


# ----------------------------------------------------------------------------- Hugging Face


class _FakeDataset(list):
    column_names = ("id", "url", "title", "summary", "text")


def test_load_hf_maps_fields_and_short_names(monkeypatch):
    calls = []

    def load_dataset(name, config, split, **kw):
        calls.append((name, config, split, kw))
        return _FakeDataset(
            [
                {"id": "x1", "url": "u", "title": "t", "summary": "s1", "text": "t1"},
                {"id": "x2", "url": "u", "title": "t", "summary": "s2", "text": "t2"},
            ]
        )

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    pairs = load_hf("xlsum", split="validation", cache_dir="/tmp/c")
    assert calls == [("csebuetnlp/xlsum", "english", "validation", {"cache_dir": "/tmp/c"})]
    assert pairs == [
        {"id": "x1", "text": "t1", "summary": "s1"},
        {"id": "x2", "text": "t2", "summary": "s2"},
    ]
    assert load_hf("csebuetnlp/xlsum", "english", limit=1) == pairs[:1]
    # the cnndm short name implies its fields: these rows have none of them
    with pytest.raises(
        ValueError, match=r"abisee/cnn_dailymail/3\.0\.0\[train\]: no field 'article'"
    ):
        load_hf("cnndm")


def test_load_hf_reports_bad_rows(monkeypatch):
    class DS(list):
        column_names = ("document", "summary")

    fake = types.SimpleNamespace(
        load_dataset=lambda *a, **k: DS(
            [{"document": "d", "summary": "s"}, {"document": "d", "summary": None}]
        )
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(ValueError, match=r"xsum\[test\]: row 2: field 'summary' must be a string"):
        load_hf("xsum", split="test")


def test_load_hf_without_datasets_says_what_to_install(monkeypatch):
    from gmmcollapse.summarize.loaders import MissingPackageError, datasets_available

    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    assert not datasets_available()
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hf("xsum")
    # issue 12: a ValueError too (the command line prints one line, exit 2), which says what
    # to install and what to pass instead
    with pytest.raises(MissingPackageError) as err:
        load_hf("xsum")
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert "gmmcollapse[data]" in msg and "--data FILE" in msg and "--set data=FILE" in msg
    with pytest.raises(ValueError, match="format must be one of"):
        load_hf("xsum", format="bad")
