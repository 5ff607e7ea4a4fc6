"""`outpost hub serve`, and `outpost agent enroll|revoke` for hub-mode agents."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import orjson
import typer

from core.cli.common import JsonFlag, console, emit, err_console, open_catalog
from core.cli.session import cancel_token, environ
from core.config import ENV_PREFIX, Settings
from core.hub import DEFAULT_PORT

app = typer.Typer(help="The hub where hub-mode agents (behind NAT) poll and post.",
                  no_args_is_help=True)
DEFAULT_HUB_URL = f"https://127.0.0.1:{DEFAULT_PORT}"


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).")] = DEFAULT_PORT,
    max_connections: Annotated[int, typer.Option(
        "--max-connections", min=1, help="Most connections at once, TLS handshakes included "
        "(never above the file limit minus 64); past it the longest-idle connection is "
        "closed.")] = 1000,
    header_timeout_s: Annotated[float, typer.Option(
        "--header-timeout-s", min=0.01, help="Longest wait for a request's headers, the TLS "
        "handshake included (then 408).")] = 10.0,
    insecure_http: Annotated[bool, typer.Option(
        "--insecure-http", help="Plain HTTP, only behind a TLS-terminating proxy.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Serve the hub until interrupted. It holds the catalog meanwhile and runs the other
    `outpost` commands of this user (enroll, deploy, status…) sent to it."""
    from core.hub import start_hub  # uvicorn and pyarrow: only this command needs them
    from edge_agent.contract.http_limits import ConnectionLimits

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    cancel = cancel_token()  # forwarded into the GUI: its client's Ctrl-C stops this hub
    with open_catalog() as catalog:
        handle = start_hub(catalog, host, port, connections=ConnectionLimits(
            max_connections=max_connections, header_timeout_s=header_timeout_s),
            insecure_http=insecure_http)
        try:
            emit({"url": handle.url, "host": handle.host, "port": handle.port,
                  "tls_spki_sha256": handle.tls_spki}, as_json,
                 lambda: console.print(f"hub serving on {handle.url} (Ctrl-C stops it)"))
            sys.stdout.flush()
            while handle.running and not stop.wait(0.2):
                if cancel is not None and cancel.cancelled:
                    break
        finally:
            handle.stop()
        if stop.is_set():  # stopped by a signal: commands forwarded here are cancelled too
            raise typer.Exit(0)


def enroll(
    name: Annotated[str, typer.Argument(help="Name for the agent in this catalog.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write the enrolment file here (mode 0600).")] = None,
    hub_url: Annotated[str | None, typer.Option(
        "--hub-url", help="The hub address the device will call (default: "
        f"${ENV_PREFIX}HUB_URL or {DEFAULT_HUB_URL}).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="New token for an enrolled hub agent (a replaced device).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Enrol an agent for hub mode: print a one-time file with the hub URL, a token and
    the desktop's public key, for `outpost-agent serve --enroll FILE`."""
    from core.hub import enroll_agent, write_enrolment

    url = hub_url or Settings.from_env(environ()).hub_url or DEFAULT_HUB_URL
    with open_catalog() as catalog:
        enrolment = enroll_agent(catalog, name, url, replace=replace)
    if out is not None:
        write_enrolment(enrolment, out)
    document = orjson.loads(enrolment.to_json_bytes())

    def render() -> None:
        sys.stdout.buffer.write(enrolment.to_json_bytes())
        sys.stdout.flush()
        where = f"written to {out}; " if out is not None else ""
        err_console.print(f"{where}start the device with: outpost-agent serve --dir DIR "
                          "--enroll FILE (the token is shown this once)")

    emit({**document, "file": None if out is None else str(out)}, as_json, render)


def revoke(
    name: Annotated[str, typer.Argument(help="A hub-mode agent.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a hub-mode agent's enrolment: the hub refuses it from now on."""
    from core.hub import revoke_agent

    with open_catalog() as catalog:
        revoke_agent(catalog, name)
    emit({"agent": name, "revoked": True}, as_json,
         lambda: console.print(f"agent {name} revoked: the hub refuses it from now on"))


def register_agent_commands(agent_group: typer.Typer) -> None:
    """enroll/revoke live under `outpost agent`, beside the push-mode commands."""
    agent_group.command("enroll")(enroll)
    agent_group.command("revoke")(revoke)
