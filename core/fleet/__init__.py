"""Agents and what goes to them: enrolment, the local agent, deploys, key rotation.

Operations go through :mod:`core.fleet.dispatch`, which sends each the agent's way
(push, or recorded for the hub)."""
