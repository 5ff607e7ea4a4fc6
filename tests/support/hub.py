"""Shared by the hub tests: models registered without training, agents started in hub
mode, the hub as its own process, raw calls to the hub, and a proxy that cuts downloads."""
from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from core.catalog import Catalog
from core.config import Settings
from core.hub import HubHandle, HubOptions, enroll_agent, start_hub, write_enrolment
from core.registry import import_onnx
from edge_agent.contract.tls import ServerCert
from tests.conftest import OUTPOST, REPO
from tests.support.agents import (
    file_limit,
    free_port,
    identity_model,
    trust_cert,
    verify_for,
    wait_http_ok,
)
from tests.support.fleet import RelayProxy, close_sockets, server_cert_of


def hub_cert(settings: Settings) -> ServerCert:
    """The certificate the hub of this home presents (created by the first start)."""
    return server_cert_of(settings.hub_tls_dir)


def start_test_hub(catalog: Catalog, host: str = "127.0.0.1", port: int = 0,
                   options: HubOptions | None = None, **kwargs: Any) -> HubHandle:
    """`start_hub`, with this test's requests trusting the hub's certificate."""
    handle = start_hub(catalog, host, port, options, **kwargs)
    trust_cert(handle.url, catalog.settings.hub_tls_dir / "tls.crt")
    return handle


@contextlib.contextmanager
def hub_running(catalog: Catalog, options: HubOptions | None = None) -> Iterator[HubHandle]:
    """A test hub on a free loopback port, stopped afterwards."""
    handle = start_test_hub(catalog, "127.0.0.1", 0, options)
    try:
        yield handle
    finally:
        handle.stop()


def register_adder(catalog: Catalog, tmp: Path, bias: float = 1.0) -> str:
    """Register y = x + bias as the next version of model "adder"; returns its ref."""
    path = tmp / f"adder-{bias}.onnx"
    path.write_bytes(identity_model(bias_value=bias))
    return import_onnx(catalog, path, "adder").ref


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
               every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@dataclass
class HubAgent:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    dir: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def infer(self, n: int, model: str = "adder") -> None:
        with httpx.Client(base_url=self.url, verify=verify_for(self.url)) as http:
            for i in range(n):
                body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                                    "data": [float(i % 3)]}]}
                answer = http.post(f"/v2/models/{model}/infer", json=body)
                assert answer.status_code == 200, answer.text

    def outbox(self) -> list[tuple[int, str]]:
        with contextlib.closing(sqlite3.connect(self.dir / "telemetry.sqlite")) as db:
            return [(int(s), str(k)) for s, k in
                    db.execute("SELECT seq, kind FROM records ORDER BY seq").fetchall()]


def start_hub_agent(folder: Path, name: str, *, enrol: Path | None = None,
                    hub_url: str | None = None, poll_s: float = 0.3, push_s: float = 0.3,
                    extra: tuple[str, ...] = ()) -> HubAgent:
    """`outpost-agent serve` in hub mode (first start: `enrol`; later: `--hub [URL]`)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [sys.executable, "-m", "edge_agent", "serve", "--dir", str(folder), "--host",
            "127.0.0.1", "--port", str(port), "--hub-poll-s", str(poll_s), "--hub-push-s",
            str(push_s), "--hub-backoff-max-s", "1", "--window-s", "1", *extra]
    args += ["--enroll", str(enrol)] if enrol is not None else ["--hub", hub_url or ""]
    log = folder.parent / f"{folder.name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out)
    url = f"{'http' if '--insecure-http' in extra else 'https'}://127.0.0.1:{port}"
    trust_cert(url, folder / "tls.crt")
    try:
        wait_http_ok(f"{url}/v2/health/ready", 30, proc)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise AssertionError(log.read_text(errors="replace")) from None
    return HubAgent(name, proc, url, folder, log)


def enrol_and_start(catalog: Catalog, root: Path, name: str, hub_url: str,
                    **kwargs: Any) -> HubAgent:
    enrolment = enroll_agent(catalog, name, hub_url)
    path = write_enrolment(enrolment, root / f"{name}.enrol")
    return start_hub_agent(root / name, name, enrol=path, **kwargs)


@dataclass
class HubProcess:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def kill(self) -> None:
        self.proc.kill()
        self._reap()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self._reap()

    def _reap(self) -> None:
        self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_hub_process(home: Path, port: int | None = None, extra_args: tuple[str, ...] = (),
                      max_files: int | None = None) -> HubProcess:
    """`outpost hub serve` as its own process (it holds the catalog while it runs)."""
    port = port or free_port()
    env = dict(os.environ, OUTPOST_HOME=str(home))
    log = home.parent / "hub.log"
    with log.open("ab") as err:
        proc = subprocess.Popen([*OUTPOST, "hub", "serve", "--port", str(port), "--json",
                                 *extra_args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=err,
                                preexec_fn=None if max_files is None else file_limit(max_files))
    assert proc.stdout is not None
    lines: list[bytes] = []
    while not lines or lines[-1].rstrip() != b"}":
        line = proc.stdout.readline()
        if not line:
            proc.stdout.close()
            raise AssertionError(f"hub did not start: {log.read_text(errors='replace')}")
        lines.append(line)
    url = orjson.loads(b"".join(lines))["url"]
    trust_cert(url, Settings(home).hub_tls_dir / "tls.crt")
    return HubProcess(proc, url, port, log)


def hub_call(hub_url: str, method: str, path: str, token: str | None, *,
             body: bytes | None = None, headers: dict[str, str] | None = None
             ) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, hub_url + path, content=body,
                         headers={**auth, **(headers or {})}, timeout=30,
                         verify=verify_for(hub_url))


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def request_records(first: int, n: int, *, ts: float = 1.7e9, step: float = 1.0
                    ) -> list[dict[str, Any]]:
    return [{"seq": first + i, "kind": "request", "ts": ts + i * step, "model": "adder",
             "version": 1, "status": 200, "latency_us": 100 + i, "rows": 1} for i in range(n)]


class DownloadCutter(RelayProxy):
    """Forwards 127.0.0.1:port to the hub. `cut_after(n)` arms it: the next answer that
    carries a bundle (application/octet-stream) is dropped after `n` body bytes. Every
    request line and its Range header (if any) is recorded in `requests`. With `tls` it
    terminates TLS with the hub's certificate (as a TLS-terminating proxy holding the hub's
    key would)."""

    def __init__(self, target_port: int, tls: ServerCert | None = None) -> None:
        super().__init__(target_port, tls)
        self._armed: int | None = None
        self.requests: list[str] = []
        self.start()

    def cut_after(self, n: int) -> None:
        self._armed = n

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
        self._down(upstream, client)

    def _up(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                for line in data.split(b"\r\n"):
                    if line.startswith((b"GET ", b"POST ")) or line.lower().startswith(
                            b"range:"):
                        self.requests.append(line.decode(errors="replace"))
                dst.sendall(data)
        close_sockets(src, dst)

    def _down(self, src: socket.socket, dst: socket.socket) -> None:
        left: int | None = None  # body bytes still to pass before the cut
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if left is None and self._armed is not None and \
                        b"application/octet-stream" in data:
                    head, sep, data = data.partition(b"\r\n\r\n")
                    left, self._armed = self._armed, None
                    dst.sendall(head + sep)
                if left is None:
                    dst.sendall(data)
                    continue
                dst.sendall(data[:left])
                left -= len(data)
                if left <= 0:
                    break
        close_sockets(src, dst)


