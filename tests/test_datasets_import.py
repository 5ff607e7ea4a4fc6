"""Importing files as content-addressed dataset versions: formats, sniffing, identity."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from core.datasets import (
    import_dataset,
    import_frame,
    list_datasets,
    list_versions,
    read_frame,
    read_page,
    resolve_version,
    version_path,
)
from core.errors import Cancelled, InvalidInput
from core.objects import sha256_file
from core.progress import CancelToken, ProgressEvent
from tests.support.datasets import opened, write

CSV = 'id,city,temp,note\n1,Oslo,3.5,"two\nlines"\n2,Rome,NA,plain\n3,,21.0,\n'


def test_csv_types_nulls_and_quoted_newlines(outpost_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "weather.csv", CSV)
    with opened(outpost_home) as catalog:
        result = import_dataset(catalog, path)
    assert (result.name, result.rows, result.new) == ("weather", 3, True)
    with opened(outpost_home) as catalog:
        dv = resolve_version(catalog, "weather")
        assert [(c.name, c.type) for c in dv.columns] == [
            ("id", "BIGINT"), ("city", "VARCHAR"), ("temp", "DOUBLE"), ("note", "VARCHAR")]
        assert read_page(catalog, dv, 0, 10) == [
            (1, "Oslo", 3.5, "two\nlines"), (2, "Rome", None, "plain"), (3, None, 21.0, None)]
        assert dv.source["kind"] == "import" and dv.source["delimiter"] == ","
        assert sha256_file(version_path(catalog, dv)) == dv.object


@pytest.mark.parametrize("name,data,encoding", [
    ("bom.csv", b"\xef\xbb\xbfname,n\nJos\xc3\xa9,1\nZo\xc3\xab,2\n", "utf-8-sig"),
    ("cp1252.csv", "name,n\nJosé,1\nZoë €,2\n".encode("cp1252"), "cp1252"),
    ("latin1.csv", "name,n\nJosé,1\nZoë,2\n".encode("latin-1"), "cp1252"),
    ("utf16.csv", "name,n\nJosé,1\nZoë,2\n".encode("utf-16"), "utf-16"),
])
def test_encodings_are_sniffed(outpost_home: Path, tmp_path: Path, name: str, data: bytes,
                               encoding: str) -> None:
    with opened(outpost_home) as catalog:
        import_dataset(catalog, write(tmp_path / name, data), "people")
        dv = resolve_version(catalog, "people")
        rows = read_page(catalog, dv, 0, 5)
    assert dv.source["encoding"] == encoding
    assert [c.name for c in dv.columns] == ["name", "n"]
    assert rows[0] == ("José", 1)
    assert rows[1][0].startswith("Zoë")
    if name == "cp1252.csv":
        assert rows[1][0] == "Zoë €"


def test_non_utf8_byte_far_into_an_ascii_file_is_read_as_cp1252(outpost_home: Path,
                                                                 tmp_path: Path) -> None:
    lines = ["k,label"] + [f"{i},row{i}" for i in range(30_000)] + ["30000,caf\xe9"]
    path = write(tmp_path / "late.csv", ("\n".join(lines) + "\n").encode("cp1252"))
    with opened(outpost_home) as catalog:
        result = import_dataset(catalog, path)
        dv = resolve_version(catalog, "late")
        assert read_page(catalog, dv, 30_000, 1) == [(30_000, "café")]
    assert result.rows == 30_001 and dv.source["encoding"] == "cp1252"


def test_a_value_past_the_type_sample_widens_the_column(outpost_home: Path,
                                                         tmp_path: Path) -> None:
    lines = ["k,code"] + [f"{i},{i}" for i in range(40_000)] + ["40000,X-17"]
    path = write(tmp_path / "codes.csv", "\n".join(lines) + "\n")
    with opened(outpost_home) as catalog:
        result = import_dataset(catalog, path)
        dv = resolve_version(catalog, "codes")
    assert result.rows == 40_001
    assert dict((c.name, c.type) for c in dv.columns)["code"] == "VARCHAR"


def test_tsv_semicolon_and_gzip(outpost_home: Path, tmp_path: Path) -> None:
    tsv = write(tmp_path / "a.tsv", "x\ty\n1\thello, world\n2\tb\n")
    semi = write(tmp_path / "b.csv", "x;y\n1;a\n2;b\n")
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(b"x,y\n1,a\n2,b\n"))
    with opened(outpost_home) as catalog:
        a = import_dataset(catalog, tsv)
        b = import_dataset(catalog, semi)
        c = import_dataset(catalog, gz)
        assert read_page(catalog, resolve_version(catalog, "a"), 0, 1) == [(1, "hello, world")]
    assert (a.name, b.name, c.name) == ("a", "b", "c")
    assert b.version == c.version  # same table, different delimiters and compression


def test_same_table_in_any_format_is_one_version(outpost_home: Path, tmp_path: Path) -> None:
    records = [{"id": i, "label": f"r{i}", "score": i / 4} for i in range(1, 6)]
    csv = write(tmp_path / "t.csv", "id,label,score\n" + "".join(
        f"{r['id']},{r['label']},{r['score']}\n" for r in records))
    js = write(tmp_path / "t.json", json.dumps(records))
    nd = write(tmp_path / "t.ndjson", "".join(json.dumps(r) + "\n" for r in records))
    pq_path = tmp_path / "t.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{pq_path}' (ROW_GROUP_SIZE 2)")
    with opened(outpost_home) as catalog:
        first = import_dataset(catalog, csv, "t")
        again = [import_dataset(catalog, p, "t") for p in (js, nd, pq_path, csv)]
    assert first.new and all(not r.new for r in again)
    assert {r.version for r in again} == {first.version}
    with opened(outpost_home) as catalog:
        assert len(list_versions(catalog, "t")) == 1
        other = import_dataset(catalog, csv, "t2")
        assert other.new and other.version == first.version
        assert resolve_version(catalog, "t2").object == resolve_version(catalog, "t").object


def test_new_content_is_a_new_version_and_latest(outpost_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "a,b\n1,2\n")
    with opened(outpost_home) as catalog:
        v1 = import_dataset(catalog, path)
    write(path, "a,b\n1,2\n3,4\n")
    with opened(outpost_home) as catalog:
        v2 = import_dataset(catalog, path)
    write(path, "a,b\n2,1\n1,2\n")  # same rows as v1 plus order change: content differs
    with opened(outpost_home) as catalog:
        v3 = import_dataset(catalog, path)
        versions = list_versions(catalog, "s")
        assert resolve_version(catalog, "s").version == v3.version
        assert resolve_version(catalog, f"s@{v1.version[:6]}").rows == 1
        assert [d.name for d in list_datasets(catalog)] == ["s"]
    assert len({v1.version, v2.version, v3.version}) == 3
    assert [v.version for v in versions] == [v3.version, v2.version, v1.version]


def test_import_frame_and_read_frame(outpost_home: Path) -> None:
    table = pa.table({"x": [1.5, None, 3.0], "s": ["a", "b", None]})
    with opened(outpost_home) as catalog:
        result = import_frame(catalog, "frame", table, {"origin": "test"})
        again = import_frame(catalog, "frame", table.to_pandas(), {"origin": "test"})
        frame = read_frame(catalog, resolve_version(catalog, "frame"), columns=["s"])
        with pytest.raises(InvalidInput, match="no column 'nope'"):
            read_frame(catalog, resolve_version(catalog, "frame"), columns=["nope"])
    assert result.new and not again.new and again.version == result.version
    assert list(frame.columns) == ["s"] and frame["s"].tolist()[:2] == ["a", "b"]


def test_read_page_reads_any_offset(outpost_home: Path) -> None:
    rows = 300_000  # several Parquet row groups
    table = pa.table({"i": pa.array(range(rows), pa.int64())})
    with opened(outpost_home) as catalog:
        import_frame(catalog, "many", table, {})
        dv = resolve_version(catalog, "many")
        assert read_page(catalog, dv, 0, 3) == [(0,), (1,), (2,)]
        assert read_page(catalog, dv, 122_879, 3) == [(122_879,), (122_880,), (122_881,)]
        assert read_page(catalog, dv, rows - 2, 10) == [(rows - 2,), (rows - 1,)]
        assert read_page(catalog, dv, rows, 10) == []


def test_progress_is_reported_and_cancel_leaves_nothing(outpost_home: Path,
                                                        tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(1000)))
    events: list[ProgressEvent] = []
    with opened(outpost_home) as catalog:
        import_dataset(catalog, path, progress=events.append)
        token = CancelToken()
        token.cancel()
        with pytest.raises(Cancelled):
            import_dataset(catalog, path, "q", cancel=token)
        assert [d.name for d in list_datasets(catalog)] == ["p"]
    assert {e.stage for e in events} >= {"import", "hash", "store"}
    assert events[-1].fraction == 1.0
    assert not list((outpost_home / "objects" / "tmp").iterdir())


def test_cli_import_json_keys(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path / "k.csv", "a\n1\n2\n")
    first = cli("dataset", "import", str(path), "--name", "k", "--json")
    assert first.returncode == 0, first.stderr
    data = first.json()
    assert set(data) == {"name", "version", "rows", "new", "lines"}
    assert (data["name"], data["rows"], data["new"]) == ("k", 2, True)
    second = cli("dataset", "import", str(path), "--name", "k", "--json").json()
    assert second == {**data, "new": False}
    human = cli("dataset", "import", str(path), "--name", "k")
    assert human.returncode == 0 and f"k@{data['version'][:12]}" in human.stdout


def test_cancel_while_copying(outpost_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "long.csv", "a,b,c\n" + "".join(
        f"{i},{i * 3},row{i}\n" for i in range(300_000)))
    token = CancelToken()

    def cancel_once_running(event: ProgressEvent) -> None:
        if event.stage == "import":
            token.cancel()

    with opened(outpost_home) as catalog:
        with pytest.raises(Cancelled):
            import_dataset(catalog, path, progress=cancel_once_running, cancel=token)
        assert list_datasets(catalog) == []
    objects = [p for p in (outpost_home / "objects").rglob("*") if p.is_file()]
    assert objects == []
