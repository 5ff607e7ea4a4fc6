"""Training data plus labelled captures: the dataset `outpost train --add-captured` uses.

The captured rows of every model trained on the dataset (``MODEL_captured``, refreshed
first) that carry a label are appended to the chosen version, in its columns and types,
as a version of ``NAME_plus_captured`` whose lineage parent is that version.
"""
from __future__ import annotations

from core.catalog import Catalog
from core.datasets import duck
from core.datasets.records import ImportResult
from core.datasets.storing import store_version
from core.datasets.versions import resolve_version, version_path
from core.errors import InvalidInput
from core.feedback.captured import refresh_captured
from core.progress import CancelToken, ProgressFn

SUFFIX = "_plus_captured"


def add_captured(catalog: Catalog, dataset_ref: str, target: str, *,
                 before: float | None = None, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> ImportResult:
    """The version of NAME_plus_captured holding `dataset_ref` and the labelled captures
    (only those captured before `before`, unix seconds, when given: a retrain keeps the
    newest out to judge the result on them)."""
    base = resolve_version(catalog, dataset_ref)
    if target not in {c.name for c in base.columns}:
        raise InvalidInput(f"{base.ref} has no column {target!r}")
    models = [str(m) for (m,) in catalog.cursor().execute(
        "SELECT DISTINCT mv.model FROM model_version mv JOIN run r ON r.id = mv.run "
        "WHERE r.dataset = ? ORDER BY 1", [base.dataset]).fetchall()]
    captured = [c for m in models if (c := refresh_captured(catalog, m)) is not None]
    parts = [f"SELECT * FROM read_parquet({duck.literal(version_path(catalog, base))})"]
    for c in captured:
        have = {col.name for col in c.columns}
        if target not in have:
            continue
        cols = ", ".join(
            f"TRY_CAST({duck.ident(col.name)} AS {col.type}) AS {duck.ident(col.name)}"
            if col.name in have else f"NULL::{col.type} AS {duck.ident(col.name)}"
            for col in base.columns)
        path = version_path(catalog, resolve_version(catalog, f"{c.name}@{c.version}"))
        older = "" if before is None else f" AND captured_at < to_timestamp({float(before)!r})"
        parts.append(f"SELECT {cols} FROM read_parquet({duck.literal(path)}) "
                     f"WHERE {duck.ident(target)} IS NOT NULL{older}")
    if len(parts) == 1:
        raise InvalidInput(f"no labelled captured rows for the models trained on "
                           f"{base.dataset} ({', '.join(models) or 'none'}): import labels "
                           "with `outpost feedback import` first")
    cur = catalog.cursor()
    try:
        with catalog.objects.temp_path(".parquet") as parquet:
            duck.run(cur, f"COPY ({' UNION ALL '.join(parts)}) TO {duck.literal(parquet)} "
                     "(FORMAT parquet)", "add captured rows", progress, cancel)
            source = {"kind": "add-captured", "from": f"{base.dataset}@{base.version}",
                      "captured": [f"{c.name}@{c.version}" for c in captured]}
            return store_version(catalog, cur, f"{base.dataset}{SUFFIX}", parquet, source,
                                 (base.dataset, base.version), empty="no rows",
                                 progress=progress, cancel=cancel)
    finally:
        cur.close()
