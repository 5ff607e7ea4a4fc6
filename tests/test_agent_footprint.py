"""What the serving process loads: only what serving needs (issue 20, RSS).

`onnx` (with its protobuf runtime) and `prometheus_client` cost the agent ~10 MB of
resident memory and are not needed to serve: the graph checks read the protobuf wire
format themselves (edge_agent/contract/onnx_wire.py) and /metrics is written by hand.
A real agent, told by PYTHONPROFILEIMPORTTIME to log every import, installs a bundle,
serves, answers /metrics and /v1/status; its log must not show them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.contract.protocol import generate_signing_key
from tests.support.agents import json_request, make_tabular_bundle, running_agent

KEPT_OUT = ("onnx", "google.protobuf", "prometheus_client", "pandas")


def _imported(log: Path) -> set[str]:
    names = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_serving_process_imports_only_what_serving_needs(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    key = generate_signing_key()
    bundle = make_tabular_bundle(tmp_path, key)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    log = tmp_path / "agent.log"
    with running_agent(tmp_path / "agent", trust_key=key, log=log) as agent:
        status, doc = json_request(f"{agent.url}/v1/bundles", data=bundle.read_bytes(),
                                   headers=agent.headers(), method="POST")
        assert status == 200, doc
        status, doc = json_request(f"{agent.url}/v1/models/pumps/predict", {
            "records": [{"temp": 20.5, "pressure": 1012.0, "site": "north"}]})
        assert status == 200 and len(doc["predictions"]) == 1, doc
        assert json_request(f"{agent.url}/v1/status", headers=agent.headers())[0] == 200
        import urllib.request

        with urllib.request.urlopen(f"{agent.url}/metrics", context=agent.ssl) as resp:
            assert b"outpost_telemetry_backlog" in resp.read()
    imported = _imported(log)
    # the log is the import log of the serving process: it lists the server and runtime
    assert {"edge_agent.serving.server", "onnxruntime", "uvicorn"} <= imported
    loaded = sorted(m for m in imported for top in KEPT_OUT
                    if m == top or m.startswith(top + "."))
    assert loaded == [], f"the serving process imported {loaded}"
