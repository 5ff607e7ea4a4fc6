"""Writing a model version's ONNX file out of the object store."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.catalog import Catalog
from core.errors import StorageError
from core.registry.models import ModelVersion, resolve_model


def export_model(catalog: Catalog, ref: str, out_path: Path) -> ModelVersion:
    """Copy the version's ONNX bytes to `out_path` (written to a temp name, then renamed)."""
    version = resolve_model(catalog, ref)
    source = catalog.objects.require(version.onnx_object)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.partial")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp)
        os.replace(tmp, out_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    return version
