"""TLS without a CA: self-signed certificates whose keys are pinned at enrolment.

Offline sites have no public CA and often a wrong clock, so trust comes from pinning
the SHA-256 of a certificate's SubjectPublicKeyInfo (its key, not its dates). A server
(agent or hub) holds `tls.key` (0600) and `tls.crt` in its folder; the agent also holds
`tls.proof.json`: its SPKI hash signed with its identity key, which the desktop already
pins, so a new certificate is proven by the same identity.

Clients use :func:`pinned_client_context`: the standard library's TLS 1.3 with chain and
date checks off (`CERT_NONE`), and the peer's SPKI hash compared with the pin right after
the handshake, before a single byte of the request (and its bearer token) is sent.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.contract.errors import AgentError
from edge_agent.contract.files import atomic_write
from edge_agent.contract.signing import PublicKey, Signer, verify_signature

KEY_FILE = "tls.key"
CERT_FILE = "tls.crt"
PROOF_FILE = "tls.proof.json"
_PROOF_CONTEXT = b"outpost-tls-spki\0"


class TLSFileError(AgentError):
    """A TLS key or certificate file is missing, unreadable or does not match."""


class PinMismatch(ssl.SSLCertVerificationError):
    """The peer's certificate key is not the pinned one (the connection was closed)."""

    def __init__(self, pinned: str, presented: str) -> None:
        super().__init__(f"certificate key {short(presented)} is not the pinned "
                         f"{short(pinned)}")
        self.pinned = pinned
        self.presented = presented


def short(spki: str) -> str:
    """How a pin is shown: `sha256:` and the first 32 hex digits."""
    return f"sha256:{spki[:32]}"


def _der_element(der: bytes, at: int) -> tuple[int, int, int]:
    """The DER element starting at `at`: its tag, where its content starts, where it ends."""
    if at + 2 > len(der):
        raise ValueError("certificate DER ends early")
    tag, length, start = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or start + count > len(der):
            raise ValueError("certificate DER has a bad length")
        length, start = int.from_bytes(der[start:start + count], "big"), start + count
    if start + length > len(der):
        raise ValueError("certificate DER ends early")
    return tag, start, start + length


def spki_sha256_of_der(cert_der: bytes) -> str:
    """SHA-256 of the certificate's SubjectPublicKeyInfo, as it stands in the DER
    (RFC 5280: Certificate → tbsCertificate → [0] version, serial, signature, issuer,
    validity, subject, subjectPublicKeyInfo). Read here rather than with cryptography's
    x509 so that neither a serving agent nor a pinning client loads cryptography."""
    tag, start, _ = _der_element(cert_der, 0)
    if tag != 0x30:
        raise ValueError("not a DER certificate")
    tag, at, _ = _der_element(cert_der, start)
    if tag != 0x30:
        raise ValueError("not a DER certificate")
    if _der_element(cert_der, at)[0] == 0xA0:  # [0] version: present from v2 on
        at = _der_element(cert_der, at)[2]
    for _ in range(5):  # serial, signature algorithm, issuer, validity, subject
        at = _der_element(cert_der, at)[2]
    tag, _, end = _der_element(cert_der, at)
    if tag != 0x30:
        raise ValueError("certificate has no SubjectPublicKeyInfo where expected")
    return hashlib.sha256(cert_der[at:end]).hexdigest()


def spki_sha256_of_file(cert_file: Path) -> str:
    """The pin of a PEM certificate file (its first certificate)."""
    try:
        pem = Path(cert_file).read_text(encoding="ascii")
        begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
        start = pem.index(begin) + len(begin)
        der = base64.b64decode("".join(pem[start:pem.index(end, start)].split()),
                               validate=True)
        return spki_sha256_of_der(der)
    except (OSError, UnicodeDecodeError, ValueError, binascii.Error) as exc:
        raise TLSFileError(f"certificate {cert_file} is unreadable: {exc}") from None


@dataclass(frozen=True)
class ServerCert:
    key_file: Path
    cert_file: Path
    spki: str


def create_cert(folder: Path, common_name: str, *, days: int = 36500,
                not_before: dt.datetime | None = None) -> ServerCert:
    """A fresh P-256 key (0600) and a self-signed certificate for it in `folder`.

    The validity is long because nothing checks it: clients pin the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.DNSName(common_name),
                 x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write(folder / KEY_FILE, key_pem, mode=0o600)
    atomic_write(folder / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return ServerCert(folder / KEY_FILE, folder / CERT_FILE,
                      spki_sha256_of_der(cert.public_bytes(serialization.Encoding.DER)))


def load_or_create_cert(folder: Path, common_name: str) -> ServerCert:
    key_file, cert_file = folder / KEY_FILE, folder / CERT_FILE
    if key_file.exists() and cert_file.exists():
        return ServerCert(key_file, cert_file, spki_sha256_of_file(cert_file))
    return create_cert(folder, common_name)


def server_context(cert: ServerCert) -> ssl.SSLContext:
    """TLS 1.3 only; no client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        ctx.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TLSFileError(f"cannot load TLS key {cert.key_file} and certificate "
                           f"{cert.cert_file}: {exc}") from None
    return ctx


# --- the identity key vouches for the TLS key ------------------------------------------

def proof_message(spki: str) -> bytes:
    return _PROOF_CONTEXT + spki.encode()


def write_proof(folder: Path, spki: str, identity: Signer) -> dict[str, str]:
    doc = {"spki_sha256": spki,
           "signature": base64.b64encode(identity.sign(proof_message(spki))).decode()}
    atomic_write(folder / PROOF_FILE, json.dumps(doc).encode() + b"\n")
    return doc


def read_proof(folder: Path) -> dict[str, str] | None:
    try:
        doc = json.loads((folder / PROOF_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def proof_valid(identity_key: PublicKey, spki: str, signature_b64: Any) -> bool:
    if not isinstance(signature_b64, str):
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify_signature(identity_key, signature, proof_message(spki))


# --- the client side -------------------------------------------------------------------

class _PinnedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        if isinstance(context, PinnedContext):
            der = self.getpeercert(binary_form=True)
            context.check(spki_sha256_of_der(der) if der else "")


class PinnedContext(ssl.SSLContext):
    """A client context that accepts exactly one certificate key.

    `pin=None` is trust-on-first-use for one enrolment: the first key seen is recorded
    in `seen` and every later handshake must present the same (the caller then checks it
    against the identity key's proof before trusting it)."""

    sslsocket_class = _PinnedSocket
    pin: str | None
    seen: str | None

    def check(self, presented: str) -> None:
        self.seen = presented
        if self.pin is None:
            self.pin = presented
            return
        if presented != self.pin:
            raise PinMismatch(self.pin, presented)


def pinned_client_context(pin: str | None) -> PinnedContext:
    ctx = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the pin names the peer; dates and names are not checked
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.pin = pin
    ctx.seen = None
    return ctx


def find_pin_mismatch(exc: BaseException | None) -> PinMismatch | None:
    """The PinMismatch behind an HTTP library's connection error, if that was the cause."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, PinMismatch):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
