"""Retraining policy: declarative triggers stored with the model, evaluated after every
telemetry ingest, a queued retrain at a time per model, then the gate (docs/policy.md)."""
