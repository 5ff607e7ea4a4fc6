"""The desktop/agent contract: keys, bundles (and every way they can be bad), rotation
records, baseline binning and the signed telemetry export file."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from edge_agent.contract import protocol as p
from tests.support.agents import (
    SYMLINK_MODE,
    identity_model,
    make_identity_bundle,
    many_members_zip,
    read_members,
    resign,
    rezip,
    zip_with_raw_entry,
)


@pytest.fixture(scope="module")
def key() -> p.Ed25519PrivateKey:
    return p.generate_signing_key()


@pytest.fixture
def bundle(tmp_path: Path, key: p.Ed25519PrivateKey) -> Path:
    return make_identity_bundle(tmp_path, key, version=3)


def test_key_files_roundtrip(tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    priv = p.save_private_key(key, tmp_path / "signing.key")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert p.public_key_bytes(p.load_private_key(priv)) == p.public_key_bytes(key)
    pub = p.write_public_key(key.public_key(), tmp_path / "k.pub")
    assert pub.read_text().startswith("outpost-ed25519 ")
    assert p.public_key_bytes(p.load_public_key(pub)) == p.public_key_bytes(key)
    assert len(p.key_fingerprint(key)) == 16


@pytest.mark.parametrize("text", ["", "ssh-ed25519 AAAA", "outpost-ed25519 !!!",
                                  "outpost-ed25519 AAAA"])
def test_bad_public_key_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "k.pub").write_text(text)
    with pytest.raises(p.KeyFileError):
        p.load_public_key(tmp_path / "k.pub")


def test_bundle_roundtrip_is_deterministic(tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_identity_bundle(tmp_path / "a", key, version=3)
    b = make_identity_bundle(tmp_path / "b", key, version=3)
    assert a.read_bytes() == b.read_bytes()
    vb = p.verify_bundle(a, [p.generate_signing_key().public_key(), key.public_key()])
    m = vb.manifest
    assert (m.model, m.version, m.task, m.opset) == ("adder", 3, "regression", {"": 17})
    assert m.key_id == p.key_fingerprint(key) == vb.signer
    assert [t.name for t in m.inputs] == ["x"] and m.outputs[0].datatype == "FP32"
    assert p.Manifest.from_json_bytes(m.to_json_bytes()) == m
    assert p.read_bundle_manifest(a) == m
    assert [n for n in read_members(a)] == list(p.BUNDLE_MEMBERS)


def test_write_bundle_reads_specs_from_graph(tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    from tests.support.agents import identity_baseline, identity_canary

    path = p.write_bundle(tmp_path / "x.outpost", model="x", version=1,
                          model_bytes=identity_model(opset=15), baseline=identity_baseline(),
                          canary=identity_canary(), key=key)
    m = p.verify_bundle(path, [key.public_key()]).manifest
    assert m.inputs == [p.TensorSpec("x", "FP32", [-1, 1])] and m.opset == {"": 15}


def test_write_bundle_refuses_bad_baseline(tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    bad = {"rows": 1, "features": [{"name": "a", "kind": "numeric", "edges": [2.0, 1.0],
                                    "counts": [0, 0, 0], "nulls": 0}]}
    with pytest.raises(p.BundleMemberInvalid, match="strictly increasing"):
        make_identity_bundle(tmp_path, key, baseline=bad)
    assert not list(tmp_path.iterdir())


def test_extract_writes_exactly_the_members(tmp_path: Path, bundle: Path,
                                            key: p.Ed25519PrivateKey) -> None:
    vb = p.verify_bundle(bundle, [key.public_key()])
    dest = tmp_path / "out"
    dest.mkdir()
    paths = p.extract_bundle(vb, dest)
    assert sorted(x.name for x in dest.iterdir()) == sorted(p.BUNDLE_MEMBERS)
    assert paths[p.MODEL].read_bytes() == identity_model()


def _tampered(tmp_path: Path, bundle: Path, key: p.Ed25519PrivateKey, case: str) -> Path:
    m = read_members(bundle)
    out = tmp_path / f"{case}.outpost"
    if case == "bad_signature":
        doc = json.loads(m["manifest.json"])
        doc["created"] = "2030-01-01T00:00:00+00:00"
        m["manifest.json"] = json.dumps(doc).encode()
    elif case == "unknown_key":
        other = p.generate_signing_key()
        doc = json.loads(m["manifest.json"])
        doc["key_id"] = p.key_fingerprint(other)
        m["manifest.json"] = json.dumps(doc).encode()
        m = resign(m, other)
    elif case == "hash_mismatch":
        m["model.onnx"] = identity_model(opset=16)
    elif case == "same_size_hash_mismatch":
        m["canary.json"] = m["canary.json"].replace(b"2.5", b"3.5")
    elif case == "missing_member":
        del m["canary.json"]
    elif case == "unknown_member":
        m["README.txt"] = b"hi"
    elif case == "dotdot":
        return zip_with_raw_entry(out, m, "../evil.sh", b"rm -rf /")
    elif case == "absolute":
        return zip_with_raw_entry(out, m, "/etc/cron.d/evil", b"x")
    elif case == "symlink":
        return zip_with_raw_entry(out, m, "link", b"/etc/passwd", mode=SYMLINK_MODE)
    elif case == "member_count":
        return many_members_zip(out, m, 10_001)
    elif case == "bad_sig_length":
        m["manifest.sig"] = b"short"
    elif case == "not_zip":
        out.write_bytes(b"this is not a zip at all" * 10)
        return out
    return rezip(out, m)


@pytest.mark.parametrize("case,error", [
    ("bad_signature", p.BundleSignatureInvalid),
    ("unknown_key", p.BundleUnknownKey),
    ("hash_mismatch", p.BundleMemberHashMismatch),
    ("same_size_hash_mismatch", p.BundleMemberHashMismatch),
    ("missing_member", p.BundleMissingMember),
    ("unknown_member", p.BundleUnknownMember),
    ("dotdot", p.BundleUnsafeMember),
    ("absolute", p.BundleUnsafeMember),
    ("symlink", p.BundleUnsafeMember),
    ("member_count", p.BundleZipBomb),
    ("bad_sig_length", p.BundleSignatureInvalid),
    ("not_zip", p.BundleCorrupt),
])
def test_bad_bundles_are_refused(tmp_path: Path, bundle: Path, key: p.Ed25519PrivateKey,
                                 case: str, error: type[p.BundleError]) -> None:
    bad = _tampered(tmp_path, bundle, key, case)
    with pytest.raises(error) as info:
        p.verify_bundle(bad, [key.public_key()])
    assert "\n" not in str(info.value) and isinstance(info.value, p.AgentError)
    assert 400 <= info.value.http_status < 500


def test_zip_bomb_by_ratio_is_refused_before_reading(tmp_path: Path,
                                                     key: p.Ed25519PrivateKey) -> None:
    # A correctly signed bundle whose model member is 50 MB of zeros: the hash would
    # match, so only the ratio check can stop it, and it must not decompress it.
    bomb = make_identity_bundle(tmp_path, key, model_bytes=bytes(50 * 1024 * 1024))
    assert bomb.stat().st_size < 50 * 1024 * 1024 // 100
    # CPU time of this thread, not wall time: a busy machine must not fail it. Inflating
    # the 50 MB alone costs ~0.12 s of CPU here; the refusal reads only the headers.
    start = time.thread_time()
    with pytest.raises(p.BundleZipBomb, match="expands"):
        p.verify_bundle(bomb, [key.public_key()])
    assert time.thread_time() - start < 0.05


def test_size_limits(tmp_path: Path, bundle: Path, key: p.Ed25519PrivateKey) -> None:
    with pytest.raises(p.BundleTooLarge):
        p.verify_bundle(bundle, [key.public_key()], p.BundleLimits(max_bundle_bytes=100))
    with pytest.raises(p.BundleTooLarge, match="bundle member"):
        p.verify_bundle(bundle, [key.public_key()], p.BundleLimits(max_member_bytes=50))
    assert p.BundleTooLarge("x").http_status == 413


def test_duplicate_member_is_refused(tmp_path: Path, bundle: Path,
                                     key: p.Ed25519PrivateKey) -> None:
    m = read_members(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        out = zip_with_raw_entry(tmp_path / "dup.outpost", m, "model.onnx", b"evil")
    with pytest.raises(p.BundleUnsafeMember, match="twice"):
        p.verify_bundle(out, [key.public_key()])


@pytest.mark.parametrize("field,value", [
    ("version", 0), ("version", "2"), ("model", "../x"), ("model", ""), ("format", "zip"),
    ("format_version", 2), ("task", "clustering"), ("members", {}), ("inputs", []),
    ("opset", {"": "17"}),
])
def test_manifest_schema(field: str, value: object, bundle: Path) -> None:
    doc = json.loads(read_members(bundle)["manifest.json"])
    doc[field] = value
    with pytest.raises(p.BundleManifestInvalid):
        p.Manifest.from_json_bytes(json.dumps(doc).encode())


def test_signed_but_invalid_manifest(tmp_path: Path, bundle: Path,
                                     key: p.Ed25519PrivateKey) -> None:
    m = read_members(bundle)
    doc = json.loads(m["manifest.json"])
    doc["model"] = "../../etc"
    m["manifest.json"] = json.dumps(doc).encode()
    with pytest.raises(p.BundleManifestInvalid):
        p.verify_bundle(rezip(tmp_path / "x.outpost", resign(m, key)), [key.public_key()])


def test_rotation_record(key: p.Ed25519PrivateKey) -> None:
    new = p.generate_signing_key()
    rec = p.make_rotation_record(key, new, 1)
    got = p.verify_rotation_record(rec, current_rotation=0, trusted=[key.public_key()])
    assert got.rotation == 1 and p.public_key_bytes(got.new_key) == p.public_key_bytes(new)
    with pytest.raises(p.KeyRotationError, match="expected 2"):
        p.verify_rotation_record(rec, current_rotation=1, trusted=[key.public_key()])
    with pytest.raises(p.KeyRotationError, match="not trusted"):
        p.verify_rotation_record(rec, current_rotation=0, trusted=[new.public_key()])
    doc = json.loads(rec)
    doc["new_signature"] = doc["old_signature"]
    with pytest.raises(p.KeyRotationError, match="new key"):
        p.verify_rotation_record(json.dumps(doc).encode(), current_rotation=0,
                                 trusted=[key.public_key()])
    doc = json.loads(rec)
    doc["rotation"] = 5  # signatures cover the number
    with pytest.raises(p.KeyRotationError, match="old key's signature"):
        p.verify_rotation_record(json.dumps(doc).encode(), current_rotation=4,
                                 trusted=[key.public_key()])
    with pytest.raises(p.KeyRotationError):
        p.verify_rotation_record(b"{nope", current_rotation=0, trusted=[key.public_key()])


def test_baseline_binning_semantics() -> None:
    f = p.FeatureBaseline("t", "numeric", [0, 0, 0], 0, edges=[1.0, 2.0])
    assert f.count([0.5, 1.0, 1.5, 2.0, 9.0, None, float("nan")]) == ([1, 2, 2], 2)
    c = p.FeatureBaseline("s", "categorical", [0, 0, 0], 0, categories=["a", "b"])
    assert c.count(["a", "b", "b", "zzz", "", None]) == ([1, 2, 1], 2)
    doc = {"rows": 3, "features": [f.to_dict(), c.to_dict()], "prediction": None}
    assert p.Baseline.from_dict(doc).feature("s") == c
    with pytest.raises(p.SchemaError, match="expected 3"):
        p.FeatureBaseline.from_dict({"name": "t", "kind": "numeric", "edges": [1.0, 2.0],
                                     "counts": [1, 1], "nulls": 0})


def test_canary_schema() -> None:
    ok = p.Canary.from_dict({"inputs": {"x": [1, 2]}, "expected": {"y": [1, 2]}})
    assert ok.rows == 2 and ok.atol == 1e-4
    for bad in ({"inputs": {"x": [1], "z": [1, 2]}, "expected": {"y": [1]}},
                {"inputs": {"x": [1]}, "expected": {"y": [1]}, "label_output": "q"},
                {"inputs": {"x": [1]}, "expected": {}}):
        with pytest.raises(p.SchemaError):
            p.Canary.from_dict(bad)


def _records() -> list[p.TelemetryRecord]:
    return [
        p.RequestRecord(1, 1.5, "m", 2, 200, 120, 1),
        p.HistogramRecord(2, 0.0, 60.0, "m", 2, "temp", [1, 2, 3], 0),
        p.EvictedRecord(3, 2.0, 10, 100, 109),
    ]


def test_telemetry_export_roundtrip(tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    path = p.write_telemetry_export(tmp_path / "t.ndjson", _records(), agent_id="a-1",
                                    identity_key=key)
    header, records = p.read_telemetry_export(path, expected_key=key.public_key())
    assert header.agent_id == "a-1" and records == _records()
    assert [p.record_from_dict(p.record_to_dict(r)) for r in records] == records
    empty = p.write_telemetry_export(tmp_path / "e.ndjson", [], agent_id="a", identity_key=key)
    assert p.read_telemetry_export(empty)[1] == []


def test_telemetry_export_detects_damage(tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    path = p.write_telemetry_export(tmp_path / "t.ndjson", _records(), agent_id="a-1",
                                    identity_key=key)
    data = path.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "missing_signature": b"".join(data.splitlines(keepends=True)[:-1]),
        "flipped": data.replace(b'"latency_us":120', b'"latency_us":121'),
        "empty": b"",
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.ndjson"
        bad.write_bytes(content)
        with pytest.raises(p.TelemetryFileError):
            p.read_telemetry_export(bad)
    with pytest.raises(p.TelemetryFileError, match="unknown agent"):
        p.read_telemetry_export(path, expected_key=p.generate_signing_key().public_key())


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    p.atomic_write(tmp_path / "f", b"1")
    p.atomic_write(tmp_path / "f", b"2", mode=0o600)
    assert os.listdir(tmp_path) == ["f"] and (tmp_path / "f").read_bytes() == b"2"


def test_member_that_lies_about_its_size_is_read_only_up_to_the_claim(
        tmp_path: Path, key: p.Ed25519PrivateKey) -> None:
    # model.onnx claims 1000 bytes (signed, with the hash of 1000 zero bytes) but inflates
    # to 40 MB: reading must stop at the claim and fail the CRC, not inflate it all.
    claimed = 1000
    bundle = make_identity_bundle(tmp_path, key, model_bytes=bytes(claimed))
    members = read_members(bundle)
    members["model.onnx"] = bytes(40 * 1024 * 1024)
    data = bytearray(p.zip_members(members))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("model.onnx")
    struct.pack_into("<I", data, info.header_offset + 22, claimed)  # local header
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
    while data[central + 46 : central + 46 + 10] != b"model.onnx":
        central = data.rfind(b"PK\x01\x02", 0, central)
    struct.pack_into("<I", data, central + 24, claimed)  # central directory
    liar = tmp_path / "liar.outpost"
    liar.write_bytes(bytes(data))
    start = time.thread_time()  # CPU, not wall: inflating the 40 MB costs ~0.1 s of it
    with pytest.raises(p.BundleCorrupt, match="model.onnx is corrupt.*CRC"):
        p.verify_bundle(liar, [key.public_key()])
    assert time.thread_time() - start < 0.05


def test_graph_reader_refuses_runaway_subgraph_nesting() -> None:
    """The agent reads model.onnx's protobuf itself (no onnx): a graph nested in If
    branches past any sane depth is a one-line ModelInvalid, not a RecursionError."""
    from edge_agent.contract.errors import ModelInvalid
    from edge_agent.contract.model_checks import inspect_model
    from edge_agent.contract.onnx_wire import _float_value_info, _int_field, _len_field

    output = _len_field(12, _float_value_info("y"))
    graph = output
    for _ in range(2000):  # deep enough for Python's own recursion limit
        branch = _len_field(1, b"then_branch") + _len_field(6, graph)
        graph = _len_field(1, _len_field(4, b"If") + _len_field(5, branch)) + output
    model = _int_field(1, 8) + _len_field(7, graph) + _len_field(8, _int_field(2, 17))
    with pytest.raises(ModelInvalid, match="corrupt protobuf"):
        inspect_model(model, check_opset=False)


# --- Ed25519 through the ssl module's OpenSSL (issue 20: no cryptography while serving) ---

ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493  # L, RFC 8032


def test_openssl_ed25519_agrees_with_cryptography(tmp_path: Path) -> None:
    """The agent verifies and signs through contract/openssl_ed25519.py; cryptography made
    the keys and is the reference. Ed25519 signatures are deterministic, so they must be
    byte-identical, and both must refuse the same forgeries."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge_agent.contract import openssl_ed25519 as ossl
    from edge_agent.contract import signing

    assert ossl.available()  # Linux CPython: the path every agent here takes
    key = Ed25519PrivateKey.generate()
    seed, pub = key.private_bytes_raw(), p.public_key_bytes(key)
    other = p.public_key_bytes(Ed25519PrivateKey.generate())
    data = b"manifest bytes" * 50
    assert ossl.public_from_seed(seed) == pub
    sig = ossl.sign(seed, data)
    assert sig == key.sign(data) and ossl.verify(pub, sig, data)
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    forgeries = {
        "other data": (pub, sig, data + b"!"),
        "flipped bit": (pub, bytes([sig[0] ^ 1]) + sig[1:], data),
        "other key": (other, sig, data),
        "S + L (malleable)": (pub, r + (s + ED25519_ORDER).to_bytes(32, "little"), data),
        "short": (pub, sig[:63], data),
        "long": (pub, sig + b"\0", data),
        "empty": (pub, b"", data),
    }
    for what, (k, forged, msg) in forgeries.items():
        assert not ossl.verify(k, forged, msg), what
        try:  # the reference refuses it too
            signing.public_key_from_b64(p.public_key_b64(k)).verify(forged, msg)
        except InvalidSignature:
            continue
        raise AssertionError(f"cryptography accepted the forgery {what!r}")
    # the same answers through the public API, raw key or key object alike
    assert p.verify_signature(pub, sig, data) and p.verify_signature(key.public_key(), sig, data)
    assert ossl.verify(pub, bytearray(sig), memoryview(data))  # any bytes-like, as callers pass
    assert ossl.sign(bytearray(seed), bytearray(data)) == sig
    with pytest.raises(ValueError):
        ossl.verify(pub[:31], sig, data)
    # a key file as the agent writes it is read without cryptography, to the same key
    path = p.save_private_key(key, tmp_path / "identity.key")
    assert signing.load_private_raw(path) == seed
    assert p.load_private_key(path).private_bytes_raw() == seed


def test_private_key_files_of_another_kind_get_one_clear_error(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from edge_agent.contract.signing import load_private_raw

    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (tmp_path / "ec.key").write_bytes(ec_key)
    (tmp_path / "junk.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64!\n"
                                        b"-----END PRIVATE KEY-----\n")
    with pytest.raises(p.KeyFileError, match="not an Ed25519 private key"):
        load_private_raw(tmp_path / "ec.key")
    with pytest.raises(p.KeyFileError, match="not an unencrypted PEM private key"):
        load_private_raw(tmp_path / "junk.key")
