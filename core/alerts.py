"""Alerts: a drift or health condition, raised once, updated while it holds, cleared when
it stops. An open alert is the one row with its key and no ``cleared_at``."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import duckdb

from core.catalog import Catalog


@dataclass(frozen=True)
class Condition:
    """A condition that holds now; `key` identifies it across evaluations."""

    key: str
    kind: str  # 'drift' or 'health'
    severity: str  # 'warn' or 'alert'
    message: str
    model: str | None = None
    agent: str | None = None
    feature: str | None = None
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Alert:
    id: int
    key: str
    kind: str
    model: str | None
    agent: str | None
    feature: str | None
    severity: str
    value: float | None
    threshold: float | None
    message: str
    raised_at: datetime
    updated_at: datetime
    cleared_at: datetime | None

    @property
    def open(self) -> bool:
        return self.cleared_at is None


_COLUMNS = ("id, key, kind, model, agent, feature, severity, value, threshold, message, "
            "raised_at, updated_at, cleared_at")


def sync_alerts(cur: duckdb.DuckDBPyConnection, scope: str, holding: Iterable[Condition]) -> None:
    """Make the open alerts whose key starts with `scope` match `holding`: raise new ones,
    update those still holding, clear the rest. Runs in the caller's transaction."""
    now_holding = {c.key: c for c in holding}
    open_keys = {str(k) for (k,) in cur.execute(
        "SELECT key FROM alert WHERE cleared_at IS NULL AND starts_with(key, ?)",
        [scope]).fetchall()}
    for key in open_keys - set(now_holding):
        cur.execute("UPDATE alert SET cleared_at = now(), updated_at = now() "
                    "WHERE key = ? AND cleared_at IS NULL", [key])
    for key, c in now_holding.items():
        if key in open_keys:
            cur.execute("UPDATE alert SET severity = ?, value = ?, threshold = ?, message = ?, "
                        "updated_at = now() WHERE key = ? AND cleared_at IS NULL",
                        [c.severity, c.value, c.threshold, c.message, key])
        else:
            cur.execute("INSERT INTO alert (key, kind, model, agent, feature, severity, value, "
                        "threshold, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [key, c.kind, c.model, c.agent, c.feature, c.severity, c.value,
                         c.threshold, c.message])


def list_alerts(catalog: Catalog, *, include_cleared: bool = False,
                model: str | None = None, agent: str | None = None) -> list[Alert]:
    """Open alerts (and with `include_cleared`, past ones), newest first."""
    where = ["(? OR cleared_at IS NULL)", "(? IS NULL OR model = ?)", "(? IS NULL OR agent = ?)"]
    rows = catalog.cursor().execute(
        f"SELECT {_COLUMNS} FROM alert WHERE {' AND '.join(where)} "
        "ORDER BY raised_at DESC, id DESC",
        [include_cleared, model, model, agent, agent]).fetchall()
    return [Alert(*row) for row in rows]
