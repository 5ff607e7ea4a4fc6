"""Loading ONNX bytes into onnxruntime, with its failures turned into one line."""
from __future__ import annotations

import re

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from core.errors import InvalidInput

ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail, ort_state.NotImplemented, ort_state.InvalidGraph, ort_state.InvalidArgument,
    ort_state.InvalidProtobuf, ort_state.RuntimeException, ort_state.NoSuchFile,
)
_OPSET_TOO_NEW = re.compile(
    r"Opset (\d+) is under development.*support for domain (\S+) is till opset (\d+)", re.S)
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (?:\S+:\d+ [^)]*\) )?")


def ort_message(exc: BaseException) -> str:
    """onnxruntime's reason without its source location, on one line."""
    text = _ORT_PREFIX.sub("", str(exc).strip())
    return " ".join(text.split())[:300]


def load_session(model_bytes: bytes, what: str) -> ort.InferenceSession:
    """An onnxruntime session on the CPU, or one line saying why it cannot load."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise
    try:
        return ort.InferenceSession(model_bytes, sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        match = _OPSET_TOO_NEW.search(str(exc))
        if match:
            needed, domain, supported = match.groups()
            raise InvalidInput(
                f"{what} needs opset {needed} of {domain.rstrip('.')}; this onnxruntime "
                f"{ort.__version__} supports up to {supported}") from None
        raise InvalidInput(f"onnxruntime {ort.__version__} cannot load {what}: "
                           f"{ort_message(exc)}") from None
