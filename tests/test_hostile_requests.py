"""A hostile LAN peer against a real agent process, with no token or with odd requests:
each gets a 4xx, the agent keeps serving, memory stays bounded and real telemetry stays."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.contract.protocol import Ed25519PrivateKey, generate_signing_key
from tests.support.agents import (
    AgentProcess,
    json_request,
    make_identity_bundle,
    make_tabular_bundle,
    read_members,
    resign,
    rezip,
    running_agent,
    ssl_context_for,
)
from tests.support.hostile import raw_exchange, rss_mb, status_of, wait_for

pytestmark = pytest.mark.xdist_group("hostile_requests")

ROW = {"temp": 21.0, "pressure": 1010.0, "site": "north"}


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, key: Ed25519PrivateKey
          ) -> Iterator[AgentProcess]:
    root = tmp_path_factory.mktemp("hostile")
    with running_agent(root / "agent", key, extra_args=("--telemetry-max-mb", "0.05")) as agent:
        for bundle in (make_identity_bundle(root, key), make_tabular_bundle(root, key)):
            status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                                       headers=agent.headers())
            assert status == 200, doc
        yield agent


def _binary_infer(url: str, header: bytes, value: float = 1.0) -> int:
    data = struct.pack("<f", value)
    head = (f"POST /v2/models/adder/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\n"
            f"Content-Length: {len(header) + len(data)}\r\nConnection: close\r\n\r\n").encode()
    return status_of(raw_exchange(url, head + header + data))


def _header(padding: int) -> bytes:
    return (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], '
            b'"parameters": {"binary_data_size": 4}}]' + b" " * padding + b"}")


def test_padded_binary_headers_and_huge_http_headers_do_not_grow_memory(
        agent: AgentProcess) -> None:
    for _ in range(5):  # warm up: caches, allocator arenas
        assert _binary_infer(agent.url, _header(0)) == 200
    before = rss_mb(agent.proc.pid)
    for i in range(24):  # each a distinct, valid 15 MB header: the old cache kept them all
        assert _binary_infer(agent.url, _header(15 * 1024 * 1024 + i)) == 200
    big = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (4 << 20) + b"\r\n\r\n"
    for _ in range(4):
        assert status_of(raw_exchange(agent.url, big)) in (0, 431)
    many = b"GET /v2/health/live HTTP/1.1\r\n" + b"X-A: b\r\n" * 200_000 + b"\r\n"
    assert status_of(raw_exchange(agent.url, many)) in (0, 431)
    grown = rss_mb(agent.proc.pid) - before
    assert grown <= 50, f"agent RSS grew by {grown:.0f} MB"
    assert _binary_infer(agent.url, _header(0), 2.0) == 200


def test_oversized_request_headers_get_431(agent: AgentProcess) -> None:
    big = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (200 << 10) + \
        b"\r\nConnection: close\r\n\r\n"
    response = raw_exchange(agent.url, big)
    assert status_of(response) == 431, response[:200]
    ok = raw_exchange(agent.url, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                      b"a" * 4000 + b"\r\nConnection: close\r\n\r\n")
    assert status_of(ok) == 200


def _telemetry(agent: AgentProcess) -> list[dict[str, object]]:
    status, doc = json_request(f"{agent.url}/v1/telemetry?after=0&limit=10000",
                               headers=agent.headers())
    assert status == 200, doc
    return list(doc["records"])


def _real(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if r.get("kind") == "request" and r.get("model") == "pumps"
            and r.get("status") == 200]


def test_junk_requests_are_counted_not_recorded(agent: AgentProcess) -> None:
    for _ in range(20):
        status, _ = json_request(f"{agent.url}/v1/models/pumps/predict", {"records": [ROW]})
        assert status == 200
    wait_for(lambda: len(_real(_telemetry(agent))) >= 20, 10, "20 real request records")
    for i in range(300):
        status, _ = json_request(f"{agent.url}/v1/models/nope{i}/predict", {"records": [ROW]})
        assert status == 404
        status, _ = json_request(f"{agent.url}/v1/models/pumps/predict", data=b"{not json")
        assert status == 400
    status, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert status == 200
    wait_for(lambda: _rejected(agent) >= 600, 10, "600 rejected requests in /metrics")
    records = _telemetry(agent)
    assert len(_real(records)) >= 20, "junk requests evicted real telemetry"
    assert not [r for r in records if r.get("kind") == "request" and r.get("status") != 200]


def _rejected(agent: AgentProcess) -> float:
    status, _ = json_request(f"{agent.url}/v2/health/live")
    import urllib.request

    with urllib.request.urlopen(f"{agent.url}/metrics", timeout=10,
                                context=ssl_context_for(agent.url)) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("outpost_rejected_requests_total{"))


@pytest.mark.parametrize("row", [
    {"temp": 21.0, "pressure": 1010.0, "site": ["north", "south"]},
    {"temp": [21.0], "pressure": 1010.0, "site": "north"},
    {"temp": 21.0, "pressure": 1010.0, "site": {"a": 1}},
    {"temp": True, "pressure": 1010.0, "site": "north"},
    {"temp": 21.0, "pressure": False, "site": "north"},
])
def test_predict_refuses_lists_and_booleans(agent: AgentProcess, row: dict[str, object]
                                            ) -> None:
    for records in ([row], [row, ROW, ROW], [ROW, row]):
        status, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {"records": records})
        assert status == 400, (records, doc)
        assert "error" in doc


def test_oip_refuses_booleans_as_fp32(agent: AgentProcess) -> None:
    inputs = [{"name": "temp", "datatype": "FP32", "shape": [1, 1], "data": [True]},
              {"name": "pressure", "datatype": "FP32", "shape": [1, 1], "data": [1000.0]},
              {"name": "site", "datatype": "BYTES", "shape": [1, 1], "data": ["north"]}]
    status, doc = json_request(f"{agent.url}/v2/models/pumps/infer", {"inputs": inputs})
    assert status == 400, doc


def test_ack_beyond_the_last_written_seq_is_refused(agent: AgentProcess) -> None:
    status, _ = json_request(f"{agent.url}/v1/models/pumps/predict", {"records": [ROW]})
    assert status == 200
    wait_for(lambda: _telemetry(agent), 10, "some telemetry")
    backlog = len(_telemetry(agent))
    status, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    last = doc["telemetry"]["last_seq"]
    status, doc = json_request(f"{agent.url}/v1/telemetry/ack", {"seq": last + 1000},
                               headers=agent.headers())
    assert status == 400, doc
    assert len(_telemetry(agent)) >= backlog


@pytest.mark.parametrize("version", [2**31, 2**63, 2**70])
def test_huge_manifest_versions_are_refused(agent: AgentProcess, key: Ed25519PrivateKey,
                                            tmp_path: Path, version: int) -> None:
    members = read_members(make_identity_bundle(tmp_path, key, version=1, model="huge"))
    members["manifest.json"] = members["manifest.json"].replace(
        b'"version": 1', f'"version": {version}'.encode())
    bundle = rezip(tmp_path / f"huge-{version}.outpost", resign(members, key))
    status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                               headers=agent.headers())
    assert status == 422, doc
    assert "version" in doc["error"]
    status, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert status == 200, doc
    assert "huge" not in [m["name"] for m in doc["models"]]


def test_the_largest_version_installs_and_status_still_answers(
        agent: AgentProcess, key: Ed25519PrivateKey, tmp_path: Path) -> None:
    bundle = make_identity_bundle(tmp_path, key, version=2**31 - 1, model="maxed")
    status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                               headers=agent.headers())
    assert status == 200, doc
    status, _ = json_request(f"{agent.url}/v1/models/maxed/predict", {"records": [{"x": 1.0}]})
    assert status == 200
    time.sleep(0)  # telemetry for it is flushed with the next batch
    status, doc = json_request(f"{agent.url}/v1/status", headers=agent.headers())
    assert status == 200, doc
