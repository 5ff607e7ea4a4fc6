"""Read InferenceService manifests with the KServe SDK's own model classes.

Runs in the side environment `.venv-kserve` (the SDK cannot join the main one: it pins
pandas < 3), started by tests/test_interop_export.py:
``.venv-kserve/bin/python tests/support/kserve_validate.py MANIFEST.yaml…``.
Prints one JSON list on stdout, one entry per manifest: ``{"file", "problems", "read"}``.

The SDK's generated models drop keys they do not know and coerce scalars (``str(2)``),
so deserializing alone proves little: the manifest passes only if every key and value
it holds comes back, same type and value, from the typed object (defaults the SDK adds
are allowed). ``read`` holds the fields the tests compare, taken from the typed object.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kserve.models
import kubernetes.client.models
import yaml
from kserve import ApiClient, V1beta1InferenceService


class ManifestClient(ApiClient):
    """KServe's ApiClient, which also resolves the Kubernetes types its models name.

    kserve's generated models refer to core types by name (``V1ObjectMeta``,
    ``V1Container``…) that its ApiClient looks up only in ``kserve.models``; the
    kubernetes package's (pydantic) models build themselves with ``from_dict``."""

    def _ApiClient__deserialize(self, data: Any, klass: Any) -> Any:
        if (isinstance(klass, str) and not hasattr(kserve.models, klass)
                and hasattr(kubernetes.client.models, klass)):
            return None if data is None else getattr(kubernetes.client.models,
                                                     klass).from_dict(data)
        return super()._ApiClient__deserialize(data, klass)


class Response:
    """What ``ApiClient.deserialize`` reads: an HTTP answer's body as ``.data``."""

    def __init__(self, document: Any) -> None:
        self.data = json.dumps(document)


def differences(written: Any, read: Any, path: str) -> list[str]:
    """Where ``read`` (the SDK's serialization) lost or changed what ``written`` holds."""
    if isinstance(written, dict):
        if not isinstance(read, dict):
            return [f"{path}: written {type(written).__name__}, the SDK read {read!r}"]
        found = []
        for key, value in written.items():
            here = f"{path}.{key}" if path else key
            if key not in read:
                found.append(f"{here}: not a field the SDK knows (dropped)")
            else:
                found += differences(value, read[key], here)
        return found
    if isinstance(written, list):
        if not isinstance(read, list) or len(read) != len(written):
            return [f"{path}: written {written!r}, the SDK read {read!r}"]
        return [d for i, (w, r) in enumerate(zip(written, read, strict=True))
                for d in differences(w, r, f"{path}[{i}]")]
    if type(written) is not type(read) or written != read:
        return [f"{path}: written {written!r} ({type(written).__name__}), the SDK read "
                f"{read!r} ({type(read).__name__})"]
    return []


def check(path: Path) -> dict[str, Any]:
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    client = ManifestClient()
    try:
        service = client.deserialize(Response(written), V1beta1InferenceService)
    except Exception as exc:  # the SDK's own refusal (a required field, a strict type)
        return {"file": str(path), "problems": [f"{type(exc).__name__}: {exc}"], "read": None}
    model = service.spec.predictor.model
    return {
        "file": str(path),
        "problems": differences(written, client.sanitize_for_serialization(service), ""),
        "read": {
            "api_version": service.api_version, "kind": service.kind,
            "name": service.metadata.name, "annotations": service.metadata.annotations,
            "model_format": model.model_format.name if model.model_format else None,
            "protocol_version": model.protocol_version, "storage_uri": model.storage_uri,
            "sdk_class": f"{type(model).__module__}.{type(model).__name__}",
        },
    }


if __name__ == "__main__":
    print(json.dumps([check(Path(arg)) for arg in sys.argv[1:]]))
