"""Outpost app."""
