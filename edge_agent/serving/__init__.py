"""The agent's HTTP server: OIP v2 (JSON and binary), /v1 predict, management routes,
metrics, and the loaded-model sessions requests run on."""
