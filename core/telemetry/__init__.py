"""Telemetry from agents into the catalog: export files, pulls by cursor, request series."""
