"""Settings from one place: defaults, overridden by ``OUTPOST_*`` environment variables."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_data_dir

from core.errors import InvalidInput

ENV_PREFIX = "OUTPOST_"


# Alert thresholds an OUTPOST_<NAME> variable may override (core.drift.Thresholds fields).
THRESHOLD_NAMES = ("psi_warn", "psi_alert", "error_rate", "p99_ms")


@dataclass(frozen=True)
class Settings:
    home: Path
    hub_url: str | None = None  # the address devices are told to call (OUTPOST_HUB_URL)
    # OUTPOST_<NAME> overrides of the alert thresholds, as given; read by thresholds()
    threshold_text: Mapping[str, str] = field(default_factory=dict)

    def thresholds(self) -> dict[str, float]:
        """The threshold overrides as numbers; a value that is not one is refused."""
        values: dict[str, float] = {}
        for name, raw in self.threshold_text.items():
            try:
                values[name] = float(raw)
            except ValueError as exc:
                raise InvalidInput(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number"
                                   ) from exc
        return values

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.duckdb"

    @property
    def objects_dir(self) -> Path:
        return self.home / "objects"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def secrets_path(self) -> Path:
        """Agent tokens (0600), kept out of the catalog's tables."""
        return self.home / "secrets.json"

    @property
    def hub_tls_dir(self) -> Path:
        """The hub's TLS key (0600) and self-signed certificate."""
        return self.keys_dir / "hub-tls"

    @property
    def agents_dir(self) -> Path:
        """Where local agents keep their model store and outbox."""
        return self.home / "agents"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = env.get(ENV_PREFIX + "HOME") or user_data_dir("outpost", appauthor=False)
        text = {name: raw for name in THRESHOLD_NAMES
                if (raw := env.get(ENV_PREFIX + name.upper()))}
        return cls(home=Path(home).expanduser().resolve(),
                   hub_url=env.get(ENV_PREFIX + "HUB_URL") or None, threshold_text=text)
