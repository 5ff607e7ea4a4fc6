"""Retraining policy against a real agent: a drifted stream, `outpost telemetry pull`,
exactly one retrain, judged on the holdout and on the newest labelled captures, staged and
not deployed; a trigger while a retrain runs is skipped and said; bad policies refused."""
from __future__ import annotations

import csv
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.catalog import Catalog
from core.feedback.importing import import_feedback
from core.fleet.agents import add_agent
from core.fleet.capture import capture_policy
from core.fleet.dispatch import deploy, set_capture
from core.keys import signing_key
from core.policy.evaluate import after_ingest, evaluate
from core.policy.retrain import run_retrain
from core.policy.spec import Policy, ScheduleTrigger
from core.policy.store import retrains, set_policy
from core.progress import CancelToken, ProgressEvent
from core.registry import list_versions, resolve_model
from core.registry.gate import staged_versions
from core.telemetry.pull import pull_telemetry
from tests.conftest import run_cli
from tests.support.agents import verify_for
from tests.support.fleet import agents, open_catalog, train_mini

pytestmark = pytest.mark.xdist_group("fleet")
WINDOW_S = 1.0  # tests.support.fleet.start_agent's histogram window


def _drifted(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Temperatures crowded at the failure threshold (22): far from the training spread
    (PSI >> 0.25 on temp), and where the linear champion errs most."""
    temp = rng.uniform(20.5, 23.5, n).round(3)
    site = rng.choice(["north", "south", "west"], n)
    return [{"temp": float(t), "site": str(s), "load": float(rng.integers(0, 5))}
            for t, s in zip(temp, site, strict=True)]


def _windows(catalog: Catalog) -> int:
    return int(catalog.cursor().execute(
        "SELECT count(DISTINCT window_start) FROM telemetry_histogram "
        "WHERE model = 'pumps' AND feature = 'temp'").fetchone()[0])


def _stream(catalog: Catalog, url: str, windows: int, per_window: int = 50) -> dict[str, int]:
    """`per_window` drifted requests, then wait until their window reached the catalog,
    `windows` times: always the same rows, over at least `windows` windows. Returns the
    true label of every answered id."""
    rng = np.random.default_rng(7)
    truth: dict[str, int] = {}
    with httpx.Client(base_url=url, verify=verify_for(url)) as http:
        for n in range(1, windows + 1):
            for _ in range(per_window // 10):
                batch = _drifted(10, rng)
                doc = http.post("/v1/models/pumps/predict", json={"records": batch}).json()
                truth.update({i: int(r["temp"] > 22)
                              for i, r in zip(doc["ids"], batch, strict=True)})
            deadline = time.monotonic() + 60
            while _windows(catalog) < n:
                assert time.monotonic() < deadline, "the drifted windows did not arrive"
                pull_telemetry(catalog, "edge")
                time.sleep(0.05)  # polling the agent's outbox, with a deadline
            # A pull cuts the open window short; the next rows must fall in a later one.
            ((start,),) = catalog.cursor().execute(
                "SELECT max(window_start) FROM telemetry_histogram").fetchall()
            while time.time() < start + WINDOW_S:
                time.sleep(0.05)
    return truth


def test_drifted_stream_pull_retrains_once_and_stages(outpost_home: Path,
                                                      tmp_path: Path) -> None:
    catalog = open_catalog(outpost_home)
    train_mini(catalog)  # pumps@1: logistic regression, production
    with agents(tmp_path, signing_key(catalog), 1) as (a,):
        add_agent(catalog, "edge", a.url, a.token)
        deploy(catalog, "pumps@1", "edge")
        set_capture(catalog, "edge", "pumps", capture_policy(share=1.0))
        truth = _stream(catalog, a.url, windows=2)
        deadline = time.monotonic() + 30
        while catalog.cursor().execute(
                "SELECT count(*) FROM telemetry_capture").fetchone()[0] < len(truth):
            assert time.monotonic() < deadline, "the captured rows did not arrive"
            pull_telemetry(catalog, "edge")
        labels = tmp_path / "labels.csv"
        with labels.open("w", newline="") as fh:
            csv.writer(fh).writerows([("id", "label"), *truth.items()])
        import_feedback(catalog, labels, "pumps")
        catalog.close()
        set_doc = run_cli(outpost_home, "policy", "set", "pumps", "--psi", "0.25",
                          "--psi-features", "1", "--psi-windows", "2", "--psi-on", "temp",
                          "--algo", "random_forest", "--min-captured", "10", "--json",
                          check=True).json()
        assert set_doc["policy"]["psi"]["only"] == ["temp"]
        pulled = run_cli(outpost_home, "telemetry", "pull", "--json", check=True).json()
        again = run_cli(outpost_home, "telemetry", "pull", "--json", check=True).json()
        shown = run_cli(outpost_home, "policy", "show", "pumps", "--json", check=True).json()
        log = run_cli(outpost_home, "audit", "log", "--model", "pumps", "--json",
                      check=True).json()
        card = run_cli(outpost_home, "model", "card", "pumps@2", check=True).stdout

    (decision,) = pulled["policy"]["decisions"]
    assert decision["action"] == "triggered" and decision["fired"] == ["psi"]
    (psi,) = decision["checks"]
    assert any(len(w["over"]) >= 1 and w["over"]["temp"] >= 0.25
               for w in psi["values"]["agents"]["edge"])
    (retrain,) = pulled["policy"]["retrains"]
    assert retrain["status"] == "staged" and retrain["version"] == 2, retrain
    gate = retrain["gate"]
    assert gate["challenger"] > gate["production"]
    # The newest labelled captures were kept out of training and judged on.
    assert gate["captured"]["checked"] and gate["captured"]["rows"] >= 10
    assert gate["captured"]["challenger"] > gate["captured"]["production"]
    assert retrain["dataset"].startswith("mini_plus_captured@")
    # Nothing new since the retrain: the second pull triggers nothing.
    assert [d["action"] for d in again["policy"]["decisions"]] == ["quiet"]
    assert again["policy"]["retrains"] == []
    assert [r["status"] for r in shown["retrains"]] == ["staged"]  # exactly one retrain
    events = [(e["kind"], e["detail"].get("status")) for e in log["entries"]
              if e["kind"] in ("retrain", "gate", "policy")]
    assert events == [("policy", None), ("retrain", "triggered"), ("retrain", "started"),
                      ("gate", None), ("retrain", "staged")]
    assert "## Retraining" in card and "psi" in card
    catalog = open_catalog(outpost_home)
    try:
        assert staged_versions(catalog) == [{"model": "pumps", "version": 2}]
        assert resolve_model(catalog, "pumps@production").version == 1  # not deployed
    finally:
        catalog.close()


def test_trigger_during_a_running_retrain_is_skipped_and_said(catalog: Catalog) -> None:
    train_mini(catalog)
    set_policy(catalog, Policy("pumps", schedule=ScheduleTrigger(1e-3, "1ms")))
    (first,) = evaluate(catalog, source="check")
    assert first.action == "triggered" and first.retrain is not None
    entered, release = threading.Event(), threading.Event()

    def hold(event: ProgressEvent) -> None:  # the retrain waits here until released
        entered.set()
        assert release.wait(60)

    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(
        run_retrain(catalog.for_thread(), first.retrain, progress=hold)))
    worker.start()
    try:
        assert entered.wait(60)
        (skipped,) = after_ingest(catalog, "pull")  # an ingest while it runs
        assert skipped.action == "skipped"
        assert f"retrain #{first.retrain} of pumps is already running" in skipped.reason
    finally:
        release.set()
        worker.join(120)
    assert outcome and outcome[0].status == "rejected"  # same recipe, no gain: not staged
    statuses = [r.status for r in retrains(catalog, "pumps")]
    assert statuses == ["skipped", "rejected"]
    kinds = catalog.cursor().execute(
        "SELECT detail->>'status' FROM audit_event WHERE kind = 'retrain' "
        "ORDER BY position").fetchall()
    assert [k for (k,) in kinds] == ["triggered", "started", "skipped", "rejected"]
    # With the retrain over, the next trigger queues a new one; cancelled, it ends as such.
    (later,) = evaluate(catalog, source="check")
    assert later.action == "triggered" and later.retrain is not None
    token = CancelToken()
    token.cancel()
    cancelled = run_retrain(catalog, later.retrain, cancel=token)
    assert cancelled.status == "cancelled" and cancelled.version is None
    assert [v.version for v in list_versions(catalog, "pumps")] == [1]
    assert retrains(catalog, "pumps")[0].status == "cancelled"


def test_bad_policies_are_refused_in_one_line(outpost_home: Path, catalog: Catalog) -> None:
    train_mini(catalog)
    catalog.close()
    cases = [
        (("pumps", "--psi", "0.2", "--psi-on", "temp,pressure"), "pressure"),
        (("nosuch", "--psi", "0.2"), "nosuch"),
        (("pumps", "--psi", "-1"), "--psi must be"),
        (("pumps", "--psi", "0.2", "--psi-features", "9"), "--psi-features 9"),
        (("pumps", "--accuracy-drop", "2"), "--accuracy-drop must be"),
        (("pumps", "--captured-rows", "0"), "--captured-rows must be at least 1"),
        (("pumps", "--every", "soon"), "--every 'soon'"),
        (("pumps", "--every", "1d", "--metric", "rmse"), "does not fit"),
        (("pumps",), "at least one trigger"),
    ]
    for args, said in cases:
        refused = run_cli(outpost_home, "policy", "set", *args)
        assert refused.returncode == 1 and refused.stdout == "", args
        assert len(refused.stderr.strip().splitlines()) == 1 and said in refused.stderr, (
            args, refused.stderr)
    shown = run_cli(outpost_home, "policy", "show", "pumps")
    assert shown.returncode == 1 and "no retraining policy" in shown.stderr


def test_hub_ingest_queues_the_retrain_and_policy_check_runs_it(
        outpost_home: Path, catalog: Catalog) -> None:
    from core.hub.ingest import Batch
    from core.hub.writer import Writer
    from core.telemetry.ingest import records_table

    train_mini(catalog)
    set_policy(catalog, Policy("pumps", schedule=ScheduleTrigger(1e-3, "1ms")))
    writer = Writer(catalog, period_s=0.1)
    writer.start()
    try:
        records = records_table([{"seq": 1, "kind": "request", "ts": time.time(),
                                  "model": "pumps", "version": 1, "status": 200,
                                  "latency_us": 900, "rows": 1}])
        writer.telemetry(Batch("edge", records)).result(30)
        deadline = time.monotonic() + 30
        while not retrains(catalog, "pumps"):
            assert time.monotonic() < deadline, "the hub's writer did not evaluate the policy"
            time.sleep(0.05)
    finally:
        writer.stop()
    (queued,) = retrains(catalog, "pumps")
    assert (queued.status, queued.source, queued.run) == ("pending", "hub", None)  # not run
    catalog.close()
    checked = run_cli(outpost_home, "policy", "check", "pumps", "--no-run", "--json",
                      check=True).json()
    (decision,) = checked["decisions"]
    assert decision["action"] == "skipped" and f"#{queued.id}" in decision["reason"]
    ran = run_cli(outpost_home, "policy", "check", "pumps", "--json", check=True).json()
    assert [(r["retrain"], r["status"]) for r in ran["retrains"]][0] == (queued.id, "rejected")


def test_the_monitoring_pull_runs_the_policies_and_says_so(catalog: Catalog) -> None:
    from app.monitoring_data import snapshot

    train_mini(catalog)
    set_policy(catalog, Policy("pumps", schedule=ScheduleTrigger(1e-3, "1ms")))
    snap = snapshot(catalog, "pumps", None, 3600.0)  # no agents: the pull brings nothing
    assert snap.retrained
    assert snap.policy[0] == "policy pumps: schedule fired: retrain #1 queued"
    assert snap.policy[1].startswith("retrain #1 of pumps: rejected")


def test_accuracy_and_captured_triggers_count_labels_since_the_last_retrain(
        catalog: Catalog) -> None:
    from core.policy.evaluate import run_checks
    from core.policy.spec import AccuracyTrigger, CapturedTrigger
    from core.policy.store import get_policy
    from core.telemetry.ingest import ingest_table, records_table

    train_mini(catalog)  # holdout accuracy 0.96
    now = time.time()
    ids = [f"edge:1:{i}" for i in range(10)]
    labels = ["0"] * 8 + ["1"] * 2  # the agent answered "1" every time: 2 of 10 right
    records = [
        {"seq": 1, "kind": "prediction", "ts": now, "model": "pumps", "version": 1,
         "ids": ids, "predicted": ["1"] * 10, "times": [now] * 10},
        {"seq": 2, "kind": "feedback", "ts": now, "model": "pumps", "ids": ids,
         "labels": labels},
        *({"seq": 3 + i, "kind": "capture", "ts": now, "model": "pumps", "version": 1,
           "id": pid, "reason": "random", "prediction": "1",
           "inputs": '{"temp": 30.0, "site": "north", "load": 1.0}'}
          for i, pid in enumerate(ids)),
    ]
    ingest_table(catalog, "edge", records_table(records), where="test")
    set_policy(catalog, Policy("pumps", accuracy=AccuracyTrigger(0.05, 11),
                               captured=CapturedTrigger(11)))
    quiet = run_checks(catalog, get_policy(catalog, "pumps"))
    assert [(c.trigger, c.fired) for c in quiet] == [("accuracy", False), ("captured", False)]
    assert quiet[0].detail == "10 of 11 labels since the last retrain"
    assert quiet[1].values == {"labelled": 10, "new": 10, "rows": 11}
    set_policy(catalog, Policy("pumps", accuracy=AccuracyTrigger(0.05, 10),
                               captured=CapturedTrigger(10)))
    (fired,) = evaluate(catalog, source="import")
    assert fired.action == "triggered" and [c.trigger for c in fired.fired] == [
        "accuracy", "captured"]
    assert fired.checks[0].values["live"] == pytest.approx(0.2)
    # What the retrain was queued for is not counted again.
    (after,) = evaluate(catalog, source="import")
    assert after.action == "quiet"
    assert after.checks[1].values["new"] == 0
