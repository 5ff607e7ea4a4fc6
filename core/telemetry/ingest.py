"""Telemetry into the catalog: bulk, through Arrow, exactly once by (agent, seq).

Pulled batches and export files both become one Arrow table of records (all
kinds, one column set) and go through :func:`ingest_table`: one transaction
inserts each kind with an anti-join against the seqs already stored for that
agent and moves the agent's cursor. The cursor row is written in the same
transaction, so two ingests for one agent conflict instead of both inserting.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

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
    # prediction, feedback and capture records (closed loop: ids, labels, captured rows)
    ("ids", pa.list_(pa.string())), ("predicted", pa.list_(pa.string())),
    ("times", pa.list_(pa.float64())), ("labels", pa.list_(pa.string())),
    ("id", pa.string()), ("reason", pa.string()), ("inputs", pa.string()),
    ("prediction", pa.string()),
    ("body", pa.string()), ("signature", pa.string()),
    ("challenger", pa.int32()), ("agreed", pa.int64()), ("dropped", pa.int64()),
    ("timeouts", pa.int64()), ("errors", pa.int64()), ("divergence", pa.string()),
])
_DUCK_TYPES = {
    pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int16(): "SMALLINT", pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR", pa.list_(pa.int64()): "BIGINT[]",
    pa.list_(pa.string()): "VARCHAR[]", pa.list_(pa.float64()): "DOUBLE[]",
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
    "prediction": ("telemetry_prediction",
                   ("seq", "ts", "model", "version", "ids", "predicted", "times")),
    "feedback": ("telemetry_feedback", ("seq", "ts", "model", "ids", "labels")),
    "capture": ("telemetry_capture",
                ("seq", "ts", "model", "version", "id", "reason", "inputs", "prediction")),
    "shadow": ("telemetry_shadow",
               ("seq", "window_start", "window_end", "model", "version", "challenger", "count",
                "rows", "agreed", "dropped", "timeouts", "errors", "latency_us", "counts",
                "divergence")),
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


def insert_staged(cur: duckdb.DuckDBPyConnection, records: pa.Table, *, where: str,
                  agent: str | None = None,
                  expected: int | None = None) -> dict[str, IngestResult]:
    """Insert the records not yet stored and move the cursor, inside the caller's
    transaction; per agent, its result. `records` (RECORD_SCHEMA) all come from `agent`,
    or (agent None) carry an `agent` column telling several apart (a hub round).

    The one implementation of exactly-once by (agent, seq): rows already stored are
    skipped by an anti-join, and the cursor moves in the same commit."""
    cur.register("staged", records)
    try:
        n, lo, hi = _check_records(cur, where)
        if expected is not None and n != expected:
            raise TelemetryFileInvalid(f"{where} holds {n} records, its end line says "
                                       f"{expected}: the file is corrupt")
        # Kinds absent from the batch are skipped: each statement costs ~3 ms of CPU here.
        present = set(pc.unique(records["kind"]).to_pylist())
        inserted = {kind: _insert_kind(cur, kind, lo, hi, agent) if kind in present
                    else Counter() for kind in _KINDS}
        if AGENT_EVENT_KIND in present:
            ingest_agent_events(cur, agent)
        moved = ("VALUES ($agent, $hi)" if agent is not None else
                 "SELECT agent, max(seq) FROM staged GROUP BY agent")
        cursors = cur.execute(
            f"INSERT INTO telemetry_cursor (agent, last_seq) {moved} "
            "ON CONFLICT (agent) DO UPDATE SET "
            "last_seq = greatest(telemetry_cursor.last_seq, excluded.last_seq),"
            " updated_at = now() RETURNING agent, last_seq",
            {"agent": agent, "hi": hi} if agent is not None else {}).fetchall()
    finally:
        cur.unregister("staged")
    return {str(name): IngestResult(
        str(name), inserted["request"].get(name, 0), inserted["histogram"].get(name, 0),
        inserted["evicted"].get(name, 0), int(last)) for name, last in cursors}


def _insert_kind(cur: duckdb.DuckDBPyConnection, kind: str, lo: int, hi: int,
                 agent: str | None) -> Counter[str]:
    """Rows of `kind` inserted, per agent: for one agent the statement's own count; for
    a hub round each inserted row's agent comes back (rounds are small)."""
    table, cols = _KINDS[kind]
    select = ", ".join(f"s.{c}" for c in cols)
    params: dict[str, object] = {"lo": lo, "hi": hi, "kind": kind}
    if agent is not None:
        row = cur.execute(
            f"INSERT INTO {table} (agent, {', '.join(cols)}) "
            f"SELECT $agent, {select} FROM staged s "
            f"ANTI JOIN (SELECT seq FROM {table} WHERE agent = $agent"
            f" AND seq BETWEEN $lo AND $hi) e ON s.seq = e.seq "
            f"WHERE s.kind = $kind", {**params, "agent": agent}).fetchall()
        return Counter({agent: int(row[0][0]) if row else 0})
    rows = cur.execute(
        f"INSERT INTO {table} (agent, {', '.join(cols)}) "
        f"SELECT s.agent, {select} FROM staged s "
        f"ANTI JOIN (SELECT agent, seq FROM {table} WHERE seq BETWEEN $lo AND $hi "
        f"AND agent IN (SELECT DISTINCT agent FROM staged)) e "
        f"ON s.agent = e.agent AND s.seq = e.seq WHERE s.kind = $kind RETURNING agent",
        params).fetchall()
    return Counter(name for (name,) in rows)


def ingest_table(catalog: Catalog, agent: str, records: pa.Table, *, where: str,
                 expected: int | None = None) -> IngestResult:
    """Insert the records not yet stored for `agent` and move its cursor, in one commit."""
    with _agent_lock(agent), catalog.transaction() as cur:
        return insert_staged(cur, records, where=where, agent=agent, expected=expected)[agent]


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
