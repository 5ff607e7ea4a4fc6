"""The audit trail against a real agent: what served where at T, from both views; the
chain catching an edited or removed row; the signed evidence pack checked elsewhere."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.audit.chain import AGENT_EVENT, GENESIS, SELECT, entry_hash, row_entry
from core.fleet.agents import add_agent
from core.fleet.dispatch import deploy, rollback
from core.keys import signing_key
from core.telemetry.pull import pull_telemetry
from edge_agent.contract.audit_events import AgentEvent, sign_event
from tests.conftest import run_cli
from tests.support.fleet import (
    agents,
    enrol_row,
    export_file,
    new_identity,
    open_catalog,
    train_mini,
)

pytestmark = pytest.mark.xdist_group("fleet")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _wait_for_agent_events(catalog, agent: str, n: int, deadline_s: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while True:
        pull_telemetry(catalog, agent)
        (count,) = catalog.cursor().execute(
            "SELECT count(*) FROM audit_event WHERE kind = ? AND agent = ?",
            [AGENT_EVENT, agent]).fetchone()
        if count >= n or time.monotonic() > deadline:
            assert count >= n, f"only {count} agent events arrived"
            return
        time.sleep(0.05)


def test_audit_at_answers_each_instant_from_both_views_and_tamper_is_named(
        outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    train_mini(catalog)  # pumps@2
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        before = _now()
        deploy(catalog, "pumps@1", "edge")
        after_v1 = _now()
        deploy(catalog, "pumps@2", "edge")
        after_v2 = _now()
        assert rollback(catalog, "pumps", "edge").version == 1
        after_rollback = _now()
        # install+activate, install+activate, rollback: five events, as the agent saw them
        _wait_for_agent_events(catalog, "edge", 5)
    catalog.close()

    expected = {before: None, after_v1: 1, after_v2: 2, after_rollback: 1}
    for instant, version in expected.items():
        answer = run_cli(outpost_home, "audit", "at", "edge", instant, "--json",
                         check=True).json()
        assert answer["agent"] == "edge" and answer["version"] == version, (instant, answer)
        if version is None:
            assert answer["evidence"]["desktop"] is None and answer["evidence"]["agent"] is None
            continue
        ev = answer["evidence"]
        assert answer["model"] == "pumps" and len(answer["sha256"]) == 64
        assert ev["desktop"]["version"] == version and ev["agent"]["version"] == version
        assert ev["agree"] is True and ev["agent"]["sha256"] == answer["sha256"]
        assert ev["registration"]["parity"]["passed"] in (True, False)
        assert answer["since"] <= instant and isinstance(answer["deployed_by_event"], int)
    rolled = run_cli(outpost_home, "audit", "at", "edge", after_rollback, "--json").json()
    assert rolled["evidence"]["desktop"]["kind"] == "rollback"
    assert rolled["evidence"]["agent"]["event"] == "rollback"

    log = run_cli(outpost_home, "audit", "log", "--agent", "edge", "--json", check=True).json()
    kinds = [e["kind"] for e in log["entries"]]
    assert kinds.count("deploy") == 2 and kinds.count("rollback") == 1
    assert [e["detail"]["event"] for e in log["entries"] if e["kind"] == AGENT_EVENT] == [
        "install", "activate", "install", "activate", "rollback"]
    seqs = [e["agent_seq"] for e in log["entries"] if e["kind"] == AGENT_EVENT]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    everything = run_cli(outpost_home, "audit", "log", "--model", "pumps", "--json").json()
    assert {"register", "alias", "bundle_build"} <= {e["kind"] for e in everything["entries"]}

    ok = run_cli(outpost_home, "audit", "verify", "--json", check=True).json()
    assert ok["ok"] is True and ok["entries"] >= 13

    # One edited row: verify fails and names it.
    catalog = open_catalog(outpost_home)
    (target,) = catalog.con.execute("SELECT min(position) FROM audit_event WHERE "
                                    "kind = 'deploy'").fetchone()
    catalog.con.execute("UPDATE audit_event SET version = 2 WHERE position = ?", [target])
    catalog.close()
    bad = run_cli(outpost_home, "audit", "verify", "--json")
    assert bad.returncode == 1 and bad.json()["bad_entry"] == target
    assert f"entry {target}" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def _rechain(catalog) -> None:  # type: ignore[no-untyped-def]
    """What a forger with write access would do: recompute every hash after an edit."""
    prev = GENESIS
    rows = catalog.con.execute(f"SELECT {SELECT} FROM audit_event ORDER BY position").fetchall()
    for row in rows:
        entry, _, _ = row_entry(row)
        digest = entry_hash(prev, entry)
        catalog.con.execute("UPDATE audit_event SET prev_hash = ?, hash = ? WHERE position = ?",
                            [prev, digest, entry["position"]])
        prev = digest


def _verify(home: Path) -> int | None:
    result = run_cli(home, "audit", "verify", "--json")
    assert result.returncode == (0 if result.json()["ok"] else 1)
    return result.json()["bad_entry"]


def test_removed_reordered_and_forged_rows_are_named(outpost_home: Path,
                                                      tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        deploy(catalog, "pumps@1", "edge")
        _wait_for_agent_events(catalog, "edge", 2)
    (agent_pos,) = catalog.con.execute(
        "SELECT max(position) FROM audit_event WHERE kind = ?", [AGENT_EVENT]).fetchone()
    catalog.close()
    home = outpost_home
    backup = tmp_path / "backup.duckdb"
    backup.write_bytes((home / "catalog.duckdb").read_bytes())

    def restored():  # type: ignore[no-untyped-def]
        (home / "catalog.duckdb").write_bytes(backup.read_bytes())
        return open_catalog(home)

    assert _verify(home) is None
    catalog = restored()  # a row removed from the middle
    catalog.con.execute("DELETE FROM audit_event WHERE position = 3")
    catalog.close()
    assert _verify(home) == 3
    catalog = restored()  # two rows swapped
    catalog.con.execute("UPDATE audit_event SET position = -position WHERE position IN (2, 3)")
    catalog.con.execute("UPDATE audit_event SET position = 3 WHERE position = -2")
    catalog.con.execute("UPDATE audit_event SET position = 2 WHERE position = -3")
    catalog.close()
    assert _verify(home) == 2
    catalog = restored()  # the agent's own word changed and the chain recomputed
    catalog.con.execute("UPDATE audit_event SET version = 7, agent_body = replace(agent_body, "
                        "'\"version\":1', '\"version\":7') WHERE position = ?", [agent_pos])
    _rechain(catalog)
    catalog.close()
    result = run_cli(home, "audit", "verify")
    assert result.returncode == 1 and f"entry {agent_pos}" in result.stderr
    assert "agent signature" in result.stderr


def test_evidence_pack_verifies_elsewhere_and_fails_when_altered(
        outpost_home: Path, tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    catalog.close()
    rotated = run_cli(outpost_home, "keys", "rotate", "--json", check=True).json()
    log = run_cli(outpost_home, "audit", "log", "--json", check=True).json()["entries"]
    assert [e["kind"] for e in log][-1] == "key_rotation"
    assert log[-1]["detail"]["new_key"] == rotated["new_fingerprint"]
    pack = tmp_path / "evidence.jsonl"
    written = run_cli(outpost_home, "audit", "export", "--out", str(pack), "--json",
                      check=True).json()
    assert written["entries"] >= 2 and pack.is_file()
    pub = tmp_path / "desktop.pub"
    run_cli(outpost_home, "keys", "show", "--out", str(pub), check=True)

    elsewhere = tmp_path / "other-machine"  # a fresh home: no catalog, no keys
    ok = run_cli(elsewhere, "audit", "verify", str(pack), "--key", str(pub), "--json",
                 check=True).json()
    assert ok["ok"] is True and ok["head"] == written["head"]
    assert not (elsewhere / "catalog.duckdb").exists()

    lines = pack.read_bytes().split(b"\n")
    altered = tmp_path / "altered.jsonl"
    altered.write_bytes(b"\n".join([*lines[:2], lines[2].replace(b'"alias"', b'"aliaz"'),
                                    *lines[3:]]))
    bad = run_cli(elsewhere, "audit", "verify", str(altered), "--json")
    assert bad.returncode == 1 and bad.json()["bad_entry"] == 2
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(b"\n".join([lines[0], *lines[2:]]))
    gone = run_cli(elsewhere, "audit", "verify", str(dropped), "--json")
    assert gone.returncode == 1 and gone.json()["bad_entry"] == 1
    other_key = tmp_path / "other.pub"
    from edge_agent.contract.protocol import generate_signing_key, write_public_key
    write_public_key(generate_signing_key().public_key(), other_key)
    wrong = run_cli(elsewhere, "audit", "verify", str(pack), "--key", str(other_key))
    assert wrong.returncode == 1 and "not the expected" in wrong.stderr
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"not json\nat all\n\x00\xff\n\n")
    for bad_file in (garbage, tmp_path / "missing.jsonl"):
        refused = run_cli(elsewhere, "audit", "verify", str(bad_file), "--json")
        assert refused.returncode == 1 and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1


def test_agent_events_signed_by_another_key_are_kept_aside_and_skew_is_reported(
        outpost_home: Path, tmp_path: Path) -> None:
    identity, stranger = new_identity(), new_identity()
    catalog = open_catalog(outpost_home)
    enrol_row(catalog, "edge", identity)
    catalog.close()

    def event(seq: int, ts: float, version: int, key=identity) -> dict:  # type: ignore[no-untyped-def]
        record = sign_event(AgentEvent("id-edge", "boot-1", seq, ts, "activate", "pumps",
                                       version, None, None), key)
        return {"seq": seq, **record}

    t0 = 1_800_000_000.0
    records = [event(1, t0, 1), event(2, t0 - 100, 2),  # the clock jumped back 100 s
               event(3, t0 + 50, 3, key=stranger)]
    path = export_file(tmp_path / "t.ndjson", records, identity, agent_id="id-edge")
    for _ in range(2):  # importing the same file twice chains each event once
        run_cli(outpost_home, "telemetry", "import", str(path), "--json", check=True)
    log = run_cli(outpost_home, "audit", "log", "--agent", "edge", "--json", check=True).json()
    assert [e["agent_seq"] for e in log["entries"]] == [1, 2]
    assert log["rejected_agent_events"] == 1

    when = datetime.fromtimestamp(t0 + 10, UTC).isoformat()
    answer = run_cli(outpost_home, "audit", "at", "edge", when, "--json", check=True).json()
    # By the agent's sequence, version 2 came last: never reordered by its clock.
    assert answer["version"] == 2 and answer["evidence"]["desktop"] is None
    assert [s["agent_seq"] for s in answer["clock_skew"]] == [2]
    assert answer["clock_skew"][0]["backwards_s"] == pytest.approx(100)
    assert answer["rejected_agent_events"] == 1
    assert run_cli(outpost_home, "audit", "verify", "--json", check=True).json()["ok"]

    bad_time = run_cli(outpost_home, "audit", "at", "edge", "2026-01-01T00:00:00")
    assert bad_time.returncode == 1 and "timezone" in bad_time.stderr
    assert len(bad_time.stderr.strip().splitlines()) == 1


def test_usb_install_events_travel_in_the_export_file(outpost_home: Path,
                                                      tmp_path: Path) -> None:
    """`outpost-agent install` off-line, `export-telemetry`, `telemetry import`: the
    agent's own install and activate events arrive with the file and answer `audit at`."""
    import subprocess
    import sys

    from core.bundles import build_bundle
    from edge_agent.contract.protocol import write_public_key
    from edge_agent.store.identity import load_or_create_identity

    catalog = open_catalog(outpost_home)
    train_mini(catalog)
    bundle = build_bundle(catalog, "pumps@1", tmp_path / "b")
    pub = write_public_key(signing_key(catalog).public_key(), tmp_path / "desk.pub")
    site = tmp_path / "site"
    identity = load_or_create_identity(site)
    enrol_row(catalog, "site", identity.key, agent_id=identity.agent_id)
    catalog.close()
    agent = [sys.executable, "-m", "edge_agent"]
    subprocess.run([*agent, "install", str(bundle.path), "--dir", str(site), "--trust-key",
                    str(pub)], check=True, capture_output=True, timeout=120)
    after_install = _now()
    out = tmp_path / "site.ndjson"
    subprocess.run([*agent, "export-telemetry", "--dir", str(site), "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    run_cli(outpost_home, "telemetry", "import", str(out), check=True)
    answer = run_cli(outpost_home, "audit", "at", "site", after_install, "--json",
                     check=True).json()
    assert (answer["model"], answer["version"]) == ("pumps", 1)
    assert answer["evidence"]["agent"]["sha256"] == bundle.sha256 == answer["sha256"]
    assert answer["evidence"]["desktop"] is None  # the desktop pushed nothing: USB


def test_record_event_api_for_approvals_and_retrains(outpost_home: Path) -> None:
    """The API later writers call: inside their own transaction, chained like the rest."""
    from core.audit import record_event
    from core.audit.query import audit_log, parse_time, verify_catalog

    catalog = open_catalog(outpost_home)
    with catalog.transaction() as cur:
        first = record_event(cur, "approve", model="pumps", version=3, actor="alice",
                             detail={"policy": "two-person"})
    cut = _now()
    with catalog.transaction() as cur:
        second = record_event(cur, "retrain", model="pumps", detail={"trigger": "drift"})
    with pytest.raises(ValueError, match="unknown audit event kind"):
        with catalog.transaction() as cur:
            record_event(cur, "tamper", model="pumps")
    with pytest.raises(RuntimeError):  # the change it records failed: no entry either
        with catalog.transaction() as cur:
            record_event(cur, "retrain", model="pumps")
            raise RuntimeError("the retrain could not start")
    entries = audit_log(catalog, model="pumps")
    assert [(e.position, e.kind, e.actor) for e in entries][:1] == [(first, "approve", "alice")]
    assert [e.position for e in entries] == [first, second]
    assert [e.kind for e in audit_log(catalog, since=parse_time(cut))] == ["retrain"]
    assert verify_catalog(catalog).ok
    catalog.close()
