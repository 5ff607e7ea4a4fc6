"""Shared by the agent tests: real ONNX models, signed (and tampered) bundles, free ports,
and a running `outpost-agent serve` process."""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import onnx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper

from edge_agent.contract import errors
from edge_agent.contract.protocol import (
    Baseline,
    FeatureBaseline,
    TensorSpec,
    generate_signing_key,
    write_bundle,
    write_public_key,
    zip_members,
)

NUMERIC = ["temp", "pressure"]
CATEGORICAL = ["site"]


@dataclass(frozen=True)
class TabularModel:
    """An sklearn pipeline exported like the desktop does: one ONNX input per raw column."""

    onnx_bytes: bytes
    task: str
    columns: dict[str, list[Any]]  # a few sample rows, per column
    baseline: dict[str, Any]
    canary: dict[str, Any]
    labels: list[str] | None


def _dataset(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    temp = rng.normal(20, 5, n)
    pressure = rng.normal(1000, 30, n)
    temp[rng.random(n) < 0.05] = np.nan
    site = rng.choice(np.array(["north", "south", "east", ""], dtype=object), n)
    score = (np.nan_to_num(temp, nan=20) - 20) / 5 + (pressure - 1000) / 30 + (site == "north")
    return {"temp": temp, "pressure": pressure, "site": site}, score


def tabular_rows(n: int, seed: int, temp_shift: float = 0.0) -> list[dict[str, Any]]:
    """/v1 predict records drawn like `tabular_model`'s training data (and so its
    baseline), nulls included; `temp_shift` moves the temperatures (drift)."""
    cols, _ = _dataset(n, seed)
    return [{"temp": None if np.isnan(t) else float(t) + temp_shift, "pressure": float(p),
             "site": str(s)} for t, p, s in zip(cols["temp"], cols["pressure"], cols["site"],
                                                strict=True)]


def _baseline(cols: dict[str, np.ndarray], prediction: FeatureBaseline) -> dict[str, Any]:
    feats = []
    for name in NUMERIC:
        values = cols[name]
        edges = np.unique(np.nanquantile(values, [0.2, 0.4, 0.6, 0.8])).tolist()
        f = FeatureBaseline(name, "numeric", [0] * (len(edges) + 1), 0, edges=edges)
        counts, nulls = f.count(values)
        feats.append(FeatureBaseline(name, "numeric", counts, nulls, edges=edges))
    for name in CATEGORICAL:
        cats = sorted({str(v) for v in cols[name] if v})
        f = FeatureBaseline(name, "categorical", [0] * (len(cats) + 1), 0, categories=cats)
        counts, nulls = f.count(cols[name])
        feats.append(FeatureBaseline(name, "categorical", counts, nulls, categories=cats))
    rows = len(cols[NUMERIC[0]])
    return Baseline(rows, feats, prediction).to_dict()


@functools.cache
def tabular_model(task: str = "classification", seed: int = 0) -> TabularModel:
    """Train a ColumnTransformer pipeline (impute+scale, impute+one-hot) and convert it."""
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cols, score = _dataset(300, seed)
    frame = pd.DataFrame(cols)
    pre = ColumnTransformer([
        ("num", Pipeline([("imp", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), NUMERIC),
        ("cat", Pipeline([("imp", SimpleImputer(missing_values="", strategy="constant",
                                                fill_value="missing")),
                          ("hot", OneHotEncoder(handle_unknown="ignore"))]), CATEGORICAL),
    ])
    if task == "classification":
        y: np.ndarray = np.where(score > 0.3, "alarm", "normal").astype(object)
        est: Any = LogisticRegression(max_iter=500)
    else:
        y = score * 3.0 + 1.0
        est = LinearRegression()
    pipe = Pipeline([("pre", pre), ("est", est)]).fit(frame, y)
    types = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    types += [(c, StringTensorType([None, 1])) for c in CATEGORICAL]
    options = {id(est): {"zipmap": False}} if task == "classification" else None
    onx = convert_sklearn(pipe, initial_types=types, options=options, target_opset=17)
    sample = frame.iloc[:8]
    canary_inputs: dict[str, list[Any]] = {
        c: [None if pd.isna(v) else float(v) for v in sample[c]] for c in NUMERIC
    }
    canary_inputs.update({c: [str(v) for v in sample[c]] for c in CATEGORICAL})
    labels: list[str] | None = None
    if task == "classification":
        labels = [str(c) for c in pipe.classes_]
        expected = {"label": [str(v) for v in pipe.predict(sample)],
                    "probabilities": pipe.predict_proba(sample).tolist()}
        pred_feat = FeatureBaseline("__prediction__", "categorical", [0] * (len(labels) + 1), 0,
                                    categories=labels)
        counts, nulls = pred_feat.count([str(v) for v in pipe.predict(frame)])
        prediction = FeatureBaseline("__prediction__", "categorical", counts, nulls,
                                     categories=labels)
        label_output: str | None = "label"
    else:
        expected = {"variable": pipe.predict(sample).reshape(-1, 1).tolist()}
        edges = np.quantile(pipe.predict(frame), [0.25, 0.5, 0.75]).tolist()
        proto = FeatureBaseline("__prediction__", "numeric", [0] * 4, 0, edges=edges)
        counts, nulls = proto.count(pipe.predict(frame))
        prediction = FeatureBaseline("__prediction__", "numeric", counts, nulls, edges=edges)
        label_output = None
    canary = {"inputs": canary_inputs, "expected": expected, "atol": 1e-4,
              "label_output": label_output}
    return TabularModel(onx.SerializeToString(), task, canary_inputs,
                        _baseline(cols, prediction), canary, labels)


def identity_model(opset: int = 17, external_data: bool = False, ir_version: int = 8,
                   bias_value: float = 1.0) -> bytes:
    """y = x + bias, the smallest model with an initializer (FP32, shape [-1, 1])."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [1], [bias_value])
    if external_data:
        bias = onnx.TensorProto(name="bias", data_type=TensorProto.FLOAT, dims=[1])
        bias.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "4")):
            bias.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "add", [x], [y],
                              [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=ir_version)
    return model.SerializeToString()


IDENTITY_SPECS = {
    "inputs": [TensorSpec("x", "FP32", [-1, 1])],
    "outputs": [TensorSpec("y", "FP32", [-1, 1])],
    "opset": {"": 17},
}


def identity_baseline() -> dict[str, Any]:
    return {"rows": 4, "features": [
        {"name": "x", "kind": "numeric", "edges": [0.0, 1.0], "counts": [1, 2, 1], "nulls": 0}],
        "prediction": {"name": "__prediction__", "kind": "numeric", "edges": [1.0],
                       "counts": [1, 3], "nulls": 0}}


def identity_canary(offset: float = 1.0) -> dict[str, Any]:
    return {"inputs": {"x": [0.0, 2.5]}, "expected": {"y": [[offset], [2.5 + offset]]},
            "atol": 1e-5, "label_output": None}


def make_identity_bundle(out_dir: Path, key: Ed25519PrivateKey, version: int = 1,
                         model: str = "adder", **overrides: Any) -> Path:
    """A valid, signed bundle of the tiny Add model (fast to build and to install)."""
    kw: dict[str, Any] = {
        "model_bytes": identity_model(), "baseline": identity_baseline(),
        "canary": identity_canary(), "task": "regression", "created": "2026-01-01T00:00:00+00:00",
        **IDENTITY_SPECS,
    }
    kw.update(overrides)
    return write_bundle(Path(out_dir) / f"{model}-{version}.outpost", model=model,
                        version=version, key=key, **kw)


def make_tabular_bundle(out_dir: Path, key: Ed25519PrivateKey, version: int = 1,
                        model: str = "pumps", task: str = "classification") -> Path:
    tm = tabular_model(task)
    return write_bundle(Path(out_dir) / f"{model}-{version}.outpost", model=model,
                        version=version, key=key, model_bytes=tm.onnx_bytes,
                        baseline=tm.baseline, canary=tm.canary, task=task, labels=tm.labels)


# --- tampering ---------------------------------------------------------------------------

def read_members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rezip(out: Path, members: Mapping[str, bytes]) -> Path:
    out.write_bytes(zip_members(members))
    return out


def resign(members: dict[str, bytes], key: Ed25519PrivateKey) -> dict[str, bytes]:
    out = dict(members)
    out["manifest.sig"] = key.sign(out["manifest.json"])
    return out


def zip_with_raw_entry(out: Path, members: Mapping[str, bytes], name: str, data: bytes,
                       mode: int = 0o100644) -> Path:
    """The members plus one entry whose name and unix mode we choose (symlink, ../, /abs)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, data)
    out.write_bytes(buf.getvalue())
    return out


SYMLINK_MODE = stat.S_IFLNK | 0o777


def many_members_zip(out: Path, members: Mapping[str, bytes], count: int) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
        for i in range(count):
            zf.writestr(f"pad/{i}", b"")
    return out


# --- bad bundles, one per way the agent must refuse them -----------------------------

def bad_bundle(tmp_path: Path, key: Ed25519PrivateKey, case: str) -> Path:
    """Version 2 of the `adder` model, broken the way `case` names (see BAD_BUNDLES)."""
    out = tmp_path / f"bad-{case}.outpost"
    d = tmp_path / case
    (d / "x").mkdir(parents=True)
    good = make_identity_bundle(d, key, version=2)
    m = read_members(good)
    if case == "bad_signature":
        m["manifest.json"] = m["manifest.json"].replace(b'"version": 2', b'"version": 9')
        return rezip(out, m)
    if case == "unknown_key":
        return make_identity_bundle(d / "x", generate_signing_key(), version=2)
    if case == "hash_mismatch":
        m["model.onnx"] = identity_model(opset=16)
        return rezip(out, m)
    if case == "dotdot":
        return zip_with_raw_entry(out, m, "../../escape.txt", b"x")
    if case == "absolute":
        return zip_with_raw_entry(out, m, "/tmp/abs.txt", b"x")
    if case == "symlink":
        return zip_with_raw_entry(out, m, "model.link", b"/etc/passwd", mode=SYMLINK_MODE)
    if case == "missing_member":
        del m["baseline.json"]
        return rezip(out, m)
    if case == "member_count":
        return many_members_zip(out, m, 10_001)
    overrides: dict[str, object] = {
        "corrupt_onnx": {"model_bytes": identity_model()[:-7]},
        "too_new_opset": {"model_bytes": identity_model(opset=40), "opset": {"": 40}},
        "failing_canary": {"canary": identity_canary(offset=5.0)},
        "external_data": {"model_bytes": identity_model(external_data=True)},
        "ratio_bomb": {"model_bytes": bytes(30 * 1024 * 1024)},
        "runtime_too_old": {"min_onnxruntime": "99.0.0"},
    }[case]
    assert isinstance(overrides, dict)
    return make_identity_bundle(d / "x", key, version=2, **overrides)


BAD_BUNDLES: dict[str, type[errors.AgentError]] = {
    "bad_signature": errors.BundleSignatureInvalid,
    "unknown_key": errors.BundleUnknownKey,
    "hash_mismatch": errors.BundleMemberHashMismatch,
    "dotdot": errors.BundleUnsafeMember,
    "absolute": errors.BundleUnsafeMember,
    "symlink": errors.BundleUnsafeMember,
    "missing_member": errors.BundleMissingMember,
    "corrupt_onnx": errors.ModelInvalid,
    "too_new_opset": errors.ModelInvalid,
    "failing_canary": errors.CanaryFailed,
    "external_data": errors.ModelInvalid,
    "ratio_bomb": errors.BundleZipBomb,
    "member_count": errors.BundleZipBomb,
    "runtime_too_old": errors.ModelInvalid,
}


# --- processes -----------------------------------------------------------------------------

def file_limit(n: int) -> Callable[[], None]:
    """A preexec_fn that sets the child's open-file limit to n."""
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- TLS: every server a test starts presents a self-signed certificate ------------------

_CERTS: dict[str, Path] = {}  # "host:port" -> the certificate file that server presents


def trust_cert(url: str, cert_file: Path) -> None:
    """Requests from these helpers to `url` trust `cert_file` (it may not exist yet)."""
    _CERTS[urlsplit(url).netloc] = Path(cert_file)


def ssl_context_for(url: str) -> ssl.SSLContext | None:
    """A context that trusts the certificate registered for `url` (chain and name are
    verified; dates are not, as the desktop pins keys, not dates), or None for plain http.
    FileNotFoundError until the file exists."""
    if not url.startswith("https://"):
        return None
    cert = _CERTS.get(urlsplit(url).netloc)
    if cert is None:
        raise AssertionError(f"no certificate registered for {url} (trust_cert)")
    return _context(cert, cert.read_bytes())


@functools.lru_cache(maxsize=256)
def _context(cert: Path, pem: bytes) -> ssl.SSLContext:
    """One context per certificate (a new certificate at that path makes a new one)."""
    context = ssl.create_default_context(cadata=pem.decode())
    context.verify_flags |= _NO_CHECK_TIME
    return context


_NO_CHECK_TIME = ssl.VerifyFlags(0x200000)  # OpenSSL X509_V_FLAG_NO_CHECK_TIME


def verify_for(url: str) -> ssl.SSLContext | bool:
    """httpx's `verify=` for `url`."""
    return ssl_context_for(url) or True


def triton_client(url: str) -> Any:
    """tritonclient's HTTP client for the agent at `url`, over TLS trusting its certificate
    when it is https (tritonclient's `ssl=True` with `ca_certs`, as docs/agent.md shows)."""
    import tritonclient.http as triton_http

    parts = urlsplit(url)
    if parts.scheme != "https":
        return triton_http.InferenceServerClient(parts.netloc)
    cert = _CERTS.get(parts.netloc)
    if cert is None:
        raise AssertionError(f"no certificate registered for {url} (trust_cert)")
    return triton_http.InferenceServerClient(parts.netloc, ssl=True,
                                             ssl_options={"ca_certs": str(cert)})


def http_connection(url: str, timeout: float = 30) -> http.client.HTTPConnection:
    """A keep-alive connection to the server at `url` (TLS when it is https)."""
    parts = urlsplit(url)
    context = ssl_context_for(url)
    if context is None:
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    return http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                       context=context)


def open_socket(url: str, timeout: float = 15) -> socket.socket:
    """A raw stream to the server at `url`, inside TLS when it is https."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    context = ssl_context_for(url)
    return sock if context is None else context.wrap_socket(sock,
                                                            server_hostname=parts.hostname)


def wait_http_ok(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
                 ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode} before {url} answered")
        try:
            context = ssl_context_for(url)
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s")


@dataclass
class AgentProcess:
    proc: subprocess.Popen[bytes]
    url: str
    dir: Path
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def cafile(self) -> Path:
        """The agent's self-signed certificate (curl --cacert, ssl cafile=)."""
        return self.dir / "tls.crt"

    @property
    def ssl(self) -> ssl.SSLContext | None:
        return ssl_context_for(self.url)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def running_agent(agent_dir: Path, trust_key: Ed25519PrivateKey | None = None,
                  extra_args: tuple[str, ...] = (), token: str = "test-token",
                  ready_timeout: float = 20.0, max_files: int | None = None,
                  log: Path | None = None) -> Iterator[AgentProcess]:
    """Start `outpost-agent serve` on a free port and wait for /v2/health/ready
    (`max_files`: the process's open-file limit, as a service manager would set it;
    `log`: a file for its stderr)."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    token_file = agent_dir.parent / f"{agent_dir.name}.token"
    token_file.write_text(token)
    args = [sys.executable, "-m", "edge_agent", "serve", "--dir", str(agent_dir),
            "--host", "127.0.0.1", "--port", str(port := free_port()),
            "--token-file", str(token_file)]
    if trust_key is not None:
        pub = write_public_key(trust_key.public_key(), agent_dir.parent / "trusted.pub")
        args += ["--trust-key", str(pub)]
    with contextlib.ExitStack() as files:
        err = None if log is None else files.enter_context(log.open("ab"))
        proc = subprocess.Popen([*args, *extra_args], env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                stderr=err,
                                preexec_fn=None if max_files is None else file_limit(max_files))
    url = f"{'http' if '--insecure-http' in extra_args else 'https'}://127.0.0.1:{port}"
    trust_cert(url, agent_dir / "tls.crt")
    try:
        wait_http_ok(f"{url}/v2/health/ready", ready_timeout, proc)
        yield AgentProcess(proc, url, agent_dir, token)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def json_request(url: str, body: Any = None, headers: Mapping[str, str] | None = None,
                 method: str | None = None, data: bytes | None = None
                 ) -> tuple[int, Any]:
    payload = data if data is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=payload, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=30, context=ssl_context_for(url)) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
