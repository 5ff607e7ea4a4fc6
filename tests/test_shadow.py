"""Shadow on the device: a bundle carrying a challenger, run by a real agent off the request
path, its agreement reported in telemetry, ingested and reported by the desktop."""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from core.telemetry.ingest import ingest_table, records_table
from edge_agent.contract.errors import BundleManifestInvalid, ModelInvalid
from edge_agent.contract.manifest import CHALLENGER, Manifest
from edge_agent.contract.protocol import Ed25519PrivateKey, generate_signing_key, write_bundle
from tests.support.agents import (
    AgentProcess,
    identity_model,
    json_request,
    read_members,
    resign,
    rezip,
    running_agent,
    tabular_model,
)
from tests.support.fleet import open_catalog
from tests.support.hub import wait_until

REQUESTS = 40


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


def shadow_bundle(out: Path, key: Ed25519PrivateKey, share: float = 1.0,
                  challenger: bytes | None = None) -> Path:
    champion = tabular_model("classification", 0)
    return write_bundle(out / "pumps-1.outpost", model="pumps", version=1, key=key,
                        model_bytes=champion.onnx_bytes, baseline=champion.baseline,
                        canary=champion.canary, task="classification", labels=champion.labels,
                        challenger=(2, challenger or tabular_model("classification", 1)
                                    .onnx_bytes, share))


def records(i: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(i)
    return [{"temp": float(rng.normal(20, 8)), "pressure": float(rng.normal(1000, 40)),
             "site": str(rng.choice(["north", "south", "east"]))} for _ in range(5)]


def expected_agreement() -> tuple[int, int, dict[str, int]]:
    """Rows, agreeing rows and divergence per champion class, computed here with onnxruntime."""
    def labels(model: bytes, recs: list[dict[str, Any]]) -> np.ndarray:
        sess = ort.InferenceSession(model)
        feeds = {"temp": np.array([[r["temp"]] for r in recs], np.float32),
                 "pressure": np.array([[r["pressure"]] for r in recs], np.float32),
                 "site": np.array([[r["site"]] for r in recs], object)}
        return np.asarray(sess.run(["label"], feeds)[0]).ravel()

    rows = agreed = 0
    divergence: dict[str, int] = {}
    for i in range(REQUESTS):
        a = labels(tabular_model("classification", 0).onnx_bytes, records(i))
        b = labels(tabular_model("classification", 1).onnx_bytes, records(i))
        rows, agreed = rows + len(a), agreed + int((a == b).sum())
        for label in a[a != b]:
            divergence[str(label)] = divergence.get(str(label), 0) + 1
    return rows, agreed, divergence


def shadow_records(agent: AgentProcess | Any) -> list[dict[str, Any]]:
    _, doc = json_request(f"{agent.url}/v1/telemetry?after=0&limit=10000", None,
                          {"Authorization": f"Bearer {agent.token}"})
    return [r for r in doc["records"] if r["kind"] == "shadow"]


def test_agent_runs_the_challenger_in_shadow_and_reports_agreement(
        tmp_path: Path, key: Ed25519PrivateKey, cli: Any, outpost_home: Path) -> None:
    bundle = shadow_bundle(tmp_path, key)
    with running_agent(tmp_path / "agent", trust_key=key,
                       extra_args=("--window-s", "1")) as agent:
        status, doc = json_request(f"{agent.url}/v1/bundles", None, agent.headers(),
                                   method="POST", data=bundle.read_bytes())
        assert status == 200, doc
        for i in range(REQUESTS):
            status, doc = json_request(f"{agent.url}/v1/models/pumps/predict",
                                       {"records": records(i)})
            assert status == 200 and doc["version"] == 1
        found = wait_until(
            lambda: (recs := shadow_records(agent)) and sum(r["count"] for r in recs)
            == REQUESTS and recs, timeout=30, what="shadow windows for every request")
    rows, agreed, divergence = expected_agreement()
    assert 0 < agreed < rows  # the two models differ somewhere, so agreement means something
    assert sum(r["rows"] for r in found) == rows
    assert sum(r["agreed"] for r in found) == agreed
    assert {r["challenger"] for r in found} == {2} and {r["version"] for r in found} == {1}
    assert sum(r["dropped"] + r["timeouts"] + r["errors"] for r in found) == 0
    assert sum(sum(r["counts"]) for r in found) == REQUESTS
    merged: dict[str, int] = {}
    for r in found:
        for label, n in json.loads(r["divergence"]).items():
            merged[label] = merged.get(label, 0) + n
    assert merged == divergence

    # The desktop: the pulled records ingested, then `outpost shadow report`.
    catalog = open_catalog(outpost_home)
    try:
        ingest_table(catalog, "edge-1", records_table(found), where="test pull")
    finally:
        catalog.close()
    report = cli("shadow", "report", "pumps", "--json", check=True).json()
    (entry,) = report["agents"]
    assert (entry["agent"], entry["version"], entry["challenger"]) == ("edge-1", 1, 2)
    assert entry["requests"] == REQUESTS and entry["rows"] == rows
    assert entry["agreement"] == round(agreed / rows, 4)
    assert entry["divergence"] == dict(sorted(divergence.items()))
    assert entry["latency_mean_ms"] > 0 and entry["latency_p99_ms"] > 0
    bad = cli("shadow", "report", "nosuch", "--json")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_challenger_with_other_inputs_is_refused_and_nothing_installed(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with pytest.raises(ModelInvalid, match="challenger inputs"):
        shadow_bundle(tmp_path, key, challenger=identity_model())
    # A bundle signed with such a challenger anyway (another tool): the agent refuses it.
    members = read_members(shadow_bundle(tmp_path, key))
    doc = json.loads(members["manifest.json"])
    other = identity_model()
    members[CHALLENGER] = other
    doc["members"][CHALLENGER] = {"sha256": hashlib.sha256(other).hexdigest(),
                                  "size": len(other)}
    members["manifest.json"] = json.dumps(doc).encode()
    forged = rezip(tmp_path / "forged.outpost", resign(members, key))
    with running_agent(tmp_path / "agent", trust_key=key) as agent:
        status, body = json_request(f"{agent.url}/v1/bundles", None, agent.headers(),
                                    method="POST", data=forged.read_bytes())
        assert status == 422 and "challenger inputs" in body["error"], body
        _, state = json_request(f"{agent.url}/v1/status", None, agent.headers())
        assert state["models"] == []


def test_manifest_challenger_fields_are_checked(tmp_path: Path, key: Ed25519PrivateKey
                                                ) -> None:
    doc = json.loads(read_members(shadow_bundle(tmp_path, key))["manifest.json"])
    assert Manifest.from_dict(doc).challenger is not None
    for change in ({"share": 0}, {"share": 1.5}, {"version": 0}, {"member": "../x.onnx"}):
        bad = json.loads(json.dumps(doc))
        bad["challenger"].update(change)
        with pytest.raises(BundleManifestInvalid):
            Manifest.from_dict(bad)
    old = json.loads(json.dumps(doc))
    del old["challenger"], old["members"][CHALLENGER]
    assert Manifest.from_dict(old).challenger is None  # bundles without one stay valid
    half = json.loads(json.dumps(doc))
    del half["challenger"]  # a challenger member the manifest does not describe
    with pytest.raises(BundleManifestInvalid):
        Manifest.from_dict(half)


def test_shadow_starts_and_stops_on_an_agent_already_serving_the_champion(
        outpost_home: Path, cli: Any, tmp_path: Path) -> None:
    """The field's case: pumps@1 serves, then pumps@1 with pumps@2 as challenger arrives
    (accepted, champion answering throughout), then without it (shadow stopped). A
    same-version bundle with another champion is still refused."""
    from core.fleet.agents import add_agent
    from core.keys import signing_key
    from core.registry import register_model
    from core.training import train
    from tests.support.fleet import start_agent, train_mini

    catalog = open_catalog(outpost_home)
    try:
        frame = train_mini(catalog, "pumps")  # pumps@1
        register_model(catalog, train(catalog, "mini", "fail", algo="random_forest").id,
                       "pumps")  # pumps@2, same inputs
        desktop_key = signing_key(catalog)
        agent = start_agent(tmp_path / "agent", desktop_key)
        add_agent(catalog, "edge", agent.url, agent.token)
    finally:
        catalog.close()
    predict_url = f"{agent.url}/v1/models/pumps/predict"
    rows = frame.drop(columns=["fail"]).head(20)
    body = {"records": json.loads(rows.to_json(orient="records"))}
    try:
        bad = cli("deploy", "pumps@1", "--to", "edge", "--challenger", "pumps@1")
        assert bad.returncode == 1 and "is the champion itself" in bad.stderr
        cli("deploy", "pumps@1", "--to", "edge", "--json", check=True)
        answers: list[tuple[int, Any]] = []
        deployed = threading.Event()

        def traffic() -> None:  # the champion keeps answering while the challenger arrives
            while not deployed.is_set() or not answers:
                answers.append(json_request(predict_url, body))

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            done = cli("deploy", "pumps@1", "--to", "edge", "--challenger", "pumps@2",
                       "--shadow-share", "1", "--json", check=True).json()
        finally:
            deployed.set()
            sender.join()
        assert (done["version"], done["status"]) == (1, "active")
        assert answers and all(s == 200 and d["version"] == 1 for s, d in answers), answers[-1]
        champion = answers[0][1]["predictions"]
        status, doc = json_request(predict_url, body)
        assert status == 200 and doc["predictions"] == champion
        found = wait_until(lambda: [r for r in shadow_records(agent) if r["count"]],
                           timeout=30, what="a shadow window")
        assert found[0]["challenger"] == 2 and found[0]["rows"] % 20 == 0
        _, doc = json_request(f"{agent.url}/v1/telemetry?after=0&limit=10000", None,
                              {"Authorization": f"Bearer {agent.token}"})
        events = [json.loads(r["body"]) for r in doc["records"] if r["kind"] == "agent_event"]
        assert [(e["event"], e["version"], e["previous"]) for e in events] == [
            ("install", 1, None), ("activate", 1, None), ("install", 1, None),
            ("activate", 1, 1)]  # the challenger change, recorded like an install
        cli("telemetry", "pull", "--agent", "edge", check=True)
        (entry,) = cli("shadow", "report", "pumps", "--json", check=True).json()["agents"]
        assert (entry["agent"], entry["version"], entry["challenger"]) == ("edge", 1, 2)
        assert entry["rows"] >= 20 and entry["agreement"] == round(
            entry["agreed"] / entry["rows"], 4)

        # Same version, another champion (validly signed): refused, serving unchanged.
        other = tabular_model("classification", 1)
        forged = write_bundle(tmp_path / "forged.outpost", model="pumps", version=1,
                              key=desktop_key, model_bytes=other.onnx_bytes,
                              baseline=other.baseline, canary=other.canary)
        status, refused = json_request(f"{agent.url}/v1/bundles", None, {
            "Authorization": f"Bearer {agent.token}"}, method="POST", data=forged.read_bytes())
        assert status == 409 and "already installed with different content" in refused["error"]
        status, doc = json_request(predict_url, body)
        assert status == 200 and (doc["version"], doc["predictions"]) == (1, champion)

        # The plain bundle again stops the shadow.
        cli("deploy", "pumps@1", "--to", "edge", "--json", check=True)
        assert not (agent.dir / "models" / "pumps" / "1" / CHALLENGER).exists()
        status, doc = json_request(predict_url, body)
        assert status == 200 and doc["predictions"] == champion
    finally:
        agent.stop()
