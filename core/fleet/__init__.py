"""Agents and what goes to them: enrolment, the local agent, deploys, key rotation.

The GUI imports the whole fleet API from ``core.fleet.api``."""
