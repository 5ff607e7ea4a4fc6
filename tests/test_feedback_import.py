"""`import_feedback` against a real catalog: orphans joined when predictions arrive later,
one-line refusals of wrong label types, and a regression model's id,value file."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.accuracy import accuracy_report
from core.catalog import Catalog
from core.errors import InvalidInput
from core.feedback import import_feedback
from core.progress import ProgressEvent
from core.telemetry.ingest import ingest_table, records_table
from tests.support.fleet import open_catalog, train_mini
from tests.support.hub import register_adder


@pytest.fixture
def catalog(outpost_home: Path) -> Catalog:
    cat = open_catalog(outpost_home)
    train_mini(cat)
    return cat


def _predictions(catalog: Catalog, model: str, ids: list[str], predicted: list[str],
                 seq: int = 1) -> None:
    record = {"kind": "prediction", "seq": seq, "ts": 1e9, "model": model, "version": 1,
              "ids": ids, "predicted": predicted, "times": [1e9] * len(ids)}
    ingest_table(catalog, "edge", records_table([record]), where="test")


def test_labels_before_their_predictions_are_orphans_then_join(catalog: Catalog,
                                                                tmp_path: Path) -> None:
    ids = [f"a:1:{n}" for n in range(10)]
    path = tmp_path / "early.csv"
    path.write_text("id,label\n" + "".join(f"{i},1\n" for i in ids))
    first = import_feedback(catalog, path, "pumps")
    assert (first.new, first.orphans) == (10, 10)
    assert accuracy_report(catalog, "pumps").agents == []
    _predictions(catalog, "pumps", ids, ["1"] * 6 + ["0"] * 4)
    (entry,) = accuracy_report(catalog, "pumps").agents
    assert (entry.labelled, entry.correct, entry.accuracy) == (10, 6, 0.6)
    assert entry.recall == {"1": 0.6} and entry.confusion == {"1": {"1": 6, "0": 4}}
    assert accuracy_report(catalog, "pumps").orphans == 0


@pytest.mark.parametrize("text,message", [
    ("id,label\na:1:1,2\n", "not a class of model pumps (0, 1) (first: line 2: '2')"),
    ("id,label\n,1\n", "1 rows have no id (first: line 2)"),
    ("id,value\na:1:1,1\n", "model pumps is a classifier"),
    ("name,label\na,1\n", "needs an id column"),
    ("id,label,ts\na:1:1,1,yesterday\n", "neither unix seconds nor an ISO time"),
])
def test_wrong_labels_are_refused_in_one_line_and_nothing_is_stored(
        catalog: Catalog, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    allocator = ("SELECT current_setting('allocator_flush_threshold'), "
                 "current_setting('allocator_bulk_deallocation_flush_threshold')")
    before = catalog.cursor().execute(allocator).fetchone()
    with pytest.raises(InvalidInput) as err:
        import_feedback(catalog, path, "pumps")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert catalog.cursor().execute("SELECT count(*) FROM feedback").fetchone() == (0,)
    assert catalog.cursor().execute(allocator).fetchone() == before  # the import's, put back


def test_regression_takes_numbers_and_reports_mae_rmse(catalog: Catalog,
                                                       tmp_path: Path) -> None:
    register_adder(catalog, tmp_path)
    _predictions(catalog, "adder", ["b:1:1", "b:1:2"], ["2.0", "4.0"], seq=5)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,value\nb:1:1,abc\n")
    with pytest.raises(InvalidInput, match="not a number"):
        import_feedback(catalog, bad, "adder")
    good = tmp_path / "good.csv"
    good.write_text("id,value\nb:1:1,3\nb:1:2,4.0\nb:1:2,5\n")
    result = import_feedback(catalog, good, "adder")
    assert (result.labels, result.duplicates) == (2, 1)
    (entry,) = accuracy_report(catalog, "adder").agents
    assert entry.mae == pytest.approx(1.0) and entry.rmse == pytest.approx(1.0)


def test_a_later_label_replaces_the_earlier_and_says_so(catalog: Catalog,
                                                        tmp_path: Path) -> None:
    ids = [f"a:1:{n}" for n in range(6)]
    _predictions(catalog, "pumps", ids, ["1"] * 6)
    first = tmp_path / "first.csv"
    first.write_text("id,label\n" + "".join(f"{i},1\n" for i in ids))
    assert import_feedback(catalog, first, "pumps").new == 6
    later = tmp_path / "later.csv"  # two ids change, one twice in the file (last wins)
    later.write_text("id,label\na:1:0,0\na:1:1,1\na:1:2,1\na:1:2,0\na:1:9,0\n")
    result = import_feedback(catalog, later, "pumps")
    assert (result.rows, result.labels, result.new, result.replaced, result.unchanged,
            result.duplicates, result.orphans) == (5, 4, 1, 2, 1, 1, 1)
    (entry,) = accuracy_report(catalog, "pumps").agents
    assert (entry.labelled, entry.correct) == (6, 4)
    assert import_feedback(catalog, later, "pumps").unchanged == 4
    rows = catalog.cursor().execute("SELECT count(*), count(DISTINCT id) FROM feedback")
    assert rows.fetchone() == (7, 7)


def test_labels_imported_before_migration_12_keep_their_model_file_and_time(
        outpost_home: Path, tmp_path: Path) -> None:
    """A catalog from before 0012 (model, file and time on every label row) migrates: the
    labels stay current, grouped by import, and importing them again changes nothing."""
    cat = open_catalog(outpost_home)
    train_mini(cat)
    cat.con.execute(
        "DROP TABLE feedback; DROP TABLE feedback_import; DROP TABLE hub_capture; "
        "DELETE FROM schema_migration WHERE number >= 12; "
        "CREATE TABLE feedback (model VARCHAR NOT NULL, id VARCHAR NOT NULL, label VARCHAR "
        "NOT NULL, ts DOUBLE NOT NULL, source VARCHAR NOT NULL, imported_at TIMESTAMPTZ "
        "NOT NULL DEFAULT now()); INSERT INTO feedback VALUES "
        "('pumps', 'a:1:1', '1', 1e9, 'a.csv', '2026-01-01'), "
        "('pumps', 'a:1:2', '0', 1e9, 'a.csv', '2026-01-01'), "
        "('pumps', 'a:1:3', '1', 2e9, 'b.csv', '2026-02-01')")
    cat.close()
    cat = open_catalog(outpost_home)
    imports = cat.con.execute("SELECT import, model, source FROM feedback_import "
                              "ORDER BY import").fetchall()
    assert imports == [(1, "pumps", "a.csv"), (2, "pumps", "b.csv")]
    assert cat.con.execute("SELECT import, id, label FROM feedback ORDER BY id").fetchall() == [
        (1, "a:1:1", "1"), (1, "a:1:2", "0"), (2, "a:1:3", "1")]
    again = tmp_path / "a.csv"
    again.write_text("id,label\na:1:1,1\na:1:2,0\n")
    assert import_feedback(cat, again, "pumps").unchanged == 2
    cat.close()


def test_a_file_read_in_parallel_keeps_its_order_and_its_line_numbers(
        catalog: Catalog, tmp_path: Path) -> None:
    """Big enough (~6 MB) for DuckDB to read in parallel chunks: the last row of an id
    still wins, spaces round a cell are trimmed, and a refused row deep in the file is
    named by its line with nothing stored."""
    n = 400_000
    path = tmp_path / "big.csv"
    path.write_text("id,label\n" + "".join(f"a:1:{i},0\n" for i in range(n))
                    + " a:1:7 , 1 \na:1:3,1\n")
    result = import_feedback(catalog, path, "pumps")
    assert (result.rows, result.labels, result.duplicates, result.new) == (n + 2, n, 2, n)
    labels = catalog.cursor().execute(
        "SELECT id, label FROM feedback WHERE label = '1' ORDER BY id").fetchall()
    assert labels == [("a:1:3", "1"), ("a:1:7", "1")]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n" + "".join(f"b:1:{i},{'7' if i == n - 5 else '1'}\n"
                                          for i in range(n)))
    with pytest.raises(InvalidInput, match=f"1 rows have a label that is not a class of "
                       rf"model pumps \(0, 1\) \(first: line {n - 3}: '7'\)"):
        import_feedback(catalog, bad, "pumps")
    rows = catalog.cursor().execute("SELECT count(*), count(DISTINCT import) FROM feedback")
    assert rows.fetchone() == (n, 1)


def test_the_same_file_again_changes_nothing_and_counts_orphans_anew(
        catalog: Catalog, tmp_path: Path) -> None:
    """The model's latest import again, byte for byte: known before anything is written,
    reported like the first time but unchanged, with the orphans of now. After another
    import the same file is read in full again (it may replace what came later); under
    other classes it is checked again."""
    ids = [f"a:1:{n}" for n in range(8)]
    a = tmp_path / "a.csv"
    a.write_text("id,label\n" + "".join(f"{i},1\n" for i in ids) + "a:1:0,0\n")
    first = import_feedback(catalog, a, "pumps")
    assert (first.rows, first.labels, first.duplicates, first.new, first.orphans) == \
        (9, 8, 1, 8, 8)
    _predictions(catalog, "pumps", ids[:5], ["1"] * 5)  # five of them answered since

    def imports() -> int:
        return int(catalog.cursor().execute("SELECT count(*) FROM feedback_import")
                   .fetchall()[0][0])

    again = import_feedback(catalog, a, "pumps")
    assert (again.rows, again.labels, again.duplicates, again.new, again.replaced,
            again.unchanged, again.orphans) == (9, 8, 1, 0, 0, 8, 3)
    assert imports() == 1
    b = tmp_path / "b.csv"  # a later label for a:1:3
    b.write_text("id,label\na:1:3,0\n")
    assert import_feedback(catalog, b, "pumps").replaced == 1
    back = import_feedback(catalog, a, "pumps")  # a's label is the later one now
    assert (back.replaced, back.unchanged, back.new, back.orphans) == (1, 7, 0, 3)
    assert imports() == 3
    current = catalog.cursor().execute(
        "SELECT label FROM feedback WHERE id = 'a:1:3'").fetchall()
    assert current == [("1",)]
    catalog.cursor().execute("""UPDATE model_version SET labels = '["no", "yes"]'
                                WHERE model = 'pumps'""")
    with pytest.raises(InvalidInput, match="not a class of model pumps"):
        import_feedback(catalog, a, "pumps")


def test_a_file_that_changes_while_it_is_imported_is_refused_and_nothing_stored(
        catalog: Catalog, tmp_path: Path) -> None:
    """A USB copy still being written: the labels DuckDB read and the bytes the content key
    hashed may differ, so the import is refused and the catalog is left as it was (else the
    complete file, imported later, could pass as "the same file again")."""
    path = tmp_path / "growing.csv"
    path.write_text("id,label\na:1:1,1\n")

    def grow(event: ProgressEvent) -> None:
        if event.stage == "feedback import" and event.done == 100:
            with path.open("a") as fh:
                fh.write("a:1:2,0\n")

    with pytest.raises(InvalidInput, match="growing.csv changed while it was imported"):
        import_feedback(catalog, path, "pumps", progress=grow)
    cur = catalog.cursor()
    assert cur.execute("SELECT count(*) FROM feedback").fetchall() == [(0,)]
    assert cur.execute("SELECT count(*) FROM feedback_import").fetchall() == [(0,)]
    complete = import_feedback(catalog, path, "pumps")  # the whole file, read in full
    assert (complete.rows, complete.new) == (2, 2)


def test_counts_stay_exact_when_an_id_has_two_predictions(catalog: Catalog,
                                                          tmp_path: Path) -> None:
    """The tally counts the file's known ids from the predictions it met; an id answered
    twice (an agent whose boot counter went back) must still count once."""
    ids = [f"a:1:{n}" for n in range(6)]
    _predictions(catalog, "pumps", ids, ["1"] * 6, seq=1)
    _predictions(catalog, "pumps", ids[:2], ["0"] * 2, seq=2)  # a:1:0 and a:1:1 again
    path = tmp_path / "labels.csv"
    path.write_text("id,label\na:1:0,1\na:1:1,1\na:1:0,0\na:1:2,1\na:1:3,1\n")
    result = import_feedback(catalog, path, "pumps")
    assert (result.rows, result.labels, result.duplicates, result.new, result.orphans) == \
        (5, 4, 1, 4, 0)
    stored = catalog.cursor().execute("SELECT id, label FROM feedback ORDER BY id").fetchall()
    assert stored == [("a:1:0", "0"), ("a:1:1", "1"), ("a:1:2", "1"), ("a:1:3", "1")]
    known = tmp_path / "known.csv"  # every id known once, one twice in the file
    known.write_text("id,label\na:1:4,0\na:1:5,1\na:1:4,1\n")
    result = import_feedback(catalog, known, "pumps")
    assert (result.rows, result.labels, result.duplicates, result.new, result.orphans) == \
        (3, 2, 1, 2, 0)
