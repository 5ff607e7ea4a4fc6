"""Reading the trail: the log, the chain check, and "what was serving on agent A at T".

"At T" has two views. The desktop's: the last deploy or rollback that finished
'active' on the agent at or before T (desktop clock). The agent's: its own activate and
rollback events, in the agent's sequence order, the last one whose agent clock reads
at or before T. An agent clock that went backwards between two events is reported as
skew; the events are never reordered by time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.audit.chain import AGENT_EVENT, SELECT, ChainCheck, row_entry, verify_rows
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound

_PAGE = 10_000


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a timezone (``Z`` or ``+HH:MM``)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"time {text!r} is not ISO 8601 "
                           "(e.g. 2026-06-01T12:00:00+00:00)") from None
    if when.tzinfo is None:
        raise InvalidInput(f"time {text!r} has no timezone: add Z or +HH:MM")
    return when.astimezone(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class LogEntry:
    position: int
    at: str
    kind: str
    actor: str
    agent: str | None
    model: str | None
    version: int | None
    sha256: str | None
    detail: dict[str, Any]
    agent_seq: int | None
    agent_ts: float | None
    agent_boot: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _log_entry(entry: dict[str, Any]) -> LogEntry:
    return LogEntry(entry["position"], entry["recorded_at"], entry["kind"], entry["actor"],
                    entry["agent"], entry["model"], entry["version"], entry["sha256"],
                    orjson.loads(entry["detail"]), entry["agent_seq"], entry["agent_ts"],
                    entry["agent_boot"])


def audit_log(catalog: Catalog, *, model: str | None = None, agent: str | None = None,
              since: datetime | None = None, limit: int | None = None) -> list[LogEntry]:
    """Entries, oldest first, filtered by model, agent and desktop time."""
    rows = catalog.cursor().execute(
        f"SELECT {SELECT} FROM audit_event WHERE (? IS NULL OR model = ?) "
        "AND (? IS NULL OR agent = ?) AND (? IS NULL OR recorded_at >= ?) ORDER BY position "
        + ("" if limit is None else f"LIMIT {int(limit)}"),
        [model, model, agent, agent, *([None, None] if since is None else [iso(since)] * 2)]
    ).fetchall()
    return [_log_entry(row_entry(r)[0]) for r in rows]


def rejected_count(catalog: Catalog, agent: str | None = None) -> int:
    row = catalog.cursor().execute("SELECT count(*) FROM audit_rejected WHERE "
                                   "(? IS NULL OR agent = ?)", [agent, agent]).fetchone()
    return int(row[0]) if row else 0


def verify_catalog(catalog: Catalog) -> ChainCheck:
    """Check the whole chain, streamed in pages."""
    cur = catalog.cursor()
    cur.execute(f"SELECT {SELECT} FROM audit_event ORDER BY position")

    def rows():  # type: ignore[no-untyped-def]
        while batch := cur.fetchmany(_PAGE):
            yield from (row_entry(r) for r in batch)

    return verify_rows(rows())


def _desktop_view(catalog: Catalog, agent: str, model: str | None,
                  when: str) -> dict[str, dict[str, Any]]:
    """Per model: the last deploy/rollback that left it active on `agent` by `when`."""
    rows = catalog.cursor().execute(
        "SELECT model, arg_max(struct_pack(position, recorded_at, kind, version, sha256, "
        "detail), "
        "position) FROM audit_event WHERE agent = ? AND kind IN ('deploy', 'rollback') "
        "AND json_extract_string(detail, '$.status') = 'active' AND recorded_at <= ? "
        "AND (? IS NULL OR model = ?) GROUP BY model",
        [agent, when, model, model]).fetchall()
    return {m: dict(v) for m, v in rows}


def _agent_view(catalog: Catalog, agent: str, model: str | None,
                when: float) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Per model: the agent's last activation by its own sequence among events its clock
    put at or before `when`; and every backwards clock step the agent made (skew)."""
    cur = catalog.cursor()
    events = "kind = ? AND agent = ? AND (? IS NULL OR model = ?)"
    args = [AGENT_EVENT, agent, model, model]
    rows = cur.execute(
        "WITH e AS (SELECT position, model, version, agent_seq, agent_ts, agent_boot, "
        f"json_extract_string(detail, '$.event') AS event FROM audit_event WHERE {events}) "
        "SELECT model, arg_max(struct_pack(position, event, version, agent_seq, agent_ts, "
        "agent_boot), agent_seq) FROM e WHERE event IN ('activate', 'rollback') "
        "AND agent_ts <= ? GROUP BY model", [*args, when]).fetchall()
    serving: dict[str, dict[str, Any]] = {}
    for name, last in rows:
        sha = cur.execute(
            f"SELECT sha256 FROM audit_event WHERE {events} AND version = ? "
            "AND agent_seq < ? AND json_extract_string(detail, '$.event') = 'install' "
            "ORDER BY agent_seq DESC LIMIT 1",
            [AGENT_EVENT, agent, name, name, last["version"], last["agent_seq"]]).fetchone()
        serving[name] = {
            "position": last["position"], "event": last["event"], "version": last["version"],
            "agent_seq": last["agent_seq"], "agent_ts": last["agent_ts"],
            "boot": last["agent_boot"],
            "since": iso(datetime.fromtimestamp(last["agent_ts"], UTC)),
            "sha256": sha[0] if sha else None}
    skew = cur.execute(
        "SELECT agent_seq, agent_ts, previous_ts FROM (SELECT agent_seq, agent_ts, "
        "max(agent_ts) OVER (ORDER BY agent_seq ROWS BETWEEN UNBOUNDED PRECEDING AND "
        f"1 PRECEDING) AS previous_ts FROM audit_event WHERE {events}) "
        "WHERE agent_ts < previous_ts ORDER BY agent_seq", args).fetchall()
    return serving, [{"agent_seq": seq, "agent_ts": ts, "previous_ts": prev,
                      "backwards_s": round(prev - ts, 6)} for seq, ts, prev in skew]


def _count_requests(catalog: Catalog, agent: str, model: str, version: int, start: float,
                    end: float) -> int:
    row = catalog.cursor().execute(
        "SELECT count(*) FROM telemetry_request WHERE agent = ? AND model = ? AND version = ? "
        "AND ts >= ? AND ts <= ?", [agent, model, version, start, end]).fetchone()
    return int(row[0]) if row else 0


def _registration(catalog: Catalog, model: str, version: int) -> dict[str, Any] | None:
    row = catalog.cursor().execute(
        "SELECT position, recorded_at, sha256, detail FROM audit_event WHERE kind = 'register' "
        "AND model = ? AND version = ? ORDER BY position LIMIT 1", [model, version]).fetchone()
    if row is None:
        return None
    detail = orjson.loads(row[3])
    return {"position": row[0], "at": row[1], "onnx_sha256": row[2],
            "parity": detail.get("parity"), "flagged": detail.get("flagged")}


def serving_at(catalog: Catalog, agent: str, when: datetime,
               model: str | None = None) -> dict[str, Any]:
    """What `agent` served at `when`, from the desktop's records and the agent's own."""
    if catalog.cursor().execute("SELECT 1 FROM agent WHERE name = ?", [agent]).fetchone() \
            is None and not audit_log(catalog, agent=agent, limit=1):
        raise NotFound(f"no agent {agent!r}")
    desk = _desktop_view(catalog, agent, model, iso(when))
    seen, skew = _agent_view(catalog, agent, model, when.timestamp())
    answers = []
    for name in sorted(set(desk) | set(seen)):
        answers.append(_answer(catalog, agent, name, desk.get(name), seen.get(name), when))
    answers.sort(key=lambda a: a["since"] or "", reverse=True)
    first = answers[0] if answers else {
        "agent": agent, "model": model, "version": None, "sha256": None, "since": None,
        "deployed_by_event": None, "evidence": {"desktop": None, "agent": None}}
    return {**first, "at": iso(when), "models": answers,
            "clock_skew": skew, "rejected_agent_events": rejected_count(catalog, agent)}


def _answer(catalog: Catalog, agent: str, model: str, desk: dict[str, Any] | None,
            seen: dict[str, Any] | None, when: datetime) -> dict[str, Any]:
    version = desk["version"] if desk else seen["version"] if seen else None
    sha = (desk or {}).get("sha256") or (seen or {}).get("sha256")
    since = desk["recorded_at"] if desk else seen["since"] if seen else None
    desktop = None if desk is None else {
        "position": desk["position"], "kind": desk["kind"], "at": desk["recorded_at"],
        "version": desk["version"], "sha256": desk["sha256"],
        **{k: v for k, v in orjson.loads(desk["detail"]).items() if k != "error"}}
    evidence: dict[str, Any] = {
        "desktop": desktop, "agent": seen,
        "agree": None if desk is None or seen is None else desk["version"] == seen["version"],
        "registration": None if version is None else _registration(catalog, model, version),
    }
    if version is not None and since is not None:
        start = parse_time(since).timestamp()
        evidence["requests_served"] = _count_requests(catalog, agent, model, version, start,
                                                      when.timestamp())
    return {"agent": agent, "model": model, "version": version, "sha256": sha,
            "since": since, "deployed_by_event": desk["position"] if desk else
            (seen["position"] if seen else None), "evidence": evidence}


def serving_for_model(catalog: Catalog, model: str, when: datetime) -> list[dict[str, Any]]:
    """`serving_at` for `model` on every agent the trail has seen it on."""
    rows = catalog.cursor().execute(
        "SELECT DISTINCT agent FROM audit_event WHERE model = ? AND agent IS NOT NULL "
        "ORDER BY agent", [model]).fetchall()
    return [serving_at(catalog, str(agent), when, model) for (agent,) in rows]


def audit_subjects(catalog: Catalog) -> tuple[list[str], list[str]]:
    """(agents, models) the trail mentions, sorted: what the History view offers."""
    cur = catalog.cursor()
    agents = cur.execute("SELECT DISTINCT agent FROM audit_event WHERE agent IS NOT NULL "
                         "ORDER BY agent").fetchall()
    models = cur.execute("SELECT DISTINCT model FROM audit_event WHERE model IS NOT NULL "
                         "ORDER BY model").fetchall()
    return [str(a) for (a,) in agents], [str(m) for (m,) in models]
