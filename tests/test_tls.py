"""Transport security against real agents: pinned certificate keys (a man in the middle,
a rotated certificate, an expired one), plain HTTP to a TLS port, a flood of handshakes
that never finish, and secrets at rest."""
from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.catalog import Catalog
from core.fleet.agents import add_agent
from core.fleet.dispatch import agent_status
from core.fleet.records import get_agent
from core.keys import signing_key
from edge_agent.contract.tls import create_cert, short, spki_sha256_of_file
from tests.conftest import run_cli
from tests.support.agents import running_agent, verify_for
from tests.support.fleet import cutting_proxy, open_catalog, start_agent

X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}


def test_a_man_in_the_middle_gets_refused_and_sees_no_token(outpost_home: Path,
                                                            tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    agent = start_agent(tmp_path / "a", signing_key(catalog))
    try:
        add_agent(catalog, "edge", agent.url, agent.token)
        pinned = get_agent(catalog, "edge").tls_spki
        assert pinned == spki_sha256_of_file(tmp_path / "a" / "tls.crt")
        mallory = create_cert(tmp_path / "mallory", "mallory")
        with cutting_proxy(agent.port, tls=mallory) as mitm:
            # DNS or ARP spoofing: the agent's name now leads to the proxy
            with catalog.transaction() as cur:
                cur.execute("UPDATE agent SET url = ? WHERE name = 'edge'", [mitm.url])
            catalog.close()
            result = run_cli(outpost_home, "agent", "status", "edge", "--json")
            error = json.loads(result.stdout)["error"]
            assert f"presents TLS certificate key {short(mallory.spki)}, not the pinned " \
                   f"{short(pinned)}" in error
            # it was asked to prove a rotated certificate (no token), and could not
            assert b"GET /v1/identity" in mitm.received
            assert agent.token.encode() not in mitm.received
            assert b"authorization" not in mitm.received.lower()
            listed = run_cli(outpost_home, "agent", "list", "--json", check=True).json()
            assert listed["agents"][0]["pin_failed_at"] is not None
            # enrolling through the proxy: its key is not vouched for by the identity key
            added = run_cli(outpost_home, "agent", "add", "again", mitm.url, "--token",
                            agent.token)
            assert added.returncode == 1 and added.stderr.count("\n") == 1
            assert "does not vouch for the TLS certificate key" in added.stderr
            assert agent.token.encode() not in mitm.received
            assert b"authorization" not in mitm.received.lower()
        catalog = open_catalog(outpost_home)
        assert get_agent(catalog, "edge").tls_spki == pinned
    finally:
        catalog.close()
        agent.stop()


def test_a_rotated_certificate_is_re_pinned_on_the_identity_keys_word(catalog: Catalog,
                                                                      tmp_path: Path) -> None:
    folder = tmp_path / "a"
    agent = start_agent(folder, signing_key(catalog))
    add_agent(catalog, "edge", agent.url, agent.token)
    old = get_agent(catalog, "edge").tls_spki
    agent.stop()
    rotated = subprocess.run([sys.executable, "-m", "edge_agent", "rotate-cert", "--dir",
                              str(folder)], capture_output=True, text=True, check=True)
    new = spki_sha256_of_file(folder / "tls.crt")
    assert new != old and short(new) in rotated.stdout
    agent = start_agent(folder, signing_key(catalog), port=agent.port, token=agent.token)
    try:
        status = agent_status(catalog, "edge")
        assert status.online, status.error
        record = get_agent(catalog, "edge")
        assert record.tls_spki == new and record.pin_failed_at is None
    finally:
        agent.stop()


def test_an_expired_certificate_stops_neither_inference_nor_the_desktop(
        catalog: Catalog, tmp_path: Path) -> None:
    folder = tmp_path / "a"
    expired = create_cert(folder, "old-clock", days=1,
                          not_before=dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
    agent = start_agent(folder, signing_key(catalog))
    try:
        assert spki_sha256_of_file(folder / "tls.crt") == expired.spki  # served as it is
        add_agent(catalog, "edge", agent.url, agent.token)
        assert get_agent(catalog, "edge").tls_spki == expired.spki
        assert agent_status(catalog, "edge").online
        # an ordinary client that checks dates refuses it; the pinned desktop does not
        dated = ssl.create_default_context(cafile=str(folder / "tls.crt"))
        with pytest.raises(httpx.ConnectError, match="expired"):
            httpx.get(f"{agent.url}/v2/health/live", verify=dated)
        assert httpx.post(f"{agent.url}/v2/models/none/infer", json=X,
                          verify=verify_for(agent.url)).status_code == 404
    finally:
        agent.stop()


def test_plain_http_to_the_tls_port_is_refused_in_one_line(outpost_home: Path,
                                                           tmp_path: Path) -> None:
    with running_agent(tmp_path / "a") as agent:
        with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        assert not reply.startswith(b"HTTP/1.1 200")
        plain = agent.url.replace("https://", "http://")
        result = run_cli(outpost_home, "agent", "add", "edge", plain, "--token", agent.token)
        assert result.returncode == 1 and result.stderr.count("\n") == 1
        assert "hung up on plain HTTP" in result.stderr and "https://" in result.stderr
        answer = httpx.post(f"{agent.url}/v2/models/none/infer", json=X, verify=agent.ssl)
        assert answer.status_code == 404  # still serving TLS


def test_a_flood_of_unfinished_handshakes_does_not_stop_serving(tmp_path: Path) -> None:
    with running_agent(tmp_path / "a") as agent:
        hanging = []
        try:
            for i in range(200):
                sock = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
                if i % 2:  # half send the start of a ClientHello, half send nothing
                    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                hanging.append(sock)
            with httpx.Client(base_url=agent.url, verify=agent.ssl, timeout=10) as http:
                for _ in range(20):
                    assert http.get("/v2/health/live").status_code == 200
        finally:
            for sock in hanging:
                sock.close()
        assert agent.proc.poll() is None


def test_secrets_at_rest_are_owner_only(outpost_home: Path, tmp_path: Path) -> None:
    outpost_home.mkdir(mode=0o755)
    catalog = open_catalog(outpost_home)
    agent = start_agent(tmp_path / "a", signing_key(catalog))
    try:
        add_agent(catalog, "edge", agent.url, agent.token)
    finally:
        agent.stop()
    # the token is nowhere in the catalog any SQL can read ...
    assert catalog.cursor().execute("SELECT token FROM agent").fetchall() == [("",)]
    # ... but in a file only the owner can read
    secrets = json.loads((outpost_home / "secrets.json").read_text())
    assert secrets["agent_tokens"] == {"edge": agent.token}
    catalog.close()
    for path in (outpost_home / "catalog.duckdb", outpost_home / "secrets.json",
                 outpost_home / "keys" / "signing.key", tmp_path / "a" / "tls.key",
                 tmp_path / "a" / "identity.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(outpost_home.stat().st_mode) == 0o700


def test_an_older_home_is_locked_down_and_its_tokens_moved_out(outpost_home: Path) -> None:
    catalog = open_catalog(outpost_home)
    catalog.con.execute(  # as Outpost before this change left it
        "INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index, "
        "key_counter) VALUES ('old', 'http://127.0.0.1:9', 'old-token-in-clear', 'id', "
        "'k', 'push', 0, 0)")
    catalog.close()
    (outpost_home / "catalog.duckdb").chmod(0o644)
    outpost_home.chmod(0o755)
    catalog = open_catalog(outpost_home)
    try:
        assert catalog.cursor().execute("SELECT token FROM agent").fetchall() == [("",)]
        assert get_agent(catalog, "old").token == "old-token-in-clear"
        assert stat.S_IMODE((outpost_home / "catalog.duckdb").stat().st_mode) == 0o600
        assert stat.S_IMODE(outpost_home.stat().st_mode) == 0o700
    finally:
        catalog.close()


def test_identity_route_proves_the_certificate_without_a_token(tmp_path: Path) -> None:
    with running_agent(tmp_path / "a") as agent:
        answer = httpx.get(f"{agent.url}/v1/identity", params={"nonce": "00" * 16},
                           verify=agent.ssl).json()
        assert answer["tls_spki_sha256"] == spki_sha256_of_file(agent.cafile)
        assert httpx.get(f"{agent.url}/v1/status", verify=agent.ssl).status_code == 401


def test_the_pin_read_from_the_der_is_the_key_cryptography_sees(tmp_path: Path) -> None:
    """The pin (SHA-256 of SubjectPublicKeyInfo) is read from the certificate's DER by
    hand, so that neither a serving agent nor a pinning client loads cryptography; it must
    be the hash of the key as cryptography re-encodes it. A file that is no certificate
    is one TLSFileError."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from edge_agent.contract.tls import TLSFileError, spki_sha256_of_der

    for name in ("outpost-agent-1234abcd", "h" * 64):  # ~400-byte certs: long-form DER
        made = create_cert(tmp_path / name[:20], name)
        cert = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        assert made.spki == spki_sha256_of_file(made.cert_file) == \
            spki_sha256_of_der(cert.public_bytes(serialization.Encoding.DER)) == \
            hashlib.sha256(spki).hexdigest()
    (tmp_path / "bad.crt").write_text("-----BEGIN CERTIFICATE-----\nMAA=\n"
                                      "-----END CERTIFICATE-----\n")
    (tmp_path / "empty.crt").write_text("")
    for bad in ("bad.crt", "empty.crt", "missing.crt"):
        with pytest.raises(TLSFileError, match="is unreadable"):
            spki_sha256_of_file(tmp_path / bad)
