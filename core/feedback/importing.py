"""`outpost feedback import FILE.csv --model M`: ground-truth labels from a file, streamed.

The model's latest file again (same size and content hash) is known before anything is
written and only read for its orphans. Otherwise DuckDB reads the file (any size: it is
never held in Python) once, straight into the ``feedback`` table, checking every row as it
goes; from the rows written, one query (a full join) tallies what the import did (new,
replaced, unchanged, orphans) and, unless there are orphans, how many ids are distinct;
at most three ``DELETE``s settle duplicates and relabelled ids, all in one transaction
with no Python per row:
- columns ``id,label`` (a classifier) or ``id,value`` (regression), optional ``ts`` (when
  the label was given: unix seconds or ISO time; default now);
- a row without id, a label of the wrong type or a class the model does not know refuses
  the whole file, with the first offending line (found by a second read, on refusal only);
- an id twice in the file: the last row wins, and the rows it overrode are counted;
- an id labelled before: the same label changes nothing, a different one replaces it
  (counted as replaced); a file that changes nothing is rolled back, import log and all;
- ids no agent has reported yet are kept and counted as orphans; they join as soon as
  the prediction arrives.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import duck
from core.errors import Cancelled, InvalidInput, NotFound, OutpostError
from core.feedback.labels import IMPORTED, model_task
from core.objects import sha256_file
from core.progress import CancelToken, ProgressFn

_SHOWN_CLASSES = 8


@dataclass(frozen=True)
class FeedbackImport:
    model: str
    file: str
    rows: int  # data rows in the file
    labels: int  # distinct ids
    new: int
    replaced: int
    unchanged: int
    duplicates: int  # rows overridden by a later row for the same id
    orphans: int  # ids no prediction in the catalog carries (yet)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# A regression label is stored as the number's text, so 4 and 4.0 are one label.
_REGRESSION_VALUE = "CAST(TRY_CAST(label AS DOUBLE) AS VARCHAR)"
_FILE_TS = ("coalesce(TRY_CAST(ts AS DOUBLE), epoch(TRY_CAST(ts AS TIMESTAMPTZ)), "
            "epoch(now()))")
_PREDICTED = "SELECT unnest(ids) FROM telemetry_prediction WHERE model = $model"
# The rows this import wrote: the import number is only logged in feedback_import once
# they are settled, so IMPORTED (the model's current labels) does not see them meanwhile.
_MINE = "SELECT id, label AS value FROM feedback WHERE import = $import"


def _bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


def _trimmed(column: str) -> str:
    """trim(column), without building a new string for the usual cell that has no edge
    space (trimming every cell of a 10 M-row file cost ~0.5 CPU s)."""
    c = duck.ident(column)
    return f"CASE WHEN prefix({c}, ' ') OR suffix({c}, ' ') THEN trim({c}) ELSE {c} END"


@dataclass(frozen=True)
class _Tally:
    rows: int  # rows of this import in the join: more than written when an id of the file
    #            has two predictions (see _settle)
    predictions: int  # entries of the predicted ids joined with
    unmatched: int  # of those, the ones no row of this import has
    new: int  # rows with no current label
    replaced: int  # rows with another current label
    orphans: int  # rows no prediction carries


class _Refused(Exception):
    """The file's rows were refused while being written (a check failed, or DuckDB could
    not read or store them); the import rolls back and explains why."""

    def __init__(self, error: duckdb.Error) -> None:
        super().__init__(str(error))
        self.error = error


class _Unchanged(Exception):
    """Every label was there already: the import rolls back, changing nothing."""

    def __init__(self, result: FeedbackImport) -> None:
        super().__init__(result.file)
        self.result = result


def _first_bad(cur: duckdb.DuckDBPyConnection, where: str, what: str, name: str,
               value_sql: str, params: dict[str, Any]) -> None:
    # rowids of a table filled in this transaction start at a large offset: lines count
    # from the first one (CREATE TABLE AS keeps the file's order).
    n, line, value = cur.execute(
        f"SELECT count(*), min(rowid) - (SELECT min(rowid) FROM fb_raw) + 2, "
        f"arg_min({value_sql}, rowid) FROM fb_raw WHERE {where}",
        _bind(where, params)).fetchone() or (0, None, None)
    if n:
        shown = "" if value is None else f": {str(value)[:60]!r}"
        raise InvalidInput(f"feedback file {name}: {n} rows {what} (first: line {line}{shown})")


def _columns(names: list[str], name: str, task: str, model: str
             ) -> tuple[str, str, str | None]:
    by_lower = {n.lower(): n for n in names}
    if "id" not in by_lower:
        raise InvalidInput(f"feedback file {name} needs an id column; it has {names}")
    label = by_lower.get("label")
    value = by_lower.get("value")
    if task == "classification" and label is None:
        raise InvalidInput(f"model {model} is a classifier: feedback file {name} needs "
                           "columns id,label" + (", not id,value" if value else ""))
    if task == "regression" and value is None and label is None:
        raise InvalidInput(f"feedback file {name} needs columns id,value for regression "
                           f"model {model}")
    chosen = value if task == "regression" and value is not None else label
    assert chosen is not None
    return by_lower["id"], chosen, by_lower.get("ts")


def _file_rows(cur: duckdb.DuckDBPyConnection, path: Path, model: str, task: str
               ) -> tuple[str, bool]:
    """The file as rows (id, label, ts), trimmed, streamed by DuckDB; True when it has a ts."""
    name, source = path.name, f"read_csv({duck.literal(path)}, header = true, all_varchar = true)"
    try:
        names = [str(r[0]) for r in cur.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    except duckdb.Error as exc:
        raise InvalidInput(f"feedback file {name} is not a readable CSV: "
                           f"{duck.first_line(exc)}") from exc
    id_col, label_col, ts_col = _columns(names, name, task, model)
    ts = "NULL::VARCHAR" if ts_col is None else duck.ident(ts_col)
    return (f"SELECT {_trimmed(id_col)} AS id, {_trimmed(label_col)} AS label, {ts} AS ts "
            f"FROM {source}", ts_col is not None)


def _checks(task: str, classes: list[str] | None, model: str, has_ts: bool
            ) -> list[tuple[str, str, str]]:
    """(bad-row condition, what is wrong, the cell to show) over the file's columns."""
    checks = [("id IS NULL OR id = ''", "have no id", "NULL"),
              ("label IS NULL OR label = ''", "have no label", "NULL")]
    if task == "regression":
        checks.append(("NOT isfinite(coalesce(TRY_CAST(label AS DOUBLE), 'nan'))",
                       "have a value that is not a number", "label"))
    elif classes:
        shown = ", ".join(classes[:_SHOWN_CLASSES])
        checks.append(("NOT list_contains($classes, label)",
                       f"have a label that is not a class of model {model} ({shown})",
                       "label"))
    if has_ts:
        checks.append(("ts IS NOT NULL AND TRY_CAST(ts AS DOUBLE) IS NULL AND "
                       "TRY_CAST(ts AS TIMESTAMPTZ) IS NULL",
                       "have a ts that is neither unix seconds nor an ISO time", "ts"))
    return checks


def _tally(cur: duckdb.DuckDBPyConnection, params: dict[str, Any], predicted: str,
           progress: ProgressFn | None, cancel: CancelToken | None) -> _Tally:
    """The written rows against the model's current labels (new, relabelled) and against
    the predicted ids, in one pass: a full join, so DuckDB builds its hash table on the
    smaller side (usually the file: an agent answers far more than gets labelled), and the
    predictions no row has come out of it too — which counts the file's known ids without a
    distinct count of its own (see _settle)."""
    sql = ("SELECT count(s.id), (SELECT count(*) FROM (" + predicted + ")), "
           "count(*) FILTER (s.id IS NULL), "
           "count(*) FILTER (s.id IS NOT NULL AND s.old IS NULL), "
           "count(*) FILTER (s.old <> s.value), "
           "count(*) FILTER (s.id IS NOT NULL AND p.id IS NULL) "
           f"FROM (SELECT m.id, m.value, f.label AS old FROM ({_MINE}) m "
           f"LEFT JOIN ({IMPORTED}) f ON f.id = m.id) s "
           f"FULL JOIN ({predicted}) p(id) ON p.id = s.id")
    row = duck.run(cur, sql, "feedback check", progress, cancel, _bind(sql, params))[0]
    return _Tally(*(int(v) for v in row))


def _settle(cur: duckdb.DuckDBPyConnection, rows: int, params: dict[str, Any],
            progress: ProgressFn | None, cancel: CancelToken | None) -> tuple[int, _Tally]:
    """(distinct ids, the tally of the import's rows, one per id by then). An id twice in
    the file: its last row wins, the rows before it are deleted. How many ids are distinct
    comes from the join when every row met a prediction: each prediction met is then one
    id; only orphans need a distinct count of their own."""
    predicted = _PREDICTED
    tally = _tally(cur, params, predicted, progress, cancel)
    if tally.rows != rows:  # an id with two predictions (an agent's restored boot counter)
        predicted = f"SELECT DISTINCT * FROM ({_PREDICTED})"
        tally = _tally(cur, params, predicted, progress, cancel)
    if tally.orphans:
        distinct = f"SELECT count(DISTINCT id) FROM ({_MINE})"
        ((labels,),) = duck.run(cur, distinct, "feedback check", progress, cancel,
                                _bind(distinct, params))
    else:
        labels = tally.predictions - tally.unmatched
    if labels != rows:  # an id twice in the file: its last row wins
        cur.execute("DELETE FROM feedback s USING (SELECT id, max(rowid) AS last FROM feedback "
                    "WHERE import = $import GROUP BY id HAVING count(*) > 1) d "
                    "WHERE s.import = $import AND s.id = d.id AND s.rowid < d.last",
                    {"import": params["import"]})
        tally = _tally(cur, params, predicted, progress, cancel)
    return int(labels), tally


def _content_key(path: Path, task: str, classes: list[str] | None) -> str:
    """The file's content key: SHA-256 of its bytes, with the model's task and classes (a
    file read under other classes may be refused now). ~0.1 CPU s per 140 MB, run in a
    thread beside the DuckDB insert (hashlib lets go of the GIL)."""
    return hashlib.sha256(f"{sha256_file(path)}\0{json.dumps([task, classes])}".encode()
                          ).hexdigest()


def _same_as_last(cur: duckdb.DuckDBPyConnection, path: Path, model: str,
                  content: Future[str], read: str, params: dict[str, Any]
                  ) -> FeedbackImport | None:
    """The file again, byte for byte, as the model's latest import: every id of it still has
    that import's label (only a later import of the model could have changed one), so it
    changes nothing. Known by its size and content hash before anything is written; only the
    orphans are counted again (predictions may have arrived since). None: not that case."""
    row = cur.execute("SELECT content, file_bytes, file_rows, file_labels FROM feedback_import "
                      "WHERE model = ? ORDER BY import DESC LIMIT 1", [model]).fetchone()
    if (row is None or None in row or row[1] != path.stat().st_size
            or row[0] != content.result()):
        return None
    _, _, rows, labels = row
    sql = f"SELECT count(DISTINCT id) FROM ({read}) WHERE NOT id IN ({_PREDICTED})"
    ((orphans,),) = cur.execute(sql, _bind(sql, params)).fetchall()
    return FeedbackImport(model, str(path), int(rows), int(labels), 0, 0, int(labels),
                          int(rows) - int(labels), int(orphans))


def _import(cur: duckdb.DuckDBPyConnection, path: Path, model: str,
            progress: ProgressFn | None, cancel: CancelToken | None) -> FeedbackImport:
    task, classes = model_task(cur, model)
    read, has_ts = _file_rows(cur, path, model, task)
    before = _stamp(path)
    with ThreadPoolExecutor(1, thread_name_prefix="feedback-hash") as pool:
        content = pool.submit(_content_key, path, task, classes)
        result = _write(cur, path, model, task, classes, read, has_ts, content, progress,
                        cancel)
    # The hash and DuckDB each read the file once: a file changed in between (a USB copy
    # still being written) would leave a content key that does not name the labels stored.
    if _stamp(path) != before:
        raise InvalidInput(f"feedback file {path.name} changed while it was imported; nothing "
                           "was stored: import it again once it is complete")
    return result


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _write(cur: duckdb.DuckDBPyConnection, path: Path, model: str, task: str,
           classes: list[str] | None, read: str, has_ts: bool, content: Future[str],
           progress: ProgressFn | None, cancel: CancelToken | None) -> FeedbackImport:
    same = _same_as_last(cur, path, model, content, read, {"model": model})
    if same is not None:
        raise _Unchanged(same)
    value = _REGRESSION_VALUE if task == "regression" else "label"
    at = _FILE_TS if has_ts else "epoch(now())"
    refused = " OR ".join(f"({where})" for where, _, _ in _checks(task, classes, model, has_ts))
    ((number,),) = cur.execute(
        "SELECT coalesce(max(import), 0) + 1 FROM feedback_import").fetchall()
    params: dict[str, Any] = {"model": model, "import": int(number), "classes": classes}
    # Written as read, each row checked on the way: the first refused row stops the write.
    insert = (f"INSERT INTO feedback (import, id, label, ts) SELECT $import, id, CASE WHEN "
              f"{refused} THEN error('refused') ELSE {value} END, {at} FROM ({read})")
    try:
        ((rows,),) = duck.run(cur, insert, "feedback import", progress, cancel,
                              _bind(insert, params))
    except duckdb.Error as exc:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("feedback import") from exc
        raise _Refused(exc) from exc
    labels, tally = _settle(cur, rows, params, progress, cancel)
    unchanged = labels - tally.new - tally.replaced
    result = FeedbackImport(model, str(path), rows, labels, tally.new, tally.replaced,
                            unchanged, rows - labels, tally.orphans)
    if not tally.new and not tally.replaced:
        raise _Unchanged(result)  # the same labels again: not even the import log changes
    keys = {"model": model, "import": params["import"]}
    if unchanged:  # the label there already stays, with its time
        cur.execute(f"DELETE FROM feedback s USING ({IMPORTED}) f WHERE s.import = $import "
                    "AND f.id = s.id AND f.label = s.label", keys)
    if tally.replaced:  # what is left of this import replaces the earlier labels
        cur.execute("DELETE FROM feedback WHERE import IN (SELECT import FROM feedback_import "
                    "WHERE model = $model) AND id IN (SELECT id FROM feedback WHERE "
                    "import = $import)", keys)
    cur.execute("INSERT INTO feedback_import (import, model, source, content, file_bytes, "
                "file_rows, file_labels) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [params["import"], model, path.name, content.result(), path.stat().st_size, rows,
                 labels])
    return result


def _explain(cur: duckdb.DuckDBPyConnection, path: Path, model: str, error: duckdb.Error,
             progress: ProgressFn | None, cancel: CancelToken | None) -> OutpostError:
    """Why the file was refused: the first offending line of the first check that fails,
    from the file read again in order; else DuckDB's own reason."""
    task, classes = model_task(cur, model)
    rows, has_ts = _file_rows(cur, path, model, task)
    try:
        duck.run(cur, f"CREATE TEMP TABLE fb_raw AS {rows}", "feedback check", progress,
                 cancel)
    except duckdb.Error as exc:
        return InvalidInput(f"feedback file {path.name} is not a readable CSV: "
                            f"{duck.first_line(exc)}")
    checks = _checks(task, classes, model, has_ts)
    params = {"classes": classes}
    sql = "SELECT " + ", ".join(f"count(*) FILTER ({w})" for w, _, _ in checks) + " FROM fb_raw"
    counts = cur.execute(sql, _bind(sql, params)).fetchone() or ()
    for (where, what, cell), bad in zip(checks, counts, strict=True):
        if bad:
            _first_bad(cur, where, what, path.name, cell, params)
    return duck.translate(error, f"feedback import of {path.name}")


def import_feedback(catalog: Catalog, path: Path, model: str, *,
                    progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> FeedbackImport:
    """Merge the labels of `path` into the catalog; importing it again changes nothing."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"feedback file {path} does not exist")
    try:
        with duck.kept_memory(catalog.con), catalog.transaction() as cur:
            return _import(cur, path, model, progress, cancel)
    except _Unchanged as same:
        return same.result
    except _Refused as refused:
        with catalog.transaction() as cur:  # rolled back: only a temporary table is written
            error = _explain(cur, path, model, refused.error, progress, cancel)
            raise error from refused.error
