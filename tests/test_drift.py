"""Drift from histogram windows: PSI, KS and chi² against numpy/scipy, thresholds, alerts."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from core.alerts import list_alerts
from core.catalog import Catalog
from core.drift import EPSILON, Thresholds, drift_matrix, drift_report, drift_rows
from core.errors import NotFound
from core.telemetry.ingest import ingest_table, records_table
from edge_agent.contract.protocol import record_to_dict
from tests.conftest import run_cli
from tests.support.drift_reference import assert_same_as_unnested
from tests.support.fleet import histogram, open_catalog, requests

BASELINE = {
    "rows": 1000,
    "features": [
        {"name": "temp", "kind": "numeric", "edges": [0.0, 1.0, 2.0],
         "counts": [250, 250, 250, 200], "nulls": 50},
        {"name": "site", "kind": "categorical", "categories": ["a", "b"],
         "counts": [500, 400, 100], "nulls": 0},
    ],
    "prediction": {"name": "__prediction__", "kind": "categorical", "categories": ["x", "y"],
                   "counts": [700, 300, 0], "nulls": 0},
}
NORMAL = {"temp": [25, 25, 25, 20], "site": [50, 40, 10], "__prediction__": [70, 30, 0]}
SHIFTED = {"temp": [2, 8, 30, 55], "site": [50, 40, 10], "__prediction__": [40, 60, 0]}
T0 = 1_000_000.0


@pytest.fixture
def catalog(outpost_home: Path) -> Iterator[Catalog]:
    cat = open_catalog(outpost_home)
    cat.con.execute("INSERT INTO bundle (model, version, object, key_id, baseline) "
                    "VALUES ('m', 1, 'x', 'k', ?)", [json.dumps(BASELINE)])
    yield cat
    cat.close()


def _windows(catalog: Catalog, agent: str, shapes: list[dict[str, list[int]]],
             first_seq: int = 1, first_window: int = 0) -> int:
    recs, seq = [], first_seq
    for w, shape in enumerate(shapes, first_window):
        for feature, counts in shape.items():
            nulls = 5 if feature == "temp" else 0
            recs.append(histogram(seq, feature, counts, nulls=nulls, start=T0 + 60 * w))
            seq += 1
    ingest_table(catalog, agent, records_table(record_to_dict(r) for r in recs), where="test")
    return seq


def _psi(live: list[int], base: list[int]) -> float:
    p = np.maximum(np.asarray(live) / sum(live), EPSILON)
    q = np.maximum(np.asarray(base) / sum(base), EPSILON)
    return float(np.sum((p - q) * np.log(p / q)))


def test_statistics_match_reference(catalog: Catalog) -> None:
    _windows(catalog, "a", [SHIFTED, SHIFTED])
    report = drift_report(catalog, "m")
    temp = next(f for f in report.features if f.feature == "temp")
    live = [2 * c for c in SHIFTED["temp"]] + [10]
    base = BASELINE["features"][0]["counts"] + [50]
    assert temp.psi == pytest.approx(_psi(live, base))
    cdf_p = np.cumsum(live[:-1]) / sum(live[:-1])
    cdf_q = np.cumsum(base[:-1]) / sum(base[:-1])
    assert temp.ks == pytest.approx(float(np.max(np.abs(cdf_p - cdf_q))))
    assert temp.rows == sum(live) and temp.status == "alert" and temp.chi2_p is None
    site = next(f for f in report.features if f.feature == "site")
    site_live = [2 * c for c in SHIFTED["site"]] + [0]
    site_base = BASELINE["features"][1]["counts"] + [0]
    q = np.maximum(np.asarray(site_base) / sum(site_base), EPSILON)
    expected = q * sum(site_live)
    chi2 = float(np.sum((np.asarray(site_live) - expected) ** 2 / expected))
    assert site.chi2_p == pytest.approx(stats.chi2.sf(chi2, 2))
    assert site.status == "ok" and site.ks is None
    assert report.prediction is not None and report.prediction.status == "alert"
    assert {f.feature for f in report.features} == {"temp", "site"}


def test_per_agent_rows_and_alerts_raise_then_clear(catalog: Catalog) -> None:
    _windows(catalog, "calm", [NORMAL, NORMAL, NORMAL])
    _windows(catalog, "drifty", [NORMAL, NORMAL, SHIFTED])
    report = drift_report(catalog, "m", since=T0 + 120)
    by_agent = {(f.agent, f.feature): f.status for f in report.by_agent}
    assert by_agent[("drifty", "temp")] == "alert"
    assert by_agent[("calm", "temp")] == "ok"
    assert by_agent[("drifty", "site")] == "ok"
    open_keys = {a.key for a in list_alerts(catalog)}
    assert open_keys == {"drift/m/drifty/temp", "drift/m/drifty/__prediction__"}
    # A look at the past changes nothing; calm windows since then clear the alerts.
    drift_report(catalog, "m", until=T0 + 120)
    assert {a.key for a in list_alerts(catalog)} == open_keys
    _windows(catalog, "drifty", [NORMAL, NORMAL], first_seq=100, first_window=3)
    drift_report(catalog, "m", since=T0 + 180)
    assert list_alerts(catalog) == []
    cleared = list_alerts(catalog, include_cleared=True)
    assert {a.key for a in cleared} == open_keys and all(a.cleared_at for a in cleared)


def test_thresholds_are_configurable(catalog: Catalog) -> None:
    _windows(catalog, "a", [SHIFTED])
    def statuses(th: Thresholds) -> dict[str, str]:
        return {f.feature: f.status for f in drift_report(catalog, "m", thresholds=th).features}

    assert statuses(Thresholds()) == {"temp": "alert", "site": "ok"}
    assert statuses(Thresholds(psi_warn=0.001, psi_alert=100)) == {"temp": "warn", "site": "ok"}
    assert statuses(Thresholds(psi_warn=50, psi_alert=60)) == {"temp": "ok", "site": "ok"}
    env = Thresholds.from_env({"OUTPOST_PSI_WARN": "0.2", "OUTPOST_PSI_ALERT": "0.4"})
    assert (env.psi_warn, env.psi_alert, env.status(0.3)) == (0.2, 0.4, "warn")


def test_matrix_flags_only_the_drifted_window(catalog: Catalog) -> None:
    _windows(catalog, "a", [NORMAL, NORMAL, SHIFTED])
    cells = {(c.feature, c.window_start): c.status
             for c in drift_matrix(catalog, "m", bucket_s=60)}
    starts = sorted({w for _, w in cells})
    assert len(starts) == 3
    assert [cells[("temp", w)] for w in starts] == ["ok", "ok", "alert"]
    assert [cells[("site", w)] for w in starts] == ["ok", "ok", "ok"]


def test_health_alert_on_error_rate(catalog: Catalog) -> None:
    _windows(catalog, "a", [NORMAL])
    recs = requests(100, 90) + requests(190, 10, status=500)
    ingest_table(catalog, "a", records_table(record_to_dict(r) for r in recs), where="t")
    report = drift_report(catalog, "m")
    assert report.health[0].error_rate == pytest.approx(0.1)
    keys = {a.key for a in list_alerts(catalog)}
    assert "health/a/m/error_rate" in keys


def test_no_telemetry_is_one_clear_error(catalog: Catalog) -> None:
    with pytest.raises(NotFound, match="no histogram telemetry for model m"):
        drift_report(catalog, "m")


def test_cli_report_json_keys(outpost_home: Path, catalog: Catalog) -> None:
    _windows(catalog, "a", [NORMAL, SHIFTED])
    catalog.close()
    doc = run_cli(outpost_home, "drift", "report", "m", "--json", check=True).json()
    assert doc["model"] == "m"
    assert {f["feature"]: f["status"] for f in doc["features"]}["temp"] in ("warn", "alert")
    assert all({"feature", "psi", "status"} <= set(f) for f in doc["features"])


def test_request_series_per_bucket(catalog: Catalog) -> None:
    from core.telemetry.series import request_series

    recs = requests(1, 120, t0=T0) + requests(121, 60, t0=T0 + 120, status=503)
    ingest_table(catalog, "a", records_table(record_to_dict(r) for r in recs), where="t")
    points = request_series(catalog, "a", bucket_s=60)
    assert [p.t for p in points] == [T0 - T0 % 60 + 60 * i for i in range(len(points))]
    assert sum(p.requests for p in points) == 180
    last = points[-1]
    assert last.error_rate == 1.0 and points[0].error_rate == 0.0
    assert last.requests_per_s == pytest.approx(last.requests / 60)
    lat = np.asarray([r.latency_us for r in recs if last.t <= r.ts < last.t + 60]) / 1000
    assert last.p99_ms == pytest.approx(float(np.quantile(lat, 0.99)))
    assert request_series(catalog, "nobody") == []


def test_bin_sums_match_the_unnested_query(catalog: Catalog) -> None:
    """The one-aggregate query gives the old per-bin query's figures to the last bit: per
    agent and fleet-wide, per time bucket, bounded, and for a row wider than the baseline."""
    _windows(catalog, "calm", [NORMAL, SHIFTED, NORMAL])
    seq = _windows(catalog, "drifty", [SHIFTED, NORMAL, SHIFTED, SHIFTED])
    wide = histogram(seq, "temp", [3, 1, 4, 1, 5], nulls=9, start=T0 + 60)
    ingest_table(catalog, "drifty", records_table([record_to_dict(wide)]), where="test")
    compared = [assert_same_as_unnested(catalog, "m", 1),
                assert_same_as_unnested(catalog, "m", 1, bucket_s=60),
                assert_same_as_unnested(catalog, "m", 1, bucket_s=120, since=T0 + 60),
                assert_same_as_unnested(catalog, "m", 1, agent="calm", until=T0 + 120)]
    fleet = drift_rows(catalog, "m", 1, bucket_s=60, per_agent=False)
    assert fleet == [r for r in drift_rows(catalog, "m", 1, bucket_s=60) if r.agent is None]
    # x 3 features: 2 agents + the fleet; 11 (agent or fleet, minute) groups, 4 minutes but
    # calm sent 3; 2 two-minute buckets x 3; calm and the fleet (calm's rows only)
    assert compared == [3 * 3, 11 * 3, 2 * 3 * 3, 2 * 3]
