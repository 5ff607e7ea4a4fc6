"""Verify a bundle zip before anything is unpacked: size caps, zip-bomb limits, member names,
the manifest signature and every member hash. Then, and only then, extract it."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edge_agent.contract.errors import (
    BundleCorrupt,
    BundleManifestInvalid,
    BundleMemberHashMismatch,
    BundleMissingMember,
    BundleSignatureInvalid,
    BundleTooLarge,
    BundleUnknownKey,
    BundleUnknownMember,
    BundleUnsafeMember,
    BundleZipBomb,
)
from edge_agent.contract.files import fsync_dir
from edge_agent.contract.manifest import (
    BUNDLE_MEMBERS,
    MANIFEST,
    OPTIONAL_MEMBERS,
    SIGNATURE,
    Manifest,
)
from edge_agent.contract.signing import PublicKey, key_fingerprint, verify_signature

MiB = 1024 * 1024
DEFAULT_MAX_BUNDLE_BYTES = 512 * MiB
DEFAULT_MAX_MEMBER_BYTES = 1024 * MiB
DEFAULT_MAX_RATIO = 100
DEFAULT_MAX_MEMBERS = 10_000
MAX_MANIFEST_BYTES = 1 * MiB
# Small members cannot be bombs, and short JSON of repeated values compresses very well.
RATIO_MIN_BYTES = 64 * 1024
# A real bundle's central directory is a few hundred bytes; this bounds parsing work.
MAX_CENTRAL_DIR_BYTES = 1 * MiB
CHUNK = 1 * MiB
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class BundleLimits:
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    max_ratio: int = DEFAULT_MAX_RATIO
    max_members: int = DEFAULT_MAX_MEMBERS


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    signer: str  # fingerprint of the trusted key that signed it


def _central_directory(fh: BinaryIO, size: int) -> tuple[int, int]:
    """(member count, central directory size) read from the end records alone, so a zip
    with a huge directory is refused before the directory is parsed."""
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise BundleCorrupt("bundle is not a zip file (no end of central directory)")
    count, cd_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    loc = at - 20
    if (count == 0xFFFF or cd_size == 0xFFFFFFFF) and loc >= 0:
        if tail[loc : loc + 4] == _EOCD64_LOCATOR:
            (offset,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
            fh.seek(offset)
            rec = fh.read(56)
            if len(rec) == 56 and rec[:4] == b"PK\x06\x06":
                count, cd_size = struct.unpack("<QQ", rec[32:48])
    return count, cd_size


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name):
        raise BundleUnsafeMember(f"bundle member {name!r} has an absolute path")
    if ".." in parts:
        raise BundleUnsafeMember(f"bundle member {name!r} contains '..'")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise BundleUnsafeMember(f"bundle member {name!r} is a symbolic link")
    if info.is_dir() or stat.S_ISDIR(info.external_attr >> 16):
        raise BundleUnsafeMember(f"bundle member {name!r} is a directory")
    if info.flag_bits & 0x1:
        raise BundleCorrupt(f"bundle member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleCorrupt(f"bundle member {name!r} uses an unsupported compression")
    if name not in BUNDLE_MEMBERS and name not in OPTIONAL_MEMBERS:
        raise BundleUnknownMember(f"bundle has an unknown member {name!r}")


def _check_sizes(infos: dict[str, zipfile.ZipInfo], limits: BundleLimits) -> None:
    for name, info in infos.items():
        cap = MAX_MANIFEST_BYTES if name == MANIFEST else limits.max_member_bytes
        if info.file_size > cap:
            raise BundleTooLarge(f"bundle member {name} is {info.file_size} bytes (limit {cap})")
        if (
            info.file_size >= RATIO_MIN_BYTES
            and info.file_size > limits.max_ratio * max(info.compress_size, 1)
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise BundleZipBomb(
                f"bundle member {name} expands {ratio}x (limit {limits.max_ratio}x): zip bomb"
            )


def _stream_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, sink: Callable[[bytes], object]
) -> None:
    """Feed a member's bytes to `sink`; never more than its declared size is decompressed."""
    total = 0
    try:
        with zf.open(info) as src:
            while chunk := src.read(CHUNK):
                total += len(chunk)
                sink(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise BundleCorrupt(f"bundle member {info.filename} is corrupt: {exc}") from exc
    if total != info.file_size:
        raise BundleCorrupt(f"bundle member {info.filename} is truncated")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    buf = bytearray()
    _stream_member(zf, info, buf.extend)
    return bytes(buf)


def _open_members(
    fh: BinaryIO, size: int, limits: BundleLimits
) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    if size > limits.max_bundle_bytes:
        raise BundleTooLarge(f"bundle is {size} bytes (limit {limits.max_bundle_bytes})")
    count, cd_size = _central_directory(fh, size)
    if count > limits.max_members or cd_size > MAX_CENTRAL_DIR_BYTES:
        raise BundleZipBomb(f"bundle zip has {count} members (limit {limits.max_members}): refused")
    fh.seek(0)
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise BundleCorrupt(f"bundle is not a valid zip file: {exc}") from exc
    infos: dict[str, zipfile.ZipInfo] = {}
    entries = zf.infolist()
    if len(entries) > limits.max_members:
        raise BundleZipBomb(f"bundle zip has {len(entries)} members (limit {limits.max_members})")
    for info in entries:
        _check_name(info)
        if info.filename in infos:
            raise BundleUnsafeMember(f"bundle member {info.filename!r} appears twice")
        infos[info.filename] = info
    missing = [m for m in BUNDLE_MEMBERS if m not in infos]
    if missing:
        raise BundleMissingMember(f"bundle is missing {', '.join(missing)}")
    _check_sizes(infos, limits)
    return zf, infos


def _check_signature(
    manifest_bytes: bytes, signature: bytes, trusted: Sequence[PublicKey]
) -> tuple[Manifest, str]:
    signer = next((k for k in trusted if verify_signature(k, signature, manifest_bytes)), None)
    if signer is None:
        try:
            key_id = Manifest.from_json_bytes(manifest_bytes).key_id
        except BundleManifestInvalid:
            key_id = None
        if key_id is not None and key_id not in {key_fingerprint(k) for k in trusted}:
            raise BundleUnknownKey(f"bundle is signed by key {key_id}, not trusted by this agent")
        raise BundleSignatureInvalid("bundle signature does not match its manifest (tampered?)")
    manifest = Manifest.from_json_bytes(manifest_bytes)
    fingerprint = key_fingerprint(signer)
    if manifest.key_id is not None and manifest.key_id != fingerprint:
        raise BundleManifestInvalid("manifest key_id does not name the key that signed it")
    return manifest, fingerprint


def _check_member_hashes(
    zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], manifest: Manifest
) -> None:
    unsigned = [n for n in infos if n not in (MANIFEST, SIGNATURE) and n not in manifest.members]
    if unsigned:
        raise BundleUnknownMember(f"bundle member {unsigned[0]} is not in the signed manifest")
    for name, digest in manifest.members.items():
        if name not in infos:
            raise BundleMissingMember(f"bundle is missing {name}")
        info = infos[name]
        if info.file_size != digest.size:
            raise BundleMemberHashMismatch(
                f"bundle member {name} is {info.file_size} bytes, manifest says {digest.size}"
            )
        h = hashlib.sha256()
        _stream_member(zf, info, h.update)
        if h.hexdigest() != digest.sha256:
            raise BundleMemberHashMismatch(f"bundle member {name} does not match its sha256")


def verify_bundle(
    path: Path, trusted: Iterable[PublicKey], limits: BundleLimits | None = None
) -> VerifiedBundle:
    """Check everything about a bundle file without writing anything; raise a BundleError."""
    limits = limits or BundleLimits()
    keys = list(trusted)
    try:
        with open(path, "rb") as fh:
            zf, infos = _open_members(fh, os.fstat(fh.fileno()).st_size, limits)
            with zf:
                if infos[SIGNATURE].file_size != 64:
                    raise BundleSignatureInvalid("manifest.sig is not a 64-byte Ed25519 signature")
                manifest_bytes = _read_member(zf, infos[MANIFEST])
                signature = _read_member(zf, infos[SIGNATURE])
                manifest, signer = _check_signature(manifest_bytes, signature, keys)
                _check_member_hashes(zf, infos, manifest)
    except OSError as exc:
        raise BundleCorrupt(f"cannot read bundle: {exc.strerror or exc}") from exc
    return VerifiedBundle(Path(path), manifest, manifest_bytes, signature, signer)


def extract_bundle(
    bundle: VerifiedBundle, dest: Path, limits: BundleLimits | None = None
) -> dict[str, Path]:
    """Write the members of a verified bundle into the empty folder `dest`, hashing again
    on the way (the file could have changed since it was verified), and fsync them."""
    limits = limits or BundleLimits()
    out: dict[str, Path] = {}
    with open(bundle.path, "rb") as fh:
        zf, infos = _open_members(fh, os.fstat(fh.fileno()).st_size, limits)
        with zf:
            for name in bundle.manifest.member_names:
                target = dest / name
                _check_extracted(bundle, name, _extract_member(zf, infos[name], target))
                out[name] = target
    fsync_dir(dest)
    return out


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> str:
    h = hashlib.sha256()
    with open(target, "xb") as w:

        def sink(chunk: bytes) -> None:
            h.update(chunk)
            w.write(chunk)

        _stream_member(zf, info, sink)
        w.flush()
        os.fsync(w.fileno())
    return h.hexdigest()


def _check_extracted(bundle: VerifiedBundle, name: str, sha: str) -> None:
    if name == MANIFEST:
        ok = sha == hashlib.sha256(bundle.manifest_bytes).hexdigest()
    elif name == SIGNATURE:
        ok = sha == hashlib.sha256(bundle.signature).hexdigest()
    else:
        ok = sha == bundle.manifest.members[name].sha256
    if not ok:
        raise BundleMemberHashMismatch(f"bundle member {name} changed after it was verified")


def read_bundle_manifest(path: Path, limits: BundleLimits | None = None) -> Manifest:
    """The manifest of a bundle, *unverified* (for display; never for installing)."""
    with open(path, "rb") as fh:
        zf, infos = _open_members(fh, os.fstat(fh.fileno()).st_size, limits or BundleLimits())
        with zf:
            return Manifest.from_json_bytes(_read_member(zf, infos[MANIFEST]))

