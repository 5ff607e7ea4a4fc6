"""`outpost feedback import FILE.csv --model M`: ground-truth labels from a file, streamed.

DuckDB reads the file (any size: it is never held in Python) into a temporary table once,
then one query checks every row, counts distinct ids and tallies what the import will do
(new, replaced, unchanged, orphans), and one ``INSERT … SELECT`` writes the labels, all in
one transaction with no Python per row:
- columns ``id,label`` (a classifier) or ``id,value`` (regression), optional ``ts`` (when
  the label was given: unix seconds or ISO time; default now);
- a row without id, a label of the wrong type or a class the model does not know refuses
  the whole file, with the first offending line;
- an id twice in the file: the last row wins, and the rows it overrode are counted;
- an id labelled before: the same label changes nothing, a different one replaces it
  (counted as replaced);
- ids no agent has reported yet are kept and counted as orphans; they join as soon as
  the prediction arrives.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from core.catalog import Catalog
from core.datasets import duck
from core.errors import InvalidInput, NotFound
from core.feedback.labels import IMPORTED, model_task
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
# The staged file as the import sees it: the raw cells (which the checks name) beside the
# label and time they become. Columns: id, label, ts (raw), value, given, n.
_STAGED = "SELECT id, label, ts, {value} AS value, {at} AS given, 1 AS n FROM fb_raw"
# With an id twice in the file, the last row wins and n counts the rows per id.
_DEDUPED = ("SELECT id, arg_max({value}, rowid) AS value, arg_max({at}, rowid) AS given, "
            "count(*) AS n FROM fb_raw GROUP BY id")


def _bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


@dataclass(frozen=True)
class _Tally:
    labels: int
    duplicates: int
    new: int
    replaced: int
    orphans: int


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


def _stage(cur: duckdb.DuckDBPyConnection, path: Path, model: str, task: str,
           progress: ProgressFn | None, cancel: CancelToken | None) -> bool:
    """Read the file once into fb_raw(id, label, ts), trimmed; True when it has a ts."""
    name, source = path.name, f"read_csv({duck.literal(path)}, header = true, all_varchar = true)"
    try:
        names = [str(r[0]) for r in cur.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        id_col, label_col, ts_col = _columns(names, name, task, model)
        ts = "NULL::VARCHAR" if ts_col is None else duck.ident(ts_col)
        duck.run(cur, f"CREATE TEMP TABLE fb_raw AS SELECT trim({duck.ident(id_col)}) AS id, "
                 f"trim({duck.ident(label_col)}) AS label, {ts} AS ts FROM {source}",
                 "feedback import", progress, cancel)
    except duckdb.Error as exc:
        raise InvalidInput(f"feedback file {name} is not a readable CSV: "
                           f"{duck.first_line(exc)}") from exc
    return ts_col is not None


def _checks(task: str, classes: list[str] | None, model: str, has_ts: bool
            ) -> list[tuple[str, str, str]]:
    """(bad-row condition, what is wrong, the cell to show) over fb_raw's columns."""
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


def _tally(cur: duckdb.DuckDBPyConnection, staged: str, extra: list[str],
           params: dict[str, Any], progress: ProgressFn | None, cancel: CancelToken | None
           ) -> tuple[_Tally, list[Any]]:
    """What importing `staged` does, and the `extra` aggregates, in one pass."""
    sql = ("SELECT count(*), coalesce(sum(n - 1), 0), count(*) FILTER (old IS NULL), "
           "count(*) FILTER (old <> value), count(*) FILTER (NOT known)"
           + "".join(f", {e}" for e in extra)
           + f" FROM (SELECT s.*, f.label AS old, s.id IN ({_PREDICTED}) AS known "
           f"FROM ({staged}) s LEFT JOIN ({IMPORTED}) f ON f.id = s.id)")
    row = duck.run(cur, sql, "feedback check", progress, cancel, _bind(sql, params))[0]
    return _Tally(*(int(v) for v in row[:5])), list(row[5:])


def _write(cur: duckdb.DuckDBPyConnection, staged: str, tally: _Tally, source: str,
           params: dict[str, Any], progress: ProgressFn | None, cancel: CancelToken | None
           ) -> None:
    """Replace the changed labels and add the new ones: one DELETE, one INSERT … SELECT."""
    if tally.replaced:
        cur.execute(f"DELETE FROM feedback WHERE import IN (SELECT import FROM "
                    f"feedback_import WHERE model = $model) AND id IN (SELECT s.id FROM "
                    f"({staged}) s JOIN ({IMPORTED}) f ON f.id = s.id AND f.label <> s.value)",
                    params)
    if not tally.new and not tally.replaced:
        return  # the same labels again: nothing changes, not even the import log
    ((number,),) = cur.execute(
        "SELECT coalesce(max(import), 0) + 1 FROM feedback_import").fetchall()
    cur.execute("INSERT INTO feedback_import (import, model, source) VALUES (?, ?, ?)",
                [number, params["model"], source])
    insert = (f"INSERT INTO feedback (import, id, label, ts) SELECT {int(number)}, s.id, "
              f"s.value, s.given FROM ({staged}) s")
    if tally.new != tally.labels:  # some ids were labelled before: only new and changed
        insert += f" ANTI JOIN ({IMPORTED}) f ON f.id = s.id"
    duck.run(cur, insert, "feedback import", progress, cancel, _bind(insert, params))


def import_feedback(catalog: Catalog, path: Path, model: str, *,
                    progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> FeedbackImport:
    """Merge the labels of `path` into the catalog; importing it again changes nothing."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"feedback file {path} does not exist")
    with catalog.transaction() as cur:
        task, classes = model_task(cur, model)
        has_ts = _stage(cur, path, model, task, progress, cancel)
        value = _REGRESSION_VALUE if task == "regression" else "label"
        at = _FILE_TS if has_ts else "epoch(now())"
        checks = _checks(task, classes, model, has_ts)
        params: dict[str, Any] = {"model": model}
        check_params = {**params, "classes": classes}
        # The usual file (no id twice): checks, distinct ids and the tally in one pass.
        staged = _STAGED.format(value=value, at=at)
        tally, extra = _tally(cur, staged, ["count(DISTINCT id)"] + [
            f"count(*) FILTER ({where})" for where, _, _ in checks], check_params, progress,
            cancel)
        for (where, what, cell), bad in zip(checks, extra[1:], strict=True):
            if bad:
                _first_bad(cur, where, what, path.name, cell, check_params)
        if int(extra[0]) != tally.labels:  # duplicates: last row wins, then tally again
            duck.run(cur, "CREATE TEMP TABLE fb_new AS " + _DEDUPED.format(value=value, at=at),
                     "feedback import", progress, cancel)
            staged = "SELECT id, value, given, n FROM fb_new"
            tally, _ = _tally(cur, staged, [], params, progress, cancel)
        _write(cur, staged, tally, path.name, params, progress, cancel)
        cur.execute("DROP TABLE IF EXISTS fb_new; DROP TABLE fb_raw")
    return FeedbackImport(model, str(path), tally.labels + tally.duplicates, tally.labels,
                          tally.new, tally.replaced,
                          tally.labels - tally.new - tally.replaced, tally.duplicates,
                          tally.orphans)
