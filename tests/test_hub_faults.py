"""Faults between hub-mode agents and the hub, with real processes on loopback: a bundle
download cut midway, the hub killed and restarted while agents post, the hub away while
the outbox overflows, and batches the hub refuses."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.bundles import build_bundle
from core.catalog import Catalog
from core.fleet.dispatch import deploy
from core.fleet.ledger import list_deployments
from core.hub import HubOptions, enroll_agent, revoke_agent, write_enrolment
from core.keys import write_public_key_file
from tests.support.agents import free_port
from tests.support.fleet import agent_event_seqs, open_catalog, stored_seqs
from tests.support.hub import (
    DownloadCutter,
    HubAgent,
    enrol_and_start,
    hub_cert,
    register_adder,
    start_hub_agent,
    start_hub_process,
    start_test_hub,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("hub")


def _requests(catalog: Catalog, agent: str) -> list[int]:
    """Seqs of the answered requests (those before the model arrived were 404s)."""
    return [int(s) for (s,) in catalog.cursor().execute(
        "SELECT seq FROM telemetry_request WHERE agent = ? AND status = 200 ORDER BY seq",
        [agent]).fetchall()]


def _all_seqs(catalog: Catalog, agent: str) -> list[int]:
    return sorted(stored_seqs(catalog, agent) + agent_event_seqs(catalog, agent))


def test_download_cut_midway_resumes_and_the_hash_verifies(catalog: Catalog,
                                                           tmp_path: Path) -> None:
    hub = start_test_hub(catalog, "127.0.0.1", 0)
    proxy = DownloadCutter(hub.port, tls=hub_cert(catalog.settings))
    try:
        ref = register_adder(catalog, tmp_path)
        agent = enrol_and_start(catalog, tmp_path, "far", proxy.url)
        try:
            size = build_bundle(catalog, ref).path.stat().st_size
            proxy.cut_after(size // 2)
            result = deploy(catalog, ref, "far")
            wait_until(lambda: list_deployments(catalog)[0].status != "pending", 30, "outcome")
            [dep] = list_deployments(catalog)
            assert (dep.id, dep.status, dep.error) == (result.deployment, "active", None)
            assert f"cut at {size // 2} of {size} bytes" in agent.log_text()
            assert f"Range: bytes={size // 2}-" in proxy.requests
            assert not list((agent.dir / "hub" / "downloads").iterdir())
        finally:
            agent.stop()
    finally:
        proxy.close()
        hub.stop()


def test_hub_killed_and_restarted_while_agents_post(outpost_home: Path, tmp_path: Path) -> None:
    names = ("north", "south")
    with open_catalog(outpost_home) as catalog:  # desired state is recorded with no hub up
        ref = register_adder(catalog, tmp_path)
        port = free_port()
        files = {n: write_enrolment(enroll_agent(catalog, n, f"https://127.0.0.1:{port}"),
                                    tmp_path / f"{n}.enrol") for n in names}
        for name in names:
            deploy(catalog, ref, name)
    hub = start_hub_process(outpost_home, port)
    agents = [start_hub_agent(tmp_path / n, n, enrol=files[n], push_s=0.05) for n in names]
    sent = {n: 0 for n in names}
    try:
        for agent in agents:  # one answered request each, counted below
            wait_until(lambda agent=agent: _serves(agent), 30, "bundle installed")
        stop = threading.Event()

        def traffic(agent: HubAgent) -> None:
            while not stop.is_set():
                agent.infer(5)
                sent[agent.name] += 5

        threads = [threading.Thread(target=traffic, args=(a,)) for a in agents]
        for t in threads:
            t.start()
        wait_until(lambda: min(sent.values()) >= 60, 30, "traffic")
        hub.kill()  # kill -9 in the middle of posts and commits
        wait_until(lambda: min(sent.values()) >= 120, 30, "traffic while the hub is down")
        hub = start_hub_process(outpost_home, port)
        wait_until(lambda: min(sent.values()) >= 180, 30, "traffic after the restart")
        stop.set()
        for t in threads:
            t.join()
        wait_until(lambda: all(a.outbox() == [] for a in agents), 30, "outboxes drained")
        for agent in agents:
            assert not _hub_refusals(agent), agent.log_text()
    finally:
        for a in agents:
            a.stop()
        hub.stop()
    with open_catalog(outpost_home) as catalog:
        for name in names:
            assert len(_requests(catalog, name)) == sent[name] + 1  # + the one in _serves
            seqs = _all_seqs(catalog, name)
            assert seqs == list(range(1, len(seqs) + 1)), f"{name}: gaps or duplicates"


def _serves(agent: HubAgent) -> bool:
    with contextlib.suppress(AssertionError):
        agent.infer(1)
        return True
    return False


def _hub_refusals(agent: HubAgent) -> list[str]:
    """Log lines where the hub refused something. "connection refused" is not one: the hub
    was down (killed) when a thread opened a connection, which it retries."""
    return [line for line in agent.log_text().splitlines()
            if "refused" in line and "connection refused" not in line]


def test_hub_away_for_a_while_loses_nothing_and_reports_evictions(catalog: Catalog,
                                                                 tmp_path: Path) -> None:
    ref = register_adder(catalog, tmp_path)
    bundle = build_bundle(catalog, ref).path
    pub = write_public_key_file(catalog, tmp_path / "desktop.pub")
    folder = tmp_path / "remote"
    subprocess.run([sys.executable, "-m", "edge_agent", "install", str(bundle), "--dir",
                    str(folder), "--trust-key", str(pub)], check=True, capture_output=True)
    port = free_port()
    enrol = write_enrolment(enroll_agent(catalog, "remote", f"https://127.0.0.1:{port}"),
                            tmp_path / "remote.enrol")
    agent = start_hub_agent(folder, "remote", enrol=enrol,
                            extra=("--telemetry-max-mb", "0.01"))
    try:
        agent.infer(150)  # ~20 KB of records into a 10 KB outbox, with the hub away
        # nothing listens yet: "connection refused", the retried kind, not a hub refusal
        wait_until(lambda: "connection refused; retrying with backoff" in agent.log_text(),
                   10, "backoff")
        hub = start_test_hub(catalog, "127.0.0.1", port)
        try:
            wait_until(lambda: agent.outbox() == [] and _requests(catalog, "remote"), 30,
                       "the backlog delivered")
        finally:
            hub.stop()
        assert not _hub_refusals(agent), agent.log_text()
    finally:
        agent.stop()
    evicted = catalog.cursor().execute(
        "SELECT sum(count), min(first_seq), max(last_seq) FROM telemetry_evicted "
        "WHERE agent = 'remote'").fetchall()[0]
    assert evicted[0] and evicted[0] > 0, "evictions were reported when the link returned"
    requests = _requests(catalog, "remote")
    assert 0 < len(requests) < 150 and len(requests) == len(set(requests))
    assert min(requests) > evicted[2]  # what is stored is exactly what was not evicted
    seqs = set(_all_seqs(catalog, "remote"))
    assert seqs | set(range(evicted[1], evicted[2] + 1)) == set(range(1, max(seqs) + 1))


def test_refused_and_oversized_batches_stay_in_the_outbox(catalog: Catalog,
                                                          tmp_path: Path) -> None:
    hub = start_test_hub(catalog, "127.0.0.1", 0, HubOptions(max_batch_bytes=4096))
    try:
        ref = register_adder(catalog, tmp_path)
        agent = enrol_and_start(catalog, tmp_path, "big", hub.url)
        try:
            deploy(catalog, ref, "big")
            wait_until(lambda: _serves(agent), 20, "installed")
            agent.infer(100)  # ~13 KB: more than one batch may carry
            wait_until(lambda: len(_requests(catalog, "big")) == 101 and agent.outbox() == [],
                       30, "delivered in smaller batches")
            assert "as too large" in agent.log_text()
            revoke_agent(catalog, "big")
            agent.infer(3)
            # The refusal can be logged (by a poll) before the writer has flushed the 3 new
            # records, so wait for both: refused, and the records held in the outbox.
            wait_until(lambda: "was revoked" in agent.log_text() and len(agent.outbox()) >= 3,
                       10, "refusal logged, records kept")
            assert len(_requests(catalog, "big")) == 101
        finally:
            agent.stop()
        poisoned = tmp_path / "poisoned"
        _poison_outbox(poisoned)
        enrol = write_enrolment(enroll_agent(catalog, "bad", hub.url), tmp_path / "bad.enrol")
        bad = start_hub_agent(poisoned, "bad", enrol=enrol)
        try:
            wait_until(lambda: "unknown kind or miss fields" in bad.log_text(), 15,
                       "refusal logged")
            assert "hub refused telemetry seq 1..1, kept in the outbox" in bad.log_text()
            assert bad.outbox() == [(1, "gossip")] and _requests(catalog, "bad") == []
        finally:
            bad.stop()
    finally:
        hub.stop()


def test_device_clock_skew_orders_by_seq_not_time(catalog: Catalog, tmp_path: Path) -> None:
    hub = start_test_hub(catalog, "127.0.0.1", 0)
    try:
        now = time.time()
        stamps = [now + 86400, now - 86400, now - 90000, now + 3600]  # a clock that jumps
        folder = tmp_path / "skewed"
        _prefill_outbox(folder, [
            {"kind": "request", "ts": ts, "model": "adder", "version": 1, "status": 200,
             "latency_us": 100, "rows": 1} for ts in stamps])
        enrol = write_enrolment(enroll_agent(catalog, "skewed", hub.url),
                                tmp_path / "skewed.enrol")
        agent = start_hub_agent(folder, "skewed", enrol=enrol)
        try:
            wait_until(lambda: agent.outbox() == [], 15, "skewed records pushed and acked")
        finally:
            agent.stop()
    finally:
        hub.stop()
    rows = catalog.cursor().execute("SELECT seq, ts FROM telemetry_request WHERE agent = "
                                    "'skewed' ORDER BY seq").fetchall()
    assert [(int(s), float(t)) for s, t in rows] == list(zip(range(1, 5), stamps, strict=True))


def _prefill_outbox(folder: Path, records: list[dict[str, object]]) -> None:
    """An agent outbox holding `records` (seq 1, 2, ...), as a device would have written."""
    folder.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "edge_agent", "export-telemetry", "--dir",
                    str(folder), "--out", str(folder.parent / "empty.ndjson")],
                   check=True, capture_output=True)
    with contextlib.closing(sqlite3.connect(folder / "telemetry.sqlite")) as db, db:
        for seq, record in enumerate(records, 1):
            body = json.dumps(record)
            db.execute("INSERT INTO records VALUES (?, ?, ?, ?)",
                       (seq, record["kind"], body, len(body) + 16))
        db.execute("UPDATE state SET last_seq = ?", (len(records),))


def _poison_outbox(folder: Path) -> None:
    """An outbox whose oldest record is one no hub accepts (a kind it does not know)."""
    _prefill_outbox(folder, [{"kind": "gossip"}])
