"""The hub's HTTP API on loopback: enrolment and who may call, telemetry batches (exactly
once, refused whole when bad), resumable bundle ranges, and 20 agents calling at once."""
from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.catalog import Catalog
from core.errors import InvalidInput
from core.fleet.dispatch import agent_status, deploy
from core.fleet.ledger import list_deployments
from core.fleet.records import get_agent
from core.hub import HubHandle, HubOptions, enroll_agent, revoke_agent
from core.keys import key_info
from edge_agent.contract.hub_protocol import Enrolment, agent_path, claim_message
from edge_agent.contract.protocol import generate_signing_key, public_key_b64
from edge_agent.hub.transport import HubRefused, HubTransport
from tests.conftest import run_cli
from tests.support.fleet import enrol_row, open_catalog
from tests.support.hub import (
    hub_call,
    ndjson,
    register_adder,
    request_records,
    start_test_hub,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def hub(catalog: Catalog) -> Iterator[HubHandle]:
    handle = start_test_hub(catalog, "127.0.0.1", 0,
                       HubOptions(max_batch_bytes=64 * 1024, contact_flush_s=0.2))
    yield handle
    handle.stop()


def _claim(hub: HubHandle, enrolment: Enrolment, key: Ed25519PrivateKey,
           agent_id: str = "device-1") -> int:
    proof = key.sign(claim_message(enrolment.agent, enrolment.token))
    body = orjson.dumps({"agent_id": agent_id, "public_key": public_key_b64(key),
                         "signature": base64.b64encode(proof).decode()})
    return hub_call(hub.url, "POST", agent_path(enrolment.agent, "enroll"), enrolment.token,
                    body=body).status_code


def _enrolled(catalog: Catalog, hub: HubHandle, name: str) -> Enrolment:
    enrolment = enroll_agent(catalog, name, hub.url)
    assert _claim(hub, enrolment, generate_signing_key()) == 200
    return enrolment


def _post(hub: HubHandle, e: Enrolment, body: bytes, as_agent: str | None = None) -> tuple[
        int, dict[str, object]]:
    answer = hub_call(hub.url, "POST", agent_path(as_agent or e.agent, "telemetry"), e.token,
                      body=body, headers={"Content-Type": "application/x-ndjson"})
    return answer.status_code, answer.json()


def _rows(catalog: Catalog, agent: str) -> list[tuple[int, float]]:
    return [(int(s), float(t)) for s, t in catalog.cursor().execute(
        "SELECT seq, ts FROM telemetry_request WHERE agent = ? ORDER BY seq", [agent]).fetchall()]


def test_enrol_cli_writes_a_private_file_and_keeps_only_a_hash(outpost_home: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "pi.enrol"
    result = run_cli(outpost_home, "agent", "enroll", "pi", "--hub-url", "http://10.1.2.3:8700",
                     "--out", str(out), "--json", check=True)
    doc = result.json()
    assert doc["agent"] == "pi" and doc["hub_url"] == "http://10.1.2.3:8700"
    assert Enrolment.read(out).token == doc["token"] and len(doc["token"]) >= 40
    assert os.stat(out).st_mode & 0o777 == 0o600
    again = run_cli(outpost_home, "agent", "enroll", "pi")
    assert again.returncode == 1 and "already enrolled" in again.stderr
    assert run_cli(outpost_home, "agent", "revoke", "pi", "--json", check=True).json() == {
        "agent": "pi", "revoked": True}
    with open_catalog(outpost_home) as catalog:
        assert doc["desktop_key"] == key_info(catalog).public_key
        assert (get_agent(catalog, "pi").mode, get_agent(catalog, "pi").url) == (
            "hub", "http://10.1.2.3:8700")
        stored = catalog.cursor().execute("SELECT * FROM hub_enrolment").fetchall()
        assert doc["token"] not in repr(stored) and stored[0][-1] is not None  # revoked
        enrol_row(catalog, "pusher", generate_signing_key())
        with pytest.raises(InvalidInput, match="not enrolled for the hub"):
            revoke_agent(catalog, "pusher")


def test_unknown_revoked_and_borrowed_tokens_are_refused(catalog: Catalog,
                                                         hub: HubHandle) -> None:
    a, b = _enrolled(catalog, hub, "a"), _enrolled(catalog, hub, "b")
    poll = agent_path("a", "poll")
    assert hub_call(hub.url, "POST", poll, None, body=b"{}").status_code == 401
    unknown = hub_call(hub.url, "POST", poll, "not-a-token", body=b"{}")
    assert unknown.status_code == 401 and "unknown enrolment token" in unknown.json()["error"]
    assert hub_call(hub.url, "POST", poll, a.token, body=b"{}").status_code == 200
    # agent A's token posting telemetry as agent B: refused, nothing stored for either
    status, doc = _post(hub, a, ndjson(request_records(1, 3)), as_agent="b")
    assert status == 403 and "belongs to agent 'a'" in str(doc["error"])
    assert _rows(catalog, "a") == [] and _rows(catalog, "b") == []
    assert _post(hub, b, ndjson(request_records(1, 3)))[0] == 200
    revoke_agent(catalog, "a")
    refused = hub_call(hub.url, "POST", poll, a.token, body=b"{}")
    assert refused.status_code == 403 and "revoked" in refused.json()["error"]
    assert _post(hub, a, ndjson(request_records(1, 3)))[0] == 403
    assert _rows(catalog, "a") == [] and len(_rows(catalog, "b")) == 3


def test_enrolment_is_claimed_once_by_one_identity_key(catalog: Catalog,
                                                       hub: HubHandle) -> None:
    enrolment = enroll_agent(catalog, "pi", hub.url)
    early = hub_call(hub.url, "POST", agent_path("pi", "poll"), enrolment.token, body=b"{}")
    assert early.status_code == 409
    first, second = generate_signing_key(), generate_signing_key()
    assert _claim(hub, enrolment, first) == 200
    # a claim signed with another key than the one presented proves nothing
    forged = orjson.dumps({"agent_id": "x", "public_key": public_key_b64(second),
                           "signature": base64.b64encode(b"\0" * 64).decode()})
    assert hub_call(hub.url, "POST", agent_path("pi", "enroll"), enrolment.token,
                    body=forged).status_code == 403
    assert _claim(hub, enrolment, second) == 403  # the same file on a second device
    assert get_agent(catalog, "pi").public_key == public_key_b64(first)
    assert _claim(hub, enrolment, first) == 200  # the device itself, restarted
    fresh = enroll_agent(catalog, "pi", hub.url, replace=True)
    assert _claim(hub, fresh, second) == 200
    assert get_agent(catalog, "pi").public_key == public_key_b64(second)
    assert _claim(hub, enrolment, first) == 401  # the replaced token is dead


def test_telemetry_is_committed_exactly_once_and_acked_by_seq(catalog: Catalog,
                                                              hub: HubHandle) -> None:
    e = _enrolled(catalog, hub, "pi")
    assert _post(hub, e, ndjson(request_records(1, 50))) == (200, {"acked": 50,
                                                                   "inserted": 50})
    # the answer was lost, the agent posts the same batch again plus more: stored once
    assert _post(hub, e, ndjson(request_records(1, 80))) == (200, {"acked": 80,
                                                                   "inserted": 30})
    # clock skew: the device clock jumped back a day; order and ack follow seq, not time
    skewed = request_records(81, 20, ts=1.7e9 - 86400, step=-1.0)
    assert _post(hub, e, ndjson(skewed)) == (200, {"acked": 100, "inserted": 20})
    rows = _rows(catalog, "pi")
    assert [s for s, _ in rows] == list(range(1, 101))
    assert rows[80][1] < rows[0][1] and rows[99][1] < rows[80][1]
    status = agent_status(catalog, "pi")
    assert status.mode == "hub" and status.telemetry_rows == 100


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"this is not json\n", 400, "not NDJSON"),
    (ndjson([{"seq": "seven", "kind": "request"}]), 400, "not NDJSON"),
    (ndjson([{"seq": 3, "kind": "gossip", "ts": 1.0}]), 422, "unknown kind or miss fields"),
    (ndjson([{"seq": 4, "kind": "request", "ts": 1.0}]), 422, "unknown kind or miss fields"),
    (ndjson(request_records(1, 2) + request_records(2, 1)), 400, "repeats a seq"),
    (ndjson(request_records(0, 2)), 400, "seq >= 1"),
    (b"", 400, "no records"),
    (ndjson(request_records(1, 1000)), 413, "over the 65536 byte limit"),
])
def test_malformed_or_oversized_batch_is_refused_whole(catalog: Catalog, hub: HubHandle,
                                                       body: bytes, status: int,
                                                       reason: str) -> None:
    e = _enrolled(catalog, hub, "pi")
    good = ndjson(request_records(100, 1)) if body else b""  # one bad record spoils all
    got, doc = _post(hub, e, good + body)
    assert got == status and reason in str(doc["error"]), doc
    assert _rows(catalog, "pi") == []
    assert catalog.cursor().execute("SELECT count(*) FROM telemetry_cursor").fetchall() == [
        (0,)]
    assert _post(hub, e, ndjson(request_records(1, 5)))[0] == 200  # the hub carries on


def test_bundle_download_serves_ranges_of_desired_bundles_only(catalog: Catalog,
                                                               hub: HubHandle,
                                                               tmp_path: Path) -> None:
    e = _enrolled(catalog, hub, "pi")
    other = _enrolled(catalog, hub, "other")
    result = deploy(catalog, register_adder(catalog, tmp_path), "pi")
    assert (result.status, result.version) == ("pending", 1)
    poll = hub_call(hub.url, "POST", agent_path("pi", "poll"), e.token, body=b"{}").json()
    [item] = poll["desired"]
    assert (item["model"], item["version"], item["action"], item["status"]) == (
        "adder", 1, "deploy", "pending")
    sha, path = item["bundle"]["sha256"], item["bundle"]["path"]
    whole = hub_call(hub.url, "GET", path, e.token)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    data = whole.content
    tail = hub_call(hub.url, "GET", path, e.token, headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == data[100:]
    assert tail.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    middle = hub_call(hub.url, "GET", path, e.token, headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == data[10:20]
    past = hub_call(hub.url, "GET", path, e.token, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416
    assert hub_call(hub.url, "GET", path.replace("/pi/", "/other/"), other.token
                    ).status_code == 404  # not desired for that agent
    assert hub_call(hub.url, "GET", path[:-64] + "0" * 64, e.token).status_code == 404
    outcome = orjson.dumps({"deployment": result.deployment, "model": "adder",
                            "status": "failed", "version": None, "error": "disk full"})
    assert hub_call(hub.url, "POST", agent_path("pi", "outcome"), e.token,
                    body=outcome).status_code == 200
    [dep] = list_deployments(catalog, agent="pi")
    assert (dep.status, dep.error) == ("failed", "disk full")
    assert sha in repr(catalog.cursor().execute("SELECT bundle FROM hub_desired").fetchall())


def test_twenty_agents_poll_and_post_at_once(catalog: Catalog, hub: HubHandle,
                                             tmp_path: Path) -> None:
    ref = register_adder(catalog, tmp_path)
    agents = [_enrolled(catalog, hub, f"dev{i:02d}") for i in range(20)]
    for e in agents[::2]:
        deploy(catalog, ref, e.agent)
    failures: list[str] = []
    start = threading.Barrier(len(agents))

    def run(e: Enrolment) -> None:
        # the agent's own client, one connection
        transport = HubTransport(hub.url, e.token, tls_pin=e.hub_tls_spki)
        start.wait()
        expected = 1 if int(e.agent[3:]) % 2 == 0 else 0
        try:
            for round_ in range(5):
                status = orjson.dumps({"hub": {"poll_s": 0.1}, "round": round_})
                poll = transport.call("POST", agent_path(e.agent, "poll"), status).json()
                if len(poll["desired"]) != expected:
                    failures.append(f"{e.agent} poll: {poll}")
                ack = transport.call("POST", agent_path(e.agent, "telemetry"),
                                     ndjson(request_records(round_ * 40 + 1, 40)),
                                     "application/x-ndjson").json()
                if ack["acked"] != (round_ + 1) * 40:
                    failures.append(f"{e.agent} post: {ack}")
        except HubRefused as exc:
            failures.append(f"{e.agent}: {exc.message}")
        finally:
            transport.close()

    threads = [threading.Thread(target=run, args=(e,)) for e in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    counts = dict(catalog.cursor().execute(
        "SELECT agent, count(DISTINCT seq) FROM telemetry_request GROUP BY agent").fetchall())
    assert counts == {e.agent: 200 for e in agents}
    assert catalog.cursor().execute("SELECT count(*) FROM telemetry_request").fetchall() == [
        (4000,)]
    wait_until(lambda: all(a.last_seen_at for a in map(
        lambda e: get_agent(catalog, e.agent), agents)), 5, "contacts stored")
    assert hub.app.writer.flushes < 100  # batches that queued together committed together
