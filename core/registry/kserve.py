"""A model version for KServe: an ``InferenceService`` manifest plus a Triton model repository.

``modelFormat: onnx`` with ``protocolVersion: v2`` makes KServe pick its Triton
runtime, which reads the repository that ``storageUri`` points at (copied to
``/mnt/models`` in the pod). The repository is exactly the ``--format triton`` one.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from core.errors import InvalidInput
from core.registry.models import ModelVersion
from core.registry.triton import write_triton_model

MANIFEST = "inferenceservice.yaml"
REPOSITORY = "repository"
DEFAULT_STORAGE_URI = "pvc://outpost-models/repository"
# Kubernetes names InferenceServices as DNS-1035 labels; KServe adds suffixes, so keep room.
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")


def service_name(model: str) -> str:
    """The model name as a Kubernetes DNS-1035 label: lower case, '-' for '_' and '.'."""
    name = re.sub(r"[_.]+", "-", model.lower()).strip("-")
    if not _DNS_1035.match(name):
        raise InvalidInput(f"model name {model!r} gives no valid InferenceService name "
                           f"({name!r}): it must start with a letter and have at most 45 "
                           "letters, digits or '-'")
    return name


def inference_service(mv: ModelVersion, storage_uri: str) -> dict[str, Any]:
    if not re.match(r"^[a-z0-9]+://\S+$", storage_uri):
        raise InvalidInput(f"--storage-uri must be a URI such as pvc://claim/path or "
                           f"s3://bucket/path, got {storage_uri!r}")
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": service_name(mv.model),
            "annotations": {"outpost/model": mv.model, "outpost/version": str(mv.version),
                            "outpost/sha256": mv.onnx_object},
        },
        "spec": {"predictor": {"model": {
            "modelFormat": {"name": "onnx"},
            "protocolVersion": "v2",
            "storageUri": storage_uri,
        }}},
    }


def write_kserve(folder: Path, mv: ModelVersion, model_bytes: bytes,
                 storage_uri: str = DEFAULT_STORAGE_URI) -> list[Path]:
    """``folder/inferenceservice.yaml`` and ``folder/repository/NAME/…`` (copy it to storageUri)."""
    manifest = inference_service(mv, storage_uri)
    files = write_triton_model(folder / REPOSITORY / mv.model, mv, model_bytes)
    path = folder / MANIFEST
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return [path, *files]
