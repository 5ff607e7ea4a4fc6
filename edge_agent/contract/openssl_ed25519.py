"""Ed25519 signing, verification and a private key's public half, through the OpenSSL that
Python's own ``ssl`` module already links.

The ``cryptography`` package costs the serving agent ~9.7 MB of resident memory the
moment any part of it is imported (one 14 MB Rust extension with its own OpenSSL), while
these operations are all a running agent needs: every installed version's manifest
signature is verified again on each start, the TLS proof is checked against the identity
key, and the identity key signs audit events and identity challenges. Making keys and
certificates (first start, rotation) still uses ``cryptography``. The same OpenSSL EVP
calls that ``cryptography`` makes for Ed25519, on the libcrypto that ``_ssl`` is linked
against (already mapped: uvicorn imports ``ssl``), cost 0.5 MB. Where that library
cannot be reached this way (an ``_ssl`` built into the interpreter; Windows, where a
DLL's handle does not reach its dependencies), :func:`available` is False and the caller
uses ``cryptography`` instead.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

_NID_ED25519 = 1087  # EVP_PKEY_ED25519, the same number in OpenSSL 1.1.1 and 3.x
_lib: Any = None
_loaded = False
_lock = threading.Lock()


def _load() -> Any:
    global _lib, _loaded
    with _lock:
        if _loaded:
            return _lib
        _loaded = True
        try:
            import _ssl

            lib = ctypes.CDLL(_ssl.__file__)  # dlsym on it searches its libcrypto too
            p, size, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
            for name, restype, argtypes in (
                    ("EVP_PKEY_new_raw_public_key", p, [i, p, ctypes.c_char_p, size]),
                    ("EVP_PKEY_new_raw_private_key", p, [i, p, ctypes.c_char_p, size]),
                    ("EVP_PKEY_get_raw_public_key", i, [p, ctypes.c_char_p,
                                                        ctypes.POINTER(size)]),
                    ("EVP_PKEY_free", None, [p]),
                    ("EVP_MD_CTX_new", p, []),
                    ("EVP_MD_CTX_free", None, [p]),
                    ("EVP_DigestVerifyInit", i, [p, p, p, p, p]),
                    ("EVP_DigestVerify", i, [p, ctypes.c_char_p, size, ctypes.c_char_p, size]),
                    ("EVP_DigestSignInit", i, [p, p, p, p, p]),
                    ("EVP_DigestSign", i, [p, ctypes.c_char_p, ctypes.POINTER(size),
                                           ctypes.c_char_p, size]),
                    ("ERR_clear_error", None, [])):
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
        except (ImportError, AttributeError, OSError):
            return None
        _lib = lib
        return lib


def available() -> bool:
    return _load() is not None


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True when `signature` is `public_key`'s Ed25519 signature of `data` (RFC 8032, as
    OpenSSL checks it: canonical S, a valid point). Needs :func:`available`."""
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    public_key, signature, data = bytes(public_key), bytes(signature), bytes(data)  # ctypes
    lib = _load()
    pkey = lib.EVP_PKEY_new_raw_public_key(_NID_ED25519, None, public_key, 32)
    if not pkey:
        lib.ERR_clear_error()
        raise ValueError("OpenSSL refused the Ed25519 public key")
    ctx = lib.EVP_MD_CTX_new()
    try:
        ok = (ctx and lib.EVP_DigestVerifyInit(ctx, None, None, None, pkey) == 1
              and lib.EVP_DigestVerify(ctx, signature, len(signature), data, len(data)) == 1)
    finally:
        lib.EVP_MD_CTX_free(ctx)
        lib.EVP_PKEY_free(pkey)
    if not ok:
        lib.ERR_clear_error()  # leave no error behind for the ssl module to misreport
    return bool(ok)


def _private(seed: bytes) -> Any:
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 private key has 32 bytes, not {len(seed)}")
    lib = _load()
    pkey = lib.EVP_PKEY_new_raw_private_key(_NID_ED25519, None, seed, 32)
    if not pkey:
        lib.ERR_clear_error()
        raise ValueError("OpenSSL refused the Ed25519 private key")
    return pkey


def public_from_seed(seed: bytes) -> bytes:
    """The raw 32-byte public key of a raw 32-byte Ed25519 private key. Needs
    :func:`available`."""
    pkey = _private(bytes(seed))
    lib = _load()
    try:
        out, size = ctypes.create_string_buffer(32), ctypes.c_size_t(32)
        if lib.EVP_PKEY_get_raw_public_key(pkey, out, ctypes.byref(size)) != 1 or size.value != 32:
            lib.ERR_clear_error()
            raise ValueError("OpenSSL gave no Ed25519 public key")
        return out.raw
    finally:
        lib.EVP_PKEY_free(pkey)


def sign(seed: bytes, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of `data` by the raw 32-byte private key `seed`.
    Needs :func:`available`."""
    data = bytes(data)  # a bytearray or memoryview: ctypes takes bytes
    pkey = _private(bytes(seed))
    lib = _load()
    ctx = lib.EVP_MD_CTX_new()
    try:
        out, size = ctypes.create_string_buffer(64), ctypes.c_size_t(64)
        if not (ctx and lib.EVP_DigestSignInit(ctx, None, None, None, pkey) == 1
                and lib.EVP_DigestSign(ctx, out, ctypes.byref(size), data, len(data)) == 1
                and size.value == 64):
            lib.ERR_clear_error()
            raise ValueError("OpenSSL could not sign with the Ed25519 key")
        return out.raw
    finally:
        lib.EVP_MD_CTX_free(ctx)
        lib.EVP_PKEY_free(pkey)
