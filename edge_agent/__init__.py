"""Outpost edge_agent."""
