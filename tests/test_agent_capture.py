"""`outpost agent capture` for a model the agent does not serve: refused with one line on
a real push agent (CLI), on the desktop for a hub agent, and by a real hub agent itself when
the hub still carries a policy for a model that left it (reported back, not stored)."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.errors import NotFound
from core.fleet.agents import add_agent
from core.fleet.capture import capture_policy
from core.fleet.dispatch import agent_status, deploy, set_capture
from core.hub import HubHandle, HubOptions
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.fleet import agents, train_mini
from tests.support.hub import (
    enrol_and_start,
    register_adder,
    start_hub_agent,
    start_test_hub,
    wait_until,
)

pytestmark = [pytest.mark.xdist_group("fleet")]


def _held(folder: Path) -> dict[str, Any]:
    path = folder / "capture.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_cli_refuses_a_model_the_push_agent_does_not_serve(catalog: Catalog,
                                                          outpost_home: Path,
                                                          tmp_path: Path) -> None:
    train_mini(catalog)  # pumps is in the catalog, but not deployed to the agent
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "site", a.url, a.token)
        catalog.close()  # the CLI needs the catalog's single-writer lock
        result = run_cli(outpost_home, "agent", "capture", "site", "pumps", "--share", "0.1")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines == ["error: agent site refused: model 'pumps' is not served by this "
                         "agent: its capture policy was not set (deploy it first)"], \
            result.stderr
        assert _held(a.dir) == {}
        assert run_cli(outpost_home, "agent", "capture", "site", "pumps", "--clear"
                       ).returncode != 0


@pytest.fixture
def hub(catalog: Catalog) -> Iterator[HubHandle]:
    handle = start_test_hub(catalog, "127.0.0.1", 0, HubOptions(contact_flush_s=0.2))
    yield handle
    handle.stop()


def _refused(catalog: Catalog) -> dict[str, str]:
    return agent_status(catalog, "edge1").capture_refused


def test_a_hub_agent_refuses_a_policy_for_a_model_it_no_longer_serves(
        catalog: Catalog, hub: HubHandle, tmp_path: Path) -> None:
    agent = enrol_and_start(catalog, tmp_path, "edge1", hub.url)
    try:
        ref = register_adder(catalog, tmp_path)
        wait_until(lambda: agent_status(catalog, "edge1").runtime.get("onnxruntime"), 20,
                   "first poll")
        # The desktop knows from the last poll that adder is not there, and nothing is
        # pending: one line, nothing recorded.
        with pytest.raises(NotFound, match="agent edge1 does not serve adder"):
            set_capture(catalog, "edge1", "adder", capture_policy(share=1.0))
        deploy(catalog, ref, "edge1")  # pending: a policy may go with it
        set_capture(catalog, "edge1", "adder", capture_policy(share=1.0))
        wait_until(lambda: _held(agent.dir).get("adder", {}).get("share") == 1.0, 20,
                   "policy applied with the deployment")
        agent.stop()
        shutil.rmtree(agent.dir / "models" / "adder")  # removed on the device
        agent = start_hub_agent(agent.dir, "edge1", hub_url=hub.url)
        # The hub still sends the policy: refused, not stored, and said so in the next poll.
        wait_until(lambda: "adder" in _refused(catalog), 20, "refusal reported")
        assert "model 'adder' is not served by this agent" in _refused(catalog)["adder"]
        assert _held(agent.dir) == {}
        assert "capture policy was not set" in agent.log_text()
        # Deployed again: the same poll installs it and takes the policy; the refusal goes.
        deploy(catalog, register_adder(catalog, tmp_path, bias=2.0), "edge1")
        wait_until(lambda: _held(agent.dir).get("adder", {}).get("share") == 1.0, 20,
                   "policy applied after the new deployment")
        wait_until(lambda: _refused(catalog) == {}, 20, "refusal cleared")
    finally:
        agent.stop()
