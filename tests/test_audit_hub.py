"""Agent events carried by hub push: a hub-mode agent's own account of each activation
reaches the audit trail, and `audit at` answers from both views."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.audit.query import serving_at
from core.fleet.dispatch import deploy
from core.fleet.ledger import list_deployments
from core.hub import HubOptions
from tests.support.fleet import open_catalog
from tests.support.hub import enrol_and_start, register_adder, start_test_hub, wait_until

pytestmark = pytest.mark.xdist_group("hub")


def test_hub_agent_events_reach_the_trail_by_push(outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    hub = start_test_hub(catalog, "127.0.0.1", 0, HubOptions(contact_flush_s=0.2))
    try:
        refs = [register_adder(catalog, tmp_path, bias) for bias in (1.0, 2.0)]
        agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)
        try:
            for ref in refs:
                deployment = deploy(catalog, ref, "edge1").deployment
                wait_until(lambda d=deployment: next(
                    r for r in list_deployments(catalog) if r.id == d).status == "active",
                    30, f"deployment {deployment}")
            wait_until(lambda: catalog.cursor().execute(
                "SELECT count(*) FROM audit_event WHERE kind = 'agent_event' AND "
                "agent = 'edge1'").fetchone()[0] == 4, 30, "agent events pushed")
        finally:
            agent.stop()
        answer = serving_at(catalog, "edge1", datetime.now(UTC))
        ev = answer["evidence"]
        assert (answer["model"], answer["version"]) == ("adder", 2)
        assert ev["desktop"]["version"] == 2 and ev["agent"]["version"] == 2
        assert ev["agent"]["event"] == "activate" and ev["agree"] is True
        assert answer["rejected_agent_events"] == 0
    finally:
        hub.stop()
        catalog.close()
