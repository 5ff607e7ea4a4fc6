"""Writing a model version out of the object store: an ONNX file, a Triton repository entry,
a KServe InferenceService with its repository, or an MLflow model folder.

Everything is written under a temporary name beside the target and renamed into
place, so a failure leaves nothing half-written. An existing target is replaced
only with ``force``; the old one is removed after the new one is in place.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from core.catalog import Catalog
from core.errors import InvalidInput, StorageError
from core.registry.models import ModelVersion, resolve_model

ExportFormat = Literal["onnx", "triton", "kserve", "mlflow"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)


@dataclass
class Exported:
    version: ModelVersion
    format: str
    path: Path  # the file or folder written (for triton: the model's folder in the repository)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        mv = self.version
        return {"model": mv.model, "version": mv.version, "format": self.format,
                "path": str(self.path), "sha256": mv.onnx_object, "bytes": mv.onnx_bytes,
                "files": [str(f) for f in self.files]}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_in_place(target: Path, force: bool, write: Callable[[Path], list[Path]]) -> list[Path]:
    """Run ``write(tmp)`` on a fresh temporary path beside `target`, then swap it in."""
    if target.exists() or target.is_symlink():
        if not force:
            raise InvalidInput(f"{target} already exists; pass --force to replace it")
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        files = write(tmp)
        if target.exists() or target.is_symlink():
            os.replace(target, old)
        os.replace(tmp, target)
        _remove(old)
    except OSError as exc:
        _remove(tmp)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return [target / f.relative_to(tmp) for f in files]


def _mlflow(catalog: Catalog, mv: ModelVersion, model_bytes: bytes) -> Callable[[Path], list[Path]]:
    from core.bundles import canary_frame
    from core.registry.card import model_card
    from core.registry.mlflow_io import write_mlflow

    card = model_card(catalog, mv.ref)
    example = canary_frame(catalog, mv)
    return lambda tmp: write_mlflow(tmp, mv, model_bytes, card, example)


def export_model(catalog: Catalog, ref: str, out_path: Path, fmt: str = "onnx", *,
                 force: bool = False, storage_uri: str | None = None) -> Exported:
    """Write version `ref` as `fmt` at `out_path` (for triton: into the repository `out_path`)."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: use {', '.join(EXPORT_FORMATS)}")
    if storage_uri is not None and fmt != "kserve":
        raise InvalidInput("--storage-uri applies to --format kserve only")
    mv = resolve_model(catalog, ref)
    model_bytes = catalog.objects.require(mv.onnx_object).read_bytes()
    out_path = Path(out_path)
    target = out_path / mv.model if fmt == "triton" else out_path
    write: Callable[[Path], list[Path]]
    if fmt == "onnx":
        def write(tmp: Path) -> list[Path]:
            tmp.write_bytes(model_bytes)
            return []
    elif fmt == "triton":
        from core.registry.triton import write_triton_model

        def write(tmp: Path) -> list[Path]:
            return write_triton_model(tmp, mv, model_bytes)
    elif fmt == "kserve":
        from core.registry.kserve import DEFAULT_STORAGE_URI, write_kserve

        def write(tmp: Path) -> list[Path]:
            return write_kserve(tmp, mv, model_bytes, storage_uri or DEFAULT_STORAGE_URI)
    else:
        write = _mlflow(catalog, mv, model_bytes)
    files = _write_in_place(target, force, write)
    return Exported(mv, fmt, target, files or [target])
