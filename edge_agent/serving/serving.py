"""Running a request against a model version, and what is prepared once per version.

A ``Served`` wraps a store's loaded model with everything the hot path needs
precomputed: the signature (with NaN tolerance), the histogram binner, the
output names. It is built ahead (``warm``) or on first use, and reused while
the store keeps handing out the same loaded model.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.contract.capture import CAPTURE_KEY, CapturePolicy
from edge_agent.contract.errors import AgentError, SchemaError
from edge_agent.contract.manifest import MODEL
from edge_agent.serving.oip import InferRequestInvalid
from edge_agent.serving.signature import Signature, signature_of
from edge_agent.telemetry.histograms import Binner, binner_for

Array = np.ndarray[Any, Any]
log = logging.getLogger(__name__)


class ModelRunFailed(AgentError):
    http_status = 500


class ModelSource(Protocol):
    """What the server needs from the model store."""

    def get(self, name: str, version: int | None = None) -> Any: ...

    def models(self) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Served:
    loaded: Any
    name: str
    version: int
    session: Any
    signature: Signature
    binner: Binner | None
    output_names: tuple[str, ...]
    proba_index: int | None = None  # the class-probabilities output, if there is one
    capture: CapturePolicy | None = None  # the bundle's sample-capture policy

    def metadata(self, versions: Sequence[int]) -> dict[str, Any]:
        return {"name": self.name, "versions": [str(v) for v in versions],
                "platform": "onnxruntime_onnx",
                "inputs": [t.to_dict() for t in self.signature.inputs],
                "outputs": [t.to_dict() for t in self.signature.outputs]}


def _model_path(loaded: Any) -> Path | None:
    folder = getattr(loaded, "path", None)
    return None if folder is None else Path(folder) / MODEL


def _bundled_capture(loaded: Any) -> CapturePolicy | None:
    manifest = getattr(loaded, "manifest", None)
    doc = getattr(manifest, "extra", {}).get(CAPTURE_KEY)
    if doc is None:
        return None
    try:
        return CapturePolicy.from_dict(doc)
    except SchemaError as exc:
        log.error("%s version %s: capture policy ignored: %s", loaded.name, loaded.version, exc)
        return None


def prepare(loaded: Any) -> Served:
    signature = signature_of(loaded.session, _model_path(loaded))
    binner = binner_for(loaded.baseline, [(t.name, t.shape) for t in signature.inputs])
    proba = next((i for i, t in enumerate(signature.outputs) if i > 0 and len(t.shape) == 2
                  and t.datatype in ("FP16", "FP32", "FP64")), None)
    return Served(loaded, loaded.name, int(loaded.version), loaded.session, signature, binner,
                  tuple(t.name for t in signature.outputs), proba, _bundled_capture(loaded))


class ServedCache:
    """Served wrappers by (name, version); rebuilt when the store's object changes."""

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self._cache: dict[tuple[str, int], Served] = {}
        self._lock = threading.Lock()

    def get(self, name: str, version: int | None) -> Served:
        loaded = self.source.get(name, version)
        key = (name, int(loaded.version))
        served = self._cache.get(key)
        if served is not None and served.loaded is loaded:
            return served
        with self._lock:
            served = self._cache.get(key)
            if served is None or served.loaded is not loaded:
                served = self._cache[key] = prepare(loaded)
        return served

    def warm(self) -> None:
        """Prepare every active model now, so no request pays for reading its graph."""
        for status in self.source.models():
            if getattr(status, "active", None) is not None:
                self.get(status.name, None)

    def versions(self, name: str) -> list[int]:
        for status in self.source.models():
            if getattr(status, "name", None) == name:
                return sorted(int(v) for v in getattr(status, "versions", []))
        return []


def run(served: Served, feeds: dict[str, Array]) -> list[tuple[str, Array]]:
    """session.run on every output; runtime refusals of the input are 400s."""
    try:
        values = served.session.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 -- onnxruntime raises untyped pybind errors
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        if type(exc).__name__ in ("InvalidArgument", "InvalidGraph"):
            raise InferRequestInvalid(f"the model refused the input: {message}") from exc
        raise ModelRunFailed(f"the model failed on this input: {message}") from exc
    outputs = []
    for name, value in zip(served.output_names, values, strict=True):
        if not isinstance(value, np.ndarray):
            raise ModelRunFailed(f"output {name} is not a tensor (export without ZipMap)")
        outputs.append((name, value))
    return outputs


BatchFn = Callable[[Served, dict[str, Array], int], Awaitable[list[tuple[str, Array]]]]


class Runner:
    """Small requests run on the event loop (a thread hop costs more than the model), or
    through the adaptive batcher if one is given; big ones go to a worker thread so the
    loop keeps answering."""

    def __init__(self, inline_rows: int = 256, batch: BatchFn | None = None,
                 threads: int = 1) -> None:
        self.inline_rows = inline_rows
        self.batch = batch
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="infer")

    async def __call__(self, served: Served, feeds: dict[str, Array], rows: int
                       ) -> list[tuple[str, Array]]:
        if rows <= self.inline_rows:
            if self.batch is not None:
                return await self.batch(served, feeds, rows)
            return run(served, feeds)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, run, served, feeds)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
