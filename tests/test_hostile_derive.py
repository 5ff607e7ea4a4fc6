"""`outpost dataset derive` (and a pipeline's derive step) runs its SQL in a sandbox that
sees the parent version only: no other file, no catalog table, no agent token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.contract.protocol import generate_signing_key
from tests.conftest import run_cli
from tests.support.fleet import enrol_row, open_catalog

pytestmark = pytest.mark.xdist_group("hostile_derive")

SECRET = "token-token"  # what enrol_row stores


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    csv = tmp_path / "sensors.csv"
    csv.write_text("a,b\n1,x\n2,y\n3,z\n")
    run_cli(home, "dataset", "import", str(csv), "--name", "sensors", check=True)
    catalog = open_catalog(home)
    enrol_row(catalog, "edge", generate_signing_key())
    catalog.close()
    return home


def _datasets(home: Path) -> object:
    return json.loads(run_cli(home, "dataset", "list", "--json", check=True).stdout)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM agent",
    "SELECT name, token FROM agent, data",
    "SELECT * FROM read_blob('{home}/catalog.duckdb')",
])
def test_derive_sql_cannot_read_files_or_catalog_tables(home: Path, sql: str) -> None:
    before = _datasets(home)
    result = run_cli(home, "dataset", "derive", "stolen", "--from", "sensors",
                     "--sql", sql.format(home=home))
    assert result.returncode == 1, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert _datasets(home) == before


def test_pipeline_derive_runs_in_the_same_sandbox(home: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('name = "thief"\n\n[[steps]]\nkind = "derive"\nname = "stolen"\n'
                        'from = "sensors"\nsql = "SELECT token FROM agent"\n')
    result = run_cli(home, "pipeline", "run", str(pipeline))
    assert result.returncode == 1, result.stdout
    assert "agent does not exist" in result.stderr and SECRET not in result.stdout


def test_derive_over_the_parent_still_works(home: Path) -> None:
    result = run_cli(home, "dataset", "derive", "big", "--from", "sensors", "--sql",
                     "SELECT a * 10 AS a, upper(b) AS b FROM data WHERE a > 1", "--json",
                     check=True)
    assert json.loads(result.stdout)["rows"] == 2
