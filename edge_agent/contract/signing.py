"""Ed25519 keys: generation, the two key file formats, fingerprints, verification.

``cryptography`` is imported only by what needs it (making keys, reading an unusual key
file, signing with a key object): verifying, signing with a raw key and finding a
private key's public half go through :mod:`edge_agent.contract.openssl_ed25519` where it
is available, so an agent that restarts and serves (verifying its installed bundles)
never loads ``cryptography`` (~9.7 MB resident). Public keys may be given as raw 32
bytes or as key objects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

from edge_agent.contract import openssl_ed25519
from edge_agent.contract.errors import KeyFileError
from edge_agent.contract.files import atomic_write

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

PUBLIC_KEY_PREFIX = "outpost-ed25519"
PublicKey: TypeAlias = "bytes | Ed25519PublicKey"  # raw 32 bytes, or the key object
# PKCS#8 of an Ed25519 private key, as every key this project writes is stored: this DER
# prefix, then the 32-byte private key (RFC 8410).
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


def generate_signing_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PrivateKey | PublicKey) -> bytes:
    """The raw 32 bytes of a public key (of the private key's public half)."""
    if isinstance(key, bytes):
        return key
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey | PublicKey) -> str:
    return base64.b64encode(public_key_bytes(key)).decode("ascii")


def raw_public_key_from_b64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError("public key is not valid base64") from exc
    if len(raw) != 32:
        raise KeyFileError(f"public key has {len(raw)} bytes, expected 32")
    return raw


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw_public_key_from_b64(text))


def key_fingerprint(key: Ed25519PrivateKey | PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


def verify_signature(pub: PublicKey, signature: bytes, data: bytes) -> bool:
    if openssl_ed25519.available():
        return openssl_ed25519.verify(public_key_bytes(pub), signature, data)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(pub) if isinstance(pub, bytes) else pub
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def public_from_private(seed: bytes) -> bytes:
    """The raw public key of a raw 32-byte private key."""
    if openssl_ed25519.available():
        return openssl_ed25519.public_from_seed(seed)
    return public_key_bytes(private_key_from_raw(seed))


def sign_raw(seed: bytes, data: bytes) -> bytes:
    """Ed25519 signature of `data` by a raw 32-byte private key."""
    if openssl_ed25519.available():
        return openssl_ed25519.sign(seed, data)
    return private_key_from_raw(seed).sign(data)


class Signer(Protocol):
    """What signs: a cryptography private key, or the agent's identity (store/identity.py)."""

    def sign(self, data: bytes) -> bytes: ...


def private_key_from_raw(seed: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed)


def save_private_key(key: Ed25519PrivateKey, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return atomic_write(Path(path), pem, mode=0o600)


def load_private_raw(path: Path) -> bytes:
    """The raw 32-byte private key of an unencrypted PEM Ed25519 key file. The PKCS#8 form
    this project writes is read directly; any other form goes through cryptography."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}") from exc
    lines = data.strip().splitlines()
    if len(lines) >= 3 and lines[0] == _PEM_BEGIN and lines[-1] == _PEM_END:
        try:
            der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
        except (binascii.Error, ValueError):
            der = b""
        if len(der) == 48 and der.startswith(_PKCS8_ED25519):
            return der[16:]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key.private_bytes_raw()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    return private_key_from_raw(load_private_raw(path))


def format_public_key(pub: PublicKey | Ed25519PrivateKey) -> str:
    return f"{PUBLIC_KEY_PREFIX} {public_key_b64(pub)}\n"


def write_public_key(pub: PublicKey | Ed25519PrivateKey, path: Path) -> Path:
    return atomic_write(Path(path), format_public_key(pub).encode("ascii"))


def parse_public_raw(text: str) -> bytes:
    parts = text.split()
    if len(parts) != 2 or parts[0] != PUBLIC_KEY_PREFIX:
        raise KeyFileError(f"expected '{PUBLIC_KEY_PREFIX} <base64>'")
    return raw_public_key_from_b64(parts[1])


def parse_public_key(text: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(parse_public_raw(text))


def load_public_raw(path: Path) -> bytes:
    """The raw key of a public key file (`outpost-ed25519 <base64>`)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read public key file {path}") from exc
    try:
        return parse_public_raw(text)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(load_public_raw(path))
