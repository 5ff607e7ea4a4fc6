"""An old, still-installed version never comes back by re-delivery: not by upload, not
through the USB inbox, not by `outpost deploy M@1`. Only an explicit rollback goes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.fleet.agents import add_agent
from core.keys import signing_key
from edge_agent.contract.protocol import generate_signing_key
from tests.conftest import run_cli
from tests.support.agents import AgentProcess, json_request, make_identity_bundle, running_agent
from tests.support.fleet import agents, open_catalog
from tests.support.hostile import wait_for
from tests.support.hub import register_adder

pytestmark = pytest.mark.xdist_group("hostile_downgrade")


def _active(url: str, headers: dict[str, str]) -> int | None:
    status, doc = json_request(f"{url}/v1/status", headers=headers)
    assert status == 200, doc
    return next((m["active"] for m in doc["models"] if m["name"] == "adder"), None)


def _upload(agent: AgentProcess, bundle: Path, query: str = "") -> tuple[int, dict[str, str]]:
    return json_request(f"{agent.url}/v1/bundles{query}", data=bundle.read_bytes(),
                        headers=agent.headers())


def test_old_version_comes_back_only_by_rollback(tmp_path: Path) -> None:
    key = generate_signing_key()
    inbox = tmp_path / "inbox"
    v1 = make_identity_bundle(tmp_path, key, version=1)
    v2 = make_identity_bundle(tmp_path, key, version=2)
    with running_agent(tmp_path / "agent", key, extra_args=("--inbox", str(inbox))) as agent:
        assert _upload(agent, v1)[0] == 200
        assert _upload(agent, v2)[0] == 200
        status, doc = _upload(agent, v1)
        assert status == 409 and "older" in doc["error"], doc
        assert _active(agent.url, agent.headers()) == 2
        (inbox / "adder-1.outpost").write_bytes(v1.read_bytes())
        wait_for(lambda: (inbox / "adder-1.result.json").exists(), 15, "a result")
        doc = json.loads((inbox / "adder-1.result.json").read_text())
        assert doc["status"] == "refused" and doc["error_type"] == "DowngradeRefused", doc
        assert _active(agent.url, agent.headers()) == 2
        assert _upload(agent, v2)[0] == 200  # the same version again is a harmless retry
        status, doc = json_request(f"{agent.url}/v1/models/adder/rollback", {},
                                   headers=agent.headers())
        assert status == 200 and doc["active"] == 1
        assert _upload(agent, v1)[0] == 200  # what is active already: a retry, no change
        assert _active(agent.url, agent.headers()) == 1
        status, doc = _upload(agent, v1, "?rollback=true")
        assert status == 200


def test_deploy_of_an_older_version_needs_allow_downgrade(outpost_home: Path,
                                                         tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    register_adder(catalog, tmp_path, bias=1.0)
    register_adder(catalog, tmp_path, bias=2.0)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        catalog.close()
        headers = {"Authorization": f"Bearer {a.token}"}
        for version in (1, 2):
            run_cli(outpost_home, "deploy", f"adder@{version}", "--to", "edge", check=True)
        refused = run_cli(outpost_home, "deploy", "adder@1", "--to", "edge")
        assert refused.returncode == 1, refused.stdout
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert _active(a.url, headers) == 2
        run_cli(outpost_home, "deploy", "adder@1", "--to", "edge", "--allow-downgrade",
                check=True)
        assert _active(a.url, headers) == 1
