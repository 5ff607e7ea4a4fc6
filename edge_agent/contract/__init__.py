"""The device contract: everything the desktop and a deployed agent must agree on.

Bundle manifest and member checks, signing and key-rotation records, baseline and canary
schemas, telemetry records and their export format, the hub protocol, the agent's errors
and the HTTP framing both servers share (`asgi`). Changing anything here changes what
devices in the field accept: keep it backwards compatible. `core` and `app` import the
agent only through this package (an import-linter contract checks it); it imports nothing
else from `edge_agent`.
"""
