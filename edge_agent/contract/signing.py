"""Ed25519 keys: generation, the two key file formats, fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.files import atomic_write

PUBLIC_KEY_PREFIX = "outpost-ed25519"


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a public key (of the private key's public half)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_bytes(key)).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError("public key is not valid base64") from exc
    if len(raw) != 32:
        raise KeyFileError(f"public key has {len(raw)} bytes, expected 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


def verify_signature(pub: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        pub.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def save_private_key(key: Ed25519PrivateKey, path: Path) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return atomic_write(Path(path), pem, mode=0o600)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def format_public_key(pub: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    return f"{PUBLIC_KEY_PREFIX} {public_key_b64(pub)}\n"


def write_public_key(pub: Ed25519PublicKey | Ed25519PrivateKey, path: Path) -> Path:
    return atomic_write(Path(path), format_public_key(pub).encode("ascii"))


def parse_public_key(text: str) -> Ed25519PublicKey:
    parts = text.split()
    if len(parts) != 2 or parts[0] != PUBLIC_KEY_PREFIX:
        raise KeyFileError(f"expected '{PUBLIC_KEY_PREFIX} <base64>'")
    return public_key_from_b64(parts[1])


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read public key file {path}") from exc
    try:
        return parse_public_key(text)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc
