"""Shared by the fleet tests: a catalog in a temp home, agents enrolled by hand, telemetry
records written as agents write them, and a TCP proxy that can cut a transfer midway."""
from __future__ import annotations

import contextlib
import math
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.catalog import Catalog
from core.config import Settings
from core.vault import set_agent_token
from edge_agent.contract.protocol import (
    HistogramRecord,
    RequestRecord,
    generate_signing_key,
    public_key_b64,
    write_public_key,
    write_telemetry_export,
)
from edge_agent.contract.tls import ServerCert, server_context, spki_sha256_of_file
from tests.support.agents import (
    free_port,
    ssl_context_for,
    trust_cert,
    verify_for,
    wait_http_ok,
)


def open_catalog(home: Path) -> Catalog:
    return Catalog.open(Settings(home))


def enrol_row(catalog: Catalog, name: str, identity: Ed25519PrivateKey,
              agent_id: str | None = None) -> None:
    """An agent row as `agent add` leaves it, for tests that only need its pinned key."""
    catalog.con.execute(
        "INSERT INTO agent (name, url, token, agent_id, public_key, mode, key_index, "
        "key_counter) VALUES (?, 'http://127.0.0.1:9', '', ?, ?, 'push', 0, 0)",
        [name, agent_id or f"id-{name}", public_key_b64(identity)])
    set_agent_token(catalog.settings, name, "token-token")


def requests(first_seq: int, n: int, *, model: str = "m", version: int = 1, t0: float = 1e9,
             status: int = 200) -> list[RequestRecord]:
    return [RequestRecord(first_seq + i, t0 + i, model, version, status, 1000 + i, 1)
            for i in range(n)]


def histogram(seq: int, feature: str, counts: list[int], *, nulls: int = 0,
              model: str = "m", version: int = 1, start: float = 1e9,
              length: float = 60.0) -> HistogramRecord:
    return HistogramRecord(seq, start, start + length, model, version, feature, counts, nulls)


def export_file(path: Path, records: list[Any], identity: Ed25519PrivateKey,
                agent_id: str = "id-a") -> Path:
    return write_telemetry_export(path, records, agent_id=agent_id, identity_key=identity)


def mini_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A small table with a numeric, a categorical and a discrete column, nulls included."""
    rng = np.random.default_rng(seed)
    temp = rng.normal(20, 5, rows).round(3)
    temp[rng.random(rows) < 0.05] = np.nan
    site = rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1])
    site = np.where(rng.random(rows) < 0.05, None, site)
    load = rng.integers(0, 5, rows).astype(float)
    fail = ((np.nan_to_num(temp, nan=20) > 22) | (site == "east")).astype(int)
    return pd.DataFrame({"temp": temp, "site": site, "load": load, "fail": fail})


def mini_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """`mini_frame` rows as an agent's predict route takes them: a missing number is null,
    a missing category "" (what the exported graph's imputer expects)."""
    return [{"temp": None if math.isnan(row.temp) else float(row.temp),
             "site": row.site if isinstance(row.site, str) else "",
             "load": float(row.load)} for row in frame.itertuples(index=False)]


def assert_fourth_halts_the_rollout(result: Any) -> None:
    """What `outpost deploy … --to-fleet --waves 25%,50%,100% --json` (a CliResult) says
    over edge-a … edge-d, all on version 1, when edge-d refuses the bundle for its size
    limit: exit 1 with one line, halted in the third wave, the three others rolled back."""
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "halted" in result.stderr, result.stderr
    doc = result.json()
    assert doc["status"] == "halted" and doc["failures"] == 1 and doc["wave"] == 2, doc
    states = {a["agent"]: (a["wave"], a["previous"], a["status"]) for a in doc["agents"]}
    assert states == {"edge-a": (0, 1, "rolled_back"), "edge-b": (1, 1, "rolled_back"),
                      "edge-c": (2, 1, "rolled_back"), "edge-d": (2, 1, "failed")}
    failed = next(a for a in doc["agents"] if a["agent"] == "edge-d")
    assert "refused" in failed["error"] and "limit" in failed["error"], failed


def train_mini(catalog: Catalog, model: str = "pumps") -> pd.DataFrame:
    """Import `mini_frame`, train on it, register the run as `model`@N, alias production."""
    from core.datasets import import_frame
    from core.registry import register_model, set_alias
    from core.training import train

    frame = mini_frame()
    import_frame(catalog, "mini", frame, {"kind": "test"})
    run = train(catalog, "mini", "fail", algo="logistic_regression")
    set_alias(catalog, register_model(catalog, run.id, model).ref, "production", force=True)
    return frame


def new_identity() -> Ed25519PrivateKey:
    return generate_signing_key()


@dataclass
class Agent:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    dir: Path
    token: str

    @property
    def ssl(self) -> ssl.SSLContext | None:
        return ssl_context_for(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_agent(folder: Path, trust: Ed25519PrivateKey, *, port: int | None = None,
                token: str = "fleet-test-token", window_s: float = 1.0,
                extra: tuple[str, ...] = ()) -> Agent:
    """`outpost-agent serve` on loopback (a free port unless given), ready to answer."""
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder.parent / f"{folder.name}.token"
    token_file.write_text(token)
    pub = write_public_key(trust.public_key(), folder.parent / f"{folder.name}.pub")
    port = port or free_port()
    with (folder.parent / f"{folder.name}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "serve", "--dir", str(folder), "--host",
             "127.0.0.1", "--port", str(port), "--token-file", str(token_file), "--trust-key",
             str(pub), "--window-s", str(window_s), *extra],
            stdout=log, stderr=log)
    url = f"https://127.0.0.1:{port}"
    trust_cert(url, folder / "tls.crt")
    try:
        wait_http_ok(f"{url}/v2/health/ready", 30, proc)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    return Agent(proc, url, port, folder, token)


def start_agents(root: Path, trust: Ed25519PrivateKey, names: list[str],
                 extra: dict[str, tuple[str, ...]] | None = None) -> list[Agent]:
    """One agent per name in ROOT/agent-NAME, started in parallel (startup is mostly
    waiting for imports): a fleet costs about one start."""
    from concurrent.futures import ThreadPoolExecutor

    def start(name: str) -> Agent:
        return start_agent(root / f"agent-{name}", trust, extra=(extra or {}).get(name, ()))

    with ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(start, n) for n in names]
    started = [f.result() for f in futures if f.exception() is None]
    if len(started) < len(names):
        for agent in started:
            agent.stop()
        raise next(e for f in futures if (e := f.exception()) is not None)
    return started


@contextlib.contextmanager
def agents(root: Path, trust: Ed25519PrivateKey, n: int) -> Iterator[list[Agent]]:
    started: list[Agent] = []
    try:
        for i in range(n):
            started.append(start_agent(root / f"agent{i}", trust))
        yield started
    finally:
        for agent in started:
            agent.stop()


def relay_pair(client: socket.socket, target_port: int, tls: ServerCert | None
               ) -> tuple[socket.socket, socket.socket]:
    """The two ends a proxy pipes between. With `tls`, the proxy terminates TLS with that
    certificate (the server's own: a TLS-terminating proxy; another: a man in the middle)
    and speaks TLS to the target, so it sees the plain HTTP in between."""
    upstream = socket.create_connection(("127.0.0.1", target_port))
    if tls is None:
        return client, upstream
    client = server_context(tls).wrap_socket(client, server_side=True)
    to_target = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    to_target.check_hostname, to_target.verify_mode = False, ssl.CERT_NONE
    return (_OneAtATime(client),  # type: ignore[return-value]
            _OneAtATime(to_target.wrap_socket(upstream)))


class _OneAtATime:
    """An SSL socket used by two relay threads (one reads, one writes): OpenSSL allows one
    operation at a time on a connection, so each call takes a lock, and a read waits for
    data in short slices so that a write can go between them."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def recv(self, size: int) -> bytes:
        while True:
            with self._lock:
                self._sock.settimeout(0.02)
                try:
                    return self._sock.recv(size)
                except (TimeoutError, ssl.SSLWantReadError):
                    pass
                finally:
                    self._sock.settimeout(None)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._sock.sendall(data)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()


def server_cert_of(folder: Path) -> ServerCert:
    """The certificate an agent (or hub) in `folder` presents."""
    return ServerCert(folder / "tls.key", folder / "tls.crt", spki_sha256_of_file(
        folder / "tls.crt"))


class RelayProxy:
    """Forwards 127.0.0.1:port to a target port, one thread per connection; with `tls` it
    terminates TLS with that certificate (see `relay_pair`). Subclasses decide what passes
    in each direction (`_serve`)."""

    def __init__(self, target_port: int, tls: ServerCert | None = None) -> None:
        self.target_port = target_port
        self.tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'http' if self.tls is None else 'https'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            client, upstream = relay_pair(client, self.target_port, self.tls)
        except OSError:  # a client that refuses our certificate hangs up here
            client.close()
            return
        self._serve(client, upstream)

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._listener.close()


class CuttingProxy(RelayProxy):
    """`cut_after(marker, n)` arms it: the connection on which the client sends `marker` is
    dropped `n` bytes later, as a network failing mid-upload would (once; then it forwards
    normally again)."""

    def __init__(self, target_port: int, tls: ServerCert | None = None) -> None:
        super().__init__(target_port, tls)
        self._armed: tuple[bytes, int] | None = None
        self._lock = threading.Lock()
        self.received = b""  # every byte clients sent through it (inside TLS, if any)
        self.start()

    def cut_after(self, marker: bytes, n: int) -> None:
        self._armed = (marker, n)

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._upload, args=(client, upstream), daemon=True).start()
        _pipe(upstream, client)

    def _take(self, seen: bytes) -> int | None:
        """Bytes of `seen` still to forward before the cut, if the marker is in it."""
        with self._lock:
            if self._armed is None or self._armed[0] not in seen:
                return None
            marker, n = self._armed
            self._armed = None
        return seen.index(marker) + n

    def _upload(self, src: socket.socket, dst: socket.socket) -> None:
        seen = b""
        try:
            while data := src.recv(65536):
                self.received += data
                start = len(seen)
                seen += data
                limit = self._take(seen)
                if limit is not None:
                    dst.sendall(data[: max(limit - start, 0)])
                    break
                dst.sendall(data)
        except OSError:
            pass
        close_sockets(src, dst)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    close_sockets(src, dst)


def close_sockets(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


@contextlib.contextmanager
def cutting_proxy(target_port: int, tls: ServerCert | None = None) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(target_port, tls)
    try:
        yield proxy
    finally:
        proxy.close()


def outbox_last_seq(url: str, token: str) -> int:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      verify=verify_for(url)) as http:
        answer = http.get("/v1/telemetry", params={"after": 0, "limit": 1})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["last_seq"])


def wait_for_outbox(url: str, token: str, *, requests: int, after: int = 0,
                    timeout: float = 30.0) -> None:
    """Wait until the agent's outbox holds at least `requests` request records after seq
    `after`, and a closed histogram window among them: what a pull right after traffic
    expects to find."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    kinds: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10,
                      verify=verify_for(url)) as http:
        while time.monotonic() < deadline:
            answer = http.get("/v1/telemetry", params={"after": after, "limit": 100_000})
            assert answer.status_code == 200, answer.text
            kinds = [r["kind"] for r in answer.json()["records"]]
            if kinds.count("request") >= requests and "histogram" in kinds:
                return
            time.sleep(0.1)
    raise AssertionError(f"agent at {url} flushed {kinds.count('request')} of {requests} "
                         f"requests, histograms: {'histogram' in kinds}, within {timeout} s")


TELEMETRY_TABLES = ("telemetry_request", "telemetry_histogram", "telemetry_evicted",
                    "telemetry_prediction", "telemetry_feedback", "telemetry_capture")


def stored_seqs(catalog: Catalog, agent: str,
                tables: tuple[str, ...] = TELEMETRY_TABLES) -> list[int]:
    """The outbox seqs of `agent` stored in the catalog, over every record kind, sorted."""
    return [int(s) for (s,) in catalog.cursor().execute(
        " UNION ALL ".join(f"SELECT seq FROM {t} WHERE agent = $agent" for t in tables)
        + " ORDER BY seq", {"agent": agent}).fetchall()]


def agent_event_seqs(catalog: Catalog, agent: str) -> list[int]:
    """The outbox seqs of `agent`'s own audit events (install, activate, rollback): they
    share the outbox sequence with telemetry and land in the audit trail."""
    return [int(s) for (s,) in catalog.cursor().execute(
        "SELECT json_extract(detail, '$.outbox_seq')::BIGINT FROM audit_event "
        "WHERE kind = 'agent_event' AND agent = $a", {"a": agent}).fetchall()]


def fill_windows(catalog: Catalog, model: str, version: int, windows: int,
                 agent: str = "local") -> None:
    """`windows` one-minute histogram windows up to now of every feature of a model whose
    bundle was built (the baseline's counts; in the last quarter every value in the top
    bin) and 20 requests a window (1 in 50 failed), as if pulled from `agent`."""
    baseline = orjson.loads(catalog.con.execute(
        "SELECT baseline FROM bundle WHERE model = ? AND version = ?",
        [model, version]).fetchall()[0][0])
    features = [*baseline["features"], baseline["prediction"]]
    t0 = time.time() // 60 * 60 - windows * 60  # on the minute: one window per chart bucket
    catalog.con.execute(
        "INSERT INTO telemetry_histogram SELECT $agent, 10_000_000 + w * 100 + f, "
        "$t0 + w * 60, $t0 + w * 60 + 60, $model, $version, ($names)[f + 1], "
        "CASE WHEN w > $windows * 3 // 4 THEN ($drifted)[f + 1] "
        "ELSE ($counts)[f + 1] END, ($nulls)[f + 1] FROM range($windows) t(w), range($n) u(f)",
        {"agent": agent, "t0": t0, "model": model, "version": version, "windows": windows,
         "n": len(features), "names": [f["name"] for f in features],
         "counts": [[int(c) for c in f["counts"]] for f in features],
         "nulls": [int(f["nulls"]) for f in features],
         "drifted": [[0] * (len(f["counts"]) - 1) + [sum(f["counts"])] for f in features]})
    catalog.con.execute(
        "INSERT INTO telemetry_request SELECT $agent, 20_000_000 + i, $t0 + i * 3, $model, "
        "$version, CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, 800 + (i * 7919) % 4000, 1 "
        "FROM range($n) t(i)",
        {"agent": agent, "t0": t0, "model": model, "version": version, "n": windows * 20})
