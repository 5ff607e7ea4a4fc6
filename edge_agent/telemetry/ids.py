"""Prediction ids, unique across the fleet and restarts: ``AGENT:BOOT:SEQ``.

AGENT is the first 16 hex digits of the agent's uuid (64 random bits: two agents of a
fleet of 100,000 share one with a probability of 3e-10), BOOT its boot counter and SEQ a
counter of rows answered in this boot. Minting one is an integer addition; the text is
only formed where an answer or a telemetry record needs it.
"""

from __future__ import annotations


class PredictionIds:
    """Hands out consecutive row numbers. Called from the event loop only (no lock)."""

    def __init__(self, agent_id: str, boot: int) -> None:
        self.prefix = f"{agent_id.replace('-', '')[:16]}:{boot}:"
        self._next = 1

    def take(self, rows: int) -> int:
        """Reserve `rows` ids; returns the first row number."""
        first = self._next
        self._next = first + rows
        return first

    def texts(self, first: int, rows: int) -> list[str]:
        prefix = self.prefix
        return [f"{prefix}{n}" for n in range(first, first + rows)]
