"""`outpost-agent`: serve, install, export-telemetry, init.

Every failure the user can cause prints one line, `error: ...`, and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import secrets
import socket
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_agent.contract.errors import AgentError
from edge_agent.contract.tls import short

MiB = 1024 * 1024

TOKEN_FILE = "token"
CONFIG_FILE = "config.json"


class CliError(AgentError):
    pass


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"--dir {path} is not writable: {exc.strerror or exc}") from None
    return path


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise CliError(f"cannot listen on {host}:{port}: {why}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def read_token(token_file: Path | None, agent_dir: Path) -> str | None:
    path = token_file or agent_dir / TOKEN_FILE
    if token_file is None and not path.exists():
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read token file {path}: {exc.strerror}") from None
    if len(token) < 8:
        raise CliError(f"token file {path} holds no token of 8 or more characters")
    return token


def read_config(agent_dir: Path) -> dict[str, Any]:
    """DIR/config.json (written by init): defaults for what serve is not told."""
    path = agent_dir / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CliError(f"{path} must hold a JSON object")
    return doc


def _keyring(agent_dir: Path, trust_key: Path | None):  # type: ignore[no-untyped-def]
    from edge_agent.contract.signing import load_public_raw
    from edge_agent.store.keys import KeyRing

    ring = KeyRing(agent_dir / "keys")
    if trust_key is not None and not ring.trust(load_public_raw(trust_key)):
        print(f"warning: {trust_key} was retired by a key rotation; not trusted",
              file=sys.stderr)
    return ring


def cmd_serve(args: argparse.Namespace) -> int:
    from edge_agent.contract.http_limits import ConnectionLimits
    from edge_agent.hub.settings import hub_settings
    from edge_agent.runtime import ServeOptions, serve
    from edge_agent.store.dir_lock import FolderLock

    agent_dir = _writable_dir(Path(args.dir))
    # Held until the process ends: the outbox numbering and the store live in its memory.
    lock = FolderLock(agent_dir, "outpost-agent serve").acquire(
        "an agent already serves this folder; stop it first, or give this one its own --dir")
    config = read_config(agent_dir)
    sock = _listen(args.host or str(config.get("host", "127.0.0.1")),
                   args.port if args.port is not None else int(config.get("port", 8080)))
    token_file = args.token_file or config.get("token_file")
    token = read_token(Path(token_file) if token_file else None, agent_dir)
    hub = hub_settings(args, agent_dir)  # before the key ring loads: it may trust a key
    feedback_token = read_token(Path(args.feedback_token_file), agent_dir) \
        if args.feedback_token_file else None
    options = ServeOptions(
        agent_dir=agent_dir, token=token, keyring=_keyring(agent_dir, args.trust_key),
        inbox=Path(args.inbox) if args.inbox else None,
        max_body_bytes=int(args.max_body_mb * MiB), body_timeout_s=args.body_timeout_s,
        max_bundle_bytes=int(args.max_bundle_mb * MiB),
        telemetry_max_bytes=int(args.telemetry_max_mb * MiB),
        window_s=args.window_s, batch_max=args.batch_max, batch_delay_us=args.batch_delay_us,
        hub=hub, feedback_token=feedback_token, shadow_timeout_ms=args.shadow_timeout_ms,
        shadow_queue=args.shadow_queue,
        capture_max_bytes=int(args.capture_max_mb * MiB),
        connections=ConnectionLimits(
            max_connections=args.max_connections, header_timeout_s=args.header_timeout_s,
            max_header_bytes=int(args.max_header_kb * 1024)),
        insecure_http=args.insecure_http)
    try:
        return serve(sock, options)
    finally:
        lock.release()


def cmd_install(args: argparse.Namespace) -> int:
    from edge_agent.store.dir_lock import FolderLock
    from edge_agent.store.events import AgentEventLog
    from edge_agent.store.identity import load_or_create_identity
    from edge_agent.store.store import ModelStore
    from edge_agent.telemetry.outbox import Outbox

    agent_dir = _writable_dir(Path(args.dir))
    lock = FolderLock(agent_dir, "outpost-agent install").acquire(
        "a running agent installs bundles itself: drop it into the agent's --inbox folder "
        "or send it with `outpost deploy`, or stop the agent first")
    outbox = Outbox(agent_dir / "telemetry.sqlite")
    try:
        events = AgentEventLog(load_or_create_identity(agent_dir), outbox)
        store = ModelStore(agent_dir, _keyring(agent_dir, args.trust_key), on_event=events)
        store.open()
        result = store.install(Path(args.bundle), activate=not args.no_activate,
                               allow_rollback=args.rollback)
    finally:
        outbox.close()
        lock.release()
    print(f"{result.model} version {result.version}: {result.status} "
          f"(canary {result.canary})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from edge_agent.contract.telemetry_format import write_telemetry_export
    from edge_agent.store.identity import load_or_create_identity
    from edge_agent.telemetry.outbox import Outbox

    agent_dir = _writable_dir(Path(args.dir))
    identity = load_or_create_identity(agent_dir)
    outbox = Outbox(agent_dir / "telemetry.sqlite")
    try:
        records = outbox.read(0, 2**62)
    finally:
        outbox.close()
    write_telemetry_export(Path(args.out), records, agent_id=identity.agent_id,
                           identity_key=identity.key)
    print(f"wrote {len(records)} telemetry records to {args.out}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from edge_agent.contract.files import atomic_write
    from edge_agent.store.identity import load_or_create_identity, load_or_create_tls

    agent_dir = _writable_dir(Path(args.dir))
    identity = load_or_create_identity(agent_dir)
    cert, _ = load_or_create_tls(agent_dir, identity)
    token_path = agent_dir / TOKEN_FILE
    if not token_path.exists():
        atomic_write(token_path, secrets.token_urlsafe(32).encode() + b"\n", mode=0o600)
    config = {"host": "127.0.0.1", "port": 8080, "token_file": str(token_path)}
    atomic_write(agent_dir / CONFIG_FILE, json.dumps(config, indent=2).encode() + b"\n")
    print(f"agent {identity.agent_id} in {agent_dir}; management token in {token_path}; "
          f"TLS certificate {cert.cert_file} (key {short(cert.spki)})")
    return 0


def cmd_rotate_cert(args: argparse.Namespace) -> int:
    from edge_agent.store.identity import load_or_create_identity, rotate_tls

    agent_dir = _writable_dir(Path(args.dir))
    cert, _ = rotate_tls(agent_dir, load_or_create_identity(agent_dir))
    print(f"new TLS certificate {cert.cert_file} (key {short(cert.spki)}), signed by the "
          "identity key; restart `serve` to use it (the desktop re-pins it on its next call)")
    return 0


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked: importlib.metadata, which finds it, costs a
    serving agent ~2 MB resident."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default,
                         help=help or "show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from edge_agent.serving.management import agent_version

        print(f"outpost-agent {agent_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outpost-agent",
                                     description="Outpost edge agent: serve ONNX models.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the installed models over HTTPS (TLS 1.3)")
    serve.add_argument("--dir", required=True, help="agent folder (models, keys, telemetry)")
    serve.add_argument("--host", help="address to bind (DIR/config.json, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (DIR/config.json, else 8080)")
    serve.add_argument("--token-file", help="file holding the management bearer token "
                       "(default: DIR/token, written by init)")
    serve.add_argument("--trust-key", type=Path, help="public key file to trust for bundles")
    serve.add_argument("--inbox", help="folder watched for bundles dropped by hand")
    from edge_agent.runtime import ServeOptions

    d: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ServeOptions)}
    serve.add_argument("--max-body-mb", type=float, default=d["max_body_bytes"] / MiB,
                       help=f"largest inference request body ({d['max_body_bytes'] // MiB} MiB)")
    serve.add_argument("--max-bundle-mb", type=float, default=d["max_bundle_bytes"] / MiB,
                       help=f"largest bundle upload ({d['max_bundle_bytes'] // MiB} MiB)")
    serve.add_argument("--body-timeout-s", type=float, default=d["body_timeout_s"],
                       help=f"longest wait for an inference request body "
                       f"({d['body_timeout_s']:g} s)")
    serve.add_argument("--telemetry-max-mb", type=float, default=d["telemetry_max_bytes"] / MiB,
                       help="telemetry outbox cap; oldest records are evicted past it "
                       f"({d['telemetry_max_bytes'] // MiB} MiB)")
    serve.add_argument("--feedback-token-file",
                       help="file holding a second token that may only post feedback "
                       "(labels) to /v1/models/NAME/feedback")
    serve.add_argument("--capture-max-mb", type=float, default=d["capture_max_bytes"] / MiB,
                       help="cap of the captured-samples buffer; oldest rows are evicted "
                       f"past it ({d['capture_max_bytes'] // MiB} MiB)")
    serve.add_argument("--window-s", type=float, default=d["window_s"],
                       help=f"histogram window length in seconds ({d['window_s']:g})")
    serve.add_argument("--batch-max", type=int, default=d["batch_max"],
                       help=f"adaptive batching: most requests run as one ({d['batch_max']}; "
                       "1 = off)")
    serve.add_argument("--batch-delay-us", type=int, default=d["batch_delay_us"],
                       help="adaptive batching: longest wait for a batch to fill "
                       f"({d['batch_delay_us']}: only requests that arrived together)")
    serve.add_argument("--shadow-timeout-ms", type=float, default=d["shadow_timeout_ms"],
                       help="shadow: longest challenger call before it is cut off "
                       f"({d['shadow_timeout_ms']:g} ms)")
    serve.add_argument("--shadow-queue", type=int, default=d["shadow_queue"],
                       help="shadow: jobs waiting for the challenger; more are dropped and "
                       f"counted ({d['shadow_queue']})")
    from edge_agent.contract.http_limits import ConnectionLimits

    c = ConnectionLimits()
    serve.add_argument("--max-connections", type=_positive(int), default=c.max_connections,
                       help=f"most connections at once, TLS handshakes included "
                       f"({c.max_connections}; never above the file limit minus "
                       f"{c.reserved_files}); past it the longest-idle connection is closed")
    serve.add_argument("--header-timeout-s", type=_positive(float), default=c.header_timeout_s,
                       help=f"longest wait for a request's headers, the TLS handshake "
                       f"included ({c.header_timeout_s:g} s; then 408)")
    serve.add_argument("--max-header-kb", type=_positive(float),
                       default=c.max_header_bytes / 1024,
                       help=f"largest request headers ({c.max_header_bytes // 1024} KiB; 431 "
                       "beyond)")
    serve.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP (only behind a TLS-terminating proxy)")
    from edge_agent.hub.settings import add_hub_arguments

    add_hub_arguments(serve)
    serve.set_defaults(fn=cmd_serve)
    install = sub.add_parser("install", help="verify and install a bundle file")
    install.add_argument("bundle", help="NAME-VERSION.outpost file")
    install.add_argument("--dir", required=True, help="agent folder")
    install.add_argument("--trust-key", type=Path, help="public key file to trust")
    install.add_argument("--no-activate", action="store_true", help="install without activating")
    install.add_argument("--rollback", action="store_true",
                         help="allow a version older than the highest seen")
    install.set_defaults(fn=cmd_install)
    export = sub.add_parser("export-telemetry", help="write the outbox to a signed file")
    export.add_argument("--dir", required=True, help="agent folder")
    export.add_argument("--out", required=True, help="file to write (NDJSON)")
    export.set_defaults(fn=cmd_export)
    init = sub.add_parser("init", help="create the agent identity, a token and a config")
    init.add_argument("--dir", required=True, help="agent folder")
    init.set_defaults(fn=cmd_init)
    rotate = sub.add_parser("rotate-cert", help="a new TLS key and certificate, vouched "
                            "for by the identity key")
    rotate.add_argument("--dir", required=True, help="agent folder")
    rotate.set_defaults(fn=cmd_rotate_cert)
    return parser


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """argparse's type= for a number above 0 (a zero limit would refuse every peer)."""
    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except AgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        # Never silently start a fresh outbox: sequence numbers would restart and the
        # desktop would take new records for ones it already has.
        print(f"error: the telemetry outbox in {getattr(args, 'dir', '?')} cannot be used: "
              f"{exc}", file=sys.stderr)
        return 1
