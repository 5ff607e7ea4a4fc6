"""The embedded default: an `outpost-agent serve` on loopback, started detached, with its
own folder ($OUTPOST_HOME/agents/local), its own token, trusting the desktop key, and
enrolled as the agent named "local"."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from core.catalog import Catalog
from core.errors import OutpostError
from core.fleet.agents import add_agent
from core.fleet.client import AgentClient
from core.keys import write_public_key_file
from core.vault import set_agent_token
from edge_agent.contract.protocol import atomic_write
from edge_agent.contract.tls import pinned_client_context

LOCAL_AGENT = "local"
_STATE = "local.json"


@dataclass(frozen=True)
class LocalAgent:
    name: str
    url: str
    pid: int
    dir: Path
    started: bool  # False: it was already running

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dir": str(self.dir)}


def local_dir(catalog: Catalog) -> Path:
    return catalog.settings.agents_dir / LOCAL_AGENT


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Agents this process started. Holding the Popen objects keeps them from being
# collected (with a "still running" warning) while the detached agent runs, and
# lets a long-lived process (the GUI) reap them when they stop: every path that
# learns one of them has stopped goes through `_reaped`, so none stays a zombie.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def _reaped(pid: int) -> bool:
    """Has our child `pid` exited? If so it is reaped and forgotten."""
    if _STARTED[pid].poll() is None:
        return False
    del _STARTED[pid]
    return True


def _reap_stopped() -> None:
    """Reap every agent of ours that has exited, also those stopped from another process
    (`outpost agent local stop` beside the GUI): their state file is gone, so no later
    `_alive` would ask about their pid."""
    for pid in list(_STARTED):
        _reaped(pid)


def _alive(pid: int, folder: Path) -> bool:
    """Is `pid` still our agent (not a recycled pid, not a zombie we started)?"""
    if pid in _STARTED:
        # Our own child: only reaping it says it is gone. /proc cannot: while it exits
        # its cmdline reads empty before waitpid sees it, and answering "gone" then
        # left it unreaped (a zombie, and "subprocess N is still running" at exit). Its
        # pid cannot be recycled before we reap it, so there is nothing else to check.
        return not _reaped(pid)
    # Started by another outpost process (or an earlier run of this one): not ours to
    # reap, and a child of ours under that pid is some other process (its own
    # owner reaps it), which the cmdline check tells apart.
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        if cmdline.exists():
            return str(folder) in cmdline.read_bytes().decode(errors="replace")
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return False
    return True


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / _STATE).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _token(folder: Path) -> str:
    path = folder / "token"
    if not path.is_file():
        atomic_write(path, secrets.token_urlsafe(32).encode() + b"\n", mode=0o600)
    return path.read_text(encoding="utf-8").strip()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _STARTED.pop(proc.pid, None)
            lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
            raise OutpostError(f"local agent exited ({proc.returncode}) before it was ready: "
                               f"{lines[-1] if lines else 'no output'}")
        try:  # the agent proves this certificate to `_enrol` right after
            if httpx.get(f"{url}/v2/health/live", timeout=1.0,
                         verify=pinned_client_context(None)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    _end(proc)
    raise OutpostError(f"local agent did not answer on {url} within {timeout:g} s (see {log})")


def _end(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM our child, SIGKILL it after `grace` seconds, and reap it."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _STARTED.pop(proc.pid, None)


def start_local_agent(catalog: Catalog, *, port: int | None = None,
                      window_s: float | None = None, timeout: float = 30.0) -> LocalAgent:
    """Start the local agent (or find it running) and make sure it is enrolled."""
    _reap_stopped()
    folder = local_dir(catalog)
    state = _read_state(folder)
    if state and _alive(int(state["pid"]), folder):
        _enrol(catalog, state["url"], _token(folder))
        return LocalAgent(LOCAL_AGENT, state["url"], int(state["pid"]), folder, False)
    folder.mkdir(parents=True, exist_ok=True)
    token = _token(folder)
    trust = write_public_key_file(catalog, folder / "desktop.pub")
    port = port or _free_port()
    url = f"https://127.0.0.1:{port}"
    args = [sys.executable, "-m", "edge_agent", "serve", "--dir", str(folder),
            "--host", "127.0.0.1", "--port", str(port), "--trust-key", str(trust)]
    if window_s is not None:
        args += ["--window-s", str(window_s)]
    log = folder / "agent.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True)
    _STARTED[proc.pid] = proc
    _wait_ready(url, proc, log, timeout)
    atomic_write(folder / _STATE, json.dumps({"pid": proc.pid, "url": url}).encode())
    _enrol(catalog, url, token)
    return LocalAgent(LOCAL_AGENT, url, proc.pid, folder, True)


def _enrol(catalog: Catalog, url: str, token: str) -> None:
    """Enrol "local", or just follow it to its new port if its identity is the one pinned."""
    rows = catalog.cursor().execute("SELECT public_key FROM agent WHERE name = ?",
                                    [LOCAL_AGENT]).fetchall()
    if rows:
        with AgentClient(LOCAL_AGENT, url, token) as client:
            ident = client.identity()
            if ident.public_key == rows[0][0]:
                set_agent_token(catalog.settings, LOCAL_AGENT, token)
                with catalog.transaction() as cur:
                    cur.execute("UPDATE agent SET url = ?, tls_spki = ?, last_error = NULL, "
                                "pin_failed_at = NULL WHERE name = ?",
                                [url, ident.tls_spki, LOCAL_AGENT])
                return
    add_agent(catalog, LOCAL_AGENT, url, token, mode="local", replace=True)


def stop_local_agent(catalog: Catalog, *, timeout: float = 15.0) -> bool:
    """SIGTERM the local agent and wait for it to go; False if it was not running."""
    _reap_stopped()
    folder = local_dir(catalog)
    state = _read_state(folder)
    if not state or not _alive(int(state["pid"]), folder):
        (folder / _STATE).unlink(missing_ok=True)
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid, folder):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            handle = _STARTED.pop(pid, None)
            if handle is not None:
                handle.wait(timeout=5)
            else:
                time.sleep(0.2)
            break
        time.sleep(0.05)
    (folder / _STATE).unlink(missing_ok=True)
    return True
