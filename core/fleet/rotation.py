"""Moving agents onto a new signing key: at rotation time for those online, before their
next bundle for the others."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.catalog import Catalog
from core.errors import OutpostError
from core.fleet.agents import connect
from core.fleet.client import AgentClient
from core.fleet.records import AgentRecord, list_agents
from core.keys import Rotation, current_rotation, rotate_signing_key, rotation_record_for


@dataclass(frozen=True)
class RotationOutcome:
    agent: str
    ok: bool
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "ok": self.ok, "error": self.error}


def catch_up_rotations(catalog: Catalog, record: AgentRecord, client: AgentClient) -> int:
    """Send every rotation the agent missed, in order; returns how many were sent."""
    index, counter = record.key_index, record.key_counter
    latest = current_rotation(catalog)
    for rotation in range(index + 1, latest + 1):
        client.rotate_key(rotation_record_for(catalog, rotation, counter))
        index, counter = rotation, counter + 1
        with catalog.transaction() as cur:
            cur.execute("UPDATE agent SET key_index = ?, key_counter = ? WHERE name = ?",
                        [index, counter, record.name])
    return latest - record.key_index if latest > record.key_index else 0


def rotate_keys(catalog: Catalog) -> tuple[Rotation, list[RotationOutcome]]:
    """A new signing key; every enrolled agent reachable now is moved onto it."""
    rotation = rotate_signing_key(catalog)
    outcomes = []
    for agent in list_agents(catalog):
        if agent.mode == "hub":  # the records go out with its next poll answer
            outcomes.append(RotationOutcome(agent.name, True, None))
            continue
        try:
            with connect(catalog, agent.name) as (record, client):
                catch_up_rotations(catalog, record, client)
            outcomes.append(RotationOutcome(agent.name, True, None))
        except OutpostError as exc:
            outcomes.append(RotationOutcome(agent.name, False, str(exc)))
    return rotation, outcomes
