"""Looking at datasets: list, versions, show, head, profile, diff and derive (API and CLI)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from core.datasets import (
    derive_dataset,
    diff_versions,
    import_dataset,
    import_frame,
    list_versions,
    profile_version,
    read_frame,
    resolve_version,
)
from core.errors import InvalidInput
from tests.conftest import CliResult
from tests.support.datasets import opened, write

SALES = "region,units,price,day\n" + "".join(
    f"{r},{u},{p},2024-01-{d:02d}\n"
    for r, u, p, d in [("north", 3, 9.5, 1), ("south", 5, 12.0, 2), ("north", 1, 7.25, 3),
                       ("east", 8, 10.0, 4), ("north", 2, 11.0, 5)])


@pytest.fixture
def sales(outpost_home: Path, tmp_path: Path) -> Path:
    with opened(outpost_home) as catalog:
        import_dataset(catalog, write(tmp_path / "sales.csv", SALES))
    return outpost_home


def test_profile_is_exact_where_it_can_be(outpost_home: Path) -> None:
    x = [None if i % 10 == 0 else float(i) for i in range(100)]
    s = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + [None] * 5
    ids = [f"id{i}" for i in range(100)]
    with opened(outpost_home) as catalog:
        import_frame(catalog, "p", pa.table({"x": x, "s": s, "id": ids}), {})
    with opened(outpost_home) as catalog:
        profile = profile_version(catalog, resolve_version(catalog, "p"))
    px, ps, pid = profile.column("x"), profile.column("s"), profile.column("id")
    assert profile.rows == 100
    assert (px.kind, px.count, px.nulls, px.min, px.max) == ("numeric", 90, 10, 1.0, 99.0)
    expected_mean = sum(v for v in x if v is not None) / 90
    assert px.mean == pytest.approx(expected_mean)
    assert px.quantiles is not None and px.quantiles["p50"] == pytest.approx(50, abs=3)
    assert px.histogram is not None and len(px.histogram) == 20
    assert sum(n for _, _, n in px.histogram) == 90
    assert px.histogram[0][0] == 1.0 and px.histogram[-1][1] == 99.0
    assert (ps.kind, ps.nulls, ps.distinct) == ("string", 5, 3)
    assert ps.top == [("a", 50), ("b", 30), ("c", 15)] and ps.histogram is None
    assert pid.distinct == pytest.approx(100, rel=0.1)


def test_diff_reports_schema_rows_and_stats(outpost_home: Path) -> None:
    a = pa.table({"k": [1, 2, 3, 4], "v": [1.0, 2.0, 3.0, 4.0], "gone": ["x"] * 4})
    b = pa.table({"k": ["1", "2", "3", "4", "5"], "v": [10.0, 20.0, 30.0, 40.0, 50.0],
                  "new": [True] * 5})
    with opened(outpost_home) as catalog:
        import_frame(catalog, "d", a, {})
        import_frame(catalog, "d", b, {})
        versions = list_versions(catalog, "d")
    with opened(outpost_home) as catalog:
        diff = diff_versions(catalog, versions[1].ref, versions[0].ref)
        same = diff_versions(catalog, versions[0], versions[0])
    assert diff.rows == (4, 5) and not diff.same_content
    assert [c.name for c in diff.added] == ["new"]
    assert [c.name for c in diff.removed] == ["gone"]
    assert diff.retyped == [("k", "BIGINT", "VARCHAR")]
    mean = next(c for c in diff.changes if (c.column, c.stat) == ("v", "mean"))
    assert (mean.a, mean.b, mean.delta, mean.notable) == (2.5, 30.0, 27.5, True)
    assert same.same_content and same.changes == []


def test_derive_records_lineage_and_is_idempotent(sales: Path) -> None:
    with opened(sales) as catalog:
        parent = resolve_version(catalog, "sales")
        first = derive_dataset(catalog, "north", "sales",
                               "SELECT region, units * price AS revenue FROM data "
                               "WHERE region = 'north' ORDER BY revenue;")
    with opened(sales) as catalog:
        again = derive_dataset(catalog, "north", f"sales@{parent.short}",
                               "SELECT region, units * price AS revenue FROM data "
                               "WHERE region = 'north' ORDER BY revenue")
        child = resolve_version(catalog, "north")
        frame = read_frame(catalog, child)
        grandchild = derive_dataset(catalog, "north_top", child, "SELECT * FROM data LIMIT 1")
        top = resolve_version(catalog, "north_top")
    assert first.new and not again.new and first.version == again.version
    assert child.parent == ("sales", parent.version)
    assert child.source["kind"] == "derive" and "units * price" in child.source["sql"]
    assert frame["revenue"].tolist() == [7.25, 22.0, 28.5]
    assert grandchild.rows == 1 and top.parent == ("north", child.version)


def test_resolve_version_forms(sales: Path, tmp_path: Path) -> None:
    with opened(sales) as catalog:
        latest = resolve_version(catalog, "sales")
        assert resolve_version(catalog, f"sales@{latest.version}") == latest
        assert resolve_version(catalog, f"sales@{latest.version[:4].upper()}") == latest
        assert latest.ref == f"sales@{latest.version[:12]}" and latest.short == latest.version[:12]
        with pytest.raises(InvalidInput, match="at least 4 hex"):
            resolve_version(catalog, "sales@abc")


def ok(result: CliResult) -> Any:
    assert result.returncode == 0, result.stderr
    return result.json()


def test_cli_json_views(sales: Path, cli) -> None:  # type: ignore[no-untyped-def]
    listed = ok(cli("dataset", "list", "--json"))["datasets"]
    assert [(d["name"], d["rows"], d["columns"], d["versions"]) for d in listed] == [
        ("sales", 5, 4, 1)]
    version = listed[0]["latest"]
    versions = ok(cli("dataset", "versions", "sales", "--json"))
    assert [v["version"] for v in versions["versions"]] == [version]
    shown = ok(cli("dataset", "show", f"sales@{version[:8]}", "--json"))
    assert shown["version"] == version and shown["parent"] is None
    assert shown["columns"][3] == {"name": "day", "type": "DATE"}
    head = ok(cli("dataset", "head", "sales", "--rows", "2", "--json"))
    assert head["columns"] == ["region", "units", "price", "day"]
    assert head["rows"] == [["north", 3, 9.5, "2024-01-01"], ["south", 5, 12.0, "2024-01-02"]]
    profile = ok(cli("dataset", "profile", "sales", "--json"))
    region = profile["columns"][0]
    assert region["top"][0] == {"value": "north", "count": 3}
    derived = ok(cli("dataset", "derive", "big_orders", "--from", "sales", "--sql",
                     "SELECT * FROM data WHERE units >= 3", "--json"))
    assert derived["rows"] == 3 and derived["new"] and derived["parent"] == f"sales@{version}"
    diff = ok(cli("dataset", "diff", "sales", "big_orders", "--json"))
    assert diff["rows"] == {"a": 5, "b": 3, "delta": -2}
    assert {"column": "units", "stat": "min", "a": 1, "b": 3, "delta": 2.0,
            "notable": True} in diff["changes"]


def test_cli_human_views(sales: Path, cli) -> None:  # type: ignore[no-untyped-def]
    listed = cli("dataset", "list")
    assert listed.returncode == 0 and "sales" in listed.stdout and "5" in listed.stdout
    profile = cli("dataset", "profile", "sales")
    assert "region" in profile.stdout and "north 60%" in profile.stdout
    head = cli("dataset", "head", "sales", "-n", "1")
    assert "north" in head.stdout and "south" not in head.stdout
    derive = cli("dataset", "derive", "cheap", "--from", "sales", "--sql",
                 "SELECT * FROM data WHERE price < 10")
    assert derive.returncode == 0 and "derived cheap@" in derive.stdout
    show = cli("dataset", "show", "cheap")
    assert "derive from sales@" in show.stdout and "price < 10" in show.stdout
    diff = cli("dataset", "diff", "sales", "cheap")
    assert "rows 5 → 2 (-3)" in diff.stdout and "notable changes" in diff.stdout
    empty = cli("dataset", "versions", "cheap")
    assert empty.returncode == 0 and "derive from sales@" in empty.stdout


def test_cli_list_on_an_empty_catalog(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("dataset", "list", "--json").json() == {"datasets": []}
    assert "no datasets yet" in cli("dataset", "list").stdout
