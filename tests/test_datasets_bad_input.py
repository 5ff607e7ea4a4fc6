"""Bad input through the real CLI: one line on stderr, exit 1, catalog and objects unchanged."""
from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from core.datasets import (
    DatasetNotFound,
    VersionNotFound,
    derive_dataset,
    diff_versions,
    import_dataset,
    list_versions,
    resolve_version,
    version_path,
)
from core.datasets.names import default_name, validate_name
from core.errors import InvalidInput
from tests.conftest import OUTPOST, REPO, CliResult, run_cli
from tests.support.datasets import opened, state, write

GOOD = "a,b,c\n1,x,0.5\n2,y,1.5\n"


@pytest.fixture
def home(outpost_home: Path, tmp_path: Path) -> Path:
    """A catalog that already holds one dataset, so 'unchanged' means something."""
    with opened(outpost_home) as catalog:
        import_dataset(catalog, write(tmp_path / "base.csv", GOOD))
    return outpost_home


def assert_refused(home: Path, args: list[str], *needles: str,
                   run: Callable[..., CliResult] = run_cli) -> str:
    before = state(home)
    result = run(home, *args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert state(home) == before
    return lines[0]


RAGGED_LATE = "a,b,c\n" + "".join(f"{i},{i},{i}\n" for i in range(30_000)) + "1,2,3,4\n"
BAD_FILES: dict[str, tuple[str, bytes | str, tuple[str, ...]]] = {
    "empty file": ("empty.csv", b"", ("empty.csv is empty",)),
    "blank file": ("blank.csv", "\n  \n\n", ("blank.csv is empty",)),
    "header only": ("header.csv", "a,b,c\n", ("header.csv has no data rows",)),
    "ragged short row": ("short.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n",
                         ("ragged rows", "line 3 has 2 fields, expected 3")),
    "ragged long row, late": ("late.csv", RAGGED_LATE,
                              ("ragged rows", "line 30002 has 4 fields, expected 3")),
    "not utf-8 nor cp1252": ("bytes.csv", b"a,b\n1,\x81\x8d\x90\x9d\n",
                             ("not UTF-8 and not cp1252", "0x81")),
    "damaged utf-8": ("broken.csv", "a,b\nJosé,1\n".encode() + b"Zo\xeb\xff,2\n",
                      ("not valid UTF-8",)),
    "binary": ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ("binary",)),
    "duplicate columns": ("dup.csv", "a,b,a\n1,2,3\n", ("duplicate column names: a",)),
    "duplicate by case": ("case.csv", "Temp,temp\n1,2\n",
                          ("duplicate column names: Temp/temp",)),
    "empty column name": ("hole.csv", "a,,c\n1,2,3\n", ("empty column name at position 2",)),
    "unsupported extension": ("sheet.xls", b"\xd0\xcf\x11\xe0", ("unsupported file type .xls",)),
    "truncated xlsx": ("sheet.xlsx", b"PK\x03\x04", ("not a valid .xlsx file",)),
    "no extension": ("README", "a,b\n1,2\n", ("unsupported file type (none)",)),
    "truncated parquet": ("t.parquet", b"PAR1" + b"\x15\x00" * 200,
                          ("t.parquet is not a valid Parquet file",)),
    "csv named parquet": ("fake.parquet", GOOD, ("not a valid Parquet file",)),
    "malformed json": ("bad.json", '[{"a": 1}, {"a": ]', ("bad.json", "Malformed JSON")),
    "json key empty": ("k.ndjson", '{"": 1, "b": 2}\n', ("empty column name",)),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_is_refused(home: Path, tmp_path: Path, case: str) -> None:
    name, data, needles = BAD_FILES[case]
    path = write(tmp_path / "in" / name, data)
    assert_refused(home, ["dataset", "import", str(path)], *needles)


def test_truncated_real_parquet(home: Path, tmp_path: Path) -> None:
    with opened(home) as catalog:
        good = version_path(catalog, resolve_version(catalog, "base")).read_bytes()
    path = write(tmp_path / "cut.parquet", good[: len(good) // 2])
    assert_refused(home, ["dataset", "import", str(path)], "cut.parquet is not a valid Parquet")


def test_missing_file_and_directory(home: Path, tmp_path: Path) -> None:
    assert_refused(home, ["dataset", "import", str(tmp_path / "nope.csv")], "file not found")
    (tmp_path / "folder.csv").mkdir()
    assert_refused(home, ["dataset", "import", str(tmp_path / "folder.csv")], "is a directory")


@pytest.mark.parametrize("name,needle", [
    ("a/b", "must not contain '/'"),
    ("..", "must not contain '..'"),
    ("bell\x07", "control characters"),
    ("v@1", "must not contain '@'"),
    ("x" * 65, "too long (65 characters, at most 64)"),
])
def test_bad_dataset_names(home: Path, tmp_path: Path, name: str, needle: str) -> None:
    path = write(tmp_path / "ok.csv", GOOD)
    assert_refused(home, ["dataset", "import", str(path), "--name", name], needle)


@pytest.mark.parametrize("name,needle", [
    ("a\\b", "must not contain '\\\\'"),
    ("x..y", "must not contain '..'"),
    ("two\nlines", "control characters"),
    ("zero\u200bwidth", "control characters"),
    (" padded", "must not start or end with a space"),
    ("semi;colon", "contains ';'"),
    ("", "is empty"),
    ("-flag", "must start with a letter or a digit"),
])
def test_more_bad_names(name: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_name(name)
    assert needle in str(caught.value)


def test_names_that_are_fine_and_default_names() -> None:
    for name in ("sales", "Sales 2024", "v1.2_final-x", "données", "7day"):
        assert validate_name(name) == name
    assert default_name("my data (v2)") == "my_data_v2"
    assert default_name("...") == "dataset"
    assert default_name("a..b") == "a_b"


@pytest.mark.parametrize("name", ["../up", "tab\there"])
def test_derive_refuses_bad_names(home: Path, name: str) -> None:
    assert_refused(home, ["dataset", "derive", name, "--from", "base", "--sql",
                          "SELECT * FROM data"], "dataset name")


@pytest.mark.parametrize("sql,needles", [
    ("SELEC a FROM data", ("derive SQL does not parse", "SELEC")),
    ("SELECT nope FROM data", ("missing column 'nope'", "has: a, b, c")),
    ("SELECT a FROM data WHERE c > 'x'", ("derive SQL failed",)),
    ("DELETE FROM dataset_version", ("exactly one SELECT",)),
    ("SELECT * FROM data WHERE a > 100", ("returned no rows",)),
])
def test_derive_failures(home: Path, sql: str, needles: tuple[str, ...]) -> None:
    assert_refused(home, ["dataset", "derive", "child", "--from", "base", "--sql", sql], *needles)


@pytest.mark.parametrize("sql,needle", [
    ("SELECT a, a FROM data", "duplicate column names: a"),
    ("SELECT 1; DROP TABLE dataset", "exactly one SELECT"),
    ("SELECT * FROM data d1, data d2", "duplicate column names: a, b, c"),
    ("SELECT * FROM data, data", "derive SQL failed: Ambiguous reference"),
])
def test_more_derive_failures(home: Path, sql: str, needle: str) -> None:
    before = state(home)
    with opened(home) as catalog, pytest.raises(InvalidInput, match=needle):
        derive_dataset(catalog, "child", "base", sql)
    assert state(home) == before


@pytest.mark.parametrize("args,needle", [
    (["show", "base@ffff"], "dataset 'base' has no version 'ffff'"),
    (["profile", "ghost"], "no dataset named 'ghost'"),
    (["show", "base@xyz"], "at least 4 hex digits"),
    (["derive", "child", "--from", "base@abcdef", "--sql", "SELECT * FROM data"], "no version"),
])
def test_unknown_versions_and_datasets(home: Path, args: list[str], needle: str) -> None:
    assert_refused(home, ["dataset", *args], needle)


def test_unknown_versions_in_process(home: Path) -> None:
    with opened(home) as catalog:
        with pytest.raises(VersionNotFound, match="has no version '0000000000'"):
            resolve_version(catalog, "base@0000000000")
        with pytest.raises(DatasetNotFound):
            list_versions(catalog, "ghost")
        with pytest.raises(VersionNotFound):
            diff_versions(catalog, "base", "base@abcd")


def _limited_cli(limit: int) -> Callable[..., CliResult]:
    """The CLI with a file-size limit, as when the disk fills in the middle of a write."""

    def run(home: Path, *args: str) -> CliResult:
        def limit_files() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        env = dict(os.environ, OUTPOST_HOME=str(home), NO_COLOR="1")
        proc = subprocess.run([*OUTPOST, *args], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=120, preexec_fn=limit_files)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


def _random_csv(path: Path, rows: int = 40_000) -> Path:
    import numpy as np

    values = np.random.default_rng(7).random((rows, 3))
    lines = ["x,y,z"] + [f"{a:.12f},{b:.12f},{c:.12f}" for a, b, c in values]
    return write(path, "\n".join(lines) + "\n")


def test_write_failure_leaves_no_half_object(home: Path, tmp_path: Path) -> None:
    path = _random_csv(tmp_path / "big.csv")  # ~1 MB of Parquet, over the 400 KB limit
    assert_refused(home, ["dataset", "import", str(path)], "could not write the dataset object",
                   "File too large", run=_limited_cli(400 << 10))
    assert run_cli(home, "dataset", "import", str(path)).returncode == 0


def test_failure_moving_the_object_into_place(home: Path, tmp_path: Path) -> None:
    path = _random_csv(tmp_path / "big.csv", rows=2_000)
    other = tmp_path / "other-home"
    first = run_cli(other, "dataset", "show", "x")  # creates that catalog; refused, no dataset
    assert first.returncode == 1
    result = run_cli(other, "dataset", "import", str(path), "--json")
    with opened(other) as catalog:
        sha = resolve_version(catalog, "big").object
    assert result.json()["name"] == "big"
    # A file where the object's folder must go: the rename into the store fails.
    write(home / "objects" / sha[:2], b"in the way")
    line = assert_refused(home, ["dataset", "import", str(path)], "could not write object")
    assert sha[:12] not in line
