"""`outpost feedback import FILE.csv --model M`: ground-truth labels from a file, streamed.

DuckDB reads the file (any size: it is never held in Python), checks every label in one
query each and merges the labels into ``feedback`` in one transaction:
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
from core.feedback.labels import model_task
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


def _first_bad(cur: duckdb.DuckDBPyConnection, where: str, what: str, name: str,
               value_sql: str = "NULL") -> None:
    # rowids of a table filled in this transaction start at a large offset: lines count
    # from the first one (CREATE TABLE AS keeps the file's order).
    n, line, value = cur.execute(
        f"SELECT count(*), min(rowid) - (SELECT min(rowid) FROM fb_raw) + 2, "
        f"arg_min({value_sql}, rowid) FROM fb_raw WHERE {where}").fetchone() or (0, None, None)
    if n:
        shown = "" if value is None else f": {str(value)[:60]!r}"
        raise InvalidInput(f"feedback file {name}: {n} rows {what} (first: line {line}{shown})")


def _columns(cur: duckdb.DuckDBPyConnection, name: str, task: str, model: str
             ) -> tuple[str, str, str | None]:
    names = [str(r[0]) for r in cur.execute("DESCRIBE fb_raw").fetchall()]
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
           classes: list[str] | None, progress: ProgressFn | None,
           cancel: CancelToken | None) -> int:
    """Read the file into fb_raw, check it, and leave one row per id in fb_new."""
    name = path.name
    try:
        duck.run(cur, "CREATE TEMP TABLE fb_raw AS SELECT * FROM read_csv("
                 f"{duck.literal(path)}, header = true, all_varchar = true)",
                 "feedback import", progress, cancel)
    except duckdb.Error as exc:
        raise InvalidInput(f"feedback file {name} is not a readable CSV: "
                           f"{duck.first_line(exc)}") from exc
    id_col, label_col, ts_col = _idents(_columns(cur, name, task, model))
    if task == "regression":
        label = f"CAST(CAST(trim({label_col}) AS DOUBLE) AS VARCHAR)"
    else:
        label = f"trim({label_col})"
    # Every check in one pass over the file; the slower query that names the first
    # offending line runs only when a check failed.
    checks: list[tuple[str, str, str]] = [
        (f"{id_col} IS NULL OR trim({id_col}) = ''", "have no id", "NULL"),
        (f"{label_col} IS NULL OR trim({label_col}) = ''", "have no label", "NULL")]
    if task == "regression":
        checks.append((f"NOT isfinite(coalesce(TRY_CAST(trim({label_col}) AS DOUBLE), 'nan'))",
                       "have a value that is not a number", label_col))
    elif classes:
        cur.execute("CREATE TEMP TABLE fb_classes AS SELECT unnest(?::VARCHAR[]) AS c",
                    [classes])
        shown = ", ".join(classes[:_SHOWN_CLASSES])
        checks.append((f"{label} NOT IN (SELECT c FROM fb_classes)",
                       f"have a label that is not a class of model {model} ({shown})",
                       label_col))
    ts = "epoch(now())"
    if ts_col is not None:
        ts = (f"coalesce(TRY_CAST({ts_col} AS DOUBLE), "
              f"epoch(TRY_CAST({ts_col} AS TIMESTAMPTZ)), epoch(now()))")
        checks.append((f"{ts_col} IS NOT NULL AND TRY_CAST({ts_col} AS DOUBLE) IS NULL AND "
                       f"TRY_CAST({ts_col} AS TIMESTAMPTZ) IS NULL",
                       "have a ts that is neither unix seconds nor an ISO time", ts_col))
    counts = duck.run(cur, "SELECT count(*), count(DISTINCT trim(" + id_col + ")), "
                      + ", ".join(f"count(*) FILTER ({w})" for w, _, _ in checks)
                      + " FROM fb_raw", "feedback check", progress, cancel)[0]
    rows, distinct = int(counts[0]), int(counts[1])
    for (where, what, value), bad in zip(checks, counts[2:], strict=True):
        if bad:
            _first_bad(cur, where, what, name, value)
    rows_sql = (f"SELECT rowid AS r, trim({id_col}) AS id, {label} AS label, {ts} AS ts "
                "FROM fb_raw")
    if distinct == rows:  # the usual file: no id twice, nothing to deduplicate
        sql = f"SELECT id, label, ts, 1 AS n FROM ({rows_sql})"
    else:
        sql = ("SELECT id, arg_max(label, r) AS label, arg_max(ts, r) AS ts, count(*) AS n "
               f"FROM ({rows_sql}) GROUP BY id")
    duck.run(cur, f"CREATE TEMP TABLE fb_new AS {sql}", "feedback import", progress, cancel)
    return rows


def _idents(cols: tuple[str, str, str | None]) -> tuple[str, str, str | None]:
    id_col, label_col, ts_col = cols
    return duck.ident(id_col), duck.ident(label_col), None if ts_col is None else duck.ident(
        ts_col)


def import_feedback(catalog: Catalog, path: Path, model: str, *,
                    progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> FeedbackImport:
    """Merge the labels of `path` into the catalog; importing it again changes nothing."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"feedback file {path} does not exist")
    with catalog.transaction() as cur:
        task, classes = model_task(cur, model)
        rows = _stage(cur, path, model, task, classes, progress, cancel)
        params = {"model": model}
        labels, duplicates, new, replaced = cur.execute(
            "SELECT count(*), coalesce(sum(n - 1), 0), count(*) FILTER (f.id IS NULL), "
            "count(*) FILTER (f.id IS NOT NULL AND f.label <> n.label) "
            "FROM fb_new n LEFT JOIN (SELECT id, label FROM feedback WHERE model = $model) f "
            "USING (id)", params).fetchone() or (0, 0, 0, 0)
        cur.execute("DELETE FROM feedback WHERE model = $model AND id IN "
                    "(SELECT n.id FROM fb_new n JOIN feedback f ON f.model = $model "
                    "AND f.id = n.id AND f.label <> n.label)", params)
        insert = ("INSERT INTO feedback (model, id, label, ts, source) "
                  "SELECT $model, n.id, n.label, n.ts, $source FROM fb_new n")
        if new != labels:  # some ids were labelled before: only the new and changed ones
            insert += " ANTI JOIN (SELECT id FROM feedback WHERE model = $model) f USING (id)"
        cur.execute(insert, {**params, "source": path.name})
        ((orphans,),) = cur.execute(
            "SELECT count(*) FROM fb_new ANTI JOIN (SELECT unnest(ids) AS id FROM "
            "telemetry_prediction WHERE model = $model) p USING (id)", params).fetchall()
        cur.execute("DROP TABLE fb_new; DROP TABLE fb_raw; DROP TABLE IF EXISTS fb_classes")
    return FeedbackImport(model, str(path), rows, int(labels), int(new), int(replaced),
                          int(labels) - int(new) - int(replaced), int(duplicates), int(orphans))
