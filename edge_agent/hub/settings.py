"""Hub mode's command-line options and settings, apart from the client itself: `serve`
builds its parser and reads its options on every start, hub mode or not, and the client
(http.client, its email parser, the transport) costs a serving agent ~0.8 MB resident."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from edge_agent.contract.files import atomic_write
from edge_agent.contract.hub_protocol import DEFAULT_POLL_S, Enrolment, EnrolmentFileInvalid
from edge_agent.contract.signing import raw_public_key_from_b64

log = logging.getLogger(__name__)
HUB_DIR = "hub"
ENROLMENT_FILE = "enrolment.json"


@dataclass(frozen=True)
class HubSettings:
    enrolment: Enrolment
    poll_s: float = DEFAULT_POLL_S
    push_s: float = 10.0
    jitter: float = 0.2  # each wait is its interval times 1 ± jitter
    backoff_max_s: float = 300.0
    timeout_s: float = 30.0
    batch_records: int = 5000
    batch_bytes: int = 4 * 1024 * 1024


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enroll", type=Path, metavar="FILE",
                        help="hub mode: enrol with this file from `outpost agent enroll`")
    parser.add_argument("--hub", nargs="?", const="", metavar="URL",
                        help="hub mode with the enrolment saved by an earlier --enroll "
                        "(URL: the hub moved)")
    d: dict[str, Any] = {f.name: f.default for f in fields(HubSettings)}  # one set of defaults
    parser.add_argument("--hub-poll-s", type=float, default=d["poll_s"],
                        help=f"hub mode: seconds between desired-state polls ({d['poll_s']:g})")
    parser.add_argument("--hub-push-s", type=float, default=d["push_s"],
                        help=f"hub mode: seconds between telemetry pushes ({d['push_s']:g})")
    parser.add_argument("--hub-backoff-max-s", type=float, default=d["backoff_max_s"],
                        help="hub mode: longest wait while the hub is away "
                        f"({d['backoff_max_s']:g})")


def hub_settings(args: argparse.Namespace, agent_dir: Path) -> HubSettings | None:
    """Hub mode from the command line, or None. Saves an enrolment (0600: the token) and
    trusts the desktop key it names."""
    from edge_agent.store.keys import KeyRing

    saved = agent_dir / HUB_DIR / ENROLMENT_FILE
    if args.enroll is not None:
        enrolment = Enrolment.read(args.enroll)
        if not KeyRing(agent_dir / "keys").trust(raw_public_key_from_b64(enrolment.desktop_key)):
            log.warning("desktop key %s was retired by a key rotation; not trusted again",
                        enrolment.desktop_key_fingerprint)
    elif args.hub is not None:
        if not saved.exists():
            raise EnrolmentFileInvalid(f"no hub enrolment in {agent_dir}: start once with "
                                       "--enroll FILE")
        enrolment = Enrolment.read(saved)
    else:
        return None
    if args.hub:
        enrolment = replace(enrolment, hub_url=args.hub.rstrip("/"))
    if enrolment.hub_url.startswith("https://") and not enrolment.hub_tls_spki:
        raise EnrolmentFileInvalid(f"hub {enrolment.hub_url} is https but the enrolment pins "
                                   "no hub certificate key: enrol again for that hub")
    saved.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(saved, enrolment.to_json_bytes(), mode=0o600)
    return HubSettings(enrolment, poll_s=args.hub_poll_s, push_s=args.hub_push_s,
                       backoff_max_s=args.hub_backoff_max_s)
