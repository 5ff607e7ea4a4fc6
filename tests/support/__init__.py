"""What the tests (and bench/) share: real ONNX models, signed bundles, agents, hubs and
catalogs started on loopback, and waits on state. One place, so a helper is written once."""
