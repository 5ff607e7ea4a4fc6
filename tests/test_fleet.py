"""The fleet against real agent processes on loopback: enrolment, status, deploy, rollback,
telemetry pull, and every bad input the issue lists."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from core.catalog import Catalog
from core.fleet.agents import add_agent
from core.fleet.dispatch import agent_status, rollback
from core.fleet.errors import (
    AgentIdentityMismatch,
    AgentPinMismatch,
    AgentRefused,
    DeployRefused,
    TransferFailed,
)
from core.fleet.ledger import list_deployments
from core.fleet.push import deploy_bundle_file
from core.fleet.records import get_agent, list_agents
from core.keys import signing_key
from core.progress import CancelToken, ProgressEvent
from core.telemetry.pull import RetryPolicy, cursor_of, pull_telemetry
from edge_agent.contract.tls import short, spki_sha256_of_file
from tests.conftest import run_cli
from tests.support.agents import make_identity_bundle, verify_for
from tests.support.fleet import (
    Agent,
    agents,
    cutting_proxy,
    open_catalog,
    server_cert_of,
    start_agent,
    wait_for_outbox,
)

pytestmark = pytest.mark.xdist_group("fleet")


def _bundle(catalog: Catalog, tmp: Path, version: int) -> Path:
    return make_identity_bundle(tmp, signing_key(catalog), version=version)


def _active(catalog: Catalog, name: str) -> int | None:
    models = agent_status(catalog, name).models
    return next((m["active"] for m in models if m["name"] == "adder"), None)


def _traffic(agent: Agent, n: int) -> None:
    with httpx.Client(base_url=agent.url, verify=verify_for(agent.url)) as http:
        for i in range(n):
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1],
                                "data": [float(i % 3)]}]}
            assert http.post("/v2/models/adder/infer", json=body).status_code == 200


def test_two_agents_enrol_and_report_status(outpost_home: Path, catalog: Catalog,
                                            tmp_path: Path) -> None:
    with agents(tmp_path, signing_key(catalog), 2) as (a, b):
        add_agent(catalog, "b", b.url, b.token)
        catalog.close()
        out = run_cli(outpost_home, "agent", "add", "a", a.url, "--token", a.token, "--json",
                      check=True).json()
        assert out["agent"] == "a" and len(out["fingerprint"]) == 16
        status = run_cli(outpost_home, "agent", "status", "--json", check=True).json()
        assert [s["agent"] for s in status["agents"]] == ["a", "b"]
        for s in status["agents"]:
            assert {"agent", "online", "mode", "models", "telemetry_rows"} <= set(s)
            assert s["online"] is True and s["models"] == [] and s["telemetry_rows"] == 0
        b.stop()
        one = run_cli(outpost_home, "agent", "status", "b", "--json", check=True).json()
        assert one["agent"] == "b" and one["online"] is False
        assert "cannot reach agent b" in one["error"]


def test_unreachable_and_wrong_token_enrol_nothing(outpost_home: Path, catalog: Catalog,
                                                   tmp_path: Path) -> None:
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        catalog.close()
        closed = run_cli(outpost_home, "agent", "add", "x", "http://127.0.0.1:9", "--token", "t")
        assert closed.returncode == 1
        assert closed.stderr == "error: cannot reach agent x at http://127.0.0.1:9: " \
                                "connection refused\n"
        wrong = run_cli(outpost_home, "agent", "add", "x", a.url, "--token", "not-the-token")
        assert wrong.returncode == 1 and "refused the token" in wrong.stderr
        assert wrong.stderr.count("\n") == 1
        with open_catalog(outpost_home) as cat:
            assert list_agents(cat) == []


def test_agent_with_another_certificate_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    key = signing_key(catalog)
    first = start_agent(tmp_path / "one", key)
    add_agent(catalog, "field", first.url, first.token)
    pinned = get_agent(catalog, "field").tls_spki
    assert pinned == spki_sha256_of_file(tmp_path / "one" / "tls.crt")
    first.stop()
    impostor = start_agent(tmp_path / "two", key, port=first.port, token=first.token)
    presented = spki_sha256_of_file(tmp_path / "two" / "tls.crt")
    try:
        status = agent_status(catalog, "field")
        both = f"presents TLS certificate key {short(presented)}, not the pinned {short(pinned)}"
        assert not status.online and both in (status.error or "")
        assert get_agent(catalog, "field").pin_failed_at is not None  # the Fleet view's badge
        with pytest.raises(AgentPinMismatch, match="nothing was sent"):
            deploy_bundle_file(catalog, "field", _bundle(catalog, tmp_path, 1),
                               model="adder", version=1)
        assert list_deployments(catalog) == []
        [pulled] = pull_telemetry(catalog, "field")
        assert pulled.error and both in pulled.error
        assert get_agent(catalog, "field").tls_spki == pinned  # the pin did not move
    finally:
        impostor.stop()


def test_agent_with_the_certificate_but_another_identity_is_refused(catalog: Catalog,
                                                                    tmp_path: Path) -> None:
    """A device that copied the TLS key but not the identity key: the pin passes, the
    identity proof does not."""
    key = signing_key(catalog)
    first = start_agent(tmp_path / "one", key)
    add_agent(catalog, "field", first.url, first.token)
    first.stop()
    (tmp_path / "two").mkdir()
    for name in ("tls.key", "tls.crt"):
        shutil.copy2(tmp_path / "one" / name, tmp_path / "two" / name)
    impostor = start_agent(tmp_path / "two", key, port=first.port, token=first.token)
    try:
        status = agent_status(catalog, "field")
        assert not status.online and "presents identity key" in (status.error or "")
        with pytest.raises(AgentIdentityMismatch, match="not the key .* pinned at enrolment"):
            deploy_bundle_file(catalog, "field", _bundle(catalog, tmp_path, 1),
                               model="adder", version=1)
        assert list_deployments(catalog) == []
    finally:
        impostor.stop()


def test_push_cut_off_midway_then_retry(catalog: Catalog, tmp_path: Path) -> None:
    with agents(tmp_path, signing_key(catalog), 1) as (a,), \
            cutting_proxy(a.port, tls=server_cert_of(a.dir)) as proxy:  # holds its key
        add_agent(catalog, "edge", proxy.url, a.token)
        deploy_bundle_file(catalog, "edge", _bundle(catalog, tmp_path, 1), model="adder",
                           version=1)
        v2 = _bundle(catalog, tmp_path, 2)
        assert v2.stat().st_size > 900
        proxy.cut_after(b"POST /v1/bundles", 700)
        with pytest.raises(TransferFailed, match="connection to agent edge broke"):
            deploy_bundle_file(catalog, "edge", v2, model="adder", version=2)
        last = list_deployments(catalog)[0]
        assert (last.version, last.status) == (2, "failed") and "broke" in (last.error or "")
        assert _active(catalog, "edge") == 1
        _traffic(a, 1)  # still serving the old model
        retry = deploy_bundle_file(catalog, "edge", v2, model="adder", version=2)
        assert retry.status == "active" and _active(catalog, "edge") == 2


def test_opset_beyond_the_agent_is_refused_before_pushing(catalog: Catalog,
                                                          tmp_path: Path) -> None:
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        with pytest.raises(DeployRefused, match="needs opset ai.onnx 999"):
            deploy_bundle_file(catalog, "edge", _bundle(catalog, tmp_path, 1), model="adder",
                               version=1, opset={"": 999})
        assert list_deployments(catalog) == []


def test_rollback(outpost_home: Path, catalog: Catalog, tmp_path: Path) -> None:
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        deploy_bundle_file(catalog, "edge", _bundle(catalog, tmp_path, 1), model="adder",
                           version=1)
        with pytest.raises(AgentRefused, match="no previous version of adder"):
            rollback(catalog, "adder", "edge")
        assert list_deployments(catalog)[0].status == "failed"
        deploy_bundle_file(catalog, "edge", _bundle(catalog, tmp_path, 2), model="adder",
                           version=2)
        catalog.close()
        done = run_cli(outpost_home, "rollback", "adder", "--on", "edge", "--json",
                       check=True).json()
        assert (done["agent"], done["version"], done["status"]) == ("edge", 1, "rolled_back")
        again = run_cli(outpost_home, "rollback", "adder", "--on", "edge")
        assert again.returncode == 1 and "no previous version" in again.stderr
        assert again.stderr.count("\n") == 1


def test_pull_is_exactly_once_resumable_and_not_stalled(catalog: Catalog,
                                                       tmp_path: Path) -> None:
    with agents(tmp_path, signing_key(catalog), 2) as (a, b):
        add_agent(catalog, "a", a.url, a.token)
        add_agent(catalog, "b", b.url, b.token)
        deploy_bundle_file(catalog, "a", _bundle(catalog, tmp_path, 1), model="adder",
                           version=1)
        _traffic(a, 30)
        b.stop()
        wait_for_outbox(a.url, a.token, requests=30)  # its 1 s histogram windows closed
        cancel = CancelToken()

        def stop_after_first_page(event: ProgressEvent) -> None:
            cancel.cancel()

        from core.errors import Cancelled

        with pytest.raises(Cancelled):
            pull_telemetry(catalog, "a", page=10, progress=stop_after_first_page, cancel=cancel)
        assert cursor_of(catalog, "a") == 10
        started = time.monotonic()
        results = {r.agent: r for r in pull_telemetry(
            catalog, page=10, retry=RetryPolicy(attempts=3, backoff_s=0.2))}
        assert time.monotonic() - started < 10
        assert results["b"].error and "cannot reach agent b" in results["b"].error
        assert results["a"].error is None and results["a"].rows > 0
        stored = catalog.con.execute(
            "SELECT count(*), count(DISTINCT seq) FROM telemetry_request WHERE agent = 'a'"
        ).fetchall()[0]
        assert stored == (30, 30)
        hist = catalog.con.execute("SELECT count(*) FROM telemetry_histogram").fetchall()[0][0]
        assert hist > 0
        [again] = pull_telemetry(catalog, "a")
        assert again.rows == 0
        assert agent_status(catalog, "a").backlog == 0  # acked after commit
        assert agent_status(catalog, "a").telemetry_rows == 30
