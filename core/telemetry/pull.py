"""Pulling telemetry from agents by cursor: page, commit, then ack — per agent, in parallel.

A page is acked only after the transaction that stored it (and moved the
cursor) committed, so a crash anywhere repeats at most one page, which the
(agent, seq) anti-join then skips. Each agent has its own thread and its own
retries with backoff, so an offline agent delays nobody else.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from core.catalog import Catalog
from core.errors import Cancelled, OutpostError
from core.fleet.agents import connect, record_contact
from core.fleet.client import AgentClient
from core.fleet.errors import AgentUnreachable, TransferFailed
from core.fleet.records import get_agent, list_agents
from core.progress import CancelToken, ProgressFn, check, report
from core.telemetry.ingest import ingest_table, records_table

DEFAULT_PAGE = 5000


@dataclass(frozen=True)
class PullResult:
    agent: str
    rows: int  # records stored by this pull
    requests: int
    histograms: int
    last_seq: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: float = 0.25  # doubled after every failed attempt


def cursor_of(catalog: Catalog, agent: str) -> int:
    rows = catalog.cursor().execute(
        "SELECT last_seq FROM telemetry_cursor WHERE agent = ?", [agent]).fetchall()
    return int(rows[0][0]) if rows else 0


class _Tally:
    def __init__(self, agent: str, start: int) -> None:
        self.agent, self.requests, self.histograms, self.rows, self.last = agent, 0, 0, 0, start

    def result(self, error: str | None = None) -> PullResult:
        return PullResult(self.agent, self.rows, self.requests, self.histograms, self.last, error)


def _drain(catalog: Catalog, name: str, client: AgentClient, tally: _Tally, page: int,
           progress: ProgressFn | None, cancel: CancelToken | None) -> None:
    acked = None
    while True:
        check(cancel, "telemetry pull")
        answer = client.telemetry(after=tally.last, limit=page)
        records = answer.get("records") or []
        if records:
            res = ingest_table(catalog, name, records_table(records),
                               where=f"telemetry from agent {name}")
            tally.rows += res.rows
            tally.requests += res.requests
            tally.histograms += res.histograms
            tally.last = res.last_seq
            client.ack(tally.last)
            acked = tally.last
            remote = int(answer.get("last_seq") or tally.last)
            report(progress, f"telemetry from {name}", tally.last, max(remote, tally.last))
        if len(records) < page:
            break
    if acked != tally.last and tally.last > 0:
        client.ack(tally.last)  # records imported from a file are dropped on the agent too


def pull_agent(catalog: Catalog, name: str, *, page: int = DEFAULT_PAGE,
               retry: RetryPolicy | None = None, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> PullResult:
    """Pull everything after the agent's cursor; retry a lost connection with backoff."""
    retry = retry or RetryPolicy()
    tally = _Tally(name, cursor_of(catalog, name))
    error: str | None = None
    for attempt in range(retry.attempts):
        try:
            with connect(catalog, name) as (_, client):
                _drain(catalog, name, client, tally, page, progress, cancel)
            record_contact(catalog, name, None, None)
            return tally.result()
        except (AgentUnreachable, TransferFailed) as exc:
            error = str(exc)
            if attempt + 1 < retry.attempts:
                time.sleep(retry.backoff_s * 2 ** attempt)
        except Cancelled:
            raise
        except OutpostError as exc:  # wrong token, other key, refused: retrying won't help
            return tally.result(str(exc))
    record_contact(catalog, name, None, error)
    return tally.result(error)


def pull_telemetry(catalog: Catalog, agent: str | None = None, *, page: int = DEFAULT_PAGE,
                   retry: RetryPolicy | None = None, progress: ProgressFn | None = None,
                   cancel: CancelToken | None = None) -> list[PullResult]:
    """Pull from one agent or from all, each in its own thread."""
    names = [agent] if agent else [a.name for a in list_agents(catalog) if a.mode != "hub"]
    if agent:
        get_agent(catalog, agent)  # unknown name: one clear error, not an empty result
    lock = threading.Lock()

    def locked(event: Any) -> None:
        if progress is not None:
            with lock:
                progress(event)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        futures = [pool.submit(pull_agent, catalog, n, page=page, retry=retry,
                               progress=locked, cancel=cancel) for n in names]
        return [f.result() for f in futures]
