"""Hostile requests from an enrolled device against a real hub server on loopback:
impossible byte ranges and out-of-range versions get a 4xx, the catalog is unchanged."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.catalog import Catalog
from core.fleet.dispatch import deploy
from core.fleet.ledger import list_deployments
from core.hub import HubHandle, enroll_agent
from edge_agent.contract.hub_protocol import Enrolment, agent_path, claim_message
from edge_agent.contract.protocol import generate_signing_key, public_key_b64
from tests.support.hub import hub_call, register_adder, start_test_hub

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def hub(catalog: Catalog) -> Iterator[HubHandle]:
    handle = start_test_hub(catalog, "127.0.0.1", 0)
    yield handle
    handle.stop()


def _enrolled(catalog: Catalog, hub: HubHandle, name: str) -> Enrolment:
    enrolment = enroll_agent(catalog, name, hub.url)
    key = generate_signing_key()
    proof = key.sign(claim_message(enrolment.agent, enrolment.token))
    body = orjson.dumps({"agent_id": "device-1", "public_key": public_key_b64(key),
                         "signature": base64.b64encode(proof).decode()})
    assert hub_call(hub.url, "POST", agent_path(name, "enroll"), enrolment.token,
                    body=body).status_code == 200
    return enrolment


def _deployed(catalog: Catalog, hub: HubHandle, tmp_path: Path) -> tuple[Enrolment, int, str]:
    e = _enrolled(catalog, hub, "pi")
    result = deploy(catalog, register_adder(catalog, tmp_path), "pi")
    poll = hub_call(hub.url, "POST", agent_path("pi", "poll"), e.token, body=b"{}").json()
    [item] = poll["desired"]
    return e, result.deployment, item["bundle"]["path"]


@pytest.mark.parametrize("value", ["bytes=-0", "bytes=5-2", "bytes=-", "bytes=0-1,3-4",
                                   "bytes=99999999999999999999-"])
def test_impossible_ranges_get_416(catalog: Catalog, hub: HubHandle, tmp_path: Path,
                                   value: str) -> None:
    e, _, path = _deployed(catalog, hub, tmp_path)
    answer = hub_call(hub.url, "GET", path, e.token, headers={"Range": value})
    assert answer.status_code == 416, (value, answer.status_code, answer.content[:100])
    assert hub_call(hub.url, "GET", path, e.token, headers={"Range": "bytes=-10"}
                    ).status_code == 206


@pytest.mark.parametrize("field,value", [("version", 2**31), ("version", 2**40),
                                         ("version", 2**63), ("version", 0),
                                         ("deployment", 2**63)])
def test_outcome_numbers_out_of_range_get_400(catalog: Catalog, hub: HubHandle,
                                              tmp_path: Path, field: str, value: int) -> None:
    e, deployment, _ = _deployed(catalog, hub, tmp_path)
    doc = {"deployment": deployment, "model": "adder", "status": "active", "version": 1,
           field: value}
    answer = hub_call(hub.url, "POST", agent_path("pi", "outcome"), e.token,
                      body=f'{{"deployment": {doc["deployment"]}, "model": "adder", '
                           f'"status": "active", "version": {doc["version"]}}}'.encode())
    assert answer.status_code == 400, answer.content
    [dep] = list_deployments(catalog, agent="pi")
    assert dep.status == "pending"
    good = orjson.dumps({"deployment": deployment, "model": "adder", "status": "active",
                         "version": 1})
    assert hub_call(hub.url, "POST", agent_path("pi", "outcome"), e.token,
                    body=good).status_code == 200
