"""The DuckDB catalog: migrations, persistence, and the single-writer lock."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.catalog import Catalog, known_migrations
from core.config import Settings
from core.errors import CatalogInUse, OutpostError
from tests.conftest import run_cli


def test_new_catalog_applies_every_migration_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with Catalog.open(settings) as catalog:
        applied = [n for n, _ in catalog.applied_migrations()]
        assert applied == [m.number for m in known_migrations()]
        assert settings.catalog_path.is_file()
        assert settings.objects_dir.is_dir()
    with Catalog.open(settings) as catalog:
        assert [n for n, _ in catalog.applied_migrations()] == applied
        assert catalog.migrate() == []


def test_home_defaults_from_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"OUTPOST_HOME": str(tmp_path / "x")})
    assert settings.catalog_path == (tmp_path / "x" / "catalog.duckdb").resolve()
    assert Settings.from_env({}).home.name == "outpost"


def test_catalog_from_newer_outpost_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with Catalog.open(settings) as catalog:
        catalog.con.execute("INSERT INTO schema_migration (number, name) VALUES (9999, 'future')")
    with pytest.raises(OutpostError, match="newer Outpost"):
        Catalog.open(settings)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with Catalog.open(settings) as catalog:
        with pytest.raises(RuntimeError):
            with catalog.transaction() as cur:
                cur.execute("INSERT INTO dataset (name) VALUES ('x')")
                raise RuntimeError("boom")
        assert catalog.con.execute("SELECT count(*) FROM dataset").fetchone() == (0,)



def test_a_snapshot_reads_one_commit_whatever_lands_meanwhile(tmp_path: Path) -> None:
    """A read of several queries (a drift report) must not see half of a concurrent ingest:
    before this, a report summed histograms committed after its first query into its
    coverage but not into its feature counts."""
    settings = Settings(home=tmp_path / "home")
    with Catalog.open(settings) as catalog:
        with catalog.transaction() as cur:
            cur.execute("INSERT INTO dataset (name) VALUES ('before')")
        count = "SELECT count(*) FROM dataset"
        with catalog.snapshot() as view:
            assert view.cursor().execute(count).fetchone() == (1,)
            with catalog.transaction() as cur:  # another writer commits mid-read
                cur.execute("INSERT INTO dataset (name) VALUES ('during')")
            assert view.cursor().execute(count).fetchone() == (1,)
            assert catalog.cursor().execute(count).fetchone() == (2,)
            with pytest.raises(OutpostError, match="read-only"):
                with view.transaction():
                    pass
        assert catalog.cursor().execute(count).fetchone() == (2,)

def _hold_catalog(home: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from core.catalog import Catalog
        from core.config import Settings
        c = Catalog.open(Settings(home=Path({str(home)!r})))
        print("held", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_gets_one_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    holder = _hold_catalog(home)
    try:
        result = run_cli(home, "info", "--json")
        assert result.returncode == 1
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        held = home / "catalog.duckdb"
        assert lines == [f"error: catalog is in use by another Outpost process: {held}"]
        with pytest.raises(CatalogInUse):
            Catalog.open(Settings(home=home))
    finally:
        holder.communicate("", timeout=30)
    assert run_cli(home, "info", "--json").returncode == 0


def test_concurrent_writers_to_one_row_take_turns(tmp_path: Path) -> None:
    """GUI workers and the hub share one connection: updates of one row must not conflict."""
    import threading

    with Catalog.open(Settings(home=tmp_path / "home")) as catalog:
        with catalog.transaction() as cur:
            cur.execute("INSERT INTO dataset (name, description) VALUES ('d', '0')")
        errors: list[BaseException] = []

        def bump(times: int) -> None:
            try:
                for _ in range(times):
                    with catalog.transaction() as cur:
                        (value,) = cur.execute(
                            "SELECT description FROM dataset WHERE name = 'd'").fetchone()
                        cur.execute("UPDATE dataset SET description = ? WHERE name = 'd'",
                                    [str(int(value) + 1)])
            except BaseException as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=bump, args=(50,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert catalog.con.execute(
            "SELECT description FROM dataset WHERE name = 'd'").fetchone() == ("200",)
