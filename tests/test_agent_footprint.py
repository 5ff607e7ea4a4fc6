"""What the serving process loads: only what serving needs (issue 20, RSS).

`onnx` (with its protobuf runtime) and `prometheus_client` cost the agent ~10 MB of
resident memory and are not needed to serve: the graph checks read the protobuf wire
format themselves (edge_agent/contract/onnx_wire.py) and /metrics is written by hand.
sqlite-utils (with click, dateutil, pluggy, tabulate) cost ~5 MB more: the outbox's
transactions and migrations are edge_agent/telemetry/sqlite_db.py, on sqlite3 alone; and
uvicorn's package __init__ (its click CLI) no longer runs in the agent
(edge_agent/contract/uvicorn_package.py).
A real agent, told by PYTHONPROFILEIMPORTTIME to log every import, installs a bundle,
serves, answers /metrics and /v1/status; its log must not show them.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from edge_agent.contract.protocol import generate_signing_key
from tests.support.agents import json_request, make_tabular_bundle, running_agent
from tests.support.hub import wait_until

# sqlite-utils and what it drags in (~5 MB); click came from sqlite-utils and uvicorn's CLI.
KEPT_OUT = ("onnx", "google.protobuf", "prometheus_client", "pandas",
            "sqlite_utils", "click", "dateutil", "pluggy", "tabulate")


def _imported(log: Path) -> set[str]:
    names = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_serving_process_imports_only_what_serving_needs(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    key = generate_signing_key()
    bundle = make_tabular_bundle(tmp_path, key)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    log = tmp_path / "agent.log"
    with running_agent(tmp_path / "agent", trust_key=key, log=log) as agent:
        status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                                   headers=agent.headers(), method="POST")
        assert status == 200, doc
        status, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {
            "records": [{"temp": 20.5, "pressure": 1012.0, "site": "north"}]})
        assert status == 200 and len(doc["predictions"]) == 1, doc
        assert json_request(f"{agent.url}/v1/status", headers=agent.headers())[0] == 200
        import urllib.request

        with urllib.request.urlopen(f"{agent.url}/metrics", context=agent.ssl) as resp:
            assert b"outpost_telemetry_backlog" in resp.read()
    imported = _imported(log)
    # the log is the import log of the serving process: it lists the server and runtime
    assert {"edge_agent.serving.server", "onnxruntime", "uvicorn.server"} <= imported
    loaded = sorted(m for m in imported for top in KEPT_OUT
                    if m == top or m.startswith(top + "."))
    assert loaded == [], f"the serving process imported {loaded}"


# Resident cost of what a restarted agent that serves need not load: cryptography ~9.7 MB,
# numpy.random ~3.4 MB (made at the first capture draw), importlib.metadata with its email
# parser ~2 MB (the version, asked by --version and /v1/status), http.client ~0.5 MB (hub
# mode only: edge_agent/hub/settings.py holds what `serve` reads of it).
KEPT_OUT_AT_RESTART = ("cryptography", "numpy.random", "importlib.metadata", "http.client",
                       "edge_agent.hub.client")


def test_a_restarted_agent_serves_and_signs_without_cryptography(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent restarted with its keys, certificate and a model on disk verifies the
    model's signature, checks its TLS proof, serves, and signs an identity challenge
    through the OpenSSL its ssl module already links (edge_agent/contract/
    openssl_ed25519.py): its import log shows no cryptography, nor the rest of
    KEPT_OUT_AT_RESTART."""
    key = generate_signing_key()
    bundle = make_tabular_bundle(tmp_path, key)
    with running_agent(tmp_path / "agent", trust_key=key) as agent:  # first start: keys made
        status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                                   headers=agent.headers(), method="POST")
        assert status == 200, doc
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    log = tmp_path / "agent.log"
    with running_agent(tmp_path / "agent", trust_key=key, log=log) as agent:
        status, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {
            "records": [{"temp": 20.5, "pressure": 1012.0, "site": "north"}]})
        assert status == 200 and len(doc["predictions"]) == 1, doc
        nonce = "00112233445566778899"
        status, doc = json_request(f"{agent.url}/v1/identity?nonce={nonce}",
                                   headers=agent.headers())
        assert status == 200, doc
    from edge_agent.contract.signing import raw_public_key_from_b64, verify_signature

    assert verify_signature(raw_public_key_from_b64(doc["public_key"]),
                            base64.b64decode(doc["signature"]), bytes.fromhex(nonce))
    imported = _imported(log)
    assert "edge_agent.store.loaded_model" in imported
    loaded = sorted(m for m in imported for top in KEPT_OUT_AT_RESTART
                    if m == top or m.startswith(top + "."))
    assert loaded == [], f"the restarted agent imported {loaded}"


def _wakeups(pid: int) -> dict[str, int]:
    """Voluntary context switches per thread: each is the thread going to sleep again."""
    counts = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                counts[tid] = int(line.split()[1])
    return counts


def _quiet_window(pid: int, span: float, limit: float, most: int) -> dict[str, int]:
    """Wakeups per thread over the first `span`-second window, ending within `limit` s,
    with at most `most` of them; else over the last window seen. The process is only read
    (/proc), never called, so sampling it wakes nothing there."""
    start = time.monotonic()
    samples = [(start, _wakeups(pid))]
    while True:
        time.sleep(0.25)  # the sampling cadence of a measurement, not a wait for a state
        now, counts = time.monotonic(), _wakeups(pid)
        samples.append((now, counts))
        earlier = [c for t, c in samples if now - t >= span]
        if earlier:
            woke = {tid: counts[tid] - earlier[-1].get(tid, 0) for tid in counts
                    if counts[tid] != earlier[-1].get(tid)}
            if sum(woke.values()) <= most or now - start >= limit:
                return woke


def test_an_idle_agent_sleeps(tmp_path: Path) -> None:
    """With no traffic nothing wakes: before issue 20 uvicorn's main loop woke every
    0.1 s, the telemetry writer every 0.25 s and the shadow worker every second (~45
    wakeups in 3 s). The agent here serves a model with baseline histograms (an open
    window) after one request. The last calls leave an aftermath (their connections'
    close, the 1 s header check that then finds no connection, GIL hand-offs with the
    writer: 2-5 wakeups on a quiet machine, 8 seen once under CI load), so the measure is
    a 4 s window once that has settled: a timer of 2 Hz or more wakes 8 times in every
    such window, so no window of at most 4 comes within 20 s and the test fails."""
    key = generate_signing_key()
    bundle = make_tabular_bundle(tmp_path, key)
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                                   headers=agent.headers(), method="POST")
        assert status == 200, doc
        status, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {
            "records": [{"temp": 20.5, "pressure": 1012.0, "site": "north"}]})
        assert status == 200, doc
        wait_until(lambda: json_request(f"{agent.url}/v1/status", headers=agent.headers())[1]
                   ["telemetry"]["last_seq"] >= 2, 10, "the request's records written")
        woke = _quiet_window(agent.proc.pid, span=4.0, limit=20.0, most=4)
    assert sum(woke.values()) <= 4, woke
