"""Settings from one place: defaults, overridden by ``OUTPOST_*`` environment variables."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

ENV_PREFIX = "OUTPOST_"


@dataclass(frozen=True)
class Settings:
    home: Path

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
        return cls(home=Path(home).expanduser().resolve())
