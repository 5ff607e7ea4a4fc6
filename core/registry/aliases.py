"""Aliases (``production``, ``staging``, any name) with their full history.

Each assignment is a row with ``assigned_at`` and, once another version takes the
alias, ``released_at``; the open row is the current one. So "which version was in
production at time T" is the row whose interval contains T.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.audit import record_event
from core.catalog import Catalog
from core.errors import InvalidInput, NotFound
from core.registry.models import ModelVersion, model_exists, resolve_model, validate_alias

PRODUCTION = "production"


@dataclass(frozen=True)
class AliasEvent:
    model: str
    alias: str
    version: int
    assigned_at: datetime
    released_at: datetime | None
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "alias": self.alias, "version": self.version,
                "assigned_at": self.assigned_at.isoformat(),
                "released_at": None if self.released_at is None else self.released_at.isoformat(),
                "forced": self.forced}


def set_alias(catalog: Catalog, ref: str, alias: str, force: bool = False) -> ModelVersion:
    """Point `alias` at the version `ref` names; a flagged version needs force for production."""
    validate_alias(alias)
    target = resolve_model(catalog, ref)
    if alias == PRODUCTION and target.flagged and not force:
        raise InvalidInput(
            f"{target.ref} failed its parity check ({_parity_summary(target.parity)}); "
            "it can be production only with --force")
    with catalog.transaction() as cur:
        current = cur.execute("SELECT version FROM model_alias WHERE model = ? AND alias = ? "
                              "AND released_at IS NULL", [target.model, alias]).fetchone()
        if current is not None and int(current[0]) == target.version:
            return resolve_model(catalog, target.ref)
        stamp = datetime.now(UTC)
        cur.execute("UPDATE model_alias SET released_at = ? WHERE model = ? AND alias = ? "
                    "AND released_at IS NULL", [stamp, target.model, alias])
        cur.execute("INSERT INTO model_alias (model, alias, version, assigned_at, released_at, "
                    "forced) VALUES (?, ?, ?, ?, NULL, ?)",
                    [target.model, alias, target.version, stamp, force and target.flagged])
        record_event(cur, "alias", model=target.model, version=target.version,
                     detail={"alias": alias, "previous": None if current is None
                             else int(current[0]), "forced": force and target.flagged})
    return resolve_model(catalog, target.ref)


def _parity_summary(parity: dict[str, Any]) -> str:
    if parity.get("label_agreement") is not None:
        return (f"label agreement {parity['label_agreement']:.4%}, "
                f"max abs diff {parity['max_abs_diff']:.3g}")
    if "max_rel_diff" in parity:
        return f"max relative diff {parity['max_rel_diff']:.3g}"
    return "not passed"


def alias_history(catalog: Catalog, model: str, alias: str | None = None) -> list[AliasEvent]:
    """Every assignment of the model's aliases (or of one alias), oldest first."""
    cur = catalog.cursor()
    if not model_exists(cur, model):
        raise NotFound(f"no model {model!r}")
    where, args = "model = ?", [model]
    if alias is not None:
        where, args = where + " AND alias = ?", [model, alias]
    rows = cur.execute(f"SELECT model, alias, version, assigned_at, released_at, forced FROM "
                       f"model_alias WHERE {where} ORDER BY assigned_at, alias", args).fetchall()
    return [AliasEvent(m, a, int(v), at, rel, bool(f)) for m, a, v, at, rel, f in rows]


def alias_at(catalog: Catalog, model: str, alias: str, when: datetime) -> int | None:
    """The version that held `alias` at `when` (timezone-aware), or None."""
    if when.tzinfo is None:
        raise InvalidInput("give the time with a timezone (e.g. 2025-06-01T12:00:00+00:00)")
    for event in alias_history(catalog, model, alias):
        if event.assigned_at <= when and (event.released_at is None or when < event.released_at):
            return event.version
    return None


def alias_during(catalog: Catalog, model: str, alias: str, start: datetime,
                 end: datetime) -> list[int]:
    """Versions that held `alias` at any moment in [start, end), in the order they took it."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("give times with a timezone")
    found: list[int] = []
    for event in alias_history(catalog, model, alias):
        overlaps = event.assigned_at < end and (event.released_at is None
                                                or event.released_at > start)
        if overlaps and event.version not in found:
            found.append(event.version)
    return found


def alias_version(catalog: Catalog, model: str, alias: str) -> int | None:
    """The version `alias` names now, or None."""
    row = catalog.cursor().execute(
        "SELECT version FROM model_alias WHERE model = ? AND alias = ? AND released_at IS NULL",
        [model, alias]).fetchone()
    return None if row is None else int(row[0])


def release_alias(catalog: Catalog, model: str, alias: str) -> None:
    """`alias` names no version of `model` any more (its history keeps the interval)."""
    with catalog.transaction() as cur:
        cur.execute("UPDATE model_alias SET released_at = ? WHERE model = ? AND alias = ? "
                    "AND released_at IS NULL", [datetime.now(UTC), model, alias])
