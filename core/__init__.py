"""Outpost core."""
