"""`outpost agent capture` for a model the agent does not serve: refused with one line by a
real push agent, nothing stored (the hub path: tests/test_gui_capture.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.fleet.agents import add_agent
from core.keys import signing_key
from tests.conftest import run_cli
from tests.support.fleet import agents, train_mini

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
