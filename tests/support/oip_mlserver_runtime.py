"""A minimal onnxruntime model class for MLServer, the independent OIP server the interop
tests compare the agent with. MLServer imports it from ``model-settings.json``
(``implementation: tests.support.oip_mlserver_runtime.OnnxModel``); ``parameters.uri`` is the
``model.onnx`` of an exported Triton repository. Tensors are decoded and encoded here
by datatype and shape only, so that nothing Outpost-specific shapes the answer."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput

_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
_DATATYPES = {np.dtype(v).name: k for k, v in _NUMPY.items()}


def _decode(tensor: RequestInput) -> np.ndarray[Any, Any]:
    data = getattr(tensor.data, "root", tensor.data)
    if tensor.datatype == "BYTES":
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(data)]
        return np.array(values, dtype=object).reshape(tensor.shape)
    return np.asarray(data, dtype=_NUMPY[tensor.datatype]).reshape(tensor.shape)


def _encode(name: str, value: np.ndarray[Any, Any]) -> ResponseOutput:
    if value.dtype.kind in "OUS":
        return ResponseOutput(name=name, shape=list(value.shape), datatype="BYTES",
                              data=[str(v) for v in value.ravel()])
    return ResponseOutput(name=name, shape=list(value.shape),
                          datatype=_DATATYPES[value.dtype.name], data=value.ravel().tolist())


class OnnxModel(MLModel):
    async def load(self) -> bool:
        assert self.settings.parameters is not None and self.settings.parameters.uri
        self._session = ort.InferenceSession(self.settings.parameters.uri,
                                             providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {tensor.name: _decode(tensor) for tensor in payload.inputs}
        results = dict(zip(self._outputs, self._session.run(None, feeds), strict=True))
        wanted = [o.name for o in payload.outputs] if payload.outputs else self._outputs
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[_encode(n, np.asarray(results[n])) for n in wanted])
