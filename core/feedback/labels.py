"""The two relations every closed-loop query joins: predictions by id, current labels by id.

One definition of each, used by the import (orphans), accuracy and the captured dataset.
A label is current when it is the latest given (by its time) for its id, whichever way it
came in: a desktop import (table ``feedback``) or the agent's feedback route (telemetry).
Both take the query parameter ``$model``.
"""
from __future__ import annotations

import json

import duckdb

from core.errors import NotFound

_FLOATS = ("FP16", "FP32", "FP64")

# Labels imported from files: one current row per (model, id); the model is on the import.
IMPORTED = """
    SELECT id, label, ts FROM feedback
    WHERE import IN (SELECT import FROM feedback_import WHERE model = $model)"""

PREDICTIONS = """
    SELECT agent, version, unnest(ids) AS id, unnest(predicted) AS predicted,
           unnest(times) AS t
    FROM telemetry_prediction WHERE model = $model"""

LABELS = """
    SELECT id, arg_max(label, ord) AS label, max(ts) AS label_ts FROM (
        SELECT id, label, ts, [ts, 0, 0] AS ord FROM (""" + IMPORTED + """)
        UNION ALL
        SELECT id, label, ts, [ts, seq, pos] FROM (
            SELECT unnest(ids) AS id, unnest(labels) AS label, ts, seq,
                   unnest(range(len(ids))) AS pos
            FROM telemetry_feedback WHERE model = $model)
    ) GROUP BY id"""


def model_task(cur: duckdb.DuckDBPyConnection, model: str) -> tuple[str, list[str] | None]:
    """(task, class labels) of the model's latest version; NotFound for an unknown model.

    An imported graph may not say its task: a float first output means regression, as the
    agent decides for its feedback route."""
    row = cur.execute(
        "SELECT task, labels, outputs FROM model_version WHERE model = ? "
        "ORDER BY version DESC LIMIT 1", [model]).fetchone()
    if row is None:
        raise NotFound(f"model {model!r} is not in the catalog")
    task, labels, outputs = row
    if task is None:
        first = (json.loads(outputs) or [{}])[0] if outputs else {}
        task = "regression" if first.get("datatype") in _FLOATS else "classification"
    classes = json.loads(labels) if labels else None
    return str(task), None if classes is None else [str(v) for v in classes]
