"""Slowloris and connection exhaustion against real agent and hub processes: idle and
half-sent connections, TLS handshakes included, never lock out new clients (management
included), headers (and handshakes) that do not arrive in time are cut off, and the file
limit is never reached."""

from __future__ import annotations

import configparser
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from edge_agent.contract.hub_protocol import agent_path
from edge_agent.contract.protocol import generate_signing_key
from tests.conftest import REPO
from tests.support.agents import AgentProcess, json_request, running_agent, verify_for
from tests.support.hostile import (
    address,
    client_hello,
    open_socket,
    read_response,
    status_of,
)
from tests.support.hub import start_hub_process

pytestmark = pytest.mark.xdist_group("hostile_connections")

FILES = 128


@contextmanager
def idle_sockets(url: str, n: int) -> Iterator[list[socket.socket]]:
    """n connections that never finish a request: half send nothing, half part of a header."""
    with ExitStack() as stack:
        socks = []
        for i in range(n):
            try:
                sock = stack.enter_context(open_socket(url, timeout=5))
                if i % 2:
                    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
            except (ConnectionError, ssl.SSLError):
                continue  # over the cap, the server sheds connections (a TLS handshake too)
            socks.append(sock)
        # the attack is real: far more idle connections held than the cap leaves free
        assert len(socks) >= n // 2, f"only {len(socks)} of {n} idle connections opened"
        yield socks


@contextmanager
def handshaking_sockets(url: str, n: int) -> Iterator[list[socket.socket]]:
    """n TCP connections to a TLS server that never finish a handshake: half send nothing,
    half the first half of a ClientHello (each one holds a file on the server)."""
    hello = client_hello(url)
    with ExitStack() as stack:
        socks = []
        for i in range(n):
            try:
                sock = stack.enter_context(socket.create_connection(address(url), timeout=5))
                if i % 2:
                    sock.sendall(hello[:len(hello) // 2])
            except OSError:
                continue  # over the cap, the server sheds the oldest handshakes
            socks.append(sock)
        assert len(socks) >= n // 2, f"only {len(socks)} of {n} connections opened"
        yield socks


def _answers_quickly(url: str, headers: dict[str, str] | None = None,
                     method: str = "GET") -> int:
    t0 = time.monotonic()
    response = httpx.request(method, url, headers=headers, timeout=5, verify=verify_for(url))
    assert time.monotonic() - t0 < 3, "a new client waited behind idle connections"
    return response.status_code


def test_idle_connections_beyond_the_file_limit_do_not_lock_out_clients(tmp_path: Path
                                                                         ) -> None:
    with running_agent(tmp_path / "agent", generate_signing_key(), max_files=FILES) as agent:
        with idle_sockets(agent.url, FILES + 2):
            for _ in range(3):
                assert _answers_quickly(f"{agent.url}/v2/health/live") == 200
                assert _answers_quickly(f"{agent.url}/v1/status", agent.headers()) == 200
        assert json_request(f"{agent.url}/v2/health/ready")[0] == 200


def test_a_tls_handshake_flood_does_not_lock_out_clients(tmp_path: Path) -> None:
    with running_agent(tmp_path / "agent", generate_signing_key(), max_files=FILES) as agent:
        with handshaking_sockets(agent.url, FILES * 2 + 44):
            for _ in range(3):
                assert _answers_quickly(f"{agent.url}/v2/health/live") == 200
                assert _answers_quickly(f"{agent.url}/v1/status", agent.headers()) == 200
            with handshaking_sockets(agent.url, FILES // 2):  # still there as it stops
                agent.proc.terminate()
                assert agent.proc.wait(20) == 0


def _cut_off(sock: socket.socket, trickle: bool, within: float) -> bytes:
    """Trickle header lines (or stay silent) until the server closes; what it answered."""
    sock.settimeout(0.3)
    deadline = time.monotonic() + within
    if trickle:
        sock.sendall(b"POST /v1/models/x/predict HTTP/1.1\r\nHost: x\r\n")
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(b"X-Slow: 1\r\n")
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b"(reset)"
        if not data:
            return b"(closed)"
        sock.settimeout(5)
        return data + read_response(sock)
    raise AssertionError(f"connection still open after {within}s")


@pytest.fixture(scope="module")
def slow_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    with running_agent(tmp_path_factory.mktemp("slow") / "agent", generate_signing_key(),
                       extra_args=("--header-timeout-s", "1")) as agent:
        yield agent


@pytest.mark.parametrize("trickle", [True, False])
def test_headers_that_do_not_arrive_in_time_are_cut_off(slow_agent: AgentProcess,
                                                         trickle: bool) -> None:
    with open_socket(slow_agent.url) as sock:
        answer = _cut_off(sock, trickle, within=6)
    assert answer in (b"(closed)", b"(reset)") or status_of(answer) == 408, answer[:200]
    assert json_request(f"{slow_agent.url}/v2/health/live")[0] == 200


@pytest.mark.parametrize("half_hello", [True, False])
def test_a_tls_handshake_that_does_not_end_in_time_is_cut_off(slow_agent: AgentProcess,
                                                               half_hello: bool) -> None:
    with socket.create_connection(address(slow_agent.url), timeout=10) as sock:
        if half_hello:
            hello = client_hello(slow_agent.url)
            sock.sendall(hello[:len(hello) // 2])
        assert _cut_off(sock, False, within=6) in (b"(closed)", b"(reset)")
    assert json_request(f"{slow_agent.url}/v2/health/live")[0] == 200


def test_a_slow_client_is_not_cut_off_once_its_headers_are_in(slow_agent: AgentProcess
                                                               ) -> None:
    with open_socket(slow_agent.url) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_response(sock)) == 200
        time.sleep(0)  # kept alive: the next request is timed from its own first byte
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_response(sock)) == 200


def test_hub_survives_idle_connections_handshake_floods_and_slowloris(outpost_home: Path) -> None:
    hub = start_hub_process(outpost_home, extra_args=("--header-timeout-s", "1"),
                            max_files=FILES * 2)
    try:
        with idle_sockets(hub.url, FILES * 2 + 2):
            for _ in range(3):
                assert _answers_quickly(f"{hub.url}/hub/v1/health") == 200
        with handshaking_sockets(hub.url, FILES * 4 + 44):
            for _ in range(3):
                assert _answers_quickly(f"{hub.url}/hub/v1/health") == 200
                # an agent's authenticated route: the app itself answers, in time
                assert _answers_quickly(hub.url + agent_path("pi", "enroll"),
                                        {"Authorization": "Bearer not-enrolled"}, "POST") == 401
        with open_socket(hub.url) as sock:
            answer = _cut_off(sock, True, within=6)
        assert answer in (b"(closed)", b"(reset)") or status_of(answer) == 408, answer[:200]
        with socket.create_connection(address(hub.url), timeout=10) as sock:  # no hello
            assert _cut_off(sock, False, within=6) in (b"(closed)", b"(reset)")
        big = httpx.get(f"{hub.url}/hub/v1/health", headers={"X-Pad": "a" * 100_000},
                        timeout=10, verify=verify_for(hub.url))
        assert big.status_code == 431
    finally:
        hub.stop()


def test_the_systemd_unit_raises_the_file_limit_above_the_connection_cap() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "packaging" / "systemd" / "outpost-agent.service")
    limit = int(unit["Service"]["LimitNOFILE"])
    assert limit - 64 >= 1000, "the default 1000 connections must fit under LimitNOFILE"
