"""Real-world files through the real CLI: row accounting, encodings, decimal commas, .xlsx.

Every way a file could lose rows or columns silently is either imported whole
(lines read == rows stored, in --json and in the version's metadata) or refused
with one line that names the line, leaving catalog and objects unchanged.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.support.datasets import write
from tests.test_datasets_bad_input import GOOD, assert_refused

ISSUE_RAGGED = "a,b,c\n1,2,3\n4,5\n6,7,8,9\n"


@pytest.fixture
def home(outpost_home: Path, tmp_path: Path) -> Path:
    """A catalog that already holds one dataset, so 'unchanged' means something."""
    assert run_cli(outpost_home, "dataset", "import", str(write(tmp_path / "base.csv", GOOD)),
                   "--json").returncode == 0
    return outpost_home


def imported(home: Path, path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = run_cli(home, "dataset", "import", str(path), "--json", *args)
    assert result.returncode == 0, result.stderr
    data: dict = result.json()  # type: ignore[type-arg]
    return data


def rows_of(home: Path, name: str) -> list[list[object]]:
    head = run_cli(home, "dataset", "head", name, "--rows", "100", "--json")
    assert head.returncode == 0, head.stderr
    rows: list[list[object]] = head.json()["rows"]
    return rows


def source_of(home: Path, name: str) -> dict:  # type: ignore[type-arg]
    source: dict = run_cli(home, "dataset", "show", name, "--json").json()["source"]  # type: ignore[type-arg]
    return source


# ---- files that used to lose rows or columns without a word -------------------------------

REFUSED = {
    "ragged rows (the issue's file)": (ISSUE_RAGGED, ("ragged rows", "line 3 has 2 fields",
                                                      "--bad-lines")),
    "a comment line": ("a,b,c\n1,2,3\n# note\n4,5,6\n", ("line 3 has 1 field",)),
    "a delimiter that appears only later": ("a b\n1 2\n3 4\n5;6\n", ("line 4 has 2 fields",)),
    "a byte-order mark in the middle": ("a,b,c\n1,2,3\n\ufeffa,b,c\n4,5,6\n",
                                        ("line 3 holds a byte-order mark",)),
    "a trailing delimiter": ("a,b,c,\n1,2,3,\n4,5,6,\n", ("empty column name at position 4",
                                                          "delimiter at the end")),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_silent_loss_is_refused(home: Path, tmp_path: Path, case: str) -> None:
    text, needles = REFUSED[case]
    path = write(tmp_path / "f.csv", text)
    assert_refused(home, ["dataset", "import", str(path)], "f.csv", *needles)


KEPT = {
    "quoted delimiters and newlines": ('a,b\n"x,y",1\n"p\nq",2\n"r ""s""",3\n', 3),
    "mixed line endings": ("a,b\r\n1,2\n3,4\r\n5,6\n", 3),
    "blank lines and trailing blank lines": ("a,b\n1,2\n\n3,4\n\n\n", 2),
    "no newline at the end": ("a,b\n1,2\n3,4", 2),
}


@pytest.mark.parametrize("case", list(KEPT))
def test_awkward_but_whole_files_keep_every_row(home: Path, tmp_path: Path, case: str) -> None:
    text, rows = KEPT[case]
    data = imported(home, write(tmp_path / "w.csv", text))
    assert data["rows"] == rows
    assert data["lines"] == {"read": rows, "stored": rows, "skipped": 0, "padded": 0}
    assert source_of(home, "w")["lines"]["read"] == rows
    assert len(rows_of(home, "w")) == rows


def test_quoted_newline_value_survives(home: Path, tmp_path: Path) -> None:
    imported(home, write(tmp_path / "q.csv", KEPT["quoted delimiters and newlines"][0]))
    assert rows_of(home, "q") == [["x,y", 1], ["p\nq", 2], ['r "s"', 3]]


def test_skip_policy_counts_into_json_and_metadata(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", ISSUE_RAGGED)
    data = imported(home, path, "--bad-lines", "skip")
    assert data["rows"] == 1
    assert data["lines"] == {"read": 3, "stored": 1, "skipped": 2, "padded": 0}
    assert rows_of(home, "r") == [[1, 2, 3]]
    source = source_of(home, "r")
    assert source["lines"] == data["lines"] and source["bad_lines"] == "skip"
    human = run_cli(home, "dataset", "import", str(path), "--name", "r2", "--bad-lines", "skip")
    assert "3 lines read, 2 skipped" in human.stdout


def test_null_pad_policy_pads_short_lines(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "a,b,c\n1,2,3\n4,5\n# note\n7,8,9\n")
    data = imported(home, path, "--bad-lines", "null-pad")
    assert data["lines"] == {"read": 4, "stored": 4, "skipped": 0, "padded": 2}
    assert rows_of(home, "p") == [["1", 2, 3], ["4", 5, None], ["# note", None, None],
                                  ["7", 8, 9]]


def test_null_pad_refuses_a_long_line(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", ISSUE_RAGGED)
    assert_refused(home, ["dataset", "import", str(path), "--bad-lines", "null-pad"],
                   "line 4 has 4 fields", "--bad-lines skip")


def test_skip_policy_on_a_late_bad_line(home: Path, tmp_path: Path) -> None:
    body = "".join(f"{i},{i * 2}\n" for i in range(50_000))
    path = write(tmp_path / "big.csv", "a,b\n" + body + "1,2,3\n" + body)
    assert_refused(home, ["dataset", "import", str(path)], "line 50002 has 3 fields")
    data = imported(home, path, "--bad-lines", "skip")
    assert data["lines"] == {"read": 100_001, "stored": 100_000, "skipped": 1, "padded": 0}


def test_bad_policy_name_is_refused(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", ISSUE_RAGGED)
    assert_refused(home, ["dataset", "import", str(path), "--bad-lines", "drop"],
                   "--bad-lines must be one of skip, null-pad")


# ---- encodings and decimal commas ---------------------------------------------------------

def test_cp1252_is_detected(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "win.csv", "city,price\nMünchen,5 €\nSão Paulo,7\n".encode("cp1252"))
    data = imported(home, path)
    assert data["rows"] == 2
    assert rows_of(home, "win") == [["München", "5 €"], ["São Paulo", "7"]]
    assert source_of(home, "win")["encoding"] == "cp1252"


def test_utf16_with_bom_is_detected(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "u16.csv", "name,n\nÅsa,1\nZoë,2\n".encode("utf-16"))
    imported(home, path)
    assert rows_of(home, "u16") == [["Åsa", 1], ["Zoë", 2]]


def test_utf16_without_bom_needs_encoding(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "le.csv", "name,n\nÅsa,1\nZoë,2\n".encode("utf-16-le"))
    assert_refused(home, ["dataset", "import", str(path)],
                   "looks like UTF-16 without a byte-order mark", "--encoding utf-16-le")
    imported(home, path, "--encoding", "utf-16-le")
    assert rows_of(home, "le") == [["Åsa", 1], ["Zoë", 2]]


def test_unknown_or_wrong_encoding_is_refused(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "a\nü\n")
    assert_refused(home, ["dataset", "import", str(path), "--encoding", "klingon"],
                   "unknown encoding 'klingon'")
    assert_refused(home, ["dataset", "import", str(path), "--encoding", "ascii"],
                   "is not ascii text")


def test_european_decimal_comma(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "eu.csv", "item;price;qty\nTee;1,50;3\nKaffee;2,25;1\n")
    imported(home, path, "--decimal", ",")
    show = run_cli(home, "dataset", "show", "eu", "--json").json()
    assert [c["type"] for c in show["columns"]] == ["VARCHAR", "DOUBLE", "BIGINT"]
    assert rows_of(home, "eu") == [["Tee", 1.5, 3], ["Kaffee", 2.25, 1]]
    assert show["source"]["decimal"] == ","


def test_decimal_comma_with_comma_delimiter_is_refused(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "a,b\n1,2\n3,4\n")
    assert_refused(home, ["dataset", "import", str(path), "--decimal", ","],
                   "is also the delimiter")


# ---- .xlsx --------------------------------------------------------------------------------

def workbook(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Sales"
    first.append(["id", "region", "amount", "day", "note"])
    first.append([1, "north", 1.5, dt.date(2024, 1, 2), "ok"])
    first.append([2, None, 2.25, dt.date(2024, 1, 3), 7])
    first.append([])
    first.append([3, "south", 4, dt.date(2024, 1, 4), None])
    book.create_sheet("Costs").append(["k", "v"])
    book["Costs"].append(["rent", 900])
    book.save(path)
    return path


def test_xlsx_first_sheet_by_default(home: Path, tmp_path: Path) -> None:
    data = imported(home, workbook(tmp_path / "book.xlsx"))
    assert data["rows"] == 3 and data["lines"]["read"] == 3
    show = run_cli(home, "dataset", "show", "book", "--json").json()
    assert [(c["name"], c["type"]) for c in show["columns"]] == [
        ("id", "BIGINT"), ("region", "VARCHAR"), ("amount", "DOUBLE"), ("day", "DATE"),
        ("note", "VARCHAR")]
    assert show["source"]["sheet"] == "Sales"
    assert rows_of(home, "book") == [[1, "north", 1.5, "2024-01-02", "ok"],
                                     [2, None, 2.25, "2024-01-03", "7"],
                                     [3, "south", 4.0, "2024-01-04", None]]


def test_xlsx_named_sheet(home: Path, tmp_path: Path) -> None:
    imported(home, workbook(tmp_path / "book.xlsx"), "--sheet", "Costs", "--name", "costs")
    assert rows_of(home, "costs") == [["rent", 900]]


def test_xlsx_bad_inputs(home: Path, tmp_path: Path) -> None:
    book = workbook(tmp_path / "book.xlsx")
    assert_refused(home, ["dataset", "import", str(book), "--sheet", "Nope"],
                   "has no sheet 'Nope'", "'Sales', 'Costs'")
    corrupt = write(tmp_path / "cut.xlsx", book.read_bytes()[:700])
    assert_refused(home, ["dataset", "import", str(corrupt)], "not a valid .xlsx file")
    locked = tmp_path / "locked.xlsx"
    from msoffcrypto.format.ooxml import OOXMLFile

    with book.open("rb") as plain, locked.open("wb") as out:
        OOXMLFile(plain).encrypt("secret", out)
    assert_refused(home, ["dataset", "import", str(locked)], "password-protected")
    assert_refused(home, ["dataset", "import", str(write(tmp_path / "x.csv", GOOD)),
                          "--sheet", "Sales"], "--sheet does not apply to csv files")
