"""Device-initiated mode: the agent's client of the desktop's hub (poll desired state,
download bundles, push telemetry), on the standard library's HTTP only."""
