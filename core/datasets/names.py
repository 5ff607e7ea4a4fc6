"""Dataset names and references (``name`` or ``name@version-prefix``)."""
from __future__ import annotations

import re
import unicodedata

from core.errors import InvalidInput

MAX_NAME = 64
MIN_PREFIX = 4
_ALLOWED_PUNCTUATION = set("_-. ")
_HEX = re.compile(r"^[0-9a-f]+$")


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a dataset, else say exactly what is wrong with it."""
    shown = name.encode("unicode_escape").decode("ascii")
    if not name:
        raise InvalidInput("dataset name is empty")
    if any(_is_control(ch) for ch in name):
        raise InvalidInput(f"dataset name {shown!r} contains control characters")
    for bad in ("/", "\\"):
        if bad in name:
            raise InvalidInput(f"dataset name {shown!r} must not contain {bad!r}")
    if ".." in name:
        raise InvalidInput(f"dataset name {shown!r} must not contain '..'")
    if "@" in name:
        raise InvalidInput(
            f"dataset name {shown!r} must not contain '@' (it separates name and version)")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"dataset name is too long ({len(name)} characters, at most {MAX_NAME})")
    if name != name.strip():
        raise InvalidInput(f"dataset name {shown!r} must not start or end with a space")
    if not name[0].isalnum():
        raise InvalidInput(f"dataset name {shown!r} must start with a letter or a digit")
    odd = sorted({ch for ch in name if not ch.isalnum() and ch not in _ALLOWED_PUNCTUATION})
    if odd:
        raise InvalidInput(
            f"dataset name {shown!r} contains {''.join(odd)!r}; "
            "use letters, digits, '_', '-', '.' or spaces"
        )
    return name


def default_name(stem: str) -> str:
    """A valid dataset name from a file name without its format suffix."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in stem)
    cleaned = re.sub(r"_+", "_", cleaned.replace("..", "_")).strip("_-.")[:MAX_NAME]
    return cleaned.rstrip("_-.") or "dataset"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@version`` into its parts; the version is a lower-case hex prefix."""
    name, sep, version = ref.partition("@")
    validate_name(name)
    if not sep:
        return name, None
    version = version.lower()
    if len(version) < MIN_PREFIX or not _HEX.match(version):
        raise InvalidInput(
            f"{ref!r}: a version is at least {MIN_PREFIX} hex digits of its id, e.g. {name}@3fa2c1"
        )
    return name, version
