"""`deploy M@V|M@ALIAS --to AGENT` from the registry to a real agent: parity flag, JSON keys."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.fleet.agents import add_agent
from core.fleet.dispatch import agent_status, deploy
from core.fleet.errors import DeployRefused
from core.fleet.ledger import list_deployments
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.fleet import agents, open_catalog, train_mini

pytestmark = pytest.mark.xdist_group("fleet")


def test_deploy_by_alias_refuses_flagged_versions_unless_forced(outpost_home: Path,
                                                                tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    train_mini(catalog)  # pumps@2, which the parity check is made to flag below
    catalog.con.execute("UPDATE model_version SET flagged = true WHERE model = 'pumps' "
                        "AND version = 2")
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        result = deploy(catalog, "pumps@1", "edge")
        assert (result.model, result.version, result.status) == ("pumps", 1, "active")
        with pytest.raises(DeployRefused, match="pumps@2 failed its parity check.*--force"):
            deploy(catalog, "pumps@production", "edge")
        assert [d.version for d in list_deployments(catalog)] == [1]
        models = agent_status(catalog, "edge").models
        assert [(m["name"], m["active"]) for m in models] == [("pumps", 1)]
        catalog.close()
        refused = run_cli(outpost_home, "deploy", "pumps@production", "--to", "edge")
        assert refused.returncode == 1 and "parity check" in refused.stderr
        forced = run_cli(outpost_home, "deploy", "pumps@production", "--to", "edge", "--force",
                         "--json", check=True).json()
        assert forced == {"agent": "edge", "model": "pumps", "version": 2, "status": "active",
                          "deployment": forced["deployment"]}
        answer = httpx.post(f"{a.url}/v1/models/pumps/predict", verify=a.ssl, json={"records": [
            {"temp": 30.0, "site": "east", "load": 1.0}, {"temp": None, "site": "", "load": 0.0}]})
        assert answer.status_code == 200 and answer.json()["version"] == 2


def test_a_deploy_that_never_reaches_the_agent_is_recorded_as_failed(
        outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
    catalog.close()  # the agent has stopped: the desktop can no longer reach it
    result = run_cli(outpost_home, "deploy", "pumps@1", "--to", "edge", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "edge" in result.stderr
    catalog = open_catalog(outpost_home)
    (failed,) = list_deployments(catalog, agent="edge")
    assert (failed.model, failed.version, failed.status) == ("pumps", 1, "failed")
    assert failed.error and "cannot reach agent edge" in failed.error
