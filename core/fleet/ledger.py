"""The deployment ledger: one row per deploy or rollback, whichever way it reaches the agent.

A row is written 'pending' before anything is sent (or recorded for a hub agent) and
finished afterwards: 'active', 'installed', or 'failed' with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import duckdb

from core.audit import record_event
from core.catalog import Catalog

Action = Literal["deploy", "rollback"]
# 'rolled_back' is a result only (the ledger row of a rollback reads 'active').
DeployStatus = Literal["pending", "active", "installed", "failed", "rolled_back"]
OUTCOMES: tuple[DeployStatus, ...] = ("active", "installed", "failed")


@dataclass(frozen=True)
class DeployResult:
    agent: str
    model: str
    version: int
    status: DeployStatus
    deployment: int

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "model": self.model, "version": self.version,
                "status": self.status, "deployment": self.deployment}


@dataclass(frozen=True)
class Deployment:
    id: int
    agent: str
    model: str
    version: int
    action: Action
    status: DeployStatus
    error: str | None
    started_at: Any
    finished_at: Any

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def insert_deployment(cur: duckdb.DuckDBPyConnection, agent: str, model: str, version: int,
                      action: Action, bundle: str | None) -> int:
    """A 'pending' row inside the caller's transaction; its id."""
    rows = cur.execute(
        "INSERT INTO deployment (agent, model, version, action, status, bundle) "
        "VALUES (?, ?, ?, ?, 'pending', ?) RETURNING id",
        [agent, model, version, action, bundle]).fetchall()
    return int(rows[0][0])


def start_deployment(catalog: Catalog, agent: str, model: str, version: int, action: Action,
                     bundle: str | None) -> int:
    with catalog.transaction() as cur:
        return insert_deployment(cur, agent, model, version, action, bundle)


def finish_in(cur: duckdb.DuckDBPyConnection, deployment: int, status: DeployStatus,
              error: str | None = None, version: int | None = None) -> None:
    """Finish the row and chain its outcome into the audit trail, in one transaction."""
    row = cur.execute("UPDATE deployment SET status = ?, error = ?, finished_at = now(), "
                      "version = coalesce(?, version) WHERE id = ? "
                      "RETURNING agent, model, version, action, bundle",
                      [status, error, version, deployment]).fetchone()
    if row is not None:
        agent, model, done_version, action, bundle = row
        record_event(cur, "rollback" if action == "rollback" else "deploy", agent=agent,
                     model=model, version=int(done_version), sha256=bundle,
                     detail={"deployment": deployment, "status": status, "error": error})


def finish_deployment(catalog: Catalog, deployment: int, status: DeployStatus,
                      error: str | None = None, version: int | None = None) -> None:
    with catalog.transaction() as cur:
        finish_in(cur, deployment, status, error, version)


def list_deployments(catalog: Catalog, *, agent: str | None = None,
                     model: str | None = None) -> list[Deployment]:
    rows = catalog.cursor().execute(
        "SELECT id, agent, model, version, action, status, error, started_at, finished_at "
        "FROM deployment WHERE (? IS NULL OR agent = ?) AND (? IS NULL OR model = ?) "
        "ORDER BY id DESC", [agent, agent, model, model]).fetchall()
    return [Deployment(*row) for row in rows]

