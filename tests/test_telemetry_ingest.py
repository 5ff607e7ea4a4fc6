"""Telemetry into the catalog: export files and pulled batches, exactly once by (agent, seq)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.catalog import Catalog
from core.errors import OutpostError
from core.telemetry.ingest import import_telemetry, ingest_table, records_table
from edge_agent.contract.protocol import EvictedRecord, record_to_dict
from tests.conftest import run_cli
from tests.support.fleet import (
    enrol_row,
    export_file,
    histogram,
    new_identity,
    open_catalog,
    requests,
)


def _counts(catalog: Catalog) -> tuple[int, int, int]:
    return tuple(catalog.con.execute(  # type: ignore[return-value]
        "SELECT (SELECT count(*) FROM telemetry_request), "
        "(SELECT count(*) FROM telemetry_histogram), "
        "(SELECT count(*) FROM telemetry_evicted)").fetchall()[0])


def _sample(n: int = 50) -> list:
    return [*requests(1, n), histogram(n + 1, "temp", [1, 2, 3], nulls=1),
            histogram(n + 2, "site", [4, 0, 1]), EvictedRecord(n + 3, 1e9, 7, 0, 0)]


def test_import_stores_every_record_once(catalog: Catalog, tmp_path: Path) -> None:
    key = new_identity()
    enrol_row(catalog, "a", key)
    path = export_file(tmp_path / "t.ndjson", _sample(), key)
    first = import_telemetry(catalog, path)
    assert (first.requests, first.histograms, first.evicted, first.last_seq) == (50, 2, 1, 53)
    again = import_telemetry(catalog, path)
    assert again.rows == 0
    assert _counts(catalog) == (50, 2, 1)
    row = catalog.con.execute("SELECT seq, ts, model, version, status, latency_us, rows "
                              "FROM telemetry_request WHERE seq = 3").fetchall()[0]
    assert row == (3, 1e9 + 2, "m", 1, 200, 1002, 1)
    hist = catalog.con.execute("SELECT counts, nulls, window_end - window_start "
                               "FROM telemetry_histogram WHERE feature = 'temp'").fetchall()
    assert hist == [([1, 2, 3], 1, 60.0)]


def test_import_and_pull_overlap_give_each_seq_once(catalog: Catalog, tmp_path: Path) -> None:
    key = new_identity()
    enrol_row(catalog, "a", key)
    # A pull got seqs 1..30 while the file (exported later) holds 20..53.
    ingest_table(catalog, "a", records_table(record_to_dict(r) for r in _sample()[:30]),
                 where="test")
    path = export_file(tmp_path / "t.ndjson", _sample()[19:], key)
    result = import_telemetry(catalog, path)
    assert result.requests == 20 and result.histograms == 2
    seqs = [s for (s,) in catalog.con.execute(
        "SELECT seq FROM telemetry_request ORDER BY seq").fetchall()]
    assert seqs == list(range(1, 51))


def test_two_agents_keep_separate_seq_spaces(catalog: Catalog, tmp_path: Path) -> None:
    ka, kb = new_identity(), new_identity()
    enrol_row(catalog, "a", ka)
    enrol_row(catalog, "b", kb)
    import_telemetry(catalog, export_file(tmp_path / "a.ndjson", requests(1, 10), ka))
    import_telemetry(catalog, export_file(tmp_path / "b.ndjson", requests(1, 10), kb, "id-b"))
    rows = catalog.con.execute("SELECT agent, count(*) FROM telemetry_request "
                               "GROUP BY agent ORDER BY agent").fetchall()
    assert rows == [("a", 10), ("b", 10)]


@pytest.mark.parametrize("damage", ["flip", "truncate_mid_line", "truncate_at_line", "empty"])
def test_damaged_file_is_refused_and_adds_nothing(catalog: Catalog, tmp_path: Path,
                                                  damage: str) -> None:
    key = new_identity()
    enrol_row(catalog, "a", key)
    path = export_file(tmp_path / "t.ndjson", _sample(), key)
    data = path.read_bytes()
    if damage == "flip":
        at = data.index(b'"latency_us":1010')
        data = data[:at] + data[at:].replace(b"1010", b"9010", 1)
    elif damage == "truncate_mid_line":
        data = data[: len(data) // 2]
    elif damage == "truncate_at_line":
        data = data[: data.rindex(b"\n", 0, len(data) // 2) + 1]
    else:
        data = b""
    path.write_bytes(data)
    with pytest.raises(OutpostError) as err:
        import_telemetry(catalog, path)
    assert "\n" not in str(err.value)
    assert ("corrupt" in str(err.value)) or ("truncated" in str(err.value)) or \
        ("not an Outpost telemetry" in str(err.value))
    assert _counts(catalog) == (0, 0, 0)


def test_file_from_unknown_agent_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    enrol_row(catalog, "a", new_identity())
    path = export_file(tmp_path / "t.ndjson", _sample(), new_identity(), "stranger")
    with pytest.raises(OutpostError, match="unknown agent .stranger."):
        import_telemetry(catalog, path)
    assert _counts(catalog) == (0, 0, 0)


def test_signed_but_malformed_records_are_refused(catalog: Catalog, tmp_path: Path) -> None:
    key = new_identity()
    enrol_row(catalog, "a", key)
    bad = [record_to_dict(r) for r in requests(1, 5)]
    del bad[2]["latency_us"]
    path = export_file(tmp_path / "t.ndjson", bad, key)
    with pytest.raises(OutpostError, match="miss fields"):
        import_telemetry(catalog, path)
    assert _counts(catalog) == (0, 0, 0)


def test_cli_import_then_a_truncated_file(outpost_home: Path, tmp_path: Path) -> None:
    key = new_identity()
    with open_catalog(outpost_home) as cat:
        enrol_row(cat, "a", key)
    path = export_file(tmp_path / "t.ndjson", _sample(), key)
    first = run_cli(outpost_home, "telemetry", "import", str(path), "--json", check=True).json()
    assert first["requests"] == 50 and first["agent"] == "a"
    path.write_bytes(path.read_bytes()[:-40])
    bad = run_cli(outpost_home, "telemetry", "import", str(path))
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
    assert "truncated" in bad.stderr


def test_missing_file_is_one_clear_error(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(OutpostError, match="does not exist"):
        import_telemetry(catalog, tmp_path / "nope.ndjson")
