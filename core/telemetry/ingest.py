"""Telemetry into the catalog: bulk, through Arrow, exactly once by (agent, seq).

Pulled batches and export files both become one Arrow table of records (all
kinds, one column set) and go through :func:`ingest_table`: one transaction
inserts each kind with an anti-join against the seqs already stored for that
agent and moves the agent's cursor. The cursor row is written in the same
transaction, so two ingests for one agent conflict instead of both inserting.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.audit.agent_ingest import ingest_agent_events
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.telemetry.exportfile import TelemetryFileInvalid, read_header, verify_export
from edge_agent.contract.audit_events import AGENT_EVENT_KIND

RECORD_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("kind", pa.string()), ("ts", pa.float64()),
    ("model", pa.string()), ("version", pa.int32()), ("status", pa.int16()),
    ("latency_us", pa.int64()), ("rows", pa.int32()),
    ("window_start", pa.float64()), ("window_end", pa.float64()), ("feature", pa.string()),
    ("counts", pa.list_(pa.int64())), ("nulls", pa.int64()),
    ("count", pa.int64()), ("first_seq", pa.int64()), ("last_seq", pa.int64()),
    ("body", pa.string()), ("signature", pa.string()),
])
_DUCK_TYPES = {
    pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int16(): "SMALLINT", pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR", pa.list_(pa.int64()): "BIGINT[]",
}
JSON_COLUMNS = "{" + ", ".join(
    f"{f.name}: '{_DUCK_TYPES[f.type]}'" for f in RECORD_SCHEMA) + "}"

# Per kind: the target table, its columns, and what a record of that kind must carry.
_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "request": ("telemetry_request",
                ("seq", "ts", "model", "version", "status", "latency_us", "rows")),
    "histogram": ("telemetry_histogram",
                  ("seq", "window_start", "window_end", "model", "version", "feature",
                   "counts", "nulls")),
    "evicted": ("telemetry_evicted", ("seq", "ts", "count", "first_seq", "last_seq")),
}
# Kinds that go to the audit trail rather than a telemetry table (core.audit.agent_ingest).
OTHER_KINDS: dict[str, tuple[str, ...]] = {AGENT_EVENT_KIND: ("seq", "body", "signature")}
_agent_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class IngestResult:
    agent: str
    requests: int
    histograms: int
    evicted: int
    last_seq: int

    @property
    def rows(self) -> int:
        return self.requests + self.histograms + self.evicted


def _agent_lock(agent: str) -> threading.Lock:
    with _locks_guard:
        return _agent_locks.setdefault(agent, threading.Lock())


def records_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Pulled records (JSON objects) as one Arrow table; unknown keys are dropped."""
    return pa.Table.from_pylist(list(records), schema=RECORD_SCHEMA)


def _check_records(cur: duckdb.DuckDBPyConnection, where: str) -> tuple[int, int, int]:
    """(records, min seq, max seq); refuses unknown kinds and records missing a field."""
    required = {**{kind: cols for kind, (_, cols) in _KINDS.items()}, **OTHER_KINDS}
    checks = " OR ".join(
        f"(kind = '{kind}' AND ({' OR '.join(f'{c} IS NULL' for c in cols)}))"
        for kind, cols in required.items())
    kinds = ", ".join(f"'{k}'" for k in required)
    n, bad, lo, hi = cur.execute(
        f"SELECT count(*), count(*) FILTER (kind NOT IN ({kinds}) OR seq IS NULL OR {checks}),"
        " coalesce(min(seq), 0), coalesce(max(seq), 0) FROM staged").fetchall()[0]
    if bad:
        raise InvalidInput(f"{where}: {bad} telemetry records have an unknown kind or miss fields")
    return int(n), int(lo), int(hi)


def ingest_table(catalog: Catalog, agent: str, records: pa.Table, *, where: str,
                 expected: int | None = None) -> IngestResult:
    """Insert the records not yet stored for `agent` and move its cursor, in one commit."""
    with _agent_lock(agent), catalog.transaction() as cur:
        cur.register("staged", records)
        try:
            n, lo, hi = _check_records(cur, where)
            if expected is not None and n != expected:
                raise TelemetryFileInvalid(f"{where} holds {n} records, its end line says "
                                           f"{expected}: the file is corrupt")
            inserted = {kind: _insert_kind(cur, agent, kind, lo, hi) for kind in _KINDS}
            ingest_agent_events(cur, False, agent)
            cur.execute(
                "INSERT INTO telemetry_cursor (agent, last_seq) VALUES (?, ?) "
                "ON CONFLICT (agent) DO UPDATE SET "
                "last_seq = greatest(telemetry_cursor.last_seq, excluded.last_seq),"
                " updated_at = now()", [agent, hi])
            last = cur.execute("SELECT last_seq FROM telemetry_cursor WHERE agent = ?",
                               [agent]).fetchall()
        finally:
            cur.unregister("staged")
    return IngestResult(agent, inserted["request"], inserted["histogram"], inserted["evicted"],
                        int(last[0][0]) if last else hi)


def _insert_kind(cur: duckdb.DuckDBPyConnection, agent: str, kind: str, lo: int, hi: int) -> int:
    table, cols = _KINDS[kind]
    select = ", ".join(f"s.{c}" for c in cols)
    row = cur.execute(
        f"INSERT INTO {table} (agent, {', '.join(cols)}) "
        f"SELECT $agent, {select} FROM staged s "
        f"ANTI JOIN (SELECT seq FROM {table} WHERE agent = $agent"
        f" AND seq BETWEEN $lo AND $hi) e ON s.seq = e.seq "
        f"WHERE s.kind = $kind",
        {"agent": agent, "lo": lo, "hi": hi, "kind": kind}).fetchall()
    return int(row[0][0]) if row else 0


def agent_for_key(catalog: Catalog, public_key: str) -> str | None:
    row = catalog.cursor().execute(
        "SELECT name FROM agent WHERE public_key = ?", [public_key]).fetchall()
    return str(row[0][0]) if row else None


def import_telemetry(catalog: Catalog, path: Path) -> IngestResult:
    """Ingest an export file carried from an agent; importing it again adds nothing."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"telemetry file {path} does not exist")
    header = read_header(path)
    agent = agent_for_key(catalog, header.public_key)
    if agent is None:
        raise TelemetryFileInvalid(
            f"telemetry file {path.name} is from an unknown agent ({header.agent_id}): "
            "enrol it with `outpost agent add` first")
    verified = verify_export(path, header)
    try:
        staged = catalog.cursor().sql(
            f"SELECT * FROM read_json(?, format = 'newline_delimited', columns = {JSON_COLUMNS})"
            " WHERE kind IS NOT NULL", params=[str(path)]).to_arrow_table()
    except duckdb.Error as exc:
        raise TelemetryFileInvalid(
            f"telemetry file {path.name} has malformed records: {str(exc).splitlines()[0]}"
        ) from exc
    return ingest_table(catalog, agent, staged, where=f"telemetry file {path.name}",
                        expected=verified.records)
