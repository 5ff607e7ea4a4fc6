"""Sample datasets, built offline: two of scikit-learn's bundled sets and a field-sensor set.

``field_sensor`` is generated from a fixed seed: readings from pumps at six
sites, with a binary ``failure`` that depends on heat, vibration, humidity,
voltage, service age, hardware model and firmware. ``field_sensor_drifted``
comes from the same generator with ``SENSOR_DRIFTED_FEATURES`` shifted (hotter,
shakier, more humid, and more coastal and desert sites — so current draw, which
follows temperature, and pressure, which follows altitude, move too); every other
feature keeps its distribution, and ``failure`` follows the same rule.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.catalog import Catalog
from core.datasets import ImportResult, import_frame
from core.progress import ProgressFn, report

if TYPE_CHECKING:
    import numpy
    import pandas

SENSOR_ROWS = 60_000
SENSOR_SEED = 20_240_601
DRIFTED_SEED = SENSOR_SEED + 1
SENSOR_DRIFTED_FEATURES = ("temperature_c", "vibration_mm_s", "humidity_pct", "site",
                           "current_a", "pressure_kpa")
SITES = ("alpine", "coastal", "desert", "forest", "plains", "urban")
_SITE_WEIGHTS = (0.15, 0.20, 0.15, 0.15, 0.20, 0.15)
_DRIFTED_SITE_WEIGHTS = (0.05, 0.35, 0.30, 0.10, 0.10, 0.10)
_SITE_HEAT = {"alpine": -7.0, "coastal": 1.0, "desert": 9.0, "forest": -2.0, "plains": 2.0,
              "urban": 4.0}
_SITE_HUMIDITY = {"alpine": 45.0, "coastal": 78.0, "desert": 18.0, "forest": 65.0,
                  "plains": 50.0, "urban": 55.0}
MODELS = ("mk1", "mk2", "mk3")
FIRMWARE = ("2.1.0", "2.2.3", "3.0.1")


@dataclass(frozen=True)
class Sample:
    name: str
    task: str  # classification | regression
    target: str
    description: str
    build: Callable[[], Any]  # -> pandas.DataFrame


def _breast_cancer() -> pandas.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return frame.rename(columns=lambda c: str(c).replace(" ", "_"))


def _diabetes() -> pandas.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


def _with_nulls(rng: numpy.random.Generator, values: numpy.ndarray, share: float) -> Any:
    import numpy as np

    out = values.astype(object) if values.dtype.kind in "OU" else values.astype(float)
    mask = rng.random(len(values)) < share
    out[mask] = None if out.dtype == object else np.nan
    return out


def sensor_frame(rows: int = SENSOR_ROWS, seed: int = SENSOR_SEED,
                 drifted: bool = False) -> pandas.DataFrame:
    """Field-sensor readings with a ``failure`` label; ``drifted`` shifts the drifted features."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    site = rng.choice(SITES, rows, p=_DRIFTED_SITE_WEIGHTS if drifted else _SITE_WEIGHTS)
    model = rng.choice(MODELS, rows, p=(0.30, 0.45, 0.25))
    firmware = rng.choice(FIRMWARE, rows, p=(0.25, 0.45, 0.30))
    heat = np.vectorize(_SITE_HEAT.__getitem__)(site)
    temperature = 24.0 + heat + rng.normal(0, 6, rows) + (7.0 if drifted else 0.0)
    humidity = np.clip(np.vectorize(_SITE_HUMIDITY.__getitem__)(site) + rng.normal(0, 10, rows)
                       + (12.0 if drifted else 0.0), 0, 100)
    vibration = rng.lognormal(1.0, 0.45, rows) * (1.6 if drifted else 1.0)
    pressure = 101.3 - np.where(site == "alpine", 14.0, 0.0) + rng.normal(0, 1.2, rows)
    voltage = rng.normal(24.0, 0.7, rows)
    rpm = np.where(model == "mk3", 2400.0, 1800.0) + rng.normal(0, 120, rows)
    current = 3.0 + 0.03 * (temperature - 24) + 0.0006 * (rpm - 1800) + rng.normal(0, 0.3, rows)
    runtime = rng.uniform(0, 40_000, rows)
    service_days = rng.integers(0, 366, rows)
    risk = (-4.0 + 0.10 * (temperature - 25) + 0.60 * (vibration - 2.9)
            + 0.035 * np.maximum(humidity - 70, 0) - 0.9 * (voltage - 24)
            + 0.006 * (service_days - 180) + 0.00003 * (runtime - 20_000)
            + np.where(model == "mk1", 0.7, 0.0) + np.where(firmware == "2.1.0", 0.5, 0.0)
            + rng.normal(0, 0.5, rows))
    failure = (rng.random(rows) < 1 / (1 + np.exp(-risk))).astype("int64")
    return pd.DataFrame({
        "site": site.astype(object),
        "device_model": model.astype(object),
        "firmware": _with_nulls(rng, firmware, 0.02),
        "temperature_c": temperature.round(2),
        "humidity_pct": _with_nulls(rng, humidity.round(1), 0.03),
        "vibration_mm_s": _with_nulls(rng, vibration.round(3), 0.015),
        "pressure_kpa": pressure.round(2),
        "voltage_v": voltage.round(3),
        "current_a": current.round(3),
        "rpm": rpm.round(0),
        "runtime_hours": runtime.round(1),
        "days_since_service": service_days,
        "failure": failure,
    })


SAMPLES = (
    Sample("breast_cancer", "classification", "target",
           "scikit-learn's Wisconsin breast cancer set: 569 tumours, 30 measurements, "
           "target 1 = benign", _breast_cancer),
    Sample("diabetes", "regression", "target",
           "scikit-learn's diabetes set (unscaled): 442 patients, 10 measurements, "
           "target = disease progression after a year", _diabetes),
    Sample("field_sensor", "classification", "failure",
           f"seeded pump telemetry, {SENSOR_ROWS:,} readings; failure depends on the features",
           lambda: sensor_frame()),
    Sample("field_sensor_drifted", "classification", "failure",
           f"field_sensor with {', '.join(SENSOR_DRIFTED_FEATURES)} shifted",
           lambda: sensor_frame(seed=DRIFTED_SEED, drifted=True)),
)


def load_samples(catalog: Catalog, *, progress: ProgressFn | None = None) -> list[ImportResult]:
    """Import every sample; loading them again finds the same versions (``new=False``)."""
    results = []
    for i, sample in enumerate(SAMPLES):
        report(progress, "samples", i, len(SAMPLES))
        source = {"sample": sample.name, "task": sample.task, "target": sample.target,
                  "description": sample.description}
        results.append(import_frame(catalog, sample.name, sample.build(), source))
    report(progress, "samples", len(SAMPLES), len(SAMPLES))
    return results

