"""A real hub-mode agent against a hub that is not the desktop's: its poll answers are
unsigned, signed by an unknown key, or an old signed answer replayed. The agent obeys
none of them (no bundle is even fetched); a fresh answer signed by the desktop key is
obeyed, which shows the harness can see an install happen."""
from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.contract.hub_protocol import ANSWER_SIGNATURE, Enrolment, answer_message
from edge_agent.contract.protocol import generate_signing_key, key_fingerprint, public_key_b64
from edge_agent.contract.tls import create_cert, server_context, short
from tests.support.agents import free_port, make_identity_bundle
from tests.support.hub import HubAgent, start_hub_agent, wait_until

Answer = Callable[[int, str], tuple[bytes, str | None]]  # (poll number, nonce) -> reply


@dataclass
class FakeHub:
    """A TLS hub on loopback that answers polls with whatever `answer` makes."""

    answer: Answer
    bundle: bytes
    polls: list[str] = field(default_factory=list)  # the nonce of each poll
    bundle_fetches: int = 0
    server: ThreadingHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, signature: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if signature is not None:
                    self.send_header(ANSWER_SIGNATURE, signature)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/poll"):
                    hub.polls.append(doc["hub_nonce"])
                    self._reply(200, *hub.answer(len(hub.polls), doc["hub_nonce"]))
                elif self.path.endswith("/telemetry"):
                    self._reply(200, b'{"acked": 0, "inserted": 0}')
                else:
                    self._reply(200, b'{"agent": "gate"}')

            def do_GET(self) -> None:  # noqa: N802
                hub.bundle_fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(hub.bundle)))
                self.end_headers()
                self.wfile.write(hub.bundle)

        return Handler


def _desired(nonce: str, sha: str) -> bytes:
    return json.dumps({"agent": "gate", "nonce": nonce, "rotations": [], "desired": [
        {"model": "adder", "version": 1, "action": "deploy", "deployment": 1,
         "bundle": {"sha256": sha, "path": f"/hub/v1/agents/gate/bundles/{sha}"},
         "allow_downgrade": True, "status": "pending"}]}).encode()


def _sign(key: Ed25519PrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(answer_message(body))).decode()


@pytest.fixture
def desktop_key() -> Ed25519PrivateKey:
    return generate_signing_key()


@contextlib.contextmanager
def agent_of(tmp_path: Path, desktop_key: Ed25519PrivateKey, answer: Answer,
             pin: str | None = None) -> Iterator[tuple[FakeHub, HubAgent]]:
    """The fake hub on TLS, an enrolment pinning its certificate and trusting
    `desktop_key`, and a real agent started with it."""
    bundle = make_identity_bundle(tmp_path, desktop_key).read_bytes()
    hub = FakeHub(answer, bundle)
    cert = create_cert(tmp_path / "hub-tls", "fake-hub")
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub.handler())
    server.socket = server_context(cert).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    enrolment = Enrolment("gate", url, "t" * 43, public_key_b64(desktop_key),
                          key_fingerprint(desktop_key), "2026-01-01T00:00:00+00:00",
                          pin or cert.spki)
    enrol = tmp_path / "gate.enrol"
    enrol.write_bytes(enrolment.to_json_bytes())
    agent = start_hub_agent(tmp_path / "gate", "gate", enrol=enrol, poll_s=0.2)
    try:
        yield hub, agent
    finally:
        agent.stop()
        server.shutdown()
        server.server_close()


def _sha(tmp_path: Path, key: Ed25519PrivateKey) -> str:
    import hashlib

    tmp_path.mkdir(exist_ok=True)
    return hashlib.sha256(make_identity_bundle(tmp_path, key).read_bytes()).hexdigest()


def _refused(agent: HubAgent, hub: FakeHub, reason: str) -> None:
    wait_until(lambda: len(hub.polls) >= 4, 30, "four polls")
    log = agent.log_text()
    assert f"hub answer refused, nothing done: {reason}" in log, log
    assert hub.bundle_fetches == 0
    assert not (agent.dir / "models" / "adder").exists()


def test_a_fresh_answer_signed_by_the_desktop_key_is_obeyed(
        tmp_path: Path, desktop_key: Ed25519PrivateKey) -> None:
    sha = _sha(tmp_path / "b", desktop_key)

    def answer(_n: int, nonce: str) -> tuple[bytes, str | None]:
        body = _desired(nonce, sha)
        return body, _sign(desktop_key, body)

    with agent_of(tmp_path, desktop_key, answer) as (hub, agent):
        wait_until(lambda: "installed adder version 1" in agent.log_text(), 30, "install")
        assert hub.bundle_fetches == 1


def test_an_unsigned_answer_is_refused(tmp_path: Path,
                                       desktop_key: Ed25519PrivateKey) -> None:
    sha = _sha(tmp_path / "b", desktop_key)
    with agent_of(tmp_path, desktop_key,
                  lambda _n, nonce: (_desired(nonce, sha), None)) as (hub, agent):
        _refused(agent, hub, "it is not signed")


def test_an_answer_signed_by_an_unknown_key_is_refused(
        tmp_path: Path, desktop_key: Ed25519PrivateKey) -> None:
    sha = _sha(tmp_path / "b", desktop_key)
    mallory = generate_signing_key()

    def answer(_n: int, nonce: str) -> tuple[bytes, str | None]:
        body = _desired(nonce, sha)
        return body, _sign(mallory, body)

    with agent_of(tmp_path, desktop_key, answer) as (hub, agent):
        _refused(agent, hub, "it is signed by a key this agent does not trust")


def test_a_replayed_signed_answer_is_refused(tmp_path: Path,
                                            desktop_key: Ed25519PrivateKey) -> None:
    """An answer the desktop really signed, for an earlier poll, captured and played
    back to later polls (its downgrade permission included)."""
    sha = _sha(tmp_path / "b", desktop_key)
    captured = _desired("00" * 16, sha)
    signature = _sign(desktop_key, captured)
    with agent_of(tmp_path, desktop_key,
                  lambda _n, _nonce: (captured, signature)) as (hub, agent):
        _refused(agent, hub, "it answers another poll (a replayed answer?)")


def test_a_hub_with_another_certificate_gets_no_request(
        tmp_path: Path, desktop_key: Ed25519PrivateKey) -> None:
    """The enrolment pinned the real hub's certificate key; a spoofed hub at that address
    presents another: the agent hangs up after the handshake, before sending its token."""
    real = create_cert(tmp_path / "real-hub", "real-hub")
    with agent_of(tmp_path, desktop_key, lambda _n, _nonce: (b"{}", None),
                  pin=real.spki) as (hub, agent):
        wait_until(lambda: "is not the pinned" in agent.log_text(), 30, "pin refusal")
        assert f"not the pinned {short(real.spki)} (nothing was sent)" in agent.log_text()
        assert hub.polls == [] and hub.bundle_fetches == 0


def test_an_https_hub_without_a_pinned_key_is_refused_at_start(
        tmp_path: Path, desktop_key: Ed25519PrivateKey) -> None:
    plain = Enrolment("gate", "http://127.0.0.1:9", "t" * 43, public_key_b64(desktop_key),
                      key_fingerprint(desktop_key), "2026-01-01T00:00:00+00:00")
    enrol = tmp_path / "plain.enrol"
    enrol.write_bytes(plain.to_json_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "serve", "--dir", str(tmp_path / "gate"),
         "--port", str(free_port()), "--enroll", str(enrol), "--hub", "https://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "pins no hub certificate key" in result.stderr
