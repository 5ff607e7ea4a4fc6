"""The agent's telemetry: the SQLite outbox (gapless sequence, byte cap), the request
recorder and the per-feature histogram windows."""
