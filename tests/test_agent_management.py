"""Management over HTTP against a live agent: upload, activate, rollback, delete, status,
telemetry cursor and ack, identity proof, key rotation, metrics."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.contract.protocol import (
    Ed25519PrivateKey,
    generate_signing_key,
    make_rotation_record,
    public_key_from_b64,
    read_telemetry_export,
    verify_signature,
    write_public_key,
)
from tests.support.agents import (
    AgentProcess,
    free_port,
    json_request,
    make_identity_bundle,
    read_members,
    rezip,
    running_agent,
    trust_cert,
    wait_http_ok,
)

pytestmark = pytest.mark.xdist_group("agent_management")
X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture
def agent(tmp_path: Path, key: Ed25519PrivateKey) -> Iterator[AgentProcess]:
    with running_agent(tmp_path / "agent", trust_key=key,
                       extra_args=("--max-bundle-mb", "0.05")) as proc:
        yield proc


def call(agent: AgentProcess, method: str, path: str, body: Any = None,
         data: bytes | None = None) -> tuple[int, Any]:
    return json_request(agent.url + path, body, agent.headers(), method=method, data=data)


def upload(agent: AgentProcess, bundle: Path, query: str = "") -> tuple[int, Any]:
    return call(agent, "POST", f"/v1/bundles{query}", data=bundle.read_bytes())


def active(agent: AgentProcess, model: str = "adder") -> int | None:
    _, doc = call(agent, "GET", "/v1/status")
    return next((m["active"] for m in doc["models"] if m["name"] == model), None)


def served_version(agent: AgentProcess) -> str:
    status, doc = json_request(f"{agent.url}/v2/models/adder/infer", X)
    assert status == 200, doc
    return str(doc["model_version"])


def test_versions_lifecycle(agent: AgentProcess, key: Ed25519PrivateKey, tmp_path: Path
                            ) -> None:
    v1, v2, v3 = (make_identity_bundle(tmp_path, key, version=v) for v in (1, 2, 3))
    assert upload(agent, v1) == (200, {"model": "adder", "version": 1, "status": "active",
                                       "canary": "passed"})
    status, doc = upload(agent, v2, "?activate=false")
    assert status == 200 and doc["status"] == "installed" and served_version(agent) == "1"
    assert call(agent, "POST", "/v1/models/adder/activate", {"version": 2})[0] == 200
    assert served_version(agent) == "2"
    assert upload(agent, v3)[0] == 200 and served_version(agent) == "3"
    assert call(agent, "POST", "/v1/models/adder/rollback") == (200, {"model": "adder",
                                                                      "active": 2})
    assert served_version(agent) == "2"
    assert call(agent, "DELETE", "/v1/models/adder/versions/2")[0] == 409
    assert call(agent, "DELETE", "/v1/models/adder/versions/3") == (
        200, {"model": "adder", "deleted": 3})
    assert call(agent, "DELETE", "/v1/models/adder/versions/3")[0] == 404
    assert call(agent, "POST", "/v1/models/adder/activate", {"version": 9})[0] == 404
    assert call(agent, "POST", "/v1/models/adder/activate", {"v": 1})[0] == 400
    assert call(agent, "POST", "/v1/models/nope/rollback")[0] == 404
    assert served_version(agent) == "2"


def test_refused_uploads_leave_the_active_version(agent: AgentProcess, key: Ed25519PrivateKey,
                                                  tmp_path: Path) -> None:
    for sub in ("old", "stranger", "tampered"):
        (tmp_path / sub).mkdir()
    assert upload(agent, make_identity_bundle(tmp_path, key, version=5))[0] == 200
    old = make_identity_bundle(tmp_path / "old", key, version=4)
    status, doc = upload(agent, old)
    assert status == 409 and "older" in doc["error"]
    stranger = make_identity_bundle(tmp_path / "stranger", generate_signing_key(), version=6)
    assert upload(agent, stranger)[0] == 422
    members = read_members(make_identity_bundle(tmp_path / "tampered", key, version=7))
    members["model.onnx"] = members["model.onnx"] + b"\0"
    assert upload(agent, rezip(tmp_path / "tampered.outpost", members))[0] == 422
    assert call(agent, "POST", "/v1/bundles", data=b"not a zip")[0] == 422
    assert call(agent, "POST", "/v1/bundles", data=b"\0" * 60_000)[0] == 413
    assert active(agent) == 5 and served_version(agent) == "5"
    status, doc = upload(agent, old, "?rollback=true")
    assert status == 200 and served_version(agent) == "4"


def test_status_identity_and_metrics(agent: AgentProcess, key: Ed25519PrivateKey,
                                     tmp_path: Path) -> None:
    upload(agent, make_identity_bundle(tmp_path, key))
    for _ in range(3):
        served_version(agent)
    status, doc = call(agent, "GET", "/v1/status")
    assert status == 200
    for field in ("agent_id", "public_key", "version", "python", "onnxruntime", "opset_max",
                  "uptime_s", "disk_free_bytes", "telemetry", "models"):
        assert field in doc, field
    assert doc["models"][0]["state"] == "ready" and doc["opset_max"][""] >= 17
    nonce = "00ff" * 8
    status, ident = call(agent, "GET", f"/v1/identity?nonce={nonce}")
    assert status == 200 and ident["agent_id"] == doc["agent_id"]
    assert verify_signature(public_key_from_b64(ident["public_key"]),
                            base64.b64decode(ident["signature"]), bytes.fromhex(nonce))
    assert call(agent, "GET", "/v1/identity?nonce=zz")[0] == 400
    # a long "nonce" could be a whole telemetry export to get signed: refused
    assert call(agent, "GET", f"/v1/identity?nonce={'ab' * 65}")[0] == 400
    deadline = time.monotonic() + 5
    text = ""
    while 'status="200"} 3.0' not in text and time.monotonic() < deadline:
        text = urllib.request.urlopen(f"{agent.url}/metrics", context=agent.ssl).read().decode()
        time.sleep(0.1)
    assert 'outpost_requests_total{model="adder",status="200",version="1"} 3.0' in text
    assert "outpost_request_latency_seconds_bucket" in text
    assert "outpost_telemetry_backlog" in text and "outpost_telemetry_evicted_total 0.0" in text


def test_telemetry_cursor_and_ack(agent: AgentProcess, key: Ed25519PrivateKey,
                                  tmp_path: Path) -> None:
    upload(agent, make_identity_bundle(tmp_path, key))
    for _ in range(5):
        served_version(agent)
    deadline = time.monotonic() + 5
    doc: dict[str, Any] = {}
    while doc.get("last_seq", 0) < 5 and time.monotonic() < deadline:
        _, doc = call(agent, "GET", "/v1/telemetry?after=0&limit=100")
        time.sleep(0.1)
    seqs = [r["seq"] for r in doc["records"]]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 5
    _, page = call(agent, "GET", "/v1/telemetry?after=2&limit=2")
    assert [r["seq"] for r in page["records"]] == [3, 4]
    assert call(agent, "POST", "/v1/telemetry/ack", {"seq": 4}) == (
        200, {"acked": 4, "deleted": 4})
    _, rest = call(agent, "GET", "/v1/telemetry?after=0")
    assert rest["records"][0]["seq"] == 5
    assert call(agent, "GET", "/v1/telemetry?after=x")[0] == 400
    assert call(agent, "POST", "/v1/telemetry/ack", data=b"{")[0] == 400


def test_key_rotation(agent: AgentProcess, key: Ed25519PrivateKey, tmp_path: Path) -> None:
    new = generate_signing_key()
    assert call(agent, "GET", "/v1/status")[1]["key_rotation"] == 0
    assert call(agent, "POST", "/v1/keys/rotate", data=make_rotation_record(key, new, 2))[0] == 422
    assert call(agent, "POST", "/v1/keys/rotate",
                data=make_rotation_record(key, new, 1)) == (200, {"rotated": True})
    assert call(agent, "GET", "/v1/status")[1]["key_rotation"] == 1
    (tmp_path / "new").mkdir()
    assert upload(agent, make_identity_bundle(tmp_path / "new", new, version=1))[0] == 200
    assert upload(agent, make_identity_bundle(tmp_path, key, version=2))[0] == 422


# --- the command line ------------------------------------------------------------------

def agent_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                          text=True, timeout=120)


def test_every_command_has_help_and_version() -> None:
    out = agent_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("outpost-agent ")
    for command in ("serve", "install", "export-telemetry", "init"):
        out = agent_cli(command, "--help")
        assert out.returncode == 0 and "--dir" in out.stdout, command


def test_init_install_serve_with_inbox_and_export(tmp_path: Path, key: Ed25519PrivateKey
                                                  ) -> None:
    agent_dir, inbox = tmp_path / "agent", tmp_path / "inbox"
    inbox.mkdir()
    assert agent_cli("init", "--dir", str(agent_dir)).returncode == 0
    token = (agent_dir / "token").read_text().strip()
    assert len(token) >= 32 and (agent_dir / "token").stat().st_mode & 0o077 == 0
    assert json.loads((agent_dir / "config.json").read_text())["host"] == "127.0.0.1"
    pub = write_public_key(key.public_key(), tmp_path / "k.pub")
    out = agent_cli("install", str(make_identity_bundle(tmp_path, key)), "--dir",
                    str(agent_dir), "--trust-key", str(pub))
    assert out.returncode == 0 and "active" in out.stdout
    bad = agent_cli("install", str(tmp_path / "missing.outpost"), "--dir", str(agent_dir))
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and bad.stderr.count(
        "\n") == 1
    port = free_port()
    config = json.loads((agent_dir / "config.json").read_text())
    (agent_dir / "config.json").write_text(json.dumps({**config, "port": port}))
    # no --port and no --token-file: both come from what init wrote
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "serve", "--dir",
                             str(agent_dir), "--inbox", str(inbox)])
    url = f"https://127.0.0.1:{port}"
    trust_cert(url, agent_dir / "tls.crt")
    try:
        wait_http_ok(f"{url}/v2/models/adder/ready", 20, proc)
        headers = {"Authorization": f"Bearer {token}"}  # DIR/token, written by init
        assert json_request(f"{url}/v1/status", headers=headers)[0] == 200
        (tmp_path / "v2").mkdir()
        bundle = make_identity_bundle(tmp_path / "v2", key, version=2)
        (inbox / bundle.name).write_bytes(bundle.read_bytes())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, doc = json_request(f"{url}/v2/models/adder/infer", X)
            if doc.get("model_version") == "2":
                break
            time.sleep(0.2)
        assert doc["model_version"] == "2"
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    out_file = tmp_path / "t.ndjson"
    assert agent_cli("export-telemetry", "--dir", str(agent_dir), "--out",
                     str(out_file)).returncode == 0
    header, records = read_telemetry_export(out_file)
    assert header.agent_id == json.loads((agent_dir / "agent.json").read_text())["agent_id"]
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert any(r.kind == "request" for r in records)


def test_a_served_folder_refuses_a_second_writer(tmp_path: Path, key: Ed25519PrivateKey
                                                 ) -> None:
    """`install` (or a second `serve`) on the folder of a running agent used to number
    outbox records the agent was about to use: its every later telemetry write failed with
    "UNIQUE constraint failed: records.seq" and it served on with telemetry stopped."""
    pub = write_public_key(key.public_key(), tmp_path / "k.pub")
    bundle = make_identity_bundle(tmp_path, key, version=2)
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        refused = agent_cli("install", str(bundle), "--dir", str(agent.dir), "--trust-key",
                            str(pub))
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert f"in use by outpost-agent serve (pid {agent.proc.pid})" in refused.stderr
        assert "--inbox" in refused.stderr
        second = agent_cli("serve", "--dir", str(agent.dir), "--port", str(free_port()))
        assert second.returncode == 1 and "already serves this folder" in second.stderr
        assert second.stderr.count("\n") == 1
        # The agent serves on and takes the bundle the way a running agent does.
        assert upload(agent, bundle)[0] == 200
        assert call(agent, "POST", "/v2/models/adder/infer", X)[0] == 200
    (tmp_path / "v3").mkdir()
    later = make_identity_bundle(tmp_path / "v3", key, version=3)
    ok = agent_cli("install", str(later), "--dir", str(agent.dir), "--trust-key", str(pub))
    assert ok.returncode == 0 and "adder version 3: active" in ok.stdout, ok.stderr
